#!/usr/bin/env bash
# The object cache: `get` by id of a `@hyper(cache: true)` type (answered from memory) beside
# the same type without it (one statement on SQLite), on one SQLite server, 10,000 objects each,
# wrk on CPU 1 and the server on CPU 0, every response checked. Writes the section between
# <!-- object-cache-bench:start --> and <!-- object-cache-bench:end --> of docs/benchmarks.md.
#
#   bench/object_cache.sh            10 s per measurement
#   bench/object_cache.sh --quick    4 s
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10
if [ "${1:-}" = "--quick" ]; then SECS=4; fi
N=10000
CONNS=32
WORK=$(mktemp -d /tmp/arcbase-cache-bench.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
log "building arcbase (release)"
cargo build --release --quiet --bin arcbase
cat > "$WORK/schema.graphql" <<'SDL'
type Plain @access(read: PUBLIC, write: PUBLIC) {
  text: String
  score: Int
}
type Cached @access(read: PUBLIC, write: PUBLIC) @hyper(cache: true, data: false) {
  text: String
  score: Int
}
SDL
taskset -c 0 target/release/arcbase serve --schema "$WORK/schema.graphql" --database "sqlite://$WORK/c.db" \
  --listen 127.0.0.1:5311 --storage-dir "$WORK/storage" > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/5311) 2>/dev/null && break; sleep 0.1; done
log "loading $N objects of each type"
python3 - "$N" <<'PY'
import json, sys, urllib.request
n = int(sys.argv[1])
for t in ("Plain", "Cached"):
    for start in range(1, n + 1, 25):
        objs = [{"hypi": {"id": f"o{i:06d}"}, "text": f"t{i}", "score": i % 100} for i in range(start, min(n, start + 24) + 1)]
        body = json.dumps({"query": "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", "variables": {"v": {t: objs}}}).encode()
        req = urllib.request.Request("http://127.0.0.1:5311/graphql", body, {"content-type": "application/json"})
        out = json.load(urllib.request.urlopen(req))
        assert "errors" not in out, out
PY
RESULTS=$WORK/results.jsonl
for t in Plain Cached; do
  log "get $t"
  taskset -c 1 wrk -t1 -c$CONNS -d2s -s bench/wrk/cached_get.lua http://127.0.0.1:5311 -- "$t" "$N" > /dev/null
  out=$(taskset -c 1 wrk -t1 -c$CONNS -d${SECS}s --latency -s bench/wrk/cached_get.lua http://127.0.0.1:5311 -- "$t" "$N" | grep '^{"rps"')
  echo "{\"type\": \"$t\", \"r\": $out}" >> "$RESULTS"
done
FIG=$(curl -s http://127.0.0.1:5311/admin/caches)
python3 - "$RESULTS" "$(git describe --always --dirty)" "$SECS" "$FIG" "$*" <<'PY' | python3 bench/section.py object-cache
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rev, secs, fig, args = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])["objects"], sys.argv[5]
cmd = ("bench/object_cache.sh " + args).strip()
by = {r["type"]: r["r"] for r in rows}
out = ["## The object cache: `get` from memory", "",
       f"`{cmd}` at {rev}: one SQLite server on CPU 0, wrk (1 thread, 32 connections, {secs} s, every response checked for the object) on CPU 1; `get` by id of a random one of 10,000 objects, of a plain type and of the same type with `@hyper(cache: true)`.", "",
       "| type | req/s | p50 ms | p99 ms | checked | errors |", "|---|---|---|---|---|---|"]
for t, label in (("Plain", "plain (one statement)"), ("Cached", "`@hyper(cache: true)` (from memory)")):
    r = by[t]
    out.append(f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['checked']} | {r['errors']} |")
out += ["", f"Cached / plain: {by['Cached']['rps'] / by['Plain']['rps']:.2f}x the requests per second. The cache after the run: {fig['entries']} documents, {fig['bytes']:,} bytes, {fig['hits']:,} hits, {fig['misses']:,} misses."]
print("\n".join(out))
PY
