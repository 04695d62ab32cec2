//! Regressions of what a new user and real GraphQL clients found (issue 10), each as the
//! class of request that found it: values that are absent or null in every position of a
//! response, every way of selecting through the `HypiRootAggregate` union, internal errors,
//! the standard introspection query, and the GraphQL-over-HTTP status codes and media types.
//! (The generative suite in tests/conformance.rs and the real clients in tests/clients.rs
//! cover the same classes more widely.)
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};

const VOLUMES: &str =
    "type Volume { title: String!  kind: Kind  kinds: [Kind]  flags: [Boolean]  score: Float  ok: Boolean
                                    at: DateTime  big: Long  doc: Json  next: Volume  shelf: [Volume!] }
                       enum Kind { NOVEL POETRY }";

/// Every selectable field of a Volume, and of the one it references.
const ALL: &str = "title kind kinds flags score ok at big doc
                   hypi { id impl created updated trashed createdBy instanceId }
                   next { title kind kinds score ok hypi { id } } shelf { title kind }";

/// A nullable field that was never set reads as null wherever it is selected: a scalar, an
/// enum, a list with null elements, through a reference, in a list of references, in
/// aggregates' group values (an unset enum broke every read of its type).
#[tokio::test]
async fn unset_and_null_values_read_as_null_everywhere() {
    let t = TestApp::new(VOLUMES).await;
    t.upsert(json!({ "Volume": [
        { "hypi": { "id": "bare" }, "title": "x" },
        { "hypi": { "id": "full" }, "title": "y", "kind": "NOVEL", "kinds": [null, "POETRY", null], "flags": [true, null, false],
          "score": 3, "ok": false, "at": "2020-01-01", "big": 5, "doc": null, "next": { "hypi": { "id": "bare" } },
          "shelf": [{ "hypi": { "id": "bare" } }] },
    ] }))
    .await;
    let q = format!("{{ get(type: Volume, id: \"bare\") {{ ... on Volume {{ {ALL} }} }} }}");
    let data = t.ok(&q, json!({})).await;
    let v = &data["get"];
    for f in ["kind", "score", "ok", "at", "big", "doc", "next"] {
        assert_eq!(v[f], Value::Null, "{f}: {v}");
    }
    assert_eq!(v["kinds"], json!([]));
    assert_eq!(v["shelf"], json!([]));
    assert_eq!(v["hypi"]["trashed"], Value::Null);
    assert_eq!(v["hypi"]["impl"], "Volume");

    let q = format!("{{ get(type: Volume, id: \"full\") {{ ... on Volume {{ {ALL} }} }} }}");
    let v = t.ok(&q, json!({})).await["get"].clone();
    assert_eq!(v["kinds"], json!([null, "POETRY", null]), "{v}");
    assert_eq!(v["flags"], json!([true, null, false]), "{v}");
    assert_eq!((&v["kind"], &v["ok"], &v["big"]), (&json!("NOVEL"), &json!(false), &json!(5)));
    assert_eq!(v["next"]["kind"], Value::Null, "{v}");
    assert_eq!(v["next"]["kinds"], json!([]), "{v}");
    assert_eq!(v["shelf"], json!([{ "title": "x", "kind": null }]), "{v}");

    // An integral Float is a Float: the same text on both databases.
    let (_, _, text) = t
        .send_full(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "query": "{ get(type: Volume, id: \"full\") { ... on Volume { score } } }" }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert!(text.contains("\"score\":3.0"), "{text}");

    // find, with every field, over both objects.
    let q = format!("{{ find(type: Volume, arcql: \"*\") {{ edges {{ node {{ ... on Volume {{ {ALL} }} }} }} }} }}");
    let data = t.ok(&q, json!({})).await;
    assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 2);

    // Group values of an enum that is unset for some objects.
    let data = t
        .ok(
            "{ aggregate { volumeWith(groupBy: [{field: kind}]) { kind { count groupValues { key value } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["aggregate"]["volumeWith"],
        json!([
            { "kind": { "count": 0, "groupValues": [{ "key": "kind", "value": null }] } },
            { "kind": { "count": 1, "groupValues": [{ "key": "kind", "value": "NOVEL" }] } },
        ]),
        "{data}"
    );
}

