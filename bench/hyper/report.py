"""Turn bench/hyper.sh's results (JSON lines) into the section "## hyper services vs the legacy
Node hyper server" of docs/benchmarks.md, between the markers <!-- hyper-bench:start --> and
<!-- hyper-bench:end --> (appended at the end of the file when missing); the rest of the file is
left as it is. Standard library only.

  report.py RESULTS SECS CONNS VERSIONS MACHINE COMMAND DATE MARKDOWN_FILE
"""
import json
import os
import sys

START, END = "<!-- hyper-bench:start -->", "<!-- hyper-bench:end -->"
path, secs, conns, versions, machine, command, date, md = sys.argv[1:9]

runs, rss, loads, checks, dataset, notes = {}, {}, {}, [], {}, {}
for line in open(path):
    r = json.loads(line)
    if "check" in r:
        checks.append(r)
    elif "dataset" in r:
        dataset = r["dataset"]
    elif "rss_kb" in r:
        rss[r["server"]] = r["rss_kb"]
    elif "load" in r:
        loads[r["server"]] = r["load"]
    else:
        if r.get("note"):
            notes[(r["server"], r["workload"])] = r["note"]
        runs[(r["server"], r["workload"])] = dict(r["result"], cpu0_other_pct=r.get("cpu0_other_pct"),
                                                     cpu1_other_pct=r.get("cpu1_other_pct"))

WORKLOADS = [
    ("get", "data get: `GET /data/bench/{id}`, one of the 10,000 preloaded documents at random"),
    ("query", "data query: `POST /data/bench/_query` `{type: \"movie\", year: {$gte: Y}}`, limit 25, index on (type, year)"),
    ("search", "search query: `POST /search/bench/_query` `{query: WORD}`, about 60 matches of 10,000 documents"),
    ("add", "data add: `POST /data/bench`, a new document with a unique `_id`"),
]
ARCBASE = ["arcbase-sqlite", "arcbase-postgres"]
LEGACY = "legacy-node"
SERVERS = ARCBASE + [LEGACY]
GOAL_RPS, GOAL_P99 = 5.0, 1 / 5


def ratio(a, b, key):
    if not a or not b or not b.get(key):
        return None
    return a[key] / b[key]


out = []
p = out.append
p(START)
p("## hyper services vs the legacy Node hyper server")
p("")
p(f"Produced by `{command.strip()}` on {date} (this section is rewritten by each run; do not edit by hand).")
p("")
p(f"- Machine: {machine}. Servers (and PostgreSQL) pinned to CPU 0, the load generator (wrk) to CPU 1.")
p(f"- Versions: {versions}.")
p("- legacy-node: `@hyper63/core` with its pouchdb (data, LevelDB files on disk), minisearch (search) and "
  "memory (cache) adapters behind `@hyper63/app-express`, started by `bench/hyper/legacy-server.mjs`; "
  "exact versions pinned in `bench/hyper/package-lock.json`. arcbase: `arcbase serve` in development mode "
  "(no token), its built-in hyper services on SQLite or on PostgreSQL (a throwaway cluster on the same CPU).")
p(f"- Load: wrk, 1 thread, {conns} connections, {secs} s per measurement after a warm-up (`bench/wrk/hyper.lua`); "
  "every response is checked (status, and 25 docs / a match / the document / `ok`), and the checks are counted.")
n_docs = dataset.get("docs", 10000)
p(f"- Dataset: {n_docs:,} movie documents (`bench/hyper/prepare.py`: type, year 1950-2019 as a string, a 2-word "
  "title, a 10-word plot from a 2,000-word made-up vocabulary), preloaded into each server through "
  "`POST /data/bench/_bulk` and `POST /search/bench/_bulk` (200 documents a call: app-express caps these bodies "
  "at 100 kB); the search index is `{fields: [title, plot], storeFields: [title, year]}`. Workloads run in the "
  "order get, query, search, add (add last, so the others see the same 10,000 documents everywhere).")
p("")

# ---- correctness --------------------------------------------------------------------------
p("### Answers checked before measuring")
p("")
p("| server | get | query | search | add |")
p("|---|---|---|---|---|")
problems = []
for s in SERVERS:
    row = []
    for w, _ in WORKLOADS:
        cs = [c for c in checks if c["check"] == s and c["workload"] == w]
        if not cs:
            row.append("not run")
            continue
        row.append("ok" if all(c["ok"] for c in cs) else "**wrong**")
        problems += [f"{s} {w}: {c['detail']}" for c in cs if not c["ok"]]
    if any(c["check"] == s for c in checks):
        p(f"| {s} | " + " | ".join(row) + " |")
p("")
counts = {c["check"]: c.get("count") for c in checks if c["workload"] == "query" and "count" in c}
search_counts = {c["check"]: c.get("counts") for c in checks if c["workload"] == "search" and "counts" in c}
same_q = len(set(counts.values())) <= 1
same_s = len({json.dumps(v, sort_keys=True) for v in search_counts.values()}) <= 1
if counts:
    p(f"Query `year >= 2015` (limit 1000): " + ", ".join(f"{k} {v}" for k, v in counts.items())
      + (" documents: the same on every server." if same_q else " documents: **the servers differ**."))
