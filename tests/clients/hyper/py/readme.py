"""Every example of the hyper-connect 0.0.10 PyPI README, and every call of the upstream
examples.py and examples_async.py that the README links to, run against a hyper server and
checked against the documented results.

Usage (what tests/hyper_clients.rs does): a .env file in the working folder with
    HYPER=http://127.0.0.1:PORT/readme
(the README reads it with python-dotenv's dotenv_values("./.env"); $HYPER works too), then
    python readme.py
Three apps of that server are used, each starting empty: the connection string's own
(README), `examples` (examples.py) and `asyncexamples` (examples_async.py). No store is
provisioned first: the Python client has no create calls, so every store must come into being
on first use. Each example prints PASS or FAIL; a FAIL shows what was expected, what came back
and the HTTP requests the example sent. The exit status is 1 if any example failed.

The client prints an empty line for every response it parses; those are dropped here.
"""

import asyncio
import io
import os
import sys
import traceback
from typing import Dict, List

REQUEST_TIMEOUT = 30  # seconds, for each HTTP request the client sends


class _DropBlankLines(io.TextIOBase):
    """sys.stdout for the client: its print("") per response disappears, other text passes."""

    def __init__(self, out):
        self._out = out

    def write(self, s):
        if s.strip():
            self._out.write(s if s.endswith("\n") else s + "\n")
        return len(s)

    def flush(self):
        self._out.flush()


OUT = sys.stdout
sys.stdout = _DropBlankLines(OUT)


def say(text=""):
    OUT.write(text + "\n")
    OUT.flush()


# Every HTTP request the client sends, with its answer, for the FAIL reports; and a timeout, so
# that a server that never answers fails the example instead of hanging the script.
import requests  # noqa: E402  (after the stdout filter on purpose)

SENT: List[Dict] = []
TIMEOUTS = 0  # requests that got no answer in time; after 2, the script gives up
_send = requests.sessions.Session.send


def _recording_send(self, request, **kwargs):
    if kwargs.get("timeout") is None:
        kwargs["timeout"] = REQUEST_TIMEOUT
    entry = {"request": f"{request.method} {request.path_url}", "answer": "no answer"}
    SENT.append(entry)
    try:
        resp = _send(self, request, **kwargs)
    except Exception as e:  # noqa: BLE001
        entry["answer"] = f"{type(e).__name__}: {e}"
        if isinstance(e, requests.exceptions.Timeout):
            global TIMEOUTS
            TIMEOUTS += 1
        raise
    ctype = resp.headers.get("content-type")
    body = "" if kwargs.get("stream") else resp.text[:300]
    entry["answer"] = f"{resp.status_code} content-type={ctype!r} {body}".rstrip()
    return resp


requests.sessions.Session.send = _recording_send


# ---------------------------------------------------------------------------------------------
# checking


class Mismatch(Exception):
    def __init__(self, what, expected, got):
        super().__init__(what)
        self.what, self.expected, self.got = what, expected, got


def same(got, expected, what="result"):
    """got == expected, exactly."""
    if got != expected:
        raise Mismatch(what, repr(expected), repr(got))
    return got


def having(got, expected: Dict, what="result"):
    """got is a dict with (at least) these keys and values."""
    if not isinstance(got, dict) or any(k not in got or got[k] != v for k, v in expected.items()):
        raise Mismatch(what, f"a dict with {expected!r}", repr(got))
    return got


def truth(cond, what, expected, got):
    if not cond:
        raise Mismatch(what, expected, repr(got))


def not_ok(got, status, what="result"):
    """A hyper error answer: {'ok': False, 'status': status, 'msg': ...}."""
    truth(
        isinstance(got, dict) and got.get("ok") is False and got.get("status") == status,
        what,
        f"{{'ok': False, 'status': {status}, 'msg': ...}}",
        got,
    )
    return got


