#!/usr/bin/env bash
# The data-scale curve: get by id, find 25 (filter + cursor) and count + sum for one member on
# arcbase over SQLite holding 10,000, 100,000 and 1,000,000 messages (1,000 members), the server
# on CPU 0 and wrk on CPU 1 (16 connections, every response checked), the same texts with
# variables as bench/run.sh. get and find should stay flat (index and key lookups); count + sum
# for one member grows with that member's messages (10 to 1,000). Writes the section between
# <!-- scale-bench:start --> and <!-- scale-bench:end --> of docs/benchmarks.md.
#
#   bench/scale.sh            10 s per measurement
#   bench/scale.sh --quick    3 s
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10
if [ "${1:-}" = "--quick" ]; then SECS=3; fi
WORK=$(mktemp -d /tmp/arcbase-scale-bench.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
log "building arcbase (release)"
cargo build --release --quiet --bin arcbase --example bench
RESULTS=$WORK/results.jsonl
for N in 10000 100000 1000000; do
  DB="sqlite://$WORK/scale-$N.db"
  log "loading $N messages"
  target/release/examples/bench load "$DB" "$N" >&2
  RUST_LOG=warn taskset -c 0 target/release/arcbase serve --schema bench/schema.graphql --database "$DB" \
    --listen 127.0.0.1:5321 > "$WORK/out" 2> "$WORK/err" &
  PID=$!
  for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/5321) 2>/dev/null && break; sleep 0.1; done
  for w in get find count; do
    taskset -c 1 wrk -t1 -c16 -d1s -s bench/wrk/workload.lua http://127.0.0.1:5321 -- "$w" arcbase "$N" > /dev/null
    out=$(taskset -c 1 wrk -t1 -c16 -d${SECS}s --latency -s bench/wrk/workload.lua http://127.0.0.1:5321 -- "$w" arcbase "$N" | grep '^{"rps"')
    echo "{\"n\": $N, \"workload\": \"$w\", \"r\": $out}" >> "$RESULTS"
    log "$N $w: $out"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  rm -rf "$WORK"/scale-"$N".db*
done
python3 - "$RESULTS" "$(git describe --always --dirty)" "$SECS" "$*" <<'PY' | python3 bench/section.py scale
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rev, secs, args = sys.argv[2], sys.argv[3], sys.argv[4]
cmd = ("bench/scale.sh " + args).strip()
by = {(r["n"], r["workload"]): r["r"] for r in rows}
sizes = sorted({r["n"] for r in rows})
out = ["## Data scale: 10k, 100k and 1M objects", "",
       f"`{cmd}` at {rev}: arcbase on SQLite (CPU 0), wrk on CPU 1 (1 thread, 16 connections, {secs} s, every response checked); 1,000 members and N messages loaded by `bench load URL N` (statistics analyzed after the load).", "",
       "| messages | workload | req/s | p50 ms | p99 ms | errors |", "|---:|---|---:|---:|---:|---:|"]
for n in sizes:
    for w in ("get", "find", "count"):
        r = by.get((n, w))
        if r:
            out.append(f"| {n:,} | {w} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors'] + r['socket_errors']} |")
out.append("")
lo, hi = sizes[0], sizes[-1]
for w, goal in (("get", 1.5), ("find", 1.5)):
    a, b = by.get((lo, w)), by.get((hi, w))
    if a and b:
        ratio = b["p99_ms"] / a["p99_ms"]
        out.append(f"- {w} p99 at {hi:,} / at {lo:,}: {ratio:.2f} (goal <= {goal}: {'met' if ratio <= goal else 'not met'}).")
a, b = by.get((lo, "count")), by.get((hi, "count"))
if a and b:
    out.append(f"- count + sum p50 at {hi:,} / at {lo:,}: {b['p50_ms'] / a['p50_ms']:.1f} (each member has {hi // 1000:,} messages against {lo // 1000:,}: linear in them).")
print("\n".join(out))
PY