/// Any valid selection through the union selects the same fields as the direct form: inline
/// fragments on the union (nested too), named fragments on the union or the type, fragments
/// spreading fragments, with `__typename`, on `get` and on `find`'s non-null `node`.
#[tokio::test]
async fn every_selection_through_the_union_selects_the_same_fields() {
    let t = TestApp::new(EXAMPLE).await;
    t.upsert(json!({ "Book": [{ "hypi": { "id": "b1" }, "title": "Dune", "price": 9.5 }] })).await;
    let direct = json!({ "__typename": "Book", "title": "Dune", "price": 9.5 });
    let forms = [
        ("{ __typename ... on Book { title price } }", ""),
        ("{ ... on HypiRootAggregate { __typename ... on Book { title price } } }", ""),
        ("{ ...U }", "fragment U on HypiRootAggregate { __typename ... on Book { title price } }"),
        ("{ ...U }", "fragment U on HypiRootAggregate { __typename ...B } fragment B on Book { title price }"),
        ("{ __typename ...B }", "fragment B on Book { title price }"),
        ("{ __typename ... { ... on Book { title } } ... on Book { price } }", ""),
        ("{ __typename ... on Author { name } ... on Book { title price } }", ""),
        ("{ ... on HypiRootAggregate { ... on HypiRootAggregate { __typename ... on Book { title price } } } }", ""),
    ];
    for (sel, frags) in forms {
        let data = t.ok(&format!("{{ get(type: Book, id: \"b1\") {sel} }} {frags}"), json!({})).await;
        assert_eq!(data["get"], direct, "get {sel} {frags}");
        let data = t
            .ok(&format!("{{ find(type: Book, arcql: \"*\") {{ edges {{ node {sel} }} }} }} {frags}"), json!({}))
            .await;
        assert_eq!(data["find"]["edges"][0]["node"], direct, "find {sel} {frags}");
    }
    // Skipped and included parts, by variable.
    let q = "query($s: Boolean!) { get(type: Book, id: \"b1\") { ... on Book { title price @skip(if: $s) } } }";
    assert_eq!(t.ok(q, json!({ "s": true })).await["get"], json!({ "title": "Dune" }));
    assert_eq!(t.ok(q, json!({ "s": false })).await["get"], json!({ "title": "Dune", "price": 9.5 }));
}

/// An internal failure answers only "internal error", code INTERNAL, and the request id that
/// the `x-request-id` header carries (the detail is logged under that id).
#[tokio::test]
async fn internal_errors_say_nothing_but_their_request_id() {
    let t = TestApp::new(EXAMPLE).await;
    t.upsert(json!({ "Book": [{ "title": "Dune" }] })).await;
    // The table goes away behind the server's back.
    t.sql("ALTER TABLE \"default__Book\" RENAME TO gone", Vec::new()).await;
    let (status, headers, text) = t
        .send_full(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "query": "{ find(type: Book, arcql: \"*\") { edges { node { ... on Book { title } } } } }" })
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let err = &body["errors"][0];
    assert_eq!(code(err), "INTERNAL", "{body}");
    assert_eq!(err["message"], "internal error", "{body}");
    assert!(!text.contains("no such table") && !text.contains("SELECT"), "{text}");
    let id = headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(err["extensions"]["requestId"], id, "{body}");
    assert_eq!(err["path"], json!(["find"]), "{body}");
}