def conflict(got, what="result"):
    """The documented NotOkResult of a second add: {'ok': False, 'status': 409, 'msg': 'document conflict'}."""
    not_ok(got, 409, what)
    truth("conflict" in str(got.get("msg", "")).lower(), what + " msg", "a msg saying 'conflict'", got)
    return got


PASSED = 0
FAILED: List[str] = []


def example(label, fn):
    """Run one example; fn raises Mismatch (or anything) on failure, returns what to show."""
    global PASSED
    start = len(SENT)
    try:
        shown = fn()
    except Mismatch as m:
        report(label, f"{m.what}\n      expected: {m.expected}\n      got:      {m.got}", start)
    except requests.exceptions.RequestException as e:
        report(label, f"raised {type(e).__name__}: {e}", start)
    except Exception as e:  # noqa: BLE001
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-4:]).rstrip()
        report(label, f"raised {type(e).__name__}: {e}\n" + tb.replace("\n", "\n      "), start)
    else:
        PASSED += 1
        say(f"PASS  {label}" + (f"\n      -> {shown!r}" if shown is not None else ""))
    if TIMEOUTS >= 2:
        say(f"\ngiving up: {TIMEOUTS} requests got no answer within {REQUEST_TIMEOUT} s")
        summary()


def summary():
    """The closing report; exits."""
    say("")
    if FAILED:
        gave_up = " (the examples after the give-up did not run)" if TIMEOUTS >= 2 else ""
        say(f"hyper-connect (python): {len(FAILED)} of {PASSED + len(FAILED)} examples FAILED{gave_up}:\n")
        say("\n".join(FAILED))
        sys.exit(1)
    say(f"hyper-connect (python): all {PASSED} examples passed")
    sys.exit(0)


def report(label, detail, start):
    requests_sent = SENT[start:]
    lines = [f"FAIL  {label}", f"      {detail}"]
    if requests_sent:
        lines.append("      requests sent by this example:")
        lines += [f"        {e['request']}  ->  {e['answer']}" for e in requests_sent]
    else:
        lines.append("      (no request was sent)")
    text = "\n".join(lines)
    FAILED.append(text)
    say(text)


# ---------------------------------------------------------------------------------------------
# PY-2, the README's "Types" import line (and examples.py's import list)

try:
    from dotenv import dotenv_values

    from hyper_connect import connect
    from hyper_connect.types import (  # noqa: F401
        Hyper,
        HyperDocsResult,
        HyperGetResult,
        IdResult,
        ListOptions,
        OkIdResult,
        QueryOptions,
        Result,
        SearchQueryOptions,
    )
except Exception as e:  # noqa: BLE001
    say(f"FAIL  README PY-2 imports: {type(e).__name__}: {e}")
    sys.exit(1)
PASSED += 1
say("PASS  README PY-2 from hyper_connect import connect; from hyper_connect.types import Hyper, ListOptions, ...")

# PY-1: the connection string comes from ./.env, as in the README.
config = dotenv_values("./.env")
connection_string: str = str(config.get("HYPER") or os.environ.get("HYPER") or "")
if not connection_string.startswith("http"):
    say("FAIL  no HYPER connection string in ./.env or the environment")
    sys.exit(1)
BASE, APP = connection_string.rsplit("/", 1)
hyper: Hyper = connect(connection_string)


def seeded(h, docs):
    """Setup: add docs with data.add, each must answer 201."""
    for d in docs:
        having(h.data.add(d), {"ok": True, "status": 201}, f"data.add({d['_id']!r}) while seeding")
    return f"{len(docs)} docs added"


# ---------------------------------------------------------------------------------------------
# The README, on the connection string's own app

say(f"== the PyPI README, against {connection_string}")

example("EXTRA info.services() (GET /)", lambda: having(hyper.info.services(), {"name": "hyper", "status": 200}))