if search_counts:
    p("Matches of " + str(len(next(iter(search_counts.values())) or {})) + " one-word searches: "
      + ("the same on every server, as the dataset says." if same_s else "**the servers differ**: "
         + "; ".join(f"{k} {v}" for k, v in search_counts.items())))
for x in problems:
    p(f"- **{x}**")
p("")

# ---- throughput and latency ---------------------------------------------------------------
met_all, disturbed = [], []
# % of CPU 0 used by processes other than the server (and PostgreSQL), of CPU 1 other than wrk's
DISTURBED_CPU0, DISTURBED_CPU1 = 5.0, 25.0
for w, title in WORKLOADS:
    p(f"### {title}")
    p("")
    p("| server | req/s | p50 ms | p99 ms | checked | errors | req/s vs legacy | p99 vs legacy | goal (>= 5x, <= 1/5) | others on CPU 0 / 1 |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    leg = runs.get((LEGACY, w))
    for s in SERVERS:
        r = runs.get((s, w))
        if r is None:
            continue
        errors = r.get("errors", 0) + r.get("socket_errors", 0)
        t, l = (ratio(r, leg, "rps"), ratio(r, leg, "p99_ms")) if s != LEGACY else (None, None)
        if t is not None and l is not None:
            met = t >= GOAL_RPS and l <= GOAL_P99
            met_all.append((s, w, met))
            why = [x for x, bad in (("throughput", t < GOAL_RPS), ("p99", l > GOAL_P99)) if bad]
            tr, lr = f"{t:.1f}x", (f"1/{1 / l:.1f}" if 0 < l < 1 else f"{l:.2f}x")
            goal = "met" if met else "**not met** (" + ", ".join(why) + ")"
        else:
            tr, lr, goal = "", "", ""
        o0, o1 = r.get("cpu0_other_pct"), r.get("cpu1_other_pct")
        if o0 is not None and (o0 >= DISTURBED_CPU0 or (o1 or 0) >= DISTURBED_CPU1):
            disturbed.append((s, w, o0, o1 or 0))
        p(f"| {s} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r.get('checked', 'n/a')} | "
          f"{errors} | {tr} | {lr} | {goal} | {'n/a' if o0 is None else f'{o0:.0f} % / {o1 or 0:.0f} %'} |")
    bad = [f"{s}: {runs[(s, w)]['sample_error']}" for s in SERVERS
           if (s, w) in runs and runs[(s, w)].get("sample_error")]
    extra = [f"- first wrong answer, {b[:300]}" for b in bad]
    extra += [f"- {s}: {notes[(s, w)]}." for s in SERVERS if (s, w) in notes]
    if extra:
        p("")
        out.extend(extra)
    p("")

# ---- memory and preload -------------------------------------------------------------------
p("### Memory and preload")
p("")
p("| server | peak RSS MiB | RSS vs legacy | preload data _bulk s | preload search _bulk s |")
p("|---|---:|---:|---:|---:|")
for s in SERVERS:
    if s not in rss and s not in loads:
        continue
    m = rss.get(s)
    rr = f"{m / rss[LEGACY]:.2f}" if m and rss.get(LEGACY) and s != LEGACY else ""
    ld = loads.get(s, {})
    p(f"| {s} | {m / 1024:.1f} | {rr} | {ld.get('data_bulk_s', 0):.2f} | {ld.get('search_bulk_s', 0):.2f} |"
      if m else f"| {s} | n/a | | {ld.get('data_bulk_s', 0):.2f} | {ld.get('search_bulk_s', 0):.2f} |")
p("")
p("Peak RSS is the server process's high-water mark (VmHWM) after all four workloads; for arcbase-postgres it "
  "leaves out the PostgreSQL processes, for legacy-node it includes everything the Node process holds "
  "(minisearch's index and pouchdb's caches live there).")
p("")
p("Others on CPU 0 / 1: the share of each CPU's time during the measurement spent by processes other than the "
  "server under test and PostgreSQL (CPU 0) or wrk (CPU 1), i.e. another job on the machine; the figures are only "
  "comparable when both are near 0 (a busy CPU 1 starves the load generator and caps every server alike).")
if disturbed:
    p("")
    p("**This run was disturbed** (others took >= 5 % of CPU 0 or >= 25 % of CPU 1): "
      + ", ".join(f"{s} {w} ({a:.0f} % / {b:.0f} %)" for s, w, a, b in disturbed)
      + "; run it again on a quiet machine before trusting those rows.")
p("")
if met_all:
    missed = [f"{s} {w}" for s, w, m in met_all if not m]
    p("Goal (arcbase >= 5x the legacy throughput and <= 1/5 of its p99): "
      + ("met on every workload, on both databases." if not missed else "not met for " + ", ".join(missed) + "."))
    p("")
p(END)
section = "\n".join(out) + "\n"

text = open(md).read() if os.path.exists(md) else ""
if START in text and END in text and text.index(START) < text.index(END):
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    text = before + section.rstrip("\n") + after
else:
    text = text.rstrip("\n") + "\n\n" + section
with open(md, "w") as f:
    f.write(text)
