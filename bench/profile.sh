#!/usr/bin/env bash
# Where a `get by id` request spends its time: arcbase on SQLite pinned to CPU 0 under wrk on
# CPU 1, sampled with perf for 8 s. Prints the split by binary and the hottest user-space
# symbols. Needs `perf` (Debian package linux-perf) where the kernel allows it.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/arcbase-profile.XXXXXX)
cargo build --release --quiet --bin arcbase --example bench
target/release/examples/bench load "sqlite://$W/b.db" >/dev/null
RUST_LOG=warn taskset -c 0 target/release/arcbase serve --schema bench/schema.graphql --database "sqlite://$W/b.db" \
  --listen 127.0.0.1:5101 >/dev/null 2>&1 &
P=$!
trap 'kill $P 2>/dev/null; rm -rf "$W"' EXIT
sleep 1
taskset -c 1 wrk -t1 -c16 -d12s -s bench/wrk/workload.lua http://127.0.0.1:5101 -- get arcbase >/dev/null &
sleep 2
perf record -F 999 -g -p "$P" -o "$W/perf.data" -- sleep 8 >/dev/null 2>&1
wait
echo "== share of samples by binary"
perf report -i "$W/perf.data" --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9.]+%' | head -6
echo "== hottest symbols"
perf report -i "$W/perf.data" --no-children --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25 | cut -c1-140