movie: Dict = {"_id": "movie-4000", "type": "movie", "title": "Back to the Future", "year": "1985"}
example(
    "README PY-1 result = hyper.data.add(movie)",
    lambda: same(hyper.data.add(movie), {"id": "movie-4000", "ok": True, "status": 201}),
)
example(
    "README PY-1 (then) hyper.data.get('movie-4000') is the raw doc plus status",
    lambda: same(hyper.data.get("movie-4000"), {**movie, "status": 200}),
)


def py3():
    options: ListOptions = {"startkey": None, "limit": None, "endkey": None, "keys": 6, "descending": None}
    before = len(SENT)
    try:
        result = hyper.data.list(options)
    except TypeError as err:
        documented = (
            'type of dict item "params" for argument "req_params" must be one of '
            "(hyper_connect.types._types.ListOptions, hyper_connect.types._types.QueryOptions, "
            "Dict[str, str], NoneType); got dict instead"
        )
        same(str(err), documented, "the TypeError's message")
        same(len(SENT) - before, 0, "requests sent before the TypeError")
        return f"TypeError: {err}"
    raise Mismatch("hyper.data.list(options) with keys: 6", "TypeError raised before any request", result)


example("README PY-3 data_list_bad_keys_sync: keys 6 raises TypeError", py3)

books: List[Dict] = [
    {
        "_id": f"book-0001{n:02}",
        "type": "book",
        "name": f"The Lorax {100 + n}",
        "author": "Dr. Suess",
        "published": "1969",
    }
    for n in range(7)
]
example("setup: 7 books (book-000100 .. book-000106)", lambda: seeded(hyper, books))
range_docs = {"docs": [books[5], books[6]], "ok": True, "status": 200}


def py4(options):
    before = len(SENT)
    result = hyper.data.list(options)
    same(result, range_docs)
    request = SENT[before]["request"] if len(SENT) > before else None
    same(request, f"GET /data/{APP}?startkey=book-000105&endkey=book-000106", "the request")
    return result


valid_data_list_options: ListOptions = {
    "startkey": "book-000105",
    "limit": None,
    "endkey": "book-000106",
    "keys": None,
    "descending": None,
}
also_valid_options: ListOptions = {"startkey": "book-000105", "endkey": "book-000106"}
example("README PY-4 valid_data_list_options is valid: hyper.data.list(...)", lambda: py4(valid_data_list_options))
example("README PY-4 also_valid_options is valid: hyper.data.list(...)", lambda: py4(also_valid_options))


def py5():
    # `result = hyper.data.add(movie)` and `result = await hyper.data.add_async(movie)`: the same
    # call; movie-4000 exists by now, so both get the documented NotOkResult.
    before = len(SENT)
    sync_result = conflict(hyper.data.add(movie), "hyper.data.add(movie) again")

    async def add_async():
        return await hyper.data.add_async(movie)

    async_result = conflict(asyncio.run(add_async()), "await hyper.data.add_async(movie) again")
    sent = [e["request"] for e in SENT[before:]]
    same(sent, [f"POST /data/{APP}", f"POST /data/{APP}"], "the requests of both")
    same(async_result, sync_result, "the async result vs the sync one")
    return sync_result


example("README PY-5 hyper.data.add(movie) / await hyper.data.add_async(movie): same call (409 now)", py5)


async def data_add():
    movie: Dict = {"_id": "movie-5000", "type": "movie", "title": "Back to the Future 2", "year": "1987"}
    result: IdResult = await hyper.data.add_async(movie)
    return same(result, {"id": "movie-5000", "ok": True, "status": 201})


example("README PY-6 asyncio.run(data_add())", lambda: asyncio.run(data_add()))

movie_5001: Dict = {"_id": "movie-5001", "type": "movie", "title": "Back to the Future 3", "year": "1989"}


async def data_cache_compose():
    movie: Dict = movie_5001
    result = await hyper.data.add_async(movie).then(
        lambda _: hyper.cache.add_async(key=movie["_id"], value=movie, ttl="1d")
    )
    return same(result, {"ok": True, "status": 201})


