#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang++ into build-fuzz/ (every library instrumented, ASan + UBSan) and
# runs each target in turn, one process at a time, from its seed corpus (fuzz/corpus/<target>/, never written to).
# Prints libFuzzer's progress lines and a summary; exits non-zero when a target crashed (or found a broken invariant,
# a leak, a timeout or an out-of-memory), naming the input it wrote. See FUZZING.md.
#
# Usage: scripts/fuzz.sh [target...]        (targets: json config handshake jwt event frame; default: all)
# Environment:
#   FUZZ_TIME   seconds per target (default 60)
#   FUZZ_RUNS   executions per target instead of a time (libFuzzer's -runs)
#   FUZZ_WORK   where grown corpora, crash inputs and logs go (default: build-fuzz/fuzz-work; kept between runs, so
#               a later run goes on from the corpus an earlier one grew; delete it to start from the seeds alone)
#   FUZZ_ARGS   more libFuzzer flags, e.g. "-max_len=8192"
#   BUILD_DIR   default build-fuzz; JOBS build jobs (default: number of cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build-fuzz}
work=${FUZZ_WORK:-$build_dir/fuzz-work}
jobs=${JOBS:-$(nproc)}
all_targets=(json config handshake jwt event frame)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target \"$t\"; targets: ${all_targets[*]}"; exit 2; }
done

"$root/scripts/install-deps.sh"
start=$(date +%s)
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSYNCLINE_FUZZ=ON -DSYNCLINE_BUILD_TESTS=OFF -DSYNCLINE_BUILD_BENCHMARKS=OFF >/dev/null
# Everything, not only the targets: the whole library must keep building with clang (warnings are errors).
cmake --build "$build_dir" -j "$jobs"
echo "fuzz: built in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
if [[ -n "${FUZZ_RUNS:-}" ]]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="${FUZZ_TIME:-60}"); fi
summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus"
  log="$work/$t/fuzz.log"
  dict=()
  [[ -f "$root/fuzz/$t.dict" ]] && dict=(-dict="$root/fuzz/$t.dict")
  # -timeout: an input that takes longer is a finding (a request that stalls a socket); -rss_limit_mb: so is one
  # that makes the process grow past 2 GB.
  cmd=("$build_dir/bin/fuzz_$t" "${limit[@]}" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
       -artifact_prefix="$work/$t/" "${dict[@]}" ${FUZZ_ARGS:-} "$work/$t/corpus" "$root/fuzz/corpus/$t")
  echo "=== fuzz $t: ${cmd[*]}"
  t_start=$(date +%s)
  set +e
  # Progress: libFuzzer's pulse lines (at 2^n executions) and its findings; the whole output is in the log.
  "${cmd[@]}" 2>&1 | tee "$log" | grep --line-buffered -E 'pulse|INITED|DONE|Done [0-9]+ runs|ERROR|SUMMARY|fuzzer: |Test unit written'
  rc=${PIPESTATUS[0]}
  set -e
  seconds=$(( $(date +%s) - t_start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  if [[ $rc -eq 0 ]]; then
    result=ok
  else
    failed=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    result="FAILED (exit $rc) ${artifact:-see $log}"
  fi
  summary+=("$(printf '%-10s %12s %9s %7s %7s %7s %12s  %s' "$t" "${runs:-?}" "${rate:-?}" "$seconds" "${cov:-?}" \
                       "${ft:-?}" "${corp:-?}" "$result")")
done

echo "=== fuzz summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; corpora and logs in $work)"
printf '%-10s %12s %9s %7s %7s %7s %12s  %s\n' target executions exec/s seconds cov ft corpus result
printf '%s\n' "${summary[@]}"
echo "=== fuzz: $(( $(date +%s) - start )) s in all"
if [[ $failed -ne 0 ]]; then
  echo "fuzz: a target failed; reproduce with: $build_dir/bin/fuzz_<target> <input> (FUZZING.md: Findings)"
fi
exit $failed
