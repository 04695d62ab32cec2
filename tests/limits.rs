//! The request guard over HTTP (security.md): every limit probed over POST, GET and batch
//! bodies. Each rejection carries `extensions.code`, none is a 5xx, none panics.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use futures_util::StreamExt as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use arcbase::config::Limits;
use common::*;

/// A self-referencing schema: nested selections and nested inputs of any depth are valid.
const NODE: &str = "type Node {\n  name: String\n  nickname: String\n  next: Node\n  kids: [Node!]\n  tags: [String]\n  data: Json\n}\n";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Percent-encode a query-string value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET `/graphql?query=...` (plus optional variables).
async fn get_query(t: &TestApp, query: &str, variables: Option<&str>) -> (StatusCode, Value) {
    let mut uri = format!("/graphql?query={}", enc(query));
    if let Some(v) = variables {
        uri.push_str(&format!("&variables={}", enc(v)));
    }
    t.send(Request::get(uri).body(Body::empty()).unwrap()).await
}

/// POST a raw body.
async fn post_raw(t: &TestApp, body: impl Into<Body>) -> (StatusCode, Value) {
    t.send(Request::post("/graphql").header("content-type", "application/json").body(body.into()).unwrap()).await
}

/// POST `{query}`.
async fn post_query(t: &TestApp, query: &str) -> (StatusCode, Value) {
    t.post_with(&json!({ "query": query }), &[]).await
}

/// Every error of a response (single or batch) has a non-empty `extensions.code`; returns
/// the codes of a single response.
#[track_caller]
fn codes(body: &Value) -> Vec<String> {
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("expected errors: {body}"));
    assert!(!errors.is_empty(), "expected errors: {body}");
    errors
        .iter()
        .map(|e| {
            let c = code(e);
            assert!(!c.is_empty(), "error without extensions.code: {e}");
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {e}");
            c.to_string()
        })
        .collect()
}

/// The response is a rejection with `want` as the first error code and no data beyond null,
/// and it is not a server error.
#[track_caller]
fn rejected(status: StatusCode, body: &Value, want: &str) {
    assert!(!status.is_server_error(), "5xx: {status} {body}");
    let c = codes(body);
    assert_eq!(c[0], want, "body: {body}");
    assert!(body.get("data").is_none_or(Value::is_null), "data next to a rejection: {body}");
}

/// `{ get(type: Node, id: ID) { ... on Node { <n × next {> hypi { id } <}> } } }`: selection
/// depth n + 3 (get, n × next, hypi, id).
fn next_chain_query(id: &str, n: usize) -> String {
    format!(
        "{{ get(type: Node, id: \"{id}\") {{ ... on Node {{ {}hypi {{ id }}{} }} }} }}",
        "next { ".repeat(n),
        " }".repeat(n)
    )
}