example(
    "README PY-7 asyncio.run(data_cache_compose()): data.add_async(...).then(cache.add_async)",
    lambda: asyncio.run(data_cache_compose()),
)
example(
    "README PY-7 (then) the doc is in data: hyper.data.get('movie-5001')",
    lambda: same(hyper.data.get("movie-5001"), {**movie_5001, "status": 200}),
)
example(
    "README PY-7 (then) and in the cache: hyper.cache.get('movie-5001')",
    lambda: same(hyper.cache.get("movie-5001"), {**movie_5001, "status": 200}),
)


def py8():
    with open(".env.cloud", "w") as f:
        f.write("HYPER=cloud://your app key:your app secret--gI1MkcrUqFPMR@cloud.hyper.io/express-quickstart\n")
    cloud = dotenv_values("./.env.cloud")
    same(
        cloud.get("HYPER"),
        "cloud://your app key:your app secret--gI1MkcrUqFPMR@cloud.hyper.io/express-quickstart",
        "dotenv_values of the README's .env line",
    )
    before = len(SENT)
    h = connect(str(cloud["HYPER"]))
    truth(
        all(hasattr(h, s) for s in ("data", "cache", "search", "storage", "queue", "info")),
        "connect(...)",
        "a Hyper",
        h,
    )
    same(len(SENT) - before, 0, "requests sent by connect()")
    return None


example("README PY-8 .env HYPER=cloud://... (format only: connect() accepts it, sends nothing)", py8)


# ---------------------------------------------------------------------------------------------
# examples.py and examples_async.py: the same calls, sync and async, each on its own app


def caller(asynchronous):
    """call(svc, 'add', ...) -> svc.add(...), or `await svc.add_async(...)` inside a running loop."""
    if not asynchronous:
        return lambda svc, method, *a, **k: getattr(svc, method)(*a, **k)

    def call(svc, method, *a, **k):
        async def go():
            return await getattr(svc, method + "_async")(*a, **k)

        return asyncio.run(go())

    return call


