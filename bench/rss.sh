#!/usr/bin/env bash
# Resident memory of arcbase binaries on the bench schema: for each BINARY, serve DATABASE_URL
# (loaded beforehand by `target/release/examples/bench load DATABASE_URL 100000`) on CPU 0, read
# VmRSS once it listens, run 3 s each of find, upsert, count and get from bench/wrk/workload.lua
# (64 connections, wrk on CPU 1), then print the idle RSS, the peak (VmHWM) and the RSS at the end.
# Used to weigh an allocator or a cache against its memory (docs/benchmarks.md).
#
#   bench/rss.sh DATABASE_URL BINARY...
#   e.g. bench/rss.sh sqlite:///tmp/b.db /tmp/arcbase-before target/release/arcbase
set -euo pipefail
cd "$(dirname "$0")/.."
DB=$1
shift
PORT=${PORT:-5003}
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null' EXIT
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
for bin in "$@"; do
  RUST_LOG=warn taskset -c 0 "$bin" serve --schema bench/schema.graphql --database "$DB" \
    --listen 127.0.0.1:$PORT > /dev/null 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  idle=$(kb VmRSS)
  for w in find upsert count get; do
    taskset -c 1 wrk -t1 -c64 -d3s -s bench/wrk/workload.lua http://127.0.0.1:$PORT -- "$w" arcbase 100000 > /dev/null
  done
  echo "{\"binary\": \"$bin\", \"idle_rss_kb\": $idle, \"peak_rss_kb\": $(kb VmHWM), \"end_rss_kb\": $(kb VmRSS)}"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
