"""Dataset, preload and answer checks for bench/hyper.sh. Standard library only.

  prepare.py dataset DIR           10,000 movie documents (deterministic), the words the search
                                   workload asks for (DIR/words.txt) and the answers a correct
                                   server gives (DIR/expected.json)
  prepare.py load URL DIR          create the data store, its index and the search index on the
                                   server at URL, preload both through _bulk; prints one JSON line
  prepare.py check NAME URL DIR    ask each workload's kind of request once and compare with the
                                   expected answers; prints one JSON line per check

Every document: {id, type: "movie", year: "1950".."2019" (a string, as the selector compares
strings), title: 2 words, plot: 10 words, rating}. Words are made-up syllable words from a
vocabulary of 2,000, so a one-word search matches about 60 documents, well under both servers'
answer limits (arcbase: 1,000 matches a page; minisearch: unlimited).
"""
import json
import random
import sys
import time
import urllib.error
import urllib.request

N_DOCS = 10_000
VOCAB = 2_000
CHUNK = 200  # documents per _bulk call: app-express parses _bulk bodies with express.json()'s 100 kB limit
STORE = "bench"
QUERY_CHECK_YEAR = "2015"  # the count check: year >= 2015, limit 1000 (all of them)
SEARCH_CHECK_WORDS = 8


