#!/usr/bin/env bash
# README command 1: install what is missing, build, and start the server on its embedded default
# (SQLite file, in-process bus, no Redis). Extra arguments go to `syncline serve`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh"
BUILD_BENCHMARKS=OFF "$root/scripts/build.sh"
cd "$root/examples/blog"
exec "${BUILD_DIR:-$root/build}/bin/syncline" serve --config config.json "$@"