/// The standard introspection query (the shape graphql-js's `getIntrospectionQuery` sends) is
/// answered, and lists every type `schema build` prints, the ones no field reaches included.
#[tokio::test]
async fn the_standard_introspection_query_is_answered_with_every_type() {
    let t = TestApp::new(EXAMPLE).await;
    let mut type_ref = String::from("kind name");
    for _ in 0..8 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    let q = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
           types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description specifiedByURL
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
           possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let data = t.ok(&q, json!({})).await;
    let types: Vec<&str> =
        data["__schema"]["types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let sdl = arcbase::graphql::generated_sdl(&arcbase::model::parse_sdl(EXAMPLE).unwrap()).unwrap();
    for line in sdl.lines() {
        let mut words = line.split_whitespace();
        if let (Some("type" | "input" | "enum" | "scalar" | "union"), Some(name)) = (words.next(), words.next()) {
            assert!(types.contains(&name), "'{name}' is printed by schema build but not introspected");
        }
    }
    for name in ["AuthorInput", "BookFields", "BookNumericFields", "Json", "HypiUpsertInputUnion"] {
        assert!(types.contains(&name), "{name}");
    }
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    let book = data["__schema"]["types"].as_array().unwrap().iter().find(|t| t["name"] == "Book").unwrap();
    let booklist = |n: &str| book["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).cloned().unwrap();
    assert_eq!(
        booklist("title")["type"],
        json!({ "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "String", "ofType": null } })
    );
    // `__type` and fragments on introspection types.
    let data = t.ok("{ __type(name: \"Rating\") { kind enumValues { name } } }", json!({})).await;
    assert_eq!(data["__type"], json!({ "kind": "ENUM", "enumValues": [{ "name": "GOOD" }, { "name": "BAD" }] }));
    assert_eq!(t.ok("{ __type(name: \"Nope\") { name } }", json!({})).await["__type"], Value::Null);
    // Fanning out by types and fields at every level is refused.
    let e =
        t.err("{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }", json!({})).await;
    assert_eq!(code(&e), "LIMIT_EXCEEDED", "{e}");
}

async fn post(t: &TestApp, accept: Option<&str>, body: Value) -> (StatusCode, String, Value) {
    let mut req = Request::post("/graphql").header("content-type", "application/json");
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let (status, headers, text) = t.send_full(req.body(Body::from(body.to_string())).unwrap()).await;
    let ctype = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ctype, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// GraphQL over HTTP: with `Accept: application/graphql-response+json` the answer has that
/// type and the spec's status codes (a request that is not executed is a 400 without `data`);
/// with `application/json` (or no Accept) it is 200 as before; a mutation over GET is a 405
/// with `Allow: POST`.
#[tokio::test]
async fn graphql_over_http_status_codes_and_media_types() {
    let t = TestApp::new(EXAMPLE).await;
    const GR: &str = "application/graphql-response+json";
    let cases = [
        (json!({ "query": "{ get(type: Book, id: \"x\") { __typename } }" }), 200, 200, true),
        (json!({ "query": "{ get(type: Book" }), 400, 200, false),
        (json!({ "query": "{ nope }" }), 400, 200, false),
        (
            json!({ "query": "query($n: Int) { find(type: Book, arcql: \"*\", first: $n) { pageInfo { pageLimit } } }", "variables": { "n": "five" } }),
            400,
            200,
            false,
        ),
        (
            json!({ "query": "query($n: Int!) { find(type: Book, arcql: \"*\", first: $n) { pageInfo { pageLimit } } }" }),
            400,
            200,
            false,
        ),
    ];
    for (body, gr_status, json_status, executed) in cases {
        let (status, ctype, resp) = post(&t, Some(GR), body.clone()).await;
        assert_eq!(status.as_u16(), gr_status, "{body}: {resp}");
        assert!(ctype.starts_with(GR), "{ctype}");
        assert_eq!(resp.get("data").is_some(), executed, "{body}: {resp}");
        for accept in [Some("application/json"), None, Some("*/*")] {
            let (status, ctype, resp2) = post(&t, accept, body.clone()).await;
            assert_eq!(status.as_u16(), json_status, "{accept:?} {body}: {resp2}");
            assert!(ctype.starts_with("application/json"), "{ctype}");
        }
    }
    // Syntax errors: one line, with a location.
    let (_, _, resp) = post(&t, Some(GR), json!({ "query": "{ get(type: Book" })).await;
    let err = &resp["errors"][0];
    assert!(!err["message"].as_str().unwrap().contains('\n'), "{err}");
    assert_eq!(err["locations"][0]["line"], 1, "{err}");
    // A mutation over GET.
    let uri = "/graphql?query=mutation%20%7B%20trash(type%3A%20Book%2C%20arcql%3A%20%22*%22)%20%7D";
    let (status, headers, text) =
        t.send_full(Request::get(uri).header("accept", GR).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    assert_eq!(headers.get("allow").unwrap(), "POST");
    // Neither media type acceptable.
    let (status, _, _) = post(&t, Some("text/csv"), json!({ "query": "{ __typename }" })).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

/// One request, one id: every error of a batch carries the id of the `x-request-id` header,
/// and the server's log records that id (on the request's span and on the internal error's
/// detail), so a report from a client leads to its log lines. A trusted proxy's id is kept.
#[test]
fn a_request_id_ties_the_answer_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ids.db");
    let url = format!("sqlite://{}", db.display());
    let s = common::process::Server::start(
        &["--database", &url],
        &[("RUST_LOG", "info"), ("ARCBASE_TRUST_REQUEST_ID", "1")],
    );
    let batch = json!([
        { "query": "{ get(type: Book" },
        { "query": "{ find(type: Book, arcql: \"nope ==\") { pageInfo { pageLimit } } }" },
    ]);
    let (status, head, body) = common::process::post_full(&s.addr, "/graphql", &batch, &[]);
    assert_eq!(status, 200, "{body}");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id in {head}"))
        .trim()
        .to_string();
    let errors: Vec<&Value> = body.as_array().unwrap().iter().flat_map(|r| r["errors"].as_array().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{body}");
    assert!(errors.iter().all(|e| e["extensions"]["requestId"] == id.as_str()), "{body}");
    // An internal error: its detail is in the log under the same id.
    let store = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = arcbase::store::Store::open(&url).await.unwrap();
        store
            .execute(&arcbase::sql::Sql::with_binds(
                store.dialect(),
                "ALTER TABLE \"default__Book\" RENAME TO gone",
                vec![],
            ))
            .await
            .unwrap();
        store
    });
    let q = json!({ "query": "{ get(type: Book, id: \"x\") { ... on Book { title } } }" });
    let (_, head, body) = common::process::post_full(&s.addr, "/graphql", &q, &[("x-request-id", "proxy-7f3a")]);
    assert!(head.contains("x-request-id: proxy-7f3a"), "{head}");
    assert_eq!(body["errors"][0]["extensions"]["requestId"], "proxy-7f3a", "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = s.log_text();
        let line = log.lines().find(|l| l.contains("internal error") && l.contains("proxy-7f3a"));
        if let Some(line) = line.filter(|_| log.contains(&id)) {
            assert!(line.contains("no such table"), "the detail is logged: {log}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the log lacks the request ids: {log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(store);
}

/// Float sums and averages at the edges of the double range answer the correctly rounded
/// double on both databases: an average whose sum overflows is still exact, one below half
/// the smallest double is zero, one just above rounds to it; a sum that no double holds is
/// null with a VALIDATION error at its own path, and the rest of the answer stands.
#[tokio::test]
async fn float_aggregates_at_the_edges_of_the_double_range() {
    let t = TestApp::new("type T { f: Float  g: Int }").await;
    let max = f64::MAX;
    t.upsert(json!({ "T": [
        { "hypi": { "id": "a" }, "f": max, "g": 1 }, { "hypi": { "id": "b" }, "f": max, "g": 1 },
        { "hypi": { "id": "c" }, "f": 5e-324, "g": 2 }, { "hypi": { "id": "d" }, "f": 5e-324, "g": 2 },
        { "hypi": { "id": "e" }, "f": 0.0, "g": 2 },
        { "hypi": { "id": "h" }, "f": 5e-324, "g": 3 }, { "hypi": { "id": "i" }, "f": 0.0, "g": 3 },
        { "hypi": { "id": "j" }, "f": 0.0, "g": 3 },
    ] }))
    .await;
    let q = r#"{ aggregate { tWith(groupBy: [{field: g, order: ASC}]) { f { sum avg max } g { count } } } }"#;
    let body = t.gql(q, json!({})).await;
    let groups = &body["data"]["aggregate"]["tWith"];
    assert_eq!(groups[0]["f"], json!({ "sum": null, "avg": max, "max": max }), "{body}");
    assert_eq!(groups[0]["g"]["count"], json!(2), "{body}");
    // 2/3 of the smallest double rounds to it; 1/3 of it rounds to zero.
    assert_eq!(groups[1]["f"], json!({ "sum": 1e-323, "avg": 5e-324, "max": 5e-324 }), "{body}");
    assert_eq!(groups[2]["f"], json!({ "sum": 5e-324, "avg": 0.0, "max": 5e-324 }), "{body}");
    let errors = body["errors"].as_array().expect("an error for the sum");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], "VALIDATION", "{body}");
    assert_eq!(errors[0]["path"], json!(["aggregate", "tWith", 0, "f", "sum"]), "{body}");
    assert!(errors[0]["message"].as_str().unwrap().contains("beyond the range of a Float"), "{body}");
}
