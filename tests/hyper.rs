//! The hyper services over HTTP (`/data`, `/cache`, `/search`, `/storage`, `/queue`), on the
//! test backend (SQLite, or PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`): each service's
//! statuses and shapes, data queries against the in-memory reading of the same selector rules
//! (generated documents and selectors), the index a query uses, cache expiry, search ranking,
//! a 10 MB object byte for byte, queue delivery with its signature, retries and ERROR, two
//! nodes sharing one queue, tenancy and tokens. Every error answer is checked on the way: a
//! 4xx (never a 5xx), `Content-Type: application/json`, `{ok: false, status, msg}`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use arcbase::config::Limits;
use arcbase::hyper::data::{compare, FindQuery, Selector};
use common::rng::Rng;
use common::{backend_is_postgres, TestApp, EXAMPLE};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Send one request; checks the shape of every error answer.
async fn send(t: &TestApp, method: &str, path: &str, body: Body, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = t.router.clone().oneshot(req.body(body).expect("request")).await.expect("router answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    let r = Reply { status, headers, bytes };
    assert!(
        r.status < 500,
        "{method} {path}: a client's request answered {}: {}",
        r.status,
        String::from_utf8_lossy(&r.bytes)
    );
    if r.status >= 400 {
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{method} {path}: an error without a JSON content type: {:?}",
            r.headers
        );
        let b = r.json();
        assert_eq!(b["ok"], false, "{method} {path}: {b}");
        assert_eq!(b["status"], r.status, "{method} {path}: {b}");
        assert!(b["msg"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: an error names what is wrong: {b}");
    }
    r
}

/// A JSON request as the development-mode caller (or with `headers`); (status, body).
async fn call(t: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(t, method, path, body, &[]).await
}

async fn call_as(t: &TestApp, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let r = send(t, method, path, body, &h).await;
    let v = if r.bytes.is_empty() { Value::Null } else { r.json() };
    (r.status, v)
}

/// Expect `status`; returns the body.
async fn expect(t: &TestApp, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(t, method, path, body).await;
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

fn ids(docs: &Value) -> Vec<String> {
    docs.as_array()
        .unwrap_or_else(|| panic!("an array of docs: {docs}"))
        .iter()
        .map(|d| d["_id"].as_str().unwrap_or_else(|| panic!("a doc with an _id: {d}")).to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn data_statuses_and_shapes() {
    let t = TestApp::new(EXAMPLE).await;
    assert_eq!(expect(&t, 201, "PUT", "/data/movies", None).await, json!({ "ok": true }));
    expect(&t, 409, "PUT", "/data/movies", None).await;

    let movie = json!({ "_id": "movie-1", "type": "movie", "title": "Ghostbusters", "year": "1984" });
    assert_eq!(
        expect(&t, 201, "POST", "/data/movies", Some(movie.clone())).await,
        json!({ "ok": true, "id": "movie-1" })
    );
    let again = expect(&t, 409, "POST", "/data/movies", Some(movie.clone())).await;
    assert!(again["msg"].as_str().unwrap().contains("conflict"), "{again}");
    // An empty document, no body, not JSON, not an object.
    expect(&t, 400, "POST", "/data/movies", Some(json!({}))).await;
    expect(&t, 400, "POST", "/data/movies", None).await;
    let r = send(&t, "POST", "/data/movies", Body::from("{\"a\":"), &[("content-type", "application/json")]).await;
    assert_eq!(r.status, 400);
    expect(&t, 422, "POST", "/data/movies", Some(json!([1, 2]))).await;
    expect(&t, 422, "POST", "/data/movies", Some(json!({ "_id": true }))).await;
    // Without an _id one is made.
    let made = expect(&t, 201, "POST", "/data/movies", Some(json!({ "title": "Alien" }))).await;
    let made_id = made["id"].as_str().unwrap().to_string();
    assert_eq!(expect(&t, 200, "GET", &format!("/data/movies/{made_id}"), None).await["title"], "Alien");

    // get: the raw document by default, {ok, doc} with X-HYPER-LEGACY-GET: false.
    assert_eq!(expect(&t, 200, "GET", "/data/movies/movie-1", None).await, movie);
    let (s, v) = call_as(&t, "GET", "/data/movies/movie-1", None, &[("x-hyper-legacy-get", "false")]).await;
    assert_eq!((s, v), (200, json!({ "ok": true, "doc": movie })));
    expect(&t, 404, "GET", "/data/movies/movie-2", None).await;

    // update replaces; remove; a second remove is 404.
    let v2 = json!({ "type": "movie", "title": "Ghostbusters II" });
    assert_eq!(expect(&t, 200, "PUT", "/data/movies/movie-1", Some(v2)).await, json!({ "ok": true, "id": "movie-1" }));
    let now = expect(&t, 200, "GET", "/data/movies/movie-1", None).await;
    assert_eq!(now, json!({ "_id": "movie-1", "type": "movie", "title": "Ghostbusters II" }), "a full replacement");
    assert_eq!(expect(&t, 200, "DELETE", "/data/movies/movie-1", None).await, json!({ "ok": true, "id": "movie-1" }));
    expect(&t, 404, "GET", "/data/movies/movie-1", None).await;
    expect(&t, 404, "DELETE", "/data/movies/movie-1", None).await;

    // Ids with reserved characters travel percent-encoded, one path segment or several.
    expect(&t, 201, "POST", "/data/movies", Some(json!({ "_id": "a b/c?d", "x": 1 }))).await;
    assert_eq!(expect(&t, 200, "GET", "/data/movies/a%20b%2Fc%3Fd", None).await["x"], 1);

    // A store comes into being on first write; reads of a missing store are 404.
    expect(&t, 404, "GET", "/data/fresh", None).await;
    expect(&t, 404, "POST", "/data/fresh/_query", Some(json!({ "selector": {} }))).await;
    expect(&t, 201, "POST", "/data/fresh", Some(json!({ "_id": "x", "a": 1 }))).await;
    expect(&t, 409, "PUT", "/data/fresh", None).await;
    expect(&t, 200, "DELETE", "/data/fresh", None).await;
    expect(&t, 404, "DELETE", "/data/fresh", None).await;
    expect(&t, 404, "GET", "/data/fresh/x", None).await;

    // Names, methods and actions.
    expect(&t, 422, "PUT", "/data/_bad", None).await;
    expect(&t, 422, "PUT", "/data/b%21d", None).await;
    expect(&t, 404, "GET", "/data", None).await;
    expect(&t, 404, "POST", "/data/movies/_nothing", Some(json!({}))).await;
    expect(&t, 405, "PATCH", "/data/movies", Some(json!({}))).await;
}

#[tokio::test]
async fn data_list_ranges_keys_and_bulk() {
    let t = TestApp::new(EXAMPLE).await;
    let docs: Vec<Value> = (0..10).map(|i| json!({ "_id": format!("d{i:02}"), "n": i })).collect();
    let r = expect(&t, 201, "POST", "/data/list/_bulk", Some(Value::Array(docs))).await;
    assert_eq!(r["results"].as_array().unwrap().len(), 10, "{r}");
    assert!(r["results"].as_array().unwrap().iter().all(|x| x["ok"] == true), "{r}");
    let list = |q: &str| format!("/data/list?{q}");
    let got = |v: Value| ids(&v["docs"]);
    let all: Vec<String> = (0..10).map(|i| format!("d{i:02}")).collect();
    assert_eq!(got(expect(&t, 200, "GET", "/data/list", None).await), all);
    assert_eq!(got(expect(&t, 200, "GET", &list("startkey=d03&endkey=d06"), None).await), all[3..=6].to_vec());
    assert_eq!(got(expect(&t, 200, "GET", &list("startkey=d07"), None).await), all[7..].to_vec());
    assert_eq!(got(expect(&t, 200, "GET", &list("limit=3"), None).await), all[..3].to_vec());
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(got(expect(&t, 200, "GET", &list("descending=true"), None).await), rev);
    assert_eq!(got(expect(&t, 200, "GET", &list("descending=True&limit=2"), None).await), rev[..2].to_vec());
    // Descending, the start key is the high end (as in CouchDB).
    assert_eq!(
        got(expect(&t, 200, "GET", &list("descending=true&startkey=d06&endkey=d03"), None).await),
        vec!["d06", "d05", "d04", "d03"]
    );
    // keys: in the order asked, missing ones left out.
    assert_eq!(got(expect(&t, 200, "GET", &list("keys=d05,d01,zz,d09"), None).await), vec!["d05", "d01", "d09"]);
    // The Python client sends unset options as empty or `undefined`.
    assert_eq!(got(expect(&t, 200, "GET", &list("limit=&startkey=undefined"), None).await), all);
    expect(&t, 422, "GET", &list("limit=0"), None).await;
    expect(&t, 422, "GET", &list("limit=1001"), None).await;
    expect(&t, 422, "GET", &list("limit=ten"), None).await;
    expect(&t, 422, "GET", &list("descending=maybe"), None).await;

    // Bulk: updates, removes (`_deleted`), new documents, in one call.
    let ops = json!([
        { "_id": "d00", "n": 100 },
        { "_id": "d01", "_deleted": true },
        { "_id": "d10", "n": 10 },
    ]);
    let r = expect(&t, 201, "POST", "/data/list/_bulk", Some(ops)).await;
    assert_eq!(
        ids(&r["results"].as_array().unwrap().iter().map(|x| json!({ "_id": x["id"] })).collect()),
        vec!["d00", "d01", "d10"]
    );
    assert_eq!(expect(&t, 200, "GET", "/data/list/d00", None).await["n"], 100);
    expect(&t, 404, "GET", "/data/list/d01", None).await;
    assert_eq!(expect(&t, 200, "GET", "/data/list/d10", None).await["n"], 10);
    expect(&t, 422, "POST", "/data/list/_bulk", Some(json!({ "docs": [] }))).await;
    expect(&t, 422, "POST", "/data/list/_bulk", Some(json!([{ "_deleted": true }]))).await;
    expect(&t, 422, "POST", "/data/list/_bulk", Some(json!([1]))).await;
}

/// The order the service sorts by: missing, null, false, true, numbers, strings (bytes),
/// arrays, objects; ties by `_id`.
fn rank(v: Option<&Value>) -> u8 {
    match v {
        None => 0,
        Some(Value::Null) => 1,
        Some(Value::Bool(false)) => 2,
        Some(Value::Bool(true)) => 3,
        Some(Value::Number(_)) => 4,
        Some(Value::String(_)) => 5,
        Some(Value::Array(_)) => 6,
        Some(Value::Object(_)) => 7,
    }
}

fn model_cmp(a: &Value, b: &Value, field: &str) -> std::cmp::Ordering {
    let (x, y) = (a.get(field), b.get(field));
    rank(x).cmp(&rank(y)).then_with(|| match (x, y) {
        (Some(x), Some(y)) => compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
        _ => std::cmp::Ordering::Equal,
    })
}

fn gen_value(rng: &mut Rng, field: &str) -> Option<Value> {
    let numbers = [json!(-3), json!(-1), json!(0), json!(1), json!(1.5), json!(2), json!(3), json!(-0.5), json!(1.0)];
    let strings = [json!(""), json!("a"), json!("ab"), json!("b"), json!("B"), json!("é"), json!("z"), json!("2")];
    match (field, rng.index(10)) {
        (_, 0) => None,
        (_, 1) => Some(Value::Null),
        ("n", 2) => Some(rng.pick(&strings)),
        ("n", _) => Some(rng.pick(&numbers)),
        ("s", 2) => Some(rng.pick(&numbers)),
        ("s", 3) => Some(json!(true)),
        ("s", _) => Some(rng.pick(&strings)),
        (_, 2..=5) => Some(json!(rng.index(2) == 0)),
        (_, _) => Some(rng.pick(&numbers)),
    }
}

fn gen_selector(rng: &mut Rng, depth: u32) -> Value {
    if depth < 2 && rng.index(4) == 0 {
        let op = rng.pick(&["$and", "$or", "$nor"]);
        let n = 1 + rng.index(3);
        return json!({ op: (0..n).map(|_| gen_selector(rng, depth + 1)).collect::<Vec<_>>() });
    }
    let field = rng.pick(&["n", "s", "t"]);
    let op = rng.pick(&["eq", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"]);
    match op {
        "eq" => json!({ field: v_of(rng, field) }),
        "$in" | "$nin" => {
            let n = 1 + rng.index(3);
            json!({ field: { op: (0..n).map(|_| v_of(rng, field)).collect::<Vec<_>>() } })
        }
        "$exists" => json!({ field: { op: rng.index(2) == 0 } }),
        _ => json!({ field: { op: v_of(rng, field) } }),
    }
}

fn v_of(rng: &mut Rng, field: &str) -> Value {
    gen_value(rng, field).unwrap_or(json!(1))
}

/// Generated documents and selectors: the service answers what the in-memory reading of the
/// same rules answers, in the order it sorts (with `limit` and `skip`, and `fields`).
/// Two seeds by default, one with indexes (even) and one without; `ARCBASE_HYPER_SEED` runs one.
#[tokio::test]
async fn data_queries_agree_with_the_model() {
    match std::env::var("ARCBASE_HYPER_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => model_run(seed).await,
        None => {
            model_run(0x5eed_1234_abcd).await;
            model_run(0x5eed_1234_abce).await;
        }
    }
}

async fn model_run(seed: u64) {
    let t = TestApp::new(EXAMPLE).await;
    let mut rng = Rng(seed);
    let mut docs = Vec::new();
    for i in 0..80 {
        let mut d = serde_json::Map::new();
        d.insert("_id".into(), json!(format!("k{i:03}")));
        for f in ["n", "s", "t"] {
            if let Some(v) = gen_value(&mut rng, f) {
                d.insert(f.into(), v);
            }
        }
        docs.push(Value::Object(d));
    }
    expect(&t, 201, "POST", "/data/gen/_bulk", Some(Value::Array(docs.clone()))).await;
    // Half the runs with indexes over the fields, so both plans are compared.
    if seed.is_multiple_of(2) {
        expect(&t, 201, "POST", "/data/gen/_index", Some(json!({ "name": "by-n", "fields": ["n"] }))).await;
        expect(&t, 201, "POST", "/data/gen/_index", Some(json!({ "name": "by-s-n", "fields": ["s", "n"] }))).await;
    }
    let limits = arcbase::hyper::HyperLimits::from_limits(&Limits::default());
    for case in 0..200 {
        let selector = gen_selector(&mut rng, 0);
        let sort_field = rng.pick(&["n", "s", "t", "_id"]);
        let desc = rng.index(2) == 0;
        let (limit, skip) = if rng.index(3) == 0 { (1 + rng.index(10), rng.index(5)) } else { (1000, 0) };
        let fields = rng.index(5) == 0;
        let mut body = json!({
            "selector": selector,
            "sort": [{ sort_field: if desc { "DESC" } else { "ASC" } }],
            "limit": limit,
        });
        if skip > 0 {
            body["skip"] = json!(skip);
        }
        if fields {
            body["fields"] = json!(["_id", "s"]);
        }
        let parsed = FindQuery::from_json(&body, &limits).unwrap_or_else(|e| panic!("case {case}: {body}: {}", e.msg));
        let sel: &Selector = &parsed.selector;
        let mut want: Vec<&Value> = docs.iter().filter(|d| sel.matches(d)).collect();
        want.sort_by(|a, b| {
            let o = model_cmp(a, b, sort_field).then_with(|| a["_id"].as_str().cmp(&b["_id"].as_str()));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        let want: Vec<String> =
            want.iter().skip(skip).take(limit).map(|d| d["_id"].as_str().unwrap().to_string()).collect();
        let (status, got) = call(&t, "POST", "/data/gen/_query", Some(body.clone())).await;
        assert_eq!(status, 200, "case {case} (seed {seed}): {body}: {got}");
        assert_eq!(ids(&got["docs"]), want, "case {case} (seed {seed}, ARCBASE_HYPER_SEED replays it): {body}");
        if fields {
            for d in got["docs"].as_array().unwrap() {
                let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
                assert!(keys.iter().all(|k| *k == "_id" || *k == "s"), "case {case}: only the fields asked for: {d}");
                let full = docs.iter().find(|x| x["_id"] == d["_id"]).unwrap();
                assert_eq!(d.get("s"), full.get("s"), "case {case}");
            }
        }
    }
    // Bad queries name what is wrong.
    for bad in [
        json!({ "selector": { "n": { "$regex": "x" } } }),
        json!({ "selector": { "$or": 3 } }),
        json!({ "selector": {}, "limit": -1 }),
        json!({ "selector": {}, "sort": [{ "n": "UP" }] }),
        json!({ "selector": {}, "fields": "n" }),
        json!({ "selector": { "n": { "$in": 1 } } }),
    ] {
        let (status, v) = call(&t, "POST", "/data/gen/_query", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {v}");
    }
    let many: Vec<Value> = (0..2000).map(|i| json!({ "n": i })).collect();
    let (status, v) = call(&t, "POST", "/data/gen/_query", Some(json!({ "selector": { "$or": many } }))).await;
    assert_eq!(status, 422, "a selector with too many conditions: {v}");
}

/// `_index` makes a real database index that the query plan uses.
#[tokio::test]
async fn data_index_is_used_by_queries() {
    let t = TestApp::new(EXAMPLE).await;
    let docs: Vec<Value> =
        (0..600).map(|i| json!({ "_id": format!("m{i:04}"), "year": format!("{}", 1900 + i % 120), "n": i })).collect();
    expect(&t, 201, "POST", "/data/idx/_bulk", Some(Value::Array(docs))).await;
    let ix = json!({ "name": "by-year", "fields": ["year"], "type": "JSON" });
    expect(&t, 201, "POST", "/data/idx/_index", Some(ix.clone())).await;
    expect(&t, 201, "POST", "/data/idx/_index", Some(ix)).await;
    expect(&t, 409, "POST", "/data/idx/_index", Some(json!({ "name": "by-year", "fields": ["n"] }))).await;
    expect(&t, 422, "POST", "/data/idx/_index", Some(json!({ "name": "empty", "fields": [] }))).await;

    let body = json!({ "selector": { "year": "1984" }, "use_index": "by-year" });
    let got = expect(&t, 200, "POST", "/data/idx/_query", Some(body.clone())).await;
    assert_eq!(ids(&got["docs"]), vec!["m0084", "m0204", "m0324", "m0444", "m0564"]);
    expect(&t, 422, "POST", "/data/idx/_query", Some(json!({ "selector": {}, "use_index": "nope" }))).await;

    let store = &t.app.store;
    let d = store.dialect();
    let id_rows =
        t.sql("SELECT id FROM hyper_stores WHERE service = ? AND name = ?", vec!["data".into(), "idx".into()]).await;
    let store_id = id_rows[0][0].as_i64().unwrap();
    let limits = arcbase::hyper::HyperLimits::from_limits(&Limits::default());
    let q = FindQuery::from_json(&body, &limits).unwrap();
    let mut explain = arcbase::sql::Sql::new(d);
    explain.push(if backend_is_postgres() { "EXPLAIN " } else { "EXPLAIN QUERY PLAN " });
    explain.append(arcbase::sql::hyper::data::find(d, store_id, &q, true));
    if backend_is_postgres() {
        t.sql("ANALYZE hyper_docs", Vec::new()).await;
    }
    let plan: Vec<String> = store
        .execute(&explain)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>().join(" "))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains(&format!("hyper_ix_{store_id}_1")), "the query uses the index:\n{plan}");
}

// ---------------------------------------------------------------------------------------------
// cache
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cache_keys_ttls_and_patterns() {
    let t = TestApp::new(EXAMPLE).await;
    let movie = json!({ "title": "Ghostbusters", "year": "1984" });
    let add = |key: &str, ttl: Option<&str>| {
        let mut b = json!({ "key": key, "value": movie });
        if let Some(ttl) = ttl {
            b["ttl"] = json!(ttl);
        }
        b
    };
    assert_eq!(expect(&t, 201, "POST", "/cache/c", Some(add("movie-1", Some("1w")))).await, json!({ "ok": true }));
    let again = expect(&t, 409, "POST", "/cache/c", Some(add("movie-1", None))).await;
    assert!(again["msg"].as_str().unwrap().contains("conflict"), "{again}");
    for bad in ["Movie", "1movie", "movie one", "movie!", "", "é"] {
        let (s, v) = call(&t, "POST", "/cache/c", Some(add(bad, None))).await;
        assert_eq!(s, 422, "key {bad:?}: {v}");
    }
    for bad in ["2x", "-1s", "s", "soon", "1 fortnight"] {
        let (s, v) = call(&t, "POST", "/cache/c", Some(add("movie-9", Some(bad)))).await;
        assert_eq!(s, 422, "ttl {bad:?}: {v}");
    }
    expect(&t, 422, "POST", "/cache/c", Some(json!({ "value": 1 }))).await;
    assert_eq!(expect(&t, 200, "GET", "/cache/c/movie-1", None).await, movie);
    let (s, v) = call_as(&t, "GET", "/cache/c/movie-1", None, &[("x-hyper-legacy-get", "false")]).await;
    assert_eq!((s, v), (200, json!({ "ok": true, "doc": movie })));
    expect(&t, 404, "GET", "/cache/c/movie-2", None).await;

    // set creates or replaces, with a TTL in the query.
    expect(&t, 200, "PUT", "/cache/c/movie-2?ttl=1h", Some(json!({ "v": 2 }))).await;
    expect(&t, 200, "PUT", "/cache/c/movie-2", Some(json!({ "v": 3 }))).await;
    assert_eq!(expect(&t, 200, "GET", "/cache/c/movie-2", None).await, json!({ "v": 3 }));
    expect(&t, 422, "PUT", "/cache/c/movie-2?ttl=soon", Some(json!({ "v": 4 }))).await;
    expect(&t, 200, "DELETE", "/cache/c/movie-2", None).await;
    expect(&t, 404, "GET", "/cache/c/movie-2", None).await;

    // Patterns: a prefix, a suffix, an exact key; `*` only, not SQL wildcards.
    for k in ["movie-10", "movie-11", "old-movie", "show-1", "movie_x", "moviexx"] {
        expect(&t, 201, "POST", "/cache/c", Some(add(k, None))).await;
    }
    let keys = |v: Value| -> Vec<String> {
        let mut k: Vec<String> =
            v["docs"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap().to_string()).collect();
        k.sort();
        k
    };
    let q = |p: &str| format!("/cache/c/_query?pattern={p}");
    assert_eq!(keys(expect(&t, 200, "POST", &q("movie-1*"), None).await), vec!["movie-1", "movie-10", "movie-11"]);
    assert_eq!(keys(expect(&t, 200, "GET", &q("*-movie"), None).await), vec!["old-movie"]);
    assert_eq!(keys(expect(&t, 200, "POST", &q("show-1"), Some(Value::Null)).await), vec!["show-1"]);
    assert_eq!(keys(expect(&t, 200, "POST", &q("movie_*"), None).await), vec!["movie_x"]);
    assert_eq!(keys(expect(&t, 200, "POST", &q("movie*x"), None).await), vec!["movie_x", "moviexx"]);
    let all = expect(&t, 200, "POST", "/cache/c/_query", None).await;
    assert_eq!(all["docs"].as_array().unwrap().len(), 7, "no pattern: every key: {all}");
    assert_eq!(expect(&t, 200, "POST", &q("movie-10"), None).await["docs"][0]["value"], movie);

    // Expiry: on read at once, and swept from the table in the background.
    expect(&t, 201, "POST", "/cache/c", Some(add("brief", Some("1s")))).await;
    assert_eq!(expect(&t, 200, "GET", "/cache/c/brief", None).await, movie);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    expect(&t, 404, "GET", "/cache/c/brief", None).await;
    assert_eq!(keys(expect(&t, 200, "POST", &q("brief*"), None).await), Vec::<String>::new());
    // An expired key can be added again.
    expect(&t, 201, "POST", "/cache/c", Some(add("brief", Some("1s")))).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let sweep = arcbase::sql::hyper::cache::sweep(t.app.store.dialect(), arcbase::hyper::now_ms(), 1000);
    t.app.store.execute(&sweep).await.unwrap();
    assert_eq!(t.sql_int("SELECT COUNT(*) FROM hyper_cache WHERE key = 'brief'").await, 0, "the expired row is gone");
    assert_eq!(t.sql_int("SELECT COUNT(*) FROM hyper_cache WHERE key = 'movie-1'").await, 1, "the live row stays");

    expect(&t, 200, "DELETE", "/cache/c", None).await;
    expect(&t, 404, "GET", "/cache/c/movie-1", None).await;
}

// ---------------------------------------------------------------------------------------------
// search
// ---------------------------------------------------------------------------------------------

fn shuffled(rng: &mut Rng, keys: &[&'static str]) -> Vec<&'static str> {
    let mut order = keys.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.index(i + 1));
    }
    order
}

/// Randomized interleavings of writers on the same few documents: replace, remove and bulk
/// loads of search and data (keys in random orders), from several tasks at once. No write may fail (on
/// PostgreSQL two of them once deadlocked: a removal locked a document's words before the
/// document, a replace the other way round), and afterwards every document is searchable by
/// exactly the words of its stored body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_the_same_search_documents_all_succeed() {
    let t = Arc::new(TestApp::new(EXAMPLE).await);
    expect(&t, 201, "PUT", "/search/mix", Some(json!({ "fields": ["text"] }))).await;
    let keys = ["k0", "k1", "k2"];
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            for step in 0..40 {
                let word = format!("w{w}s{step}");
                match rng.index(4) {
                    0 => {
                        let key = rng.pick(&keys);
                        let body = json!({ "text": format!("{word} common") });
                        expect(&t, 200, "PUT", &format!("/search/mix/{key}"), Some(body)).await;
                    }
                    1 => {
                        let key = rng.pick(&keys);
                        let (s, v) = call(&t, "DELETE", &format!("/search/mix/{key}"), None).await;
                        assert!(s == 200 || s == 404, "DELETE {key}: {s} {v}");
                    }
                    2 => {
                        let docs: Vec<Value> = shuffled(&mut rng, &keys)
                            .iter()
                            .map(|k| json!({ "id": k, "text": format!("{word} common") }))
                            .collect();
                        expect(&t, 201, "POST", "/search/mix/_bulk", Some(Value::Array(docs))).await;
                    }
                    _ => {
                        let ops: Vec<Value> = shuffled(&mut rng, &keys)
                            .iter()
                            .map(|k| match rng.index(3) {
                                0 => json!({ "_id": k, "_deleted": true }),
                                _ => json!({ "_id": k, "word": word }),
                            })
                            .collect();
                        expect(&t, 201, "POST", "/data/mix/_bulk", Some(Value::Array(ops))).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer finished without failing");
    }
    // The writes of one key in a bulk call keep their order (the last one stands).
    let ops = json!([{ "_id": "k2", "word": "last" }, { "_id": "k0", "word": "x" }, { "_id": "k2", "_deleted": true }]);
    let r = expect(&t, 201, "POST", "/data/mix/_bulk", Some(ops)).await;
    let answered: Vec<&Value> = r["results"].as_array().unwrap().iter().map(|x| &x["id"]).collect();
    assert_eq!(answered, [&json!("k2"), &json!("k0"), &json!("k2")], "results in the order sent: {r}");
    expect(&t, 404, "GET", "/data/mix/k2", None).await;
    for key in keys {
        let (s, got) = call(&t, "GET", &format!("/search/mix/{key}"), None).await;
        let body_word = (s == 200).then(|| {
            let text = got["doc"]["text"].as_str().unwrap_or_else(|| panic!("{key}: {got}")).to_string();
            text.split(' ').next().unwrap_or_default().to_string()
        });
        let found = expect(&t, 200, "POST", "/search/mix/_query", Some(json!({ "query": "common" }))).await;
        let listed = found["matches"].as_array().unwrap_or_else(|| panic!("{found}")).iter().any(|r| r["id"] == key);
        assert_eq!(listed, body_word.is_some(), "{key} is searchable exactly when it is stored: {found}");
        if let Some(word) = body_word {
            let own = expect(&t, 200, "POST", "/search/mix/_query", Some(json!({ "query": word }))).await;
            let hits: Vec<&Value> = own["matches"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
            assert!(hits.contains(&&json!(key)), "{key} is found by the word of its body: {own}");
        }
    }
}

#[tokio::test]
async fn search_ranks_filters_and_conflicts() {
    let t = TestApp::new(EXAMPLE).await;
    let index = json!({ "fields": ["title", "plot"], "storeFields": ["title", "year"] });
    expect(&t, 201, "PUT", "/search/movies", Some(index.clone())).await;
    expect(&t, 409, "PUT", "/search/movies", Some(index)).await;
    let docs = [
        ("m1", "Ghostbusters", "A ghost, one more ghost, then a ghost", "1984"),
        ("m2", "Casper", "A friendly ghost in a big house", "1995"),
        ("m3", "Alien", "A crew meets a creature in space", "1979"),
        ("m4", "Ghost", "A murdered man stays to save his wife", "1990"),
    ];
    for (key, title, plot, year) in docs {
        let doc = json!({ "title": title, "plot": plot, "year": year, "secret": "hidden" });
        expect(&t, 201, "POST", "/search/movies", Some(json!({ "key": key, "doc": doc }))).await;
    }
    let dup = expect(&t, 409, "POST", "/search/movies", Some(json!({ "key": "m1", "doc": { "title": "x" } }))).await;
    assert!(dup["msg"].as_str().unwrap().contains("conflict"), "{dup}");

    let r = expect(&t, 200, "POST", "/search/movies/_query", Some(json!({ "query": "ghost" }))).await;
    let matches = r["matches"].as_array().unwrap();
    let keys: Vec<&str> = matches.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["m1", "m2", "m4"], "{r}");
    let scores: Vec<f64> = matches.iter().map(|m| m["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score: {scores:?}");
    let m1 = matches.iter().find(|m| m["id"] == "m1").unwrap();
    assert_eq!((m1["title"].clone(), m1["year"].clone()), (json!("Ghostbusters"), json!("1984")), "storeFields: {r}");
    assert!(matches.iter().all(|m| m.get("secret").is_none() && m.get("plot").is_none()), "only the storeFields: {r}");

    // Ranking: texts of one length in one field, more occurrences first.
    expect(&t, 201, "PUT", "/search/rank", Some(json!({ "fields": ["text"] }))).await;
    let texts = [
        ("r2", "ghost cat dog town"),
        ("r1", "ghost ghost ghost town"),
        ("r3", "ghost ghost dog town"),
        ("f1", "cat dog bird town"),
        ("f2", "bird fish cat town"),
        ("f3", "dog fish bird town"),
        ("f4", "cow cat fish town"),
    ];
    for (key, text) in texts {
        expect(&t, 201, "POST", "/search/rank", Some(json!({ "key": key, "doc": { "text": text } }))).await;
    }
    let r = expect(&t, 200, "POST", "/search/rank/_query", Some(json!({ "query": "ghost" }))).await;
    let order: Vec<&str> = r["matches"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(order, vec!["r1", "r3", "r2"], "more occurrences rank higher: {r}");
    let s: Vec<f64> = r["matches"].as_array().unwrap().iter().map(|m| m["score"].as_f64().unwrap()).collect();
    assert!(s[0] > s[1] && s[1] > s[2] && s[2] > 0.0, "distinct positive scores: {s:?}");

    // Several words, a field restriction, a filter, a prefix-free stem.
    let q = |body: Value| async { expect(&t, 200, "POST", "/search/movies/_query", Some(body)).await };
    let only = |r: Value| -> Vec<String> {
        r["matches"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        only(q(json!({ "query": "ghost", "fields": ["title"] })).await),
        vec!["m4"],
        "title only ('Ghostbusters' is another word)"
    );
    assert_eq!(only(q(json!({ "query": "ghost", "filter": { "year": "1995" } })).await), vec!["m2"]);
    assert_eq!(only(q(json!({ "query": "friendly ghost" })).await)[0], "m2", "both words rank first");
    assert_eq!(only(q(json!({ "query": "GHOST", "limit": 1 })).await), vec![keys[0]], "case folded, limited");
    assert!(only(q(json!({ "query": "zebra" })).await).is_empty());
    expect(&t, 422, "POST", "/search/movies/_query", Some(json!({ "fields": ["title"] }))).await;
    expect(&t, 422, "POST", "/search/movies/_query", Some(json!({ "query": 3 }))).await;

    // get, update, remove.
    let got = expect(&t, 200, "GET", "/search/movies/m3", None).await;
    assert_eq!((got["key"].clone(), got["doc"]["title"].clone()), (json!("m3"), json!("Alien")));
    expect(
        &t,
        200,
        "PUT",
        "/search/movies/m3",
        Some(json!({ "title": "Alien", "plot": "a ghost ship", "year": "1979" })),
    )
    .await;
    assert!(only(q(json!({ "query": "ghost" })).await).contains(&"m3".to_string()), "updated text is searched");
    assert!(only(q(json!({ "query": "creature" })).await).is_empty(), "old text is gone");
    expect(&t, 200, "DELETE", "/search/movies/m3", None).await;
    expect(&t, 404, "GET", "/search/movies/m3", None).await;
    assert!(!only(q(json!({ "query": "ghost" })).await).contains(&"m3".to_string()));

    // Bulk load; an index made by its first write searches the top-level string fields.
    let bulk = json!([{ "id": "b1", "title": "Space Jam" }, { "_id": "b2", "title": "Space Balls" }]);
    let r = expect(&t, 201, "POST", "/search/movies/_bulk", Some(bulk)).await;
    assert_eq!(r["results"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(only(q(json!({ "query": "space" })).await).len(), 2);
    expect(&t, 201, "POST", "/search/auto", Some(json!({ "key": "a1", "doc": { "name": "Blue Lagoon", "n": 5 } })))
        .await;
    let r = expect(&t, 200, "POST", "/search/auto/_query", Some(json!({ "query": "lagoon" }))).await;
    assert_eq!(r["matches"][0]["id"], "a1", "{r}");
    expect(&t, 404, "POST", "/search/none/_query", Some(json!({ "query": "x" }))).await;
    expect(&t, 200, "DELETE", "/search/movies", None).await;
    expect(&t, 404, "POST", "/search/movies/_query", Some(json!({ "query": "ghost" }))).await;
}

// ---------------------------------------------------------------------------------------------
// storage
// ---------------------------------------------------------------------------------------------

fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn multipart(boundary: &str, path: Option<&str>, file_name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(p) = path {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n{p}\r\n").as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(bytes);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn storage_round_trips_a_10_mb_object_byte_for_byte() {
    let t = TestApp::new(EXAMPLE).await;
    let bytes = pseudo_random_bytes(10 << 20, 99);
    // The JS client's form: the bytes as the body.
    let r = send(&t, "POST", "/storage/media/clips/big.bin", Body::from(bytes.clone()), &[]).await;
    assert_eq!((r.status, r.json()), (201, json!({ "ok": true })));
    let r = send(&t, "GET", "/storage/media/clips/big.bin", Body::empty(), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("content-length"), (10 << 20).to_string());
    assert!(r.bytes == bytes, "the object comes back byte for byte ({} bytes back)", r.bytes.len());

    // The Python client's form: multipart, a `path` part naming the folder.
    let png = pseudo_random_bytes(70_001, 7);
    let body = multipart("XyZ", Some("pics/"), "cat.png", &png);
    let ct = [("content-type", "multipart/form-data; boundary=XyZ")];
    let r = send(&t, "POST", "/storage/media", Body::from(body), &ct).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.bytes));
    let r = send(&t, "GET", "/storage/media/pics/cat.png", Body::empty(), &[]).await;
    assert_eq!((r.status, r.header("content-type")), (200, "image/png"));
    assert!(r.bytes == png);
    let r = send(&t, "POST", "/storage/media", Body::from(multipart("XyZ", None, "a.txt", b"hello")), &ct).await;
    assert_eq!(r.status, 201);
    let r = send(&t, "GET", "/storage/media/a.txt", Body::empty(), &[]).await;
    assert_eq!((r.header("content-type"), r.bytes.as_slice()), ("text/plain", b"hello".as_slice()));

    // Replacing an object leaves one file; removing it removes the file.
    let objects = t.dir.path().join("storage").join("objects");
    let before = files_under(&objects).len();
    assert_eq!(before, 3, "{:?}", files_under(&objects));
    let r = send(&t, "POST", "/storage/media/a.txt", Body::from("bye"), &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(send(&t, "GET", "/storage/media/a.txt", Body::empty(), &[]).await.bytes, b"bye");
    assert_eq!(files_under(&objects).len(), 3, "the old file is gone");
    let r = send(&t, "DELETE", "/storage/media/a.txt", Body::empty(), &[]).await;
    assert_eq!((r.status, r.json()), (201, json!({ "ok": true })));
    assert_eq!(send(&t, "GET", "/storage/media/a.txt", Body::empty(), &[]).await.status, 404);
    assert_eq!(send(&t, "DELETE", "/storage/media/a.txt", Body::empty(), &[]).await.status, 404);
    assert_eq!(files_under(&objects).len(), 2);

    // Bad uploads.
    assert_eq!(
        send(&t, "POST", "/storage/media", Body::from("x"), &[("content-type", "text/plain")]).await.status,
        422
    );
    let no_file = "--B\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nx\r\n--B--\r\n";
    let r =
        send(&t, "POST", "/storage/media", Body::from(no_file), &[("content-type", "multipart/form-data; boundary=B")])
            .await;
    assert_eq!(r.status, 422);
    assert_eq!(send(&t, "POST", "/storage/media/..%2Fescape", Body::from("x"), &[]).await.status, 422);
    assert_eq!(send(&t, "GET", "/storage/nobucket/a.txt", Body::empty(), &[]).await.status, 404);

    // A signed URL reads the object without other credentials; a changed one does not.
    let (s, v) = call(&t, "GET", "/storage/media/pics/cat.png?useSignedUrl=true", None).await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap();
    let path = &url[url.find("/storage/").unwrap()..];
    let r = send(&t, "GET", path, Body::empty(), &[]).await;
    assert!(r.status == 200 && r.bytes == png, "{}", r.status);
    let forged = path.replace("cat.png", "big.bin");
    assert_eq!(send(&t, "GET", &forged, Body::empty(), &[]).await.status, 401);

    // Over the size limit: 413, and nothing is left behind.
    let limits = Limits { object_bytes: 1 << 20, ..Limits::default() };
    let small = TestApp::with(EXAMPLE, None, limits).await;
    let r = send(&small, "POST", "/storage/media/big.bin", Body::from(bytes[..(2 << 20)].to_vec()), &[]).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(send(&small, "GET", "/storage/media/big.bin", Body::empty(), &[]).await.status, 404);
    let left = files_under(&small.dir.path().join("storage"));
    assert!(left.is_empty(), "no partial file stays: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// queue
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Delivery {
    job_id: String,
    signature: String,
    body: String,
    at: Instant,
}

/// A webhook target on a free port: records each delivery; a job with `"fail": n` is answered
/// 500 its first `n` times; with `"slow": ms` the answer waits.
struct Target {
    url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

async fn target() -> Target {
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let (s, c) = (seen.clone(), counts.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (seen, counts) = (s.clone(), c.clone());
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let job_id = h("x-hyper-job-id");
                seen.lock().unwrap().push(Delivery {
                    job_id: job_id.clone(),
                    signature: h("x-hyper-signature"),
                    body: body.clone(),
                    at: Instant::now(),
                });
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if let Some(ms) = v["slow"].as_u64() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let n = {
                    let mut c = counts.lock().unwrap();
                    let e = c.entry(job_id).or_insert(0);
                    *e += 1;
                    *e
                };
                if v["fail"].as_u64().is_some_and(|f| n <= f) {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no")
                } else {
                    (axum::http::StatusCode::OK, "ok")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Target { url: format!("http://{addr}/hook"), seen }
}

impl Target {
    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }
    async fn wait_for(&self, what: &str, limit: Duration, cond: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let d = self.deliveries();
            if cond(&d) {
                return d;
            }
            assert!(start.elapsed() < limit, "waited {limit:?} for {what}; deliveries: {d:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `t=<ms>,sig=<hex>` is HMAC-SHA256 under `secret` of `"<t>.<body>"`, checked here with the
/// hmac crate directly (not arcbase's function).
fn check_signature(d: &Delivery, secret: &str) {
    use hmac::{Hmac, Mac};
    let (t, sig) = d
        .signature
        .split_once(',')
        .and_then(|(t, s)| Some((t.strip_prefix("t=")?, s.strip_prefix("sig=")?)))
        .unwrap_or_else(|| panic!("an X-HYPER-SIGNATURE header: {d:?}"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", d.body).as_bytes());
    let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sig, want, "the signature verifies: {d:?}");
    let t: i64 = t.parse().unwrap();
    assert!((arcbase::hyper::now_ms() - t).abs() < 60_000, "t is the time of sending in ms: {t}");
}

async fn jobs(t: &TestApp, queue: &str, status: &str) -> Vec<Value> {
    let v = expect(t, 200, "GET", &format!("/queue/{queue}?status={status}"), None).await;
    v["jobs"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delivers_signed_retries_and_errors() {
    let limits = Limits { queue_attempts: 3, ..Limits::default() };
    let t = TestApp::with(EXAMPLE, None, limits).await;
    let hook = target().await;
    let cfg = json!({ "target": hook.url, "secret": "s3cret" });
    expect(&t, 201, "PUT", "/queue/jobs", Some(cfg.clone())).await;
    expect(&t, 409, "PUT", "/queue/jobs", Some(cfg)).await;
    expect(&t, 422, "PUT", "/queue/other", Some(json!({ "target": "ftp://x" }))).await;
    expect(&t, 422, "PUT", "/queue/other", Some(json!({}))).await;

    let job = json!({ "type": "email", "to": "a@example.com", "n": 1.5, "big": 12345678901234567890u64 });
    let r = expect(&t, 201, "POST", "/queue/jobs", Some(job.clone())).await;
    let id = r["id"].as_str().unwrap().to_string();
    let d = hook.wait_for("the first delivery", Duration::from_secs(10), |d| !d.is_empty()).await;
    assert_eq!(d[0].job_id, id);
    check_signature(&d[0], "s3cret");
    let sent: Value = serde_json::from_str(&d[0].body).unwrap();
    assert_eq!(sent["type"], "email");
    assert_eq!(sent["to"], "a@example.com");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(jobs(&t, "jobs", "READY").await.is_empty(), "a delivered job leaves the queue");
    assert!(jobs(&t, "jobs", "ERROR").await.is_empty());
    assert_eq!(hook.deliveries().len(), 1, "delivered once");

    // A failing target: retried with backoff, ERROR after the last attempt, then retried by hand.
    let r = expect(&t, 201, "POST", "/queue/jobs", Some(json!({ "fail": 4 }))).await;
    let failing = r["id"].as_str().unwrap().to_string();
    let d = hook
        .wait_for("three attempts", Duration::from_secs(30), |d| d.iter().filter(|x| x.job_id == failing).count() >= 3)
        .await;
    let times: Vec<Instant> = d.iter().filter(|x| x.job_id == failing).map(|x| x.at).collect();
    // 1 s, then 2 s, each ±25%.
    assert!(times[1] - times[0] >= Duration::from_millis(700), "a backoff between attempts: {:?}", times[1] - times[0]);
    assert!(times[2] - times[1] >= Duration::from_millis(1450), "a growing backoff: {:?}", times[2] - times[1]);
    let start = Instant::now();
    let errored = loop {
        let e = jobs(&t, "jobs", "ERROR").await;
        if !e.is_empty() || start.elapsed() > Duration::from_secs(5) {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(errored.len(), 1, "{errored:?}");
    assert_eq!(errored[0]["id"], failing.as_str());
    assert_eq!(errored[0]["attempts"], 3);
    assert!(errored[0]["error"].as_str().is_some_and(|e| e.contains("500")), "{errored:?}");
    assert_eq!(errored[0]["job"], json!({ "fail": 4 }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.deliveries().iter().filter(|x| x.job_id == failing).count(), 3, "no attempt after ERROR");
    expect(&t, 200, "POST", &format!("/queue/jobs/{failing}/_retry"), None).await;
    // Attempt 4 fails (the target fails 4 times), attempt 5 succeeds.
    hook.wait_for("two more attempts", Duration::from_secs(20), |d| {
        d.iter().filter(|x| x.job_id == failing).count() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(jobs(&t, "jobs", "ERROR").await.is_empty() && jobs(&t, "jobs", "READY").await.is_empty());
    expect(&t, 404, "POST", "/queue/jobs/01NOSUCHJOB/_retry", None).await;

    // A queue made by its first job has no target: jobs wait, and can be cancelled.
    let r = expect(&t, 201, "POST", "/queue/later", Some(json!({ "x": 1 }))).await;
    let waiting = r["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ready = jobs(&t, "later", "READY").await;
    assert_eq!(ready.len(), 1);
    assert_eq!((ready[0]["status"].clone(), ready[0]["attempts"].clone()), (json!("READY"), json!(0)));
    expect(&t, 200, "DELETE", &format!("/queue/later/{waiting}"), None).await;
    expect(&t, 404, "DELETE", &format!("/queue/later/{waiting}"), None).await;
    assert!(jobs(&t, "later", "READY").await.is_empty());
    expect(&t, 422, "GET", "/queue/later?status=DONE", None).await;
    expect(&t, 404, "GET", "/queue/nothing", None).await;
    // Setting a target later releases waiting jobs.
    expect(&t, 201, "POST", "/queue/late", Some(json!({ "y": 2 }))).await;
    let r = expect(&t, 201, "POST", "/queue/late", Some(json!({ "y": 3 }))).await;
    let late = r["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!hook.deliveries().iter().any(|d| d.job_id == late), "no target yet");
    expect(&t, 201, "PUT", "/queue/late", Some(json!({ "target": hook.url }))).await;
    expect(&t, 409, "PUT", "/queue/late", Some(json!({ "target": hook.url }))).await;
    let d = hook
        .wait_for("both late jobs", Duration::from_secs(10), |d| {
            d.iter().any(|x| x.job_id == late) && d.iter().any(|x| x.body.contains("\"y\":2"))
        })
        .await;
    assert!(
        d.iter().any(|x| x.job_id == late) && d.iter().any(|x| x.body.contains("\"y\":2")),
        "both waiting jobs go out"
    );
    assert!(d.iter().filter(|x| x.body.contains("\"y\"")).all(|x| x.signature.is_empty()), "no secret, no signature");
    expect(&t, 400, "POST", "/queue/late", Some(json!({}))).await;
    expect(&t, 422, "POST", "/queue/late", Some(json!([1]))).await;
}

/// Two nodes on one database share a queue's work: every job is delivered, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_work_is_shared_by_two_nodes_without_double_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let url = if backend_is_postgres() {
        common::pg::fresh_database(common::pg::cluster().expect("PostgreSQL")).await
    } else {
        format!("sqlite://{}", dir.path().join("shared.db").display())
    };
    let a = TestApp::at(EXAMPLE, None, Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    let b = TestApp::at(EXAMPLE, None, Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    let hook = target().await;
    expect(&a, 201, "PUT", "/queue/shared", Some(json!({ "target": hook.url, "secret": "k" }))).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = expect(node, 201, "POST", "/queue/shared", Some(json!({ "i": i, "slow": 30 }))).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let d = hook.wait_for("40 deliveries", Duration::from_secs(60), |d| d.len() >= 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let d2 = hook.deliveries();
    assert_eq!(d2.len(), 40, "no job delivered twice: {} deliveries", d2.len());
    let mut got: Vec<String> = d.iter().map(|x| x.job_id.clone()).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    for x in &d2 {
        check_signature(x, "k");
    }
}

// ---------------------------------------------------------------------------------------------
// Tenancy and tokens
// ---------------------------------------------------------------------------------------------

const ADMIN: &str = "hyper-admin-key-for-tests";

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn token(key: &str, secret: &str, exp_in: i64) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + exp_in;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": key, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn instances_never_see_each_other_and_bad_tokens_are_refused() {
    let t = TestApp::with(EXAMPLE, Some(ADMIN), Limits::default()).await;
    let admin = format!("Bearer {ADMIN}");
    let rel = json!({ "app": "notes", "name": "v1", "sdl": "type Note { text: String }" });
    let (s, v) = call_as(&t, "POST", "/admin/releases", Some(rel), &[("authorization", &admin)]).await;
    assert_eq!(s, 201, "{v}");
    let inst = json!({ "domain": "b.example", "app": "notes", "release": "v1" });
    let (s, v) = call_as(&t, "POST", "/admin/instances", Some(inst), &[("authorization", &admin)]).await;
    assert_eq!(s, 201, "{v}");
    let ka = arcbase::hyper::keys::create(&t.app.store, &t.app.jwt_secret, "default").await.unwrap();
    let kb = arcbase::hyper::keys::create(&t.app.store, &t.app.jwt_secret, "b.example").await.unwrap();
    let ta = format!("Bearer {}", token(&ka.key, &ka.secret, 300));
    let tb = format!("Bearer {}", token(&kb.key, &kb.secret, 300));
    let a = [("authorization", ta.as_str())];
    let b = [("authorization", tb.as_str())];

    // A writes one of everything.
    let ok = |s: u16, v: &Value| assert!(s == 201 || s == 200, "{s}: {v}");
    let (s, v) = call_as(&t, "POST", "/data/shared", Some(json!({ "_id": "doc-1", "who": "a" })), &a).await;
    ok(s, &v);
    let (s, v) = call_as(&t, "POST", "/cache/shared", Some(json!({ "key": "k1", "value": "a" })), &a).await;
    ok(s, &v);
    let (s, v) =
        call_as(&t, "POST", "/search/shared", Some(json!({ "key": "s1", "doc": { "title": "alpha" } })), &a).await;
    ok(s, &v);
    let r = send(&t, "POST", "/storage/shared/f.txt", Body::from("a's file"), &a).await;
    assert_eq!(r.status, 201);
    let (s, v) = call_as(&t, "POST", "/queue/shared", Some(json!({ "j": 1 })), &a).await;
    ok(s, &v);
    let (s, v) = call_as(&t, "GET", "/data/shared/doc-1", None, &a).await;
    assert_eq!((s, v["who"].clone()), (200, json!("a")));

    // B sees none of it: read, list, query, search, download, cache, queue.
    let reads = [
        ("GET", "/data/shared/doc-1", None),
        ("GET", "/data/shared", None),
        ("POST", "/data/shared/_query", Some(json!({ "selector": {} }))),
        ("POST", "/search/shared/_query", Some(json!({ "query": "alpha" }))),
        ("GET", "/search/shared/s1", None),
        ("GET", "/cache/shared/k1", None),
        ("POST", "/cache/shared/_query?pattern=*", None),
        ("GET", "/storage/shared/f.txt", None),
        ("GET", "/queue/shared?status=READY", None),
        ("DELETE", "/data/shared/doc-1", None),
        ("DELETE", "/storage/shared/f.txt", None),
    ];
    for (m, p, body) in &reads {
        let (s, v) = call_as(&t, m, p, body.clone(), &b).await;
        assert_eq!(s, 404, "instance B {m} {p}: {v}");
    }
    // B's own store of the same name holds only B's.
    let (s, _) = call_as(&t, "POST", "/data/shared", Some(json!({ "_id": "doc-1", "who": "b" })), &b).await;
    assert_eq!(s, 201, "the same id in another instance is another document");
    let (_, v) = call_as(&t, "GET", "/data/shared", None, &b).await;
    assert_eq!(v["docs"], json!([{ "_id": "doc-1", "who": "b" }]));
    let (_, v) = call_as(&t, "GET", "/data/shared/doc-1", None, &a).await;
    assert_eq!(v["who"], "a");
    // The admin key picks the instance with hypi-domain.
    let (_, v) =
        call_as(&t, "GET", "/data/shared/doc-1", None, &[("authorization", &admin), ("hypi-domain", "b.example")])
            .await;
    assert_eq!(v["who"], "b");
    let (s, _) =
        call_as(&t, "GET", "/data/shared/doc-1", None, &[("authorization", &admin), ("hypi-domain", "nope.example")])
            .await;
    assert_eq!(s, 404);
    // A's signed URL is for A's object only.
    let (s, v) = call_as(&t, "GET", "/storage/shared/f.txt?useSignedUrl=true", None, &a).await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap();
    let path = url[url.find("/storage/").unwrap()..].to_string();
    assert_eq!(send(&t, "GET", &path, Body::empty(), &[]).await.bytes, b"a's file");
    let other = path.replace("instance=default", "instance=b.example");
    assert_eq!(send(&t, "GET", &other, Body::empty(), &[]).await.status, 401);

    // Refused: none, garbage, a wrong secret, expired, alg none, unknown key, another
    // scheme's admin-less token; a revoked key after the verifier's few seconds.
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
    let claims = b64(format!(r#"{{"sub":"{}","exp":{exp}}}"#, ka.key).as_bytes());
    let none = format!("Bearer {header}.{claims}.");
    let wrong = format!("Bearer {}", token(&ka.key, &kb.secret, 300));
    let expired = format!("Bearer {}", token(&ka.key, &ka.secret, -120));
    let unknown = format!("Bearer {}", token("hk-nobody", &ka.secret, 300));
    let hs512 = format!(
        "Bearer {}",
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &json!({ "sub": ka.key, "exp": exp }),
            &jsonwebtoken::EncodingKey::from_secret(ka.secret.as_bytes()),
        )
        .unwrap()
    );
    for (what, auth) in [
        ("no token", None),
        ("garbage", Some("Bearer not.a.token".to_string())),
        ("wrong secret", Some(wrong)),
        ("expired", Some(expired)),
        ("alg none", Some(none)),
        ("unknown key", Some(unknown)),
        ("HS512", Some(hs512)),
    ] {
        let h: Vec<(&str, &str)> = auth.as_deref().map(|v| vec![("authorization", v)]).unwrap_or_default();
        let (s, v) = call_as(&t, "GET", "/data/shared/doc-1", None, &h).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert!(!v.to_string().contains("doc-1\",\"who"), "{what}: nothing leaks: {v}");
    }
    assert!(arcbase::hyper::keys::revoke(&t.app.store, &ka.key).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (s, v) = call_as(&t, "GET", "/data/shared/doc-1", None, &a).await;
    assert_eq!(s, 401, "a revoked key: {v}");
    let (s, _) = call_as(&t, "GET", "/data/shared/doc-1", None, &b).await;
    assert_eq!(s, 200, "another key still works");
}

// ---------------------------------------------------------------------------------------------
// The root, limits, bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn root_info_limits_and_bad_input() {
    let limits = Limits { body_bytes: 64 << 10, ..Limits::default() };
    let t = TestApp::with(EXAMPLE, None, limits).await;
    let (s, v) = call(&t, "GET", "/", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["name"], "hyper");
    assert_eq!(v["services"], json!(["data", "cache", "search", "storage", "queue"]));
    let r = send(&t, "GET", "/", Body::empty(), &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]).await;
    assert_eq!((r.status, r.header("location")), (303, "/graphql"));
    let r = send(&t, "GET", "/", Body::empty(), &[("accept", "application/json, text/plain, */*")]).await;
    assert_eq!(r.status, 200);
    // The other front doors are where they were.
    assert_eq!(send(&t, "GET", "/health", Body::empty(), &[]).await.status, 200);
    let gql = send(
        &t,
        "POST",
        "/graphql",
        Body::from(r#"{"query":"{ __typename }"}"#),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(gql.status, 200);

    let big = json!({ "_id": "big", "text": "x".repeat(70 << 10) });
    expect(&t, 413, "POST", "/data/lim", Some(big)).await;
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!({ "d": deep });
    }
    expect(&t, 422, "POST", "/data/lim", Some(deep)).await;
    expect(&t, 422, "POST", "/cache/lim", Some(json!({ "key": "k".repeat(600), "value": 1 }))).await;
    expect(&t, 422, "PUT", &format!("/data/{}", "s".repeat(65)), None).await;
    for path in ["/data/lim/%ZZ", "/data/%FF%FE"] {
        let (s, _) = call(&t, "GET", path, None).await;
        assert!(s == 400 || s == 404 || s == 422, "{path}: {s}");
    }
    let many: Vec<Value> = (0..1001).map(|i| json!({ "_id": format!("b{i}") })).collect();
    expect(&t, 422, "POST", "/data/lim/_bulk", Some(Value::Array(many))).await;
}
