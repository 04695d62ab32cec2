"""Turn bench/run.sh's results (JSON lines) into docs/benchmarks.md. Standard library only."""
import json
import sys

path, secs, conns, versions, machine, command = sys.argv[1:7]
runs, rss = {}, {}
for line in open(path):
    r = json.loads(line)
    if "rss_kb" in r:
        rss[r["server"]] = r["rss_kb"]
    else:
        runs[(r["server"], r["workload"])] = r["result"]

WORKLOADS = [("get", "get by id"), ("find", "find 25, filter + cursor"), ("upsert", "upsert 25 (12 updates, 13 new)"),
             ("count", "count + sum for one member")]
SERVERS = ["arcbase-sqlite", "arcbase-postgres", "postgraphile-v4", "postgraphile-v5", "raw-sqlx-sqlite",
           "raw-sqlx-postgres", "static-axum"]


def cell(server, w):
    r = runs.get((server, w))
    if not r:
        return None
    return r


out = []
p = out.append
p("# Benchmarks")
p("")
p(f"Produced by `{command.strip()}` (the whole file is rewritten by each run; do not edit by hand).")
p("")
p(f"- Machine: {machine}. Servers and PostgreSQL pinned to CPU 0, the load generator (wrk) to CPU 1.")
p(f"- Versions: {versions}.")
p(f"- Load: wrk, 1 thread, {conns} connections, {secs} s per measurement after a warm-up; every response is checked "
  "(HTTP 200, a `data` member, no `errors`), and the checks are reported.")
p("- Dataset: 1,000 members and 100,000 messages (text, score 0-99, a member reference), identical in arcbase "
  "(SQLite and PostgreSQL) and in PostGraphile's tables on the same PostgreSQL cluster.")
p("- raw-sqlx: the statements arcbase renders for the workload, run through sqlx alone (no HTTP, no GraphQL), "
  f"{conns} concurrent tasks. static-axum: a fixed response from the same HTTP stack.")
p("")
for w, title in WORKLOADS:
    p(f"## {title}")
    p("")
    p("| server | req/s | p50 ms | p99 ms | checked | errors |")
    p("|---|---:|---:|---:|---:|---:|")
    for s in SERVERS:
        r = cell(s, w)
        if r is None:
            continue
        checked = r.get("checked", "n/a")
        errors = r.get("errors", 0) + r.get("socket_errors", 0)
        p(f"| {s} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {checked} | {errors} |")
    p("")


def ratio(a, b, key):
    if a is None or b is None or not b.get(key):
        return None
    return a[key] / b[key]


p("## Ratios and goals")
p("")
p("| comparison | workload | throughput ratio | p99 ratio | goal | met |")
p("|---|---|---:|---:|---|---|")
for peer in ["postgraphile-v4", "postgraphile-v5"]:
    for w, _ in WORKLOADS:
        a, b = cell("arcbase-postgres", w), cell(peer, w)
        t, l = ratio(a, b, "rps"), ratio(a, b, "p99_ms")
        if t is None:
            continue
        goal = "throughput >= 3x, p99 <= 1/3" if peer.endswith("v4") else "(reference)"
        met = ("yes" if t >= 3 and l <= 1 / 3 else "no") if peer.endswith("v4") else ""
        p(f"| arcbase-postgres / {peer} | {w} | {t:.2f}x | {l:.2f} | {goal} | {met} |")
for db in ["sqlite", "postgres"]:
    for w in ["get", "find", "count"]:
        t = ratio(cell(f"arcbase-{db}", w), cell(f"raw-sqlx-{db}", w), "rps")
        if t is None:
            continue
        goal = ">= 50 %" if (db == "sqlite" and w == "get") else "(reference)"
        met = ("yes" if t >= 0.5 else "no") if goal != "(reference)" else ""
        p(f"| arcbase-{db} / raw-sqlx-{db} | {w} | {100 * t:.0f} % | | {goal} | {met} |")
t = ratio(cell("arcbase-sqlite", "get"), cell("static-axum", "get"), "rps")
if t is not None:
    p(f"| arcbase-sqlite / static-axum | get | {100 * t:.0f} % | | (reference) | |")
p("")
p("## Memory (peak RSS of the server process under this load)")
p("")
p("| server | peak RSS MiB |")
p("|---|---:|")
for s in SERVERS:
    if s in rss:
        p(f"| {s} | {rss[s] / 1024:.1f} |")
pg4 = rss.get("postgraphile-v4")
for s in ["arcbase-sqlite", "arcbase-postgres"]:
    if pg4 and s in rss:
        met = "yes" if rss[s] <= pg4 / 3 else "no"
        p(f"")
        p(f"{s} / postgraphile-v4 RSS: {rss[s] / pg4:.2f} (goal <= 0.33: {met}).")
p("")
p("## What the profile says, and what is left")
p("")
p("`bench/profile.sh` samples arcbase on SQLite serving `get by id`. About half of the samples are in the "
  "kernel: context switches and futex wake-ups (on one core every statement hops from the tokio worker to the "
  "thread sqlx runs each SQLite connection on, and back), socket reads and writes, and SQLite's file locks. In "
  "user space no single function stands out: GraphQL parsing (pest inside async-graphql), validation and the "
  "dynamic resolver tree, hyper's HTTP/1 codec and SQLite's VDBE each take a few percent.")
p("")
p("Fixed after profiling: sqlx pinged every pooled connection before each statement (`test_before_acquire`), "
  "one more round trip to the connection's thread (SQLite) or over the network (PostgreSQL) per statement; "
  "arcbase turns it off. `target/release/examples/bench graphql URL 16 SECONDS` runs `get by id` through the "
  "GraphQL layer in process, without HTTP, to separate the layers' costs.")
p("")
p("Not yet done, in the order it would pay: (1) fold `find`'s cursor lookup and its `hasPreviousPage` probe "
  "into the page statement (a cursor page runs three statements today, raw-sqlx runs one), which is why `find` "
  "trails its raw baseline most; (2) run SQLite reads on the calling thread (a connection per worker) to remove "
  "the thread hop per statement; (3) cache parsed documents by query text to skip the pest parse. The `get` "
  "goal on SQLite (50 % of raw sqlx) asks for HTTP + GraphQL to cost no more than the statement itself; on one "
  "core the HTTP + GraphQL floor measured with `{ __typename }` is about as costly as the statement, so the goal "
  "is out of reach without (2). Goals that are not met are reported as such; no figure here is tuned by hand.")
p("")
print("\n".join(out))
