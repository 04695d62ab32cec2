#!/usr/bin/env bash
# A/B of two (or more) arcbase binaries on one workload, interleaved so that the machine's drift
# falls on every binary alike: for each round, each binary serves the bench schema on CPU 0 over
# DATABASE_URL (loaded beforehand by `target/release/examples/bench load DATABASE_URL 100000`),
# wrk on CPU 1 warms it for 1 s, then measures 3 s (16 connections, every response checked);
# each line also gives the server's own CPU time per request (`server_cpu_us_per_request`).
# PostgreSQL: run the cluster on CPU 0 too, as bench/run.sh does, and `VACUUM (ANALYZE)` after
# an upsert A/B before measuring anything else.
#
#   bench/ab.sh DATABASE_URL WORKLOAD ROUNDS BINARY...
#   e.g. bench/ab.sh postgres://postgres@127.0.0.1:5499/arcbase upsert 5 /tmp/arcbase-before target/release/arcbase
set -euo pipefail
cd "$(dirname "$0")/.."
DB=$1 WORKLOAD=$2 ROUNDS=$3
shift 3
PORT=${PORT:-5002}
PID=""
TICKS=$(getconf CLK_TCK)
# utime + stime of process $1, in clock ticks (/proc/PID/stat fields 14 and 15, counted after
# the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    RUST_LOG=warn taskset -c 0 "$bin" serve --schema bench/schema.graphql --database "$DB" \
      --listen 127.0.0.1:$PORT > /dev/null 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c16 -d1s -s bench/wrk/workload.lua http://127.0.0.1:$PORT -- "$WORKLOAD" arcbase 100000 > /dev/null
    before=$(cpu_ticks "$PID")
    out=$(taskset -c 1 wrk -t1 -c16 -d3s --latency -s bench/wrk/workload.lua http://127.0.0.1:$PORT -- "$WORKLOAD" arcbase 100000 | grep '^{"rps"')
    used=$(( $(cpu_ticks "$PID") - before ))
    requests=$(echo "$out" | sed -n 's/.*"requests": *\([0-9]*\).*/\1/p')
    requests=${requests:-0}
    # The server's own CPU time per request (user + system, all its threads), in microseconds:
    # steadier than the rate when the machine drifts, and blind to the database's share.
    cpu_us=$(( used * 1000000 / TICKS / (requests > 0 ? requests : 1) ))
    echo "round $round $bin {\"server_cpu_us_per_request\": $cpu_us, ${out#\{}"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
done
