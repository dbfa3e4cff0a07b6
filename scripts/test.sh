#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test. Installs the JavaScript tests' npm packages
# into a temporary folder (scripts/node-deps.sh). Starts its own redis-server and its own PostgreSQL 15
# (scripts/pg-test-server.sh) on free loopback ports for the tests that need them and stops them afterwards, pass or
# fail. Exits non-zero on any failure.
# Environment: as scripts/build.sh (BUILD_DIR, SANITIZE, ...), plus CTEST_ARGS for extra ctest arguments.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
# shellcheck source=scripts/pg-test-server.sh
source "$root/scripts/pg-test-server.sh"

redis_dir=$(mktemp -d)
node_dir=$(mktemp -d)
redis_pid=""
cleanup() {
  if [[ -n "$redis_pid" ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$redis_dir" "$node_dir"
  pg_test_stop
}
trap cleanup EXIT
# The JavaScript tests' npm packages (pinned), into a temporary folder.
"$root/scripts/node-deps.sh" "$node_dir"
export SYNCLINE_NODE_MODULES="$node_dir/node_modules"
# Pick a random loopback port; if another process holds it, redis-server exits and we try the next one.
port=""
for _ in $(seq 20); do
  candidate=$(shuf -i 20000-60999 -n 1)
  redis-server --port "$candidate" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
    --daemonize no --loglevel warning >"$redis_dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    if redis-cli -p "$candidate" ping >/dev/null 2>&1; then port=$candidate; break; fi
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$port" ]] && break
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
done
[[ -n "$port" ]] || { echo "test: redis-server did not start"; cat "$redis_dir/redis.log"; exit 1; }
echo "test: redis-server on 127.0.0.1:$port"
export SYNCLINE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
# PostgreSQL 15 as an unprivileged user: exports SYNCLINE_TEST_PG_URL (admin URL) and SYNCLINE_TEST_PG_BIN.
pg_test_start
export SYNCLINE_BIN_DIR="$build_dir/bin"
# ThreadSanitizer: the reviewed suppressions of third-party races (each with its reason), and a failing exit code for
# any report (also from the server processes the integration tests start, which inherit this environment).
if [[ "${SANITIZE:-}" == *thread* ]]; then
  export TSAN_OPTIONS="suppressions=$root/scripts/tsan-suppressions.txt second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
fi

cd "$build_dir"
ctest --output-on-failure --timeout 300 -j "${CTEST_JOBS:-2}" ${CTEST_ARGS:-}
