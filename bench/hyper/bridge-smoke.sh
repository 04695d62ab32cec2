#!/usr/bin/env bash
# Optional smoke test: the hyper bridge with the legacy Node hyper server (@hyper63/core with its
# pouchdb, minisearch and memory adapters) as the remote, instead of a second arcbase.
#
#   bench/hyper/bridge-smoke.sh
#
# Installs the legacy server as bench/hyper.sh does (pinned by bench/hyper/package-lock.json,
# into $ARCBASE_BENCH_CACHE/hyper-legacy), builds arcbase, starts the legacy server on
# 127.0.0.1:5201 and `arcbase serve --hyper http://127.0.0.1:5201/books` with a schema whose Book
# follows into data and search, then: upserts three Books and waits until the legacy server
# holds each document; searches one there; updates one and waits for the new title; deletes one
# and waits until it is gone; prints `arcbase hyper status`. Exit 1 on any failure, with the
# logs. Not part of `cargo test` (the legacy packages are large); a minute or two.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CACHE=${ARCBASE_BENCH_CACHE:-$HOME/.cache/arcbase-bench}
LEGACY_DIR=$CACHE/hyper-legacy
WORK=$(mktemp -d /tmp/arcbase-bridge-smoke.XXXXXX)
LPORT=5201
log() { printf '== %s\n' "$*" >&2; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  log "FAIL: $*"
  log "legacy log:"; tail -20 "$WORK/legacy.log" >&2 || true
  log "arcbase log:"; grep -E "WARN|ERROR" "$WORK/arcbase.log" | tail -20 >&2 || true
  exit 1
}

NODE=$(command -v node) || { log "node is required"; exit 1; }
if ! cmp -s bench/hyper/package-lock.json "$LEGACY_DIR/package-lock.json" || [ ! -d "$LEGACY_DIR/node_modules/@hyper63/core" ]; then
  log "installing the legacy hyper server (pinned in bench/hyper/package-lock.json)"
  rm -rf "$LEGACY_DIR" && mkdir -p "$LEGACY_DIR"
  cp bench/hyper/package.json bench/hyper/package-lock.json "$LEGACY_DIR/"
  (cd "$LEGACY_DIR" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) || { rm -rf "$LEGACY_DIR"; log "npm ci failed"; exit 1; }
fi
cp bench/hyper/legacy-server.mjs "$LEGACY_DIR/legacy-server.mjs"
log "building arcbase"
cargo build --quiet --bin arcbase
ARCBASE=$ROOT/target/debug/arcbase

mkdir -p "$WORK/pouch"
(cd "$LEGACY_DIR" && exec "$NODE" legacy-server.mjs $LPORT "$WORK/pouch" >"$WORK/legacy.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$LPORT) 2>/dev/null && break; sleep 0.1; done

cat > "$WORK/schema.graphql" <<'EOF'
type Book @hyper(search: ["title"], store: ["title", "year"]) {
  title: String!
  year: Int
}
EOF
"$ARCBASE" serve --schema "$WORK/schema.graphql" --database "sqlite://$WORK/local.db" --storage-dir "$WORK/storage" \
  --listen 127.0.0.1:0 --hyper "http://127.0.0.1:$LPORT/books" >"$WORK/arcbase.out" 2>"$WORK/arcbase.log" &
PIDS+=($!)
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's|^playground: http://\(.*\)/graphql|\1|p' "$WORK/arcbase.out" | head -1)
  [ -n "$ADDR" ] && break; sleep 0.1
done
[ -n "$ADDR" ] || fail "arcbase did not start"

gql() { curl -sS -X POST "http://$ADDR/graphql" -H 'content-type: application/json' -d "$1"; }
legacy() { curl -sS -o "$WORK/answer" -w '%{http_code}' "$@"; }
wait_until() { # what command...
  local what=$1; shift
  for _ in $(seq 1 150); do "$@" && return 0; sleep 0.2; done
  fail "waited 30 s for $what (last answer: $(cat "$WORK/answer" 2>/dev/null))"
}

IDS=$(gql '{"query":"mutation { upsert(values: {Book: [{title: \"Dune\", year: 1965}, {title: \"Emma\", year: 1815}, {title: \"Ubik\", year: 1969}]}) { id } }"}' \
  | python3 -c 'import json,sys; print(" ".join(h["id"] for h in json.load(sys.stdin)["data"]["upsert"]))')
read -r DUNE EMMA UBIK <<<"$IDS"
log "upserted $IDS"
has_doc() { [ "$(legacy "http://127.0.0.1:$LPORT/data/books/$1")" = 200 ] && grep -q "\"$2\"" "$WORK/answer"; }
for pair in "$DUNE Dune" "$EMMA Emma" "$UBIK Ubik"; do
  set -- $pair
  wait_until "$2 in the legacy data store" has_doc "$1" "$2"
done
log "the three Books are in the legacy data store"
found() { [ "$(legacy -X POST "http://127.0.0.1:$LPORT/search/books/_query" -H 'content-type: application/json' -d "{\"query\":\"$1\"}")" = 200 ] && grep -q "$2" "$WORK/answer"; }
wait_until "a search for ubik on the legacy server" found ubik "$UBIK"
log "the legacy search finds Ubik"

gql "{\"query\":\"mutation { upsert(values: {Book: [{hypi: {id: \\\"$EMMA\\\"}, title: \\\"Emma Woodhouse\\\"}]}) { id } }\"}" >/dev/null
wait_until "the updated title on the legacy server" has_doc "$EMMA" "Emma Woodhouse"
log "the update followed"

gql "{\"query\":\"mutation { delete(type: Book, arcql: \\\"hypi.id = '$DUNE'\\\") }\"}" >/dev/null
gone() { [ "$(legacy "http://127.0.0.1:$LPORT/data/books/$DUNE")" = 404 ]; }
wait_until "the deleted Book gone from the legacy server" gone
log "the deletion followed"

"$ARCBASE" hyper status --database "sqlite://$WORK/local.db"
log "PASS: the bridge keeps the legacy Node hyper server in step"
