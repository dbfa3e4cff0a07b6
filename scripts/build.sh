#!/usr/bin/env bash
# Configures and builds syncline. Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo),
# SANITIZE (empty, "address,undefined" or "thread"), JOBS (default: number of cores), BUILD_TESTS and
# BUILD_BENCHMARKS (ON or OFF, default ON), TARGET (one target to build, e.g. syncline; default all).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
cmake -S "$root" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DSYNCLINE_SANITIZE="${SANITIZE:-}" \
  -DSYNCLINE_BUILD_TESTS="${BUILD_TESTS:-ON}" \
  -DSYNCLINE_BUILD_BENCHMARKS="${BUILD_BENCHMARKS:-ON}" >/dev/null
cmake --build "$build_dir" -j "$jobs" ${TARGET:+--target "$TARGET"}