// ---------------------------------------------------------------------------------------------
// Body size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn body_over_one_mib_is_413() {
    let t = TestApp::new(NODE).await;
    // Just over the limit, with a Content-Length.
    let filler = "a".repeat((1 << 20) + 1);
    let (status, body) = post_raw(&t, json!({ "query": "{ __typename }", "x": filler }).to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    rejected(status, &body, "LIMIT_EXCEEDED");
    // Just under the limit is read (and then judged on its content).
    let filler = "a".repeat((1 << 20) - 100);
    let (status, body) = post_raw(&t, json!({ "query": "{ __typename }", "x": filler }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn body_of_100_mb_is_413_without_reading_it_all() {
    let t = TestApp::new(NODE).await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    // 100 chunks of 1 MB, produced lazily; no Content-Length.
    let chunks = futures_util::stream::iter(0..100).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        let chunk = if i == 0 {
            let mut c = b"{\"query\": \"{ __typename }\", \"x\": \"".to_vec();
            c.resize(1_000_000, b'a');
            c
        } else {
            vec![b'a'; 1_000_000]
        };
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    let (status, body) = post_raw(&t, Body::from_stream(chunks)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    rejected(status, &body, "LIMIT_EXCEEDED");
    // It reads on a little past the limit (so a client that writes before it reads sees the
    // 413), but never the whole body.
    let n = pulled.load(Ordering::SeqCst);
    let bound = ((1 << 20) + arcbase::server::body::DRAIN_BYTES) / 1_000_000 + 2;
    assert!(n <= bound, "the server read {n} MB of a body it should have stopped reading after ~{bound} MB");

    // With a Content-Length that announces 100 MB, the body is refused before it is read.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = futures_util::stream::iter(0..100).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1_000_000]))
    });
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("content-length", "100000000")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, body) = t.send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    rejected(status, &body, "LIMIT_EXCEEDED");
    assert!(pulled.load(Ordering::SeqCst) <= 2, "read {} MB", pulled.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------------
// Depth and nesting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn selection_depth_12_is_accepted_13_rejected() {
    let t = TestApp::new(NODE).await;
    // A chain of 10 nodes: depth 12 reaches the last one's id.
    let mut value = json!({ "name": "n9" });
    for i in (0..9).rev() {
        value = json!({ "name": format!("n{i}"), "next": value });
    }
    let ids = t.upsert(json!({ "Node": [value] })).await;
    let data = t.ok(&next_chain_query(&ids[0], 9), json!({})).await;
    let mut node = &data["get"];
    for _ in 0..9 {
        node = &node["next"];
    }
    let leaf = node["hypi"]["id"].as_str().unwrap_or_else(|| panic!("leaf id: {data}"));
    assert_ne!(leaf, ids[0]);

    for n in [10, 11, 20] {
        let q = next_chain_query(&ids[0], n);
        let (status, body) = post_query(&t, &q).await;
        rejected(status, &body, "LIMIT_EXCEEDED");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("nested"), "{body}");
        let (status, body) = get_query(&t, &q, None).await;
        rejected(status, &body, "LIMIT_EXCEEDED");
        let (status, body) = post_raw(&t, json!([{ "query": "{ __typename }" }, { "query": q }]).to_string()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["data"]["__typename"], "Query", "{body}");
        rejected(status, &body[1], "LIMIT_EXCEEDED");
    }
    // Depth through a fragment counts the same.
    let q = format!(
        "query {{ get(type: Node, id: \"{}\") {{ ...F }} }} fragment F on Node {{ {}hypi {{ id }}{} }}",
        ids[0],
        "next { ".repeat(10),
        " }".repeat(10)
    );
    let (status, body) = post_query(&t, &q).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
}

/// One probe per transport: POST, GET and inside a batch; each must be a clean rejection.
async fn probe_all_transports(t: &TestApp, query: &str, variables: Option<Value>, want: &[&str]) {
    let mut req = json!({ "query": query });
    if let Some(v) = &variables {
        req["variables"] = v.clone();
    }
    let (status, body) = t.post_with(&req, &[]).await;
    assert!(want.contains(&codes(&body)[0].as_str()), "POST: {status} {body}");
    rejected(status, &body, &codes(&body)[0]);
    let vars = variables.as_ref().map(Value::to_string);
    // `http::Uri` cannot hold more than 64 KiB, so longer probes cannot be sent over GET at
    // all (and a real server refuses such a request line before it reaches the router).
    if enc(query).len() + vars.as_deref().map_or(0, |v| enc(v).len()) < 65_000 {
        let (status, body) = get_query(t, query, vars.as_deref()).await;
        if !query.trim_start().starts_with("mutation") {
            assert!(want.contains(&codes(&body)[0].as_str()), "GET: {status} {body}");
        }
        rejected(status, &body, &codes(&body)[0]);
    }
    let (status, body) = post_raw(t, json!([req, req]).to_string()).await;
    assert!(!status.is_server_error());
    let responses: Vec<Value> = match body.as_array() {
        Some(a) => a.clone(),
        None => vec![body.clone()],
    };
    for r in responses {
        assert!(want.contains(&codes(&r)[0].as_str()), "batch: {status} {r}");
    }
}

#[tokio::test]
async fn deep_nesting_in_selections_literals_and_variables_is_an_error() {
    let t = TestApp::new(NODE).await;
    for depth in [100, 5_000, 50_000] {
        let started = Instant::now();
        // Selections.
        let q = format!(
            "{{ get(type: Node, id: \"x\") {{ ... on Node {{ {}name{} }} }} }}",
            "next { ".repeat(depth),
            " }".repeat(depth)
        );
        probe_all_transports(&t, &q, None, &["LIMIT_EXCEEDED"]).await;
        // Brackets alone (not even valid GraphQL).
        probe_all_transports(&t, &"{".repeat(depth), None, &["LIMIT_EXCEEDED"]).await;
        // Input literals: nested lists and nested objects.
        let q = format!(
            "mutation {{ upsert(values: {{Node: [{{tags: {}\"x\"{}}}]}}) {{ id }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        probe_all_transports(&t, &q, None, &["LIMIT_EXCEEDED"]).await;
        let q = format!(
            "mutation {{ upsert(values: {{Node: [{}{{name: \"leaf\"}}{}]}}) {{ id }} }}",
            "{next: ".repeat(depth),
            "}".repeat(depth)
        );
        probe_all_transports(&t, &q, None, &["LIMIT_EXCEEDED"]).await;
        let q = format!(
            "{{ get(type: Node, id: \"x\", includeTrashed: {}true{}) {{ __typename }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        probe_all_transports(&t, &q, None, &["LIMIT_EXCEEDED"]).await;

        // Variables JSON: nested objects of a valid shape, nested lists, and a Json scalar.
        let mut nested = json!({ "name": "leaf" });
        let mut list = json!("x");
        let mut any = json!(1);
        for _ in 0..depth.min(200) {
            nested = json!({ "next": nested });
            list = json!([list]);
            any = json!({ "a": [any] });
        }
        let m = "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }";
        let deep_body = |v: Value| json!({ "query": m, "variables": { "v": v } });
        for v in
            [json!({ "Node": [nested] }), json!({ "Node": [{ "tags": list }] }), json!({ "Node": [{ "data": any }] })]
        {
            let (status, body) = t.post_with(&deep_body(v.clone()), &[]).await;
            rejected(status, &body, "LIMIT_EXCEEDED");
            let (status, body) = post_raw(&t, json!([deep_body(v.clone())]).to_string()).await;
            let first = body.as_array().map_or(body.clone(), |a| a[0].clone());
            rejected(status, &first, "LIMIT_EXCEEDED");
        }
        // Raw JSON text nested deeper than any JSON parser should recurse.
        let raw =
            format!("{{\"query\": \"{m}\", \"variables\": {{\"v\": {}1{}}}}}", "[".repeat(depth), "]".repeat(depth));
        let (status, body) = post_raw(&t, raw).await;
        rejected(status, &body, "LIMIT_EXCEEDED");
        let raw_get = format!("{{\"v\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
        if enc(&raw_get).len() < 65_000 {
            let (status, body) = get_query(&t, "query($v: Json) { __typename }", Some(&raw_get)).await;
            rejected(status, &body, "LIMIT_EXCEEDED");
        }
        let raw_batch = format!("{}{{\"query\": \"{{ __typename }}\"}}{}", "[".repeat(depth), "]".repeat(depth));
        let (status, body) = post_raw(&t, raw_batch).await;
        rejected(status, &body, "LIMIT_EXCEEDED");

        assert!(started.elapsed() < Duration::from_secs(10), "depth {depth} took {:?}", started.elapsed());
    }
    // Nothing of all that was written.
    let data = t.ok("{ get(type: Node, id: \"x\") { __typename } }", json!({})).await;
    assert_eq!(data["get"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Directives, tokens, aliases, root fields, batches, fragments
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_thousand_directives_on_one_field_are_rejected_fast() {
    let t = TestApp::new(NODE).await;
    let q = format!("{{ __typename {} }}", "@include(if: true) ".repeat(10_000));
    let started = Instant::now();
    probe_all_transports(&t, &q, None, &["LIMIT_EXCEEDED"]).await;
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    // Under the token cap, the per-node directive cap still holds.
    let q = format!("{{ __typename {} }}", "@include(if: true) ".repeat(11));
    let (status, body) = post_query(&t, &q).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("directives"), "{body}");
    let q = format!("{{ __typename {} }}", "@include(if: true) ".repeat(10));
    let (_, body) = post_query(&t, &q).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[tokio::test]
async fn hundred_thousand_duplicate_fields_hit_the_token_cap() {
    let t = TestApp::new(NODE).await;
    let q = format!("{{ get(type: Node, id: \"x\") {{ ... on Node {{ {} }} }} }}", "nickname ".repeat(100_000));
    assert!(q.len() > 850_000 && q.len() < (1 << 20) - 100, "about 1 MB but under the body cap");
    let started = Instant::now();
    let (status, body) = post_query(&t, &q).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("tokens"), "{body}");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    // Under the token and expansion caps, duplicates are fine (and merged), and validating
    // them is not quadratic.
    let started = Instant::now();
    let q = format!("{{ get(type: Node, id: \"x\") {{ ... on Node {{ {} }} }} }}", "name ".repeat(9_000));
    let (status, body) = post_query(&t, &q).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "data": { "get": null } }));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn duplicate_fields_through_fragments_stay_cheap() {
    // 99 spreads of a fragment of 100 identical fields: get + 99 × (spread + 100 fields) is
    // 10,000 expanded selections, the cap.
    let t = TestApp::new(NODE).await;
    let fields = "name ".repeat(100);
    let spreads = "...F ".repeat(99);
    let q = format!("{{ get(type: Node, id: \"x\") {{ {spreads} }} }} fragment F on Node {{ {fields} }}");
    let started = Instant::now();
    let (status, body) = post_query(&t, &q).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "data": { "get": null } }));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?} {body}", started.elapsed());
    // One more spread is over the cap.
    let q = format!("{{ get(type: Node, id: \"x\") {{ {spreads} ...F }} }} fragment F on Node {{ {fields} }}");
    let (status, body) = post_query(&t, &q).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn aliases_30_accepted_31_rejected() {
    let t = TestApp::new(NODE).await;
    let ids = t.upsert(json!({ "Node": [{ "name": "aliased" }] })).await;
    let q = |n: usize| {
        let aliases: String = (0..n).map(|i| format!("a{i}: name ")).collect();
        format!("{{ get(type: Node, id: \"{}\") {{ ... on Node {{ {aliases} }} }} }}", ids[0])
    };
    let data = t.ok(&q(30), json!({})).await;
    assert_eq!(data["get"]["a0"], "aliased");
    assert_eq!(data["get"]["a29"], "aliased");
    probe_all_transports(&t, &q(31), None, &["LIMIT_EXCEEDED"]).await;
    let (_, body) = post_query(&t, &q(31)).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("aliases"), "{body}");
    // Aliases hidden in fragments count too.
    let frag = format!(
        "{{ get(type: Node, id: \"{}\") {{ ...F }} }} fragment F on Node {{ {} }}",
        ids[0],
        (0..31).map(|i| format!("b{i}: name ")).collect::<String>()
    );
    let (status, body) = post_query(&t, &frag).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn root_fields_20_accepted_21_rejected() {
    let t = TestApp::new(NODE).await;
    let q = |n: usize| {
        format!(
            "{{ {} }}",
            (0..n).map(|i| format!("g{i}: get(type: Node, id: \"{i}\") {{ __typename }} ")).collect::<String>()
        )
    };
    let data = t.ok(&q(20), json!({})).await;
    assert_eq!(data.as_object().unwrap().len(), 20);
    probe_all_transports(&t, &q(21), None, &["LIMIT_EXCEEDED"]).await;
    let (_, body) = post_query(&t, &q(21)).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("root fields"), "{body}");
    // Root fields spread in through a fragment count too.
    let frag = format!("{{ ...R }} fragment R on Query {{ {} }}", "__typename ".repeat(21));
    let (status, body) = post_query(&t, &frag).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn batch_of_10_accepted_11_rejected() {
    let t = TestApp::new(NODE).await;
    let op = json!({ "query": "{ __typename }" });
    let (status, body) = post_raw(&t, Value::Array(vec![op.clone(); 10]).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let answers = body.as_array().unwrap_or_else(|| panic!("batch answer: {body}"));
    assert_eq!(answers.len(), 10);
    assert!(answers.iter().all(|a| a["data"]["__typename"] == "Query"), "{body}");
    let (status, body) = post_raw(&t, Value::Array(vec![op.clone(); 11]).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    rejected(status, &body, "LIMIT_EXCEEDED");
    let (status, body) = post_raw(&t, Value::Array(vec![op; 1000]).to_string()).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    // An empty batch is a client error too.
    let (status, body) = post_raw(&t, "[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    codes(&body);
}

/// Fragments each spreading the next ten times, 8 levels deep, ending in `leaf`.
fn fragment_bomb_with(leaf: &str) -> String {
    let mut q = String::from("query { ...F0 }\n");
    for i in 0..8 {
        let spreads = (0..10).map(|_| format!("...F{}", i + 1)).collect::<Vec<_>>().join(" ");
        q.push_str(&format!("fragment F{i} on Query {{ {spreads} }}\n"));
    }
    q.push_str(&format!("fragment F8 on Query {{ {leaf} }}\n"));
    q
}

fn fragment_bomb() -> String {
    fragment_bomb_with("__typename")
}

#[tokio::test]
async fn fragment_bomb_is_rejected_in_under_50ms() {
    let t = TestApp::new(NODE).await;
    let bomb = fragment_bomb();
    assert!(bomb.len() < 1000);
    // Warm up the router once so the measurement is the request, not first-use setup.
    let _ = post_query(&t, "{ __typename }").await;
    for transport in ["POST", "GET", "batch"] {
        let started = Instant::now();
        let (status, body) = match transport {
            "POST" => post_query(&t, &bomb).await,
            "GET" => get_query(&t, &bomb, None).await,
            _ => {
                let (s, b) = post_raw(&t, json!([{ "query": bomb }, { "query": bomb }]).to_string()).await;
                (s, b[1].clone())
            }
        };
        let took = started.elapsed();
        rejected(status, &body, "LIMIT_EXCEEDED");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("expands"), "{body}");
        assert!(took < Duration::from_millis(50), "{transport}: {took:?}");
    }
    // The same bomb whose leaves select no field at all (an unknown fragment, or only more
    // spreads): the spreads themselves are what validation walks, so they count.
    for leaf in ["...Missing", "... on Query { ...Missing }", "...F8b } fragment F8b on Query { __typename"] {
        let bomb = fragment_bomb_with(leaf);
        let started = Instant::now();
        let (status, body) = post_query(&t, &bomb).await;
        let took = started.elapsed();
        rejected(status, &body, "LIMIT_EXCEEDED");
        assert!(took < Duration::from_millis(50), "{leaf}: {took:?}");
    }
    // A fragment cycle is a validation error, not a hang.
    let (status, body) =
        post_query(&t, "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }").await;
    assert!(!status.is_server_error());
    codes(&body);
}

// ---------------------------------------------------------------------------------------------
// GET, playground, health
// ---------------------------------------------------------------------------------------------

async fn raw(t: &TestApp, req: Request<Body>) -> (StatusCode, String, String) {
    let resp = t.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn get_runs_queries_only() {
    let t = TestApp::new(NODE).await;
    let ids = t.upsert(json!({ "Node": [{ "name": "over get" }] })).await;
    let q = format!("{{ get(type: Node, id: \"{}\") {{ ... on Node {{ name }} }} }}", ids[0]);
    let (status, body) = get_query(&t, &q, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["get"]["name"], "over get", "{body}");
    // With variables and an operation name.
    let (status, body) = get_query(
        &t,
        "query A { __typename } query B($id: String!) { get(type: Node, id: $id) { ... on Node { name } } }",
        Some(&json!({ "id": ids[0] }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["errors"].is_array(), "two operations and no operationName: {body}");
    let uri = format!(
        "/graphql?query={}&operationName=B&variables={}",
        enc("query A { __typename } query B($id: String!) { get(type: Node, id: $id) { ... on Node { name } } }"),
        enc(&json!({ "id": ids[0] }).to_string())
    );
    let (status, body) = t.send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["get"]["name"], "over get", "{body}");

    // A mutation over GET is refused and writes nothing.
    let m = "mutation { upsert(values: {Node: [{name: \"csrf\"}]}) { id } }";
    let (status, body) = get_query(&t, m, None).await;
    rejected(status, &body, "FORBIDDEN");
    // ...also when it is not the first operation, or selected by name.
    let uri = format!(
        "/graphql?query={}&operationName=M",
        enc(&format!("query Q {{ __typename }} {}", m.replacen("mutation", "mutation M", 1)))
    );
    let (status, body) = t.send(Request::get(uri).body(Body::empty()).unwrap()).await;
    rejected(status, &body, "FORBIDDEN");
    let uri = format!(
        "/graphql?query={}",
        enc(&format!("query Q {{ __typename }} {}", m.replacen("mutation", "mutation M", 1)))
    );
    let (status, body) = t.send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert!(!status.is_server_error());
    codes(&body);
    // Nothing was written: the only Node is the one from the POST above.
    let count = t.ok("{ get(type: Node, id: \"none\") { __typename } }", json!({})).await;
    assert_eq!(count["get"], Value::Null);

    // Bad variables over GET.
    let (status, body) = get_query(&t, "{ __typename }", Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    rejected(status, &body, "VALIDATION");
}

#[tokio::test]
async fn playground_and_health() {
    let t = TestApp::new(NODE).await;
    let (status, ctype, text) = raw(&t, Request::get("/graphql").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(text.contains("<title>arcbase playground</title>") && text.contains("graphiql"), "{text}");
    assert!(text.contains("url: \"/graphql\""), "the playground talks to /graphql");
    let (status, _, _) = raw(&t, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // The playground and health need no credentials even when a key is set.
    let t = TestApp::with(EXAMPLE, Some("k"), Limits::default()).await;
    let (status, _, _) = raw(&t, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text) = raw(&t, Request::get("/graphql").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("graphiql"));
}

// ---------------------------------------------------------------------------------------------
// Authentication and tenants
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_key() {
    let t = TestApp::with(EXAMPLE, Some("k"), Limits::default()).await;
    let q = json!({ "query": "{ __typename }" });
    let (status, body) = t.post_with(&q, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    rejected(status, &body, "UNAUTHENTICATED");
    for good in ["k", "Bearer k", "bearer k", "BEARER  k ", " k"] {
        let (status, body) = t.post_with(&q, &[("authorization", good)]).await;
        assert_eq!(status, StatusCode::OK, "{good}: {body}");
        assert_eq!(body["data"]["__typename"], "Query");
    }
    for bad in ["kk", "Bearer kk", "Bearer", "Bearer ", "Basic k", "K", "bearer x", "Bearerk", "k k", ""] {
        let (status, body) = t.post_with(&q, &[("authorization", bad)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}: {body}");
        rejected(status, &body, "UNAUTHENTICATED");
    }
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(q.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
    // GET and batch are guarded the same way.
    let (status, body) = get_query(&t, "{ __typename }", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    rejected(status, &body, "UNAUTHENTICATED");
    let (status, body) = post_raw(&t, json!([q, q]).to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    rejected(status, &body, "UNAUTHENTICATED");
    let req = Request::get(format!("/graphql?query={}", enc("{ __typename }")))
        .header("authorization", "Bearer k")
        .body(Body::empty())
        .unwrap();
    let (status, body) = t.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["__typename"], "Query");
    // A non-UTF-8 header value is a wrong key, not a crash.
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", axum::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap())
        .body(Body::from(q.to_string()))
        .unwrap();
    let (status, body) = t.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    rejected(status, &body, "UNAUTHENTICATED");
}

#[tokio::test]
async fn instance_domain() {
    let t = TestApp::new(EXAMPLE).await;
    let q = json!({ "query": "{ __typename }" });
    let (status, body) = t.post_with(&q, &[("hypi-domain", "default")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["__typename"], "Query");
    let (status, body) = t.post_with(&q, &[("hypi-domain", "nope.example.com")]).await;
    rejected(status, &body, "UNKNOWN_INSTANCE");
    let (status, body) = get_query(&t, "{ __typename }", None).await;
    assert_eq!(status, StatusCode::OK, "no header: the default instance: {body}");
    let req = Request::get(format!("/graphql?query={}", enc("{ __typename }")))
        .header("hypi-domain", "other")
        .body(Body::empty())
        .unwrap();
    let (status, body) = t.send(req).await;
    rejected(status, &body, "UNKNOWN_INSTANCE");
    // A domain that is not text must not fall back to the default instance.
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("hypi-domain", axum::http::HeaderValue::from_bytes(b"d\xe9fault").unwrap())
        .body(Body::from(q.to_string()))
        .unwrap();
    let (status, body) = t.send(req).await;
    rejected(status, &body, "UNKNOWN_INSTANCE");
}

#[tokio::test]
async fn cross_site_simple_posts_are_refused() {
    // A browser sends these content types cross-origin without a preflight (CSRF).
    let t = TestApp::new(NODE).await;
    let m =
        json!({ "query": "mutation { upsert(values: {Node: [{hypi: {id: \"csrf\"}, name: \"forged\"}]}) { id } }" });
    for ctype in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let req = Request::post("/graphql").header("content-type", ctype).body(Body::from(m.to_string())).unwrap();
        let (status, body) = t.send(req).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ctype}");
        rejected(status, &body, "FORBIDDEN");
    }
    let data = t.ok("{ get(type: Node, id: \"csrf\") { __typename } }", json!({})).await;
    assert_eq!(data["get"], Value::Null, "nothing was written");
    // JSON (with or without parameters) works.
    for ctype in ["application/json", "application/json; charset=utf-8"] {
        let req = Request::post("/graphql").header("content-type", ctype).body(Body::from(m.to_string())).unwrap();
        let (status, body) = t.send(req).await;
        assert_eq!(status, StatusCode::OK, "{ctype}: {body}");
        assert_eq!(body["data"]["upsert"][0]["id"], "csrf");
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed requests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_are_4xx_with_a_code() {
    let t = TestApp::new(NODE).await;
    for body in [
        "{not json",
        "",
        "null",
        "42",
        "\"query\"",
        "{\"query\": 5}",
        "{\"variables\": {}}",
        "{\"query\": \"{ __typename }\", \"variables\": 7}",
        "[1, 2]",
        "\u{0}\u{1}\u{2}",
    ] {
        let (status, resp) = post_raw(&t, body.to_string()).await;
        assert!(status.is_client_error(), "{body:?}: {status} {resp}");
        rejected(status, &resp, &codes(&resp)[0]);
    }
    // Invalid UTF-8.
    let (status, resp) = post_raw(&t, Bytes::from_static(b"{\"query\": \"\xff\xfe\"}")).await;
    assert!(status.is_client_error(), "{status} {resp}");
    codes(&resp);
    // GraphQL that does not parse, or does not validate: a 200 with coded errors.
    for q in ["{", "{ nope }", "query { get }", "{ ...Missing }", "query($x: Int) { __typename(y: $x) }"] {
        let (status, resp) = post_query(&t, q).await;
        assert!(!status.is_server_error(), "{q}");
        codes(&resp);
    }
    // Unknown route and wrong method: still a coded JSON error.
    let (status, body) = t.send(Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    codes(&body);
    let (status, body) = t.send(Request::put("/graphql").body(Body::from("{}")).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    codes(&body);
    // A bad query string on GET.
    for uri in ["/graphql?query=%ZZ", "/graphql?query=a&query=b", "/graphql?query=%FF%FE"] {
        let (status, body) = t.send(Request::get(uri).body(Body::empty()).unwrap()).await;
        assert!(!status.is_server_error(), "{uri}: {status}");
        codes(&body);
    }
}

#[tokio::test]
async fn limits_are_configurable() {
    let limits = Limits { depth: 3, aliases: 1, root_fields: 2, batch: 2, body_bytes: 1000, ..Limits::default() };
    let t = TestApp::with(NODE, None, limits).await;
    let (status, body) = post_query(&t, "{ get(type: Node, id: \"x\") { ... on Node { next { name } } } }").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    let (status, body) =
        post_query(&t, "{ get(type: Node, id: \"x\") { ... on Node { next { next { name } } } } }").await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    let (status, body) = post_query(&t, "{ a: __typename b: __typename }").await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    let (status, body) = post_query(&t, "{ __typename __typename __typename }").await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    let op = json!({ "query": "{ __typename }" });
    let (status, body) = post_raw(&t, json!([op, op, op]).to_string()).await;
    rejected(status, &body, "LIMIT_EXCEEDED");
    let (status, body) = post_raw(&t, json!({ "query": "{ __typename }", "x": "a".repeat(1000) }).to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    rejected(status, &body, "LIMIT_EXCEEDED");
}

/// A client that writes its whole over-limit body before reading (Python's urllib, most
/// HTTP/1.1 clients) sees the 413, over a real socket: the server reads on and discards the
/// rest instead of closing on a body still arriving (which the client sees as a reset).
#[test]
fn over_limit_body_written_before_reading_gets_the_413() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let server = common::process::Server::start(&["--database", &db], &[]);
    for attempt in 0..5 {
        let body = format!("{{\"query\": \"{{ __typename }}\", \"x\": \"{}\"}}", "a".repeat(5_000_000));
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // The whole body first; a reset here is the bug.
        s.write_all(body.as_bytes()).unwrap_or_else(|e| panic!("attempt {attempt}: writing the body failed: {e}"));
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 413"), "attempt {attempt}: {text}");
        assert!(text.contains("LIMIT_EXCEEDED"), "attempt {attempt}: {text}");
    }
    // The same with chunked transfer encoding (no Content-Length).
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = "a".repeat(100_000);
    for _ in 0..50 {
        s.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&resp));
}