def vocabulary():
    rnd = random.Random(63)
    cons, vows = "bdfgklmnprstvz", "aeiou"
    words, seen = [], set()
    while len(words) < VOCAB:
        w = "".join(rnd.choice(cons) + rnd.choice(vows) for _ in range(rnd.choice((2, 3, 3, 4))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def documents(words):
    rnd = random.Random(1990)
    docs = []
    for i in range(1, N_DOCS + 1):
        docs.append({
            "id": f"movie-{i:05d}",
            "type": "movie",
            "year": str(1950 + rnd.randrange(70)),
            "title": " ".join(rnd.choice(words) for _ in range(2)).title(),
            "plot": " ".join(rnd.choice(words) for _ in range(10)) + ".",
            "rating": rnd.randrange(1, 11),
        })
    return docs


def dataset(out):
    words = vocabulary()
    docs = documents(words)
    with open(f"{out}/docs.json", "w") as f:
        json.dump(docs, f)
    with open(f"{out}/words.txt", "w") as f:
        f.write("\n".join(words) + "\n")
    by_word = {}
    for d in docs:
        for w in set((d["title"] + " " + d["plot"]).lower().replace(".", "").split()):
            by_word[w] = by_word.get(w, 0) + 1
    rnd = random.Random(7)
    check_words = rnd.sample(words, SEARCH_CHECK_WORDS)
    expected = {
        "docs": len(docs),
        "query_count": sum(1 for d in docs if d["year"] >= QUERY_CHECK_YEAR),
        "query_25_available": sum(1 for d in docs if d["year"] >= "2010"),
        "search": {w: by_word.get(w, 0) for w in check_words},
        "search_mean_matches": sum(by_word.values()) / len(words),
        "search_max_matches": max(by_word.values()),
        "get": {d["id"]: d["title"] for d in rnd.sample(docs, 5)},
    }
    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps({k: expected[k] for k in ("docs", "query_count", "search_mean_matches", "search_max_matches")}))


def call(url, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def must(status, body, ok, what):
    if status not in ok:
        sys.exit(f"{what}: HTTP {status} {str(body)[:300]}")
    return body


def load(url, d):
    docs = json.load(open(f"{d}/docs.json"))
    must(*call(url, "PUT", f"/data/{STORE}"), (201,), "PUT /data")
    must(*call(url, "POST", f"/data/{STORE}/_index",
               {"name": "idx-type-year", "fields": ["type", "year"], "type": "json"}), (201,), "POST /data/_index")
    must(*call(url, "PUT", f"/search/{STORE}",
               {"fields": ["title", "plot"], "storeFields": ["title", "year"]}), (201,), "PUT /search")
    t0 = time.monotonic()
    for i in range(0, len(docs), CHUNK):
        b = must(*call(url, "POST", f"/data/{STORE}/_bulk", docs[i:i + CHUNK]), (200, 201), "data _bulk")
        bad = [r for r in b.get("results", []) if not r.get("ok")]
        if not b.get("ok") or bad or len(b.get("results", [])) != len(docs[i:i + CHUNK]):
            sys.exit(f"data _bulk: {str(b)[:300]}")
    t1 = time.monotonic()
    for i in range(0, len(docs), CHUNK):
        b = must(*call(url, "POST", f"/search/{STORE}/_bulk", docs[i:i + CHUNK]), (200, 201), "search _bulk")
        if not b.get("ok"):
            sys.exit(f"search _bulk: {str(b)[:300]}")
    t2 = time.monotonic()
    print(json.dumps({"data_bulk_s": round(t1 - t0, 3), "search_bulk_s": round(t2 - t1, 3)}))


def check(name, url, d):
    exp = json.load(open(f"{d}/expected.json"))
    out = []

    def rec(workload, ok, detail, **extra):
        out.append({"check": name, "workload": workload, "ok": bool(ok), "detail": detail, **extra})

    # data get: the raw document (no X-HYPER-LEGACY-GET header), with its fields
    got = []
    for i, title in exp["get"].items():
        s, b = call(url, "GET", f"/data/{STORE}/{i}")
        got.append(s == 200 and isinstance(b, dict) and b.get("title") == title and b.get("type") == "movie")
    rec("get", all(got), f"{sum(got)}/{len(got)} preloaded documents read back with their fields")
    # data query: 25 of the matching documents, and the full count where both must agree
    s, b = call(url, "POST", f"/data/{STORE}/_query",
                {"selector": {"type": "movie", "year": {"$gte": "2010"}}, "limit": 25})
    docs = b.get("docs", []) if isinstance(b, dict) else []
    good = s == 200 and len(docs) == 25 and all(x.get("type") == "movie" and x.get("year") >= "2010" for x in docs)
    rec("query", good, f"limit 25: HTTP {s}, {len(docs)} docs, all matching: {good}")
    s, b = call(url, "POST", f"/data/{STORE}/_query",
                {"selector": {"type": "movie", "year": {"$gte": QUERY_CHECK_YEAR}}, "limit": 1000})
    n = len(b.get("docs", [])) if isinstance(b, dict) else -1
    rec("query", s == 200 and n == exp["query_count"],
        f"year >= {QUERY_CHECK_YEAR}, limit 1000: {n} docs (expected {exp['query_count']})", count=n)
    # search: the number of matches of single words, as the dataset says
    counts, wrong = {}, []
    for w, want in exp["search"].items():
        s, b = call(url, "POST", f"/search/{STORE}/_query", {"query": w})
        m = b.get("matches", []) if isinstance(b, dict) else []
        counts[w] = len(m)
        has_fields = all("title" in x and "year" in x for x in m)
        if s != 200 or len(m) != want or not has_fields:
            wrong.append(f"{w}: HTTP {s}, {len(m)} matches (expected {want}), stored fields: {has_fields}")
    rec("search", not wrong, "; ".join(wrong) or f"{len(counts)} one-word queries, match counts as expected "
        f"({min(counts.values())}-{max(counts.values())} matches)", counts=counts)
    # data add: a new document, then a duplicate id
    key = f"check-{int(time.time() * 1000)}"
    s1, b1 = call(url, "POST", f"/data/{STORE}", {"_id": key, "type": "added", "year": "2020", "title": "Check"})
    s2, _ = call(url, "POST", f"/data/{STORE}", {"_id": key, "type": "added", "year": "2020", "title": "Check"})
    s3, b3 = call(url, "GET", f"/data/{STORE}/{key}")
    good = s1 == 201 and isinstance(b1, dict) and b1.get("id") == key and s2 == 409 and s3 == 200
    rec("add", good, f"POST new _id: HTTP {s1} {json.dumps(b1)[:80]}; same _id again: HTTP {s2} (409 expected); "
        f"read back: HTTP {s3}")
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "dataset":
        dataset(sys.argv[2])
    elif cmd == "load":
        load(sys.argv[2], sys.argv[3])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
