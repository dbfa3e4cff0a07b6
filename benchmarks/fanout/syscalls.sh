#!/usr/bin/env bash
# Frames per write: counts the server side's sendmsg and futex calls while syncline_fanout measures one case, in the
# bare run and in the syncline run, and sets them beside the deliveries the tool reports.
#
#   benchmarks/fanout/syscalls.sh fanout-1x10000 [syncline_fanout options...]
#
# The servers (bare and syncline) run in the tool's own process; the clients run in a forked child, so the counts are
# the servers' (and the syncline writer's) calls only. Needs `perf` (linux-perf) and perf_event_paranoid <= 2. Each
# window is 4 s, taken from the 2nd second of the case's measuring window, so --duration must be at least 7.
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n 2,9p "$0"; exit 2; }
case_name=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
tool=${SYNCLINE_FANOUT:-$root/build-bench/bin/syncline_fanout}
seconds=4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$tool" --case "$case_name" --duration 8 "$@" >"$work/out" 2>"$work/err" &
tool_pid=$!

count() { # phase label -> "sendmsg futex" per second in a $seconds window
    local phase=$1
    for _ in $(seq 1 1200); do
        grep -q "$phase measuring 2/" "$work/err" && break
        kill -0 "$tool_pid" 2>/dev/null || { echo "syncline_fanout ended early:" >&2; cat "$work/err" >&2; exit 1; }
        sleep 0.1
    done
    perf stat -x, -e syscalls:sys_enter_sendmsg,syscalls:sys_enter_futex -p "$tool_pid" -- sleep "$seconds" \
        2>"$work/$phase.stat"
    awk -F, -v s="$seconds" '/sendmsg/ {m = $1 / s} /futex/ {f = $1 / s} END {printf "%d %d\n", m, f}' \
        "$work/$phase.stat"
}

read -r bare_sendmsg bare_futex < <(count bare)
read -r sync_sendmsg sync_futex < <(count syncline)
wait "$tool_pid"

line=$(grep "^$case_name:" "$work/out")
sync_rate=$(sed -E 's/.*\| syncline ([0-9,]+) deliveries.*/\1/' <<<"$line" | tr -d ,)
bare_rate=$(sed -E 's/.*bare websocketpp ([0-9,]+) deliveries.*/\1/' <<<"$line" | tr -d ,)
cat "$work/out"
awk -v c="$case_name" -v bm="$bare_sendmsg" -v bf="$bare_futex" -v br="$bare_rate" \
    -v sm="$sync_sendmsg" -v sf="$sync_futex" -v sr="$sync_rate" 'BEGIN {
    printf "%s frames per sendmsg: bare %.2f (%d sendmsg/s, %d futex/s), syncline %.2f (%d sendmsg/s, %d futex/s)\n",
        c, br / bm, bm, bf, sr / sm, sm, sf
}'
