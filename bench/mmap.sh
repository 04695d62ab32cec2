#!/usr/bin/env bash
# SQLite's memory map on and off (ARCBASE_LIMIT_SQLITE_MMAP_BYTES): get and find 25 + cursor on
# the bench dataset (1,000 members, 100,000 messages or MESSAGES), arcbase on CPU 0 and wrk on CPU 1
# (1 thread, 16 connections, every response checked), with the peak RSS (VmHWM) of each run.
# Writes the section between <!-- mmap-bench:start --> and <!-- mmap-bench:end --> of
# docs/benchmarks.md.
#
#   bench/mmap.sh                    10 s per measurement
#   bench/mmap.sh --quick [MESSAGES]  4 s (MESSAGES: e.g. 1000000; the map is then 1 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10
N=100000
for a in "$@"; do
  case "$a" in
    --quick) SECS=4 ;;
    *) N=$a ;;
  esac
done
MAP=268435456
if [ "$N" -gt 100000 ]; then MAP=1073741824; fi
WORK=$(mktemp -d /tmp/arcbase-mmap-bench.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin arcbase --example bench
target/release/examples/bench load "sqlite://$WORK/b.db" "$N" >/dev/null
{
echo "## SQLite memory map (ARCBASE_LIMIT_SQLITE_MMAP_BYTES)"
echo
echo "\`bench/mmap.sh $*\` at $(git describe --always --dirty): arcbase on SQLite (CPU 0) with 1,000 members and $N messages, wrk on CPU 1 (1 thread, 16 connections, ${SECS} s, every response checked); one server process per row, its peak RSS (VmHWM) after the run."
echo
echo "| mmap bytes | workload | req/s | p50 ms | p99 ms | errors | peak RSS MiB |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for MMAP in 0 $MAP; do
  for w in get find; do
    ARCBASE_LIMIT_SQLITE_MMAP_BYTES=$MMAP RUST_LOG=warn taskset -c 0 target/release/arcbase serve \
      --schema bench/schema.graphql --database "sqlite://$WORK/b.db" --listen 127.0.0.1:5331 >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/5331) 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c16 -d1s -s bench/wrk/workload.lua http://127.0.0.1:5331 -- "$w" arcbase "$N" >/dev/null
    out=$(taskset -c 1 wrk -t1 -c16 -d${SECS}s -s bench/wrk/workload.lua http://127.0.0.1:5331 -- "$w" arcbase "$N" | grep '^{"rps"')
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    python3 - "$out" "$MMAP" "$w" "$rss" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
errors = r["errors"] + r["socket_errors"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors} | {int(sys.argv[4]) / 1024:.1f} |")
PY
  done
done
echo
echo "Mapped pages are the OS's page cache, shared with it, but VmHWM counts them once per connection that touched them: the default stays 0 so that a small server keeps its RSS within a third of PostGraphile v4's (the memory goal); a server with memory to spare sets it to the database's size."
} | python3 bench/section.py mmap
