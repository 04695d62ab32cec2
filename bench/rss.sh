#!/usr/bin/env bash
# Resident memory of arcbase binaries on the bench schema: for each BINARY, serve DATABASE_URL
# (loaded beforehand by `target/release/examples/bench load DATABASE_URL 100000`) on CPU 0, read
# VmRSS once it listens, run 3 s each of find, upsert, count and get from bench/wrk/workload.lua
# (64 connections, wrk on CPU 1, every response checked), then print the idle RSS, the peak
# (VmHWM) and the RSS at the end. Used to weigh an allocator or a cache against its memory
# (docs/benchmarks.md).
#
# The upserts add messages. A SQLite database (sqlite:///PATH) is copied for each binary, so
# each one starts from the same data. A PostgreSQL database is shared, and each binary runs on
# what the ones before it left: run the binaries in both orders.
#
#   bench/rss.sh DATABASE_URL BINARY...
#   e.g. bench/rss.sh sqlite:///tmp/b.db /tmp/arcbase-before target/release/arcbase
set -euo pipefail
cd "$(dirname "$0")/.."
DB=$1
shift
PORT=${PORT:-5003}
PID=""
COPY=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ -n "$COPY" ] && rm -rf "$COPY"
  return 0
}
trap cleanup EXIT
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
if (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "port $PORT is already in use (set PORT)" >&2
  exit 1
fi
for bin in "$@"; do
  url=$DB
  if [[ $DB == sqlite://* ]]; then
    COPY=$(mktemp -d /tmp/arcbase-rss.XXXXXX)
    cp "${DB#sqlite://}" "$COPY/b.db"
    url="sqlite://$COPY/b.db"
  fi
  RUST_LOG=warn taskset -c 0 "$bin" serve --schema bench/schema.graphql --database "$url" \
    --listen 127.0.0.1:$PORT > /dev/null 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  if ! kill -0 "$PID" 2>/dev/null || ! (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
    echo "$bin did not start listening on :$PORT" >&2
    exit 1
  fi
  idle=$(kb VmRSS)
  for w in find upsert count get; do
    out=$(taskset -c 1 wrk -t1 -c64 -d3s -s bench/wrk/workload.lua http://127.0.0.1:$PORT -- "$w" arcbase 100000 | grep '^{"rps"')
    if ! echo "$out" | grep -q '"errors": 0, "socket_errors": 0'; then
      echo "$bin $w: responses with errors: $out" >&2
      exit 1
    fi
  done
  echo "{\"binary\": \"$bin\", \"idle_rss_kb\": $idle, \"peak_rss_kb\": $(kb VmHWM), \"end_rss_kb\": $(kb VmRSS)}"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  [ -n "$COPY" ] && rm -rf "$COPY"
  COPY=""
done
