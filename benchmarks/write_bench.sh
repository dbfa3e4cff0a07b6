#!/usr/bin/env bash
# Retrieve and patch with 64 connections against `syncline serve` on examples/blog/config.json, with
# "write_threads": WRITE_THREADS (benchmarks/README.md, "Writes off the network threads").
# usage: benchmarks/write_bench.sh WORKERS WRITE_THREADS LABEL [DATABASE]   (DATABASE: a postgresql:// URL; default a
# fresh SQLite file). Uses build/bin (BUILD_DIR, an absolute path, to change it). BATCH_WRITES=false serves writes on the
# write pool instead of the batch writer ("batch_writes").
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
workers=$1; wt=$2; label=$3; db=${4:-}
bin=${BUILD_DIR:-$root/build}/bin/syncline
lg=${BUILD_DIR:-$root/build}/bin/syncline_loadgen
dir=$(mktemp -d); cd "$dir"
python3 - "$root/examples/blog/config.json" "$wt" "$db" "${BATCH_WRITES:-true}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c['write_threads'] = int(sys.argv[2])
c['batch_writes'] = sys.argv[4] == 'true'
c.pop('static', None)  # the demo page's folder is relative to examples/blog/, not to this copy
if sys.argv[3]: c['database'] = sys.argv[3]
json.dump(c, open('config.json', 'w'))
PY
port=$((20000 + RANDOM % 20000))
"$bin" serve --config config.json --port $port --workers "$workers" > server.log 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
url=ws://127.0.0.1:$port/ws/posts/
"$lg" --url $url --payload '{"action":"create","request_id":{i},"data":{"title":"t"}}' -c 4 -d 1 --warmup 0 > /dev/null
echo "== $label workers=$workers write_threads=$wt batch_writes=${BATCH_WRITES:-true} $(date -u +%FT%TZ) load $(cut -d' ' -f1 /proc/loadavg)"
echo -n "retrieve: "; "$lg" --url $url --payload '{"action":"retrieve","request_id":{i},"pk":1}' -c 64 -d 8 --json | tail -1
echo -n "patch-own-row: "; "$lg" --url $url --payload '{"action":"patch","request_id":{i},"pk":1{conn},"data":{"body":"b{i}"}}' -c 64 -d 8 --json | tail -1
echo -n "patch-pk1: "; "$lg" --url $url --payload '{"action":"patch","request_id":{i},"pk":1,"data":{"body":"b{i}"}}' -c 64 -d 8 --json | tail -1
kill $pid; wait $pid 2>/dev/null
rm -rf "$dir"