def run_examples(src, app, asynchronous):
    h: Hyper = connect(f"{BASE}/{app}")
    call = caller(asynchronous)
    sfx = "_async" if asynchronous else ""
    say(f"\n== {src}, against {BASE}/{app}")

    def ex(name, fn):
        example(f"{src} {name}", fn)

    # The books the examples' documented results were made with.
    lorax = [
        {"_id": "book-000010", "type": "book", "name": "The Lorax", "author": "Dr. Suess", "published": "1959"},
        {
            "_id": "book-000020",
            "type": "book",
            "name": "The Lumberjack named Lorax the tree slayer",
            "author": "Dr. Suess",
            "published": "1969",
        },
        {**books[0], "name": "The Lorax 100 (first edition)"},
        *books[1:],
    ]
    michener = [
        {
            "_id": "book-000200",
            "type": "book",
            "name": "Tales of the South Pacific",
            "author": "James A. Michener",
            "published": "1947",
        },
        {"_id": "book-000201", "type": "book", "name": "Hawaii", "author": "James A. Michener", "published": "1959"},
        {"_id": "book-000202", "type": "book", "name": "Texas", "author": "James A. Michener", "published": "1985"},
    ]
    ex("setup: 12 books", lambda: seeded(h, lorax + michener))

    # ---- data
    movie: Dict = {"_id": "movie-5000", "type": "movie", "title": "Back to the Future 2", "year": "1987"}
    ex(
        f"data_add: hyper.data.add{sfx}(movie)",
        lambda: same(call(h.data, "add", movie), {"id": "movie-5000", "ok": True, "status": 201}),
    )
    ex(f"data_add (NotOkResult): hyper.data.add{sfx}(movie) again", lambda: conflict(call(h.data, "add", movie)))
    ex(
        f"data_get: hyper.data.get{sfx}('movie-5000')",
        lambda: same(call(h.data, "get", "movie-5000"), {**movie, "status": 200}),
    )

    book: Dict = {
        "_id": "book-000100",
        "type": "book",
        "name": "The Lorax 100",
        "author": "Dr. Suess",
        "published": "1969",
    }
    ex(
        f"data_update: hyper.data.update{sfx}('book-000100', book)",
        lambda: same(call(h.data, "update", "book-000100", book), {"ok": True, "id": "book-000100", "status": 200}),
    )
    ex(
        "data_update (then) hyper.data.get('book-000100') is the new doc",
        lambda: same(h.data.get("book-000100"), {**book, "status": 200}),
    )

    if asynchronous:
        # examples_async.py data_cache_compose: adds movie-5001 to data and cache.
        async def data_cache_compose():
            result = await h.data.add_async(movie_5001).then(
                lambda _: h.cache.add_async(key=movie_5001["_id"], value=movie_5001, ttl="1d")
            )
            return same(result, {"ok": True, "status": 201})

        ex("data_cache_compose: data.add_async(movie).then(cache.add_async)", lambda: asyncio.run(data_cache_compose()))
    else:

        def setup_5001():
            seeded(h, [movie_5001])
            return same(
                h.cache.add("movie-5001", movie_5001, None), {"ok": True, "status": 201}, "cache.add('movie-5001')"
            )

        ex("setup: movie-5001 in data and cache", setup_5001)
    ex(
        f"data_delete: hyper.data.remove{sfx}('movie-5001')",
        lambda: same(call(h.data, "remove", "movie-5001"), {"id": "movie-5001", "ok": True, "status": 200}),
    )
    ex("data_delete (then) hyper.data.get('movie-5001') is 404", lambda: not_ok(h.data.get("movie-5001"), 404))

    ex(
        f"list_range: hyper.data.list{sfx}({{startkey: book-000105, endkey: book-000106}})",
        lambda: same(call(h.data, "list", {"startkey": "book-000105", "endkey": "book-000106"}), range_docs),
    )
    keys_options: ListOptions = {
        "startkey": None,
        "limit": None,
        "endkey": None,
        "keys": ["book-000105", "book-000106"],
        "descending": None,
    }
    ex(
        f"list_keys: hyper.data.list{sfx}({{keys: [book-000105, book-000106]}})",
        lambda: same(call(h.data, "list", keys_options), range_docs),
    )

    query_options: QueryOptions = {"fields": ["_id", "name", "published"], "sort": None, "limit": 3, "useIndex": None}
    ex(
        f"query: hyper.data.query{sfx}({{type: book}}, {{fields: [_id, name, published], limit: 3}})",
        lambda: same(
            call(h.data, "query", {"type": "book"}, query_options),
            {
                "docs": [
                    {"_id": "book-000010", "name": "The Lorax", "published": "1959"},
                    {"_id": "book-000020", "name": "The Lumberjack named Lorax the tree slayer", "published": "1969"},
                    {"_id": "book-000100", "name": "The Lorax 100", "published": "1969"},
                ],
                "ok": True,
                "status": 200,
            },
        ),
    )
    index_name = "idx_author_published" if asynchronous else "_idxauthorpublished"
    ex(
        f"query_index: hyper.data.index{sfx}({index_name!r}, ['author', 'published'])",
        lambda: same(call(h.data, "index", index_name, ["author", "published"]), {"ok": True, "status": 201}),
    )
    index_options: QueryOptions = {
        "fields": ["author", "published"],
        "sort": [{"author": "DESC"}, {"published": "DESC"}],
        "useIndex": index_name,
    }
    ex(
        f"query_index: hyper.data.query{sfx}({{type: book, author: James A. Michener}}, sort DESC, useIndex)",
        lambda: same(
            call(h.data, "query", {"type": "book", "author": "James A. Michener"}, index_options),
            {
                "docs": [
                    {"author": "James A. Michener", "published": "1985"},
                    {"author": "James A. Michener", "published": "1959"},
                    {"author": "James A. Michener", "published": "1947"},
                ],
                "ok": True,
                "status": 200,
            },
        ),
    )

    movies = [
        {"_id": "movie-6000", "type": "movie", "title": "Jeremiah Johnson", "year": "1972"},
        {"_id": "movie-6001", "type": "movie", "title": "Butch Cassidy and the Sundance Kid", "year": "1969"},
        {"_id": "movie-6002", "type": "movie", "title": "The Great Gatsby", "year": "1974"},
        {"_id": "movie-6003", "type": "movie", "title": "The Natural", "year": "1984"},
        {"_id": "movie-6004", "type": "movie", "title": "The Sting", "year": "1973"},
    ]

    def bulk():
        result = having(call(h.data, "bulk", movies), {"ok": True, "status": 201})
        results = result.get("results")
        truth(isinstance(results, list) and len(results) == 5, "results", "5 results", results)
        for r, m in zip(results, movies):
            having(r, {"ok": True, "id": m["_id"]}, "a result")
        same(h.data.get("movie-6002"), {**movies[2], "status": 200}, "hyper.data.get('movie-6002') afterwards")
        return result

    ex(f"bulk: hyper.data.bulk{sfx}(5 movies)", bulk)

    # ---- cache
    ttl = "24h" if asynchronous else "1w"
    ex(
        f"add_cache: hyper.cache.add{sfx}(key='movie-5000', value=movie, ttl={ttl!r})",
        lambda: same(call(h.cache, "add", key="movie-5000", value=movie, ttl=ttl), {"ok": True, "status": 201}),
    )
    ex(
        f"add_cache (NotOkResult): hyper.cache.add{sfx}(...) again",
        lambda: conflict(call(h.cache, "add", key="movie-5000", value=movie, ttl=ttl)),
    )
    if asynchronous:
        ex(
            "add_cache_thing: hyper.cache.add_async(key='thing-1', value={'likes': 100}, ttl='1m')",
            lambda: same(
                call(h.cache, "add", key="thing-1", value={"likes": 100}, ttl="1m"), {"ok": True, "status": 201}
            ),
        )
        ex(
            "get_cache_thing: hyper.cache.get_async('thing-1')",
            lambda: same(call(h.cache, "get", "thing-1"), {"likes": 100, "status": 200}),
        )
    # (examples.py's get_cache calls get_async outside a loop by mistake; the sync twin here)
    ex(
        f"get_cache: hyper.cache.get{sfx}('movie-5000')",
        lambda: same(call(h.cache, "get", "movie-5000"), {**movie, "status": 200}),
    )
    ex(
        f"remove_cache: hyper.cache.remove{sfx}('movie-5000')",
        lambda: same(call(h.cache, "remove", "movie-5000"), {"ok": True, "status": 200}),
    )
    ex("remove_cache (then) hyper.cache.get('movie-5000') is 404", lambda: not_ok(h.cache.get("movie-5000"), 404))
    movie_1988 = {**movie, "year": "1988"}
    ex(
        f"update_cache: hyper.cache.set{sfx}(key='movie-5000', value=movie, ttl='1w')",
        lambda: same(call(h.cache, "set", key="movie-5000", value=movie_1988, ttl="1w"), {"ok": True, "status": 200}),
    )
    ex(
        "update_cache (then) hyper.cache.get('movie-5000') is the new value",
        lambda: same(h.cache.get("movie-5000"), {**movie_1988, "status": 200}),
    )
    ex(
        "setup: cache key movie-4000 (must not match movie-500*)",
        lambda: same(h.cache.add("movie-4000", {"_id": "movie-4000"}, None), {"ok": True, "status": 201}),
    )

    def query_cache():
        result = having(call(h.cache, "query", pattern="movie-500*"), {"ok": True, "status": 200})
        docs = result.get("docs")
        truth(isinstance(docs, list), "docs", "a list", docs)
        same(
            sorted(docs, key=lambda d: str(d.get("key"))),
            [{"key": "movie-5000", "value": movie_1988}, {"key": "movie-5001", "value": movie_5001}],
            "docs (in key order)",
        )
        return result

    ex(f"query_cache: hyper.cache.query{sfx}(pattern='movie-500*')", query_cache)

    # ---- search (the file's order is add, get, remove, update, query, load; its documented
    # get result already shows the update, so update comes before get here)
    ex(
        f"add_search: hyper.search.add{sfx}(key='movie-5000', doc=movie)",
        lambda: same(call(h.search, "add", key="movie-5000", doc=movie), {"ok": True, "status": 201}),
    )
    ex(
        f"add_search (again: 409): hyper.search.add{sfx}(key='movie-5000', doc=movie)",
        lambda: not_ok(call(h.search, "add", key="movie-5000", doc=movie), 409),
    )
    ex(
        f"update_search: hyper.search.update{sfx}(key='movie-5000', doc=movie)",
        lambda: same(call(h.search, "update", key="movie-5000", doc=movie_1988), {"ok": True, "status": 200}),
    )
    ex(
        f"get_search: hyper.search.get{sfx}(key='movie-5000')",
        lambda: same(
            call(h.search, "get", key="movie-5000"), {"key": "movie-5000", "doc": movie_1988, "ok": True, "status": 200}
        ),
    )
    search_setup = [
        {"_id": "movie-100", "type": "movie", "title": "Chariots of Fire", "year": "1981"},
        {"_id": "movie-101", "type": "movie", "title": "Star Wars", "year": "1977"},
        {"_id": "movie-102", "type": "movie", "title": "Back to the Future", "year": "1985"},
    ]

    def add_search_setup():
        for d in search_setup:
            same(h.search.add(key=d["_id"], doc=d), {"ok": True, "status": 201}, f"search.add({d['_id']!r})")

    ex("setup: movie-100, movie-101, movie-102 in search", add_search_setup)

    def match_ids(result):
        matches = result.get("matches")
        truth(isinstance(matches, list), "matches", "a list", matches)
        for m in matches:
            truth(isinstance(m, dict) and isinstance(m.get("id", m.get("_id")), str), "a match", "{'id': ..., ...}", m)
        return sorted(m.get("id", m.get("_id")) for m in matches)

    search_options: SearchQueryOptions = {"fields": ["_id", "title", "year"], "filter": None}

    def query_search(expected_ids):
        result = having(call(h.search, "query", "Future", search_options), {"ok": True, "status": 200})
        same(match_ids(result), expected_ids, "the ids of the matches")
        return result

    ex(
        f"query_search: hyper.search.query{sfx}('Future', {{fields: [_id, title, year], filter: None}})",
        lambda: query_search(["movie-102", "movie-5000"]),
    )
    ex(
        f"remove_search: hyper.search.remove{sfx}('movie-5000')",
        lambda: same(call(h.search, "remove", "movie-5000"), {"ok": True, "status": 200}),
    )
    ex(
        "remove_search (then) hyper.search.get('movie-5000') is 404",
        lambda: not_ok(h.search.get(key="movie-5000"), 404),
    )
    ex("query_search (again, after the remove)", lambda: query_search(["movie-102"]))
    bulk_movie_docs: List[Dict] = [
        {"_id": "movie-104", "type": "movie", "title": "Full Metal Jacket", "year": "1987"},
        {"_id": "movie-105", "type": "movie", "title": "Predator", "year": "1987"},
    ]

    def load_search():
        result = call(h.search, "load", docs=bulk_movie_docs)
        having(result, {"ok": True})
        truth(result.get("status") in (200, 201), "status", "200 or 201", result)
        found = having(
            h.search.query("Predator", None),
            {"ok": True, "status": 200},
            "hyper.search.query('Predator', None) afterwards",
        )
        same(match_ids(found), ["movie-105"], "the ids of the matches of 'Predator'")
        return result

    ex(f"load_search: hyper.search.load{sfx}(docs=[movie-104, movie-105])", load_search)

    # ---- storage
    with open("remix.png", "rb") as f:
        remix = f.read()

    def storage_upload():
        br_remix_png = open("remix.png", "rb")
        result = call(h.storage, "upload", name="remix", data=br_remix_png)
        br_remix_png.close()
        return same(result, {"ok": True, "status": 201})

    def storage_download():
        response = call(h.storage, "download", name="remix")
        truth(isinstance(response, requests.Response), "the result", "<Response [200]>", response)
        same(response.status_code, 200, "status_code")
        path = "remix_downloaded.png"
        with open(path, "wb") as fd:
            for chunk in response.iter_content(chunk_size=128):
                fd.write(chunk)
        with open(path, "rb") as fd:
            got = fd.read()
        if got != remix:
            raise Mismatch(
                "remix_downloaded.png",
                f"the {len(remix)} bytes of remix.png",
                f"{len(got)} bytes, starting {got[:40]!r}",
            )
        return response

    def storage_delete_missing():
        result = call(h.storage, "remove", name="remix-notfound")
        # examples_async.py documents {'ok': True, 'status': 201}; a 404 is accepted too.
        truth(
            result in ({"ok": True, "status": 201},)
            or (isinstance(result, dict) and result.get("status") == 404 and result.get("ok") is False),
            "result",
            "{'ok': True, 'status': 201} (documented) or a 404 {'ok': False, ...}",
            result,
        )
        return result

    ex(f"storage_upload: hyper.storage.upload{sfx}(name='remix', data=open('remix.png', 'rb'))", storage_upload)
    ex(f"storage_download: hyper.storage.download{sfx}(name='remix'), written with iter_content(128)", storage_download)
    ex(f"storage_delete: hyper.storage.remove{sfx}(name='remix-notfound')", storage_delete_missing)
    ex(
        f"EXTRA hyper.storage.remove{sfx}(name='remix')",
        lambda: same(call(h.storage, "remove", name="remix"), {"ok": True, "status": 201}),
    )
    ex(
        "EXTRA (then) hyper.storage.download('remix') is 404",
        lambda: same(h.storage.download(name="remix").status_code, 404, "status_code"),
    )

    # ---- queue (the README's table: enqueue, errors, queued)
    ex(
        f"EXTRA queue: hyper.queue.enqueue{sfx}({{type: movie, id: movie-5000}})",
        lambda: having(call(h.queue, "enqueue", {"type": "movie", "id": "movie-5000"}), {"ok": True, "status": 201}),
    )

    def jobs(method):
        result = having(call(h.queue, method), {"ok": True, "status": 200})
        truth(isinstance(result.get("jobs"), list), "jobs", "a list", result)
        return result

    ex(f"EXTRA queue: hyper.queue.errors{sfx}()", lambda: jobs("errors"))
    if asynchronous:
        # queued_async() is broken in 0.0.10 (it sends the request, then fails on its own result):
        # only the request and its answer are checked.
        def queued_async():
            before = len(SENT)
            try:
                call(h.queue, "queued")
            except Exception:  # noqa: BLE001
                pass
            sent = SENT[before:]
            same([e["request"] for e in sent], [f"GET /queue/{app}?status=READY"], "the request")
            truth(sent[0]["answer"].startswith("200 "), "the answer", "200 {ok: true, jobs: [...]}", sent[0]["answer"])
            return sent[0]["answer"]

        ex(
            "EXTRA queue: hyper.queue.queued_async() (client bug: its result is unusable; the answer is checked)",
            queued_async,
        )
    else:
        ex("EXTRA queue: hyper.queue.queued()", lambda: jobs("queued"))


with open("remix.png", "wb") as f:
    # A PNG signature, then ~300 KB of random bytes: binary content with every byte value.
    f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(300 * 1024))

run_examples("examples.py", "examples", asynchronous=False)
run_examples("examples_async.py", "asyncexamples", asynchronous=True)

summary()
