#!/usr/bin/env bash
# README command 1: install what is missing to build and run (scripts/debian-packages.txt only), build the `syncline`
# binary alone (no tests, benchmarks or examples), and start the server on its embedded default (SQLite file, in-process
# bus, no Redis) with the demo page. Extra arguments go to `syncline serve`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh" run
BUILD_TESTS=OFF BUILD_BENCHMARKS=OFF TARGET=syncline "$root/scripts/build.sh"
cd "$root/examples/blog"
# The address the page is served on: config.json's "listen" (one line there), or --host/--port given here.
host=$(sed -n 's/.*"listen":.*"host": *"\([^"]*\)".*/\1/p' config.json | head -n 1)
port=$(sed -n 's/.*"listen":.*"port": *\([0-9]*\).*/\1/p' config.json | head -n 1)
host=${host:-127.0.0.1} port=${port:-8000}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --host) host=${args[i + 1]:-$host} ;;
    --host=*) host=${args[i]#--host=} ;;
    --port) port=${args[i + 1]:-$port} ;;
    --port=*) port=${args[i]#--port=} ;;
  esac
done
echo
echo "serve: open http://$host:$port/ in two browser tabs (the demo page; websocket ws://$host:$port/ws/posts/)"
echo
exec "${BUILD_DIR:-$root/build}/bin/syncline" serve --config config.json "$@"
