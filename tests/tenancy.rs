//! Apps, releases and instances (contract §7): publishing only additive releases (with the list
//! of incompatible changes otherwise), instances that serve their own release, upgrades that
//! keep data, the command line, and a second node that picks up registry changes in time.
//! Runs on SQLite by default and on PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use arcbase::config::Limits;
use arcbase::tenancy::{self, InstanceSettings, Published, TenancyError};
use common::process::Server;
use common::*;

const KEY: &str = "adminkey";

/// The schema the `default` app serves in these tests: a type no other app has.
const GADGET: &str = "type Gadget { label: String }\n";

/// Release v1 of the app `lib`.
const V1: &str = "\
type Book { title: String!  price: Float  tags: [String]  code: String @unique  rating: Rating  author: Author  related: [Book!] }
type Author { name: String  books: [Book!] }
type Tag { label: String }
enum Rating { GOOD BAD }
";

/// v1 plus: new nullable fields (scalar, scalar list, one-to-one and list references), a new
/// type (with a non-null field: fine in a new type), a new enum value.
const V2: &str = "\
type Book { title: String!  price: Float  tags: [String]  code: String @unique  rating: Rating  author: Author  related: [Book!]  subtitle: String  notes: [Int]  top: Review  reviews: [Review!] }
type Author { name: String  books: [Book!] }
type Tag { label: String }
type Review { stars: Int!  text: String  book: Book }
enum Rating { GOOD BAD MEH }
";

/// v2 plus one more nullable field.
const V3: &str = "\
type Book { title: String!  price: Float  tags: [String]  code: String @unique  rating: Rating  author: Author  related: [Book!]  subtitle: String  notes: [Int]  top: Review  reviews: [Review!]  isbn: String }
type Author { name: String  books: [Book!] }
type Tag { label: String }
type Review { stars: Int!  text: String  book: Book }
enum Rating { GOOD BAD MEH }
";

fn replace_once(sdl: &str, from: &str, to: &str) -> String {
    assert_eq!(sdl.matches(from).count(), 1, "{from:?} must occur exactly once in the SDL");
    sdl.replacen(from, to, 1)
}

/// Each breaking edit of V2 and words the single reported change must contain.
fn breaking_edits() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        ("removed field", replace_once(V2, "  price: Float", ""), vec!["Book.price", "removed"]),
        ("removed type", replace_once(V2, "type Tag { label: String }\n", ""), vec!["Tag", "removed"]),
        ("changed type", replace_once(V2, "price: Float", "price: Int"), vec!["Book.price", "Float", "Int"]),
        (
            "nullable became optional",
            replace_once(V2, "title: String!", "title: String"),
            vec!["Book.title", "String!"],
        ),
        (
            "optional became non-null",
            replace_once(V2, "subtitle: String ", "subtitle: String! "),
            vec!["Book.subtitle"],
        ),
        (
            "list items became non-null",
            replace_once(V2, "tags: [String]", "tags: [String!]"),
            vec!["Book.tags", "[String!]"],
        ),
        (
            "one-to-one became a list",
            replace_once(V2, "author: Author", "author: [Author]"),
            vec!["Book.author", "[Author]"],
        ),
        (
            "new non-null field",
            replace_once(V2, "reviews: [Review!] }", "reviews: [Review!]  isbn: String! }"),
            vec!["Book.isbn", "non-null"],
        ),
        ("removed enum value", replace_once(V2, "GOOD BAD MEH", "GOOD MEH"), vec!["Rating.BAD", "removed"]),
        ("lost @unique", replace_once(V2, "code: String @unique", "code: String"), vec!["Book.code", "@unique"]),
        ("gained @unique", replace_once(V2, "text: String", "text: String @unique"), vec!["Review.text", "@unique"]),
    ]
}

/// A server with an admin key (not development mode) serving GADGET on `default`.
async fn server() -> TestApp {
    TestApp::with(GADGET, Some(KEY), Limits::default()).await
}

/// An `/admin/` request; `key` is sent as `Authorization: Bearer <key>`.
async fn admin(t: &TestApp, method: &str, path: &str, body: Option<Value>, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    t.send(req.body(body).unwrap()).await
}

/// A GraphQL request as admin on instance `domain`: (status, body).
async fn on(t: &TestApp, domain: &str, query: &str, variables: Value) -> (StatusCode, Value) {
    let auth = format!("Bearer {KEY}");
    t.post_with(
        &json!({ "query": query, "variables": variables }),
        &[("authorization", &auth), ("hypi-domain", domain)],
    )
    .await
}

/// Like [`on`], asserting 200 and no errors; returns `data`.
async fn on_ok(t: &TestApp, domain: &str, query: &str, variables: Value) -> Value {
    let (status, body) = on(t, domain, query, variables).await;
    assert_eq!(status, StatusCode::OK, "{domain}: {body}");
    assert!(body.get("errors").is_none(), "{domain}: unexpected errors: {body}");
    body["data"].clone()
}

/// Like [`on`], asserting an error; returns the first error.
async fn on_err(t: &TestApp, domain: &str, query: &str, variables: Value) -> Value {
    let (_, body) = on(t, domain, query, variables).await;
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{domain}: expected errors: {body}"));
    assert!(!errors.is_empty(), "{domain}: expected errors: {body}");
    errors[0].clone()
}

async fn column_exists(t: &TestApp, table: &str, column: &str) -> bool {
    let sql = if backend_is_postgres() {
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
    } else {
        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?"
    };
    let rows = t.sql(sql, vec![table.into(), column.into()]).await;
    rows[0][0].as_i64().unwrap() > 0
}

fn release_names(body: &Value) -> Vec<String> {
    body["releases"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn releases_via_the_library_accept_additions_and_list_every_breaking_change() {
    let t = server().await;
    let store = &t.app.store;
    assert_eq!(tenancy::publish(store, "lib", "v1", V1).await.unwrap(), Published::Created);
    assert_eq!(tenancy::publish(store, "lib", "v2", V2).await.unwrap(), Published::Created, "additive release");
    assert!(column_exists(&t, "lib__Book", "subtitle").await, "publishing created the new column");

    for (what, sdl, words) in breaking_edits() {
        match tenancy::publish(store, "lib", "broken", &sdl).await {
            Err(TenancyError::Breaking { changes, previous, .. }) => {
                assert_eq!(previous, "v2", "{what}: compared with the newest release");
                assert_eq!(changes.len(), 1, "{what}: exactly the one change: {changes:?}");
                for w in words {
                    assert!(changes[0].contains(w), "{what}: {:?} should mention {w:?}", changes[0]);
                }
            }
            other => panic!("{what}: expected a refusal listing the change, got {other:?}"),
        }
    }

    // Several breaking changes at once: all of them are listed, and nothing is applied (the
    // nullable field that came with them is not created).
    let several = replace_once(&replace_once(V2, "  price: Float", "  extra: String"), "GOOD BAD MEH", "GOOD MEH");
    match tenancy::publish(store, "lib", "broken", &several).await {
        Err(TenancyError::Breaking { changes, .. }) => {
            assert_eq!(changes.len(), 2, "{changes:?}");
            assert!(changes.iter().any(|c| c.contains("Book.price")), "{changes:?}");
            assert!(changes.iter().any(|c| c.contains("Rating.BAD")), "{changes:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!column_exists(&t, "lib__Book", "extra").await, "a refused release must not touch the tables");

    // Same name, same SDL: unchanged; same name, other SDL (even an additive one): refused.
    assert_eq!(tenancy::publish(store, "lib", "v2", V2).await.unwrap(), Published::Unchanged);
    assert_eq!(tenancy::publish(store, "lib", "v1", V1).await.unwrap(), Published::Unchanged, "an older release");
    assert!(matches!(tenancy::publish(store, "lib", "v2", V3).await, Err(TenancyError::ReleaseExists { .. })));
    assert!(matches!(tenancy::publish(store, "lib", "v1", V2).await, Err(TenancyError::ReleaseExists { .. })));

    // Invalid SDL: every diagnostic, with its position.
    match tenancy::publish(store, "lib", "bad", "type Book { title: Strin  x: Nope }").await {
        Err(TenancyError::Sdl(diags)) => {
            assert!(diags.len() >= 2, "every error is listed: {diags:?}");
            let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            assert!(text.iter().all(|d| d.starts_with("1:")), "line:column: {text:?}");
        }
        other => panic!("expected SDL errors, got {other:?}"),
    }
    assert!(matches!(tenancy::publish(store, "lib", "syntax", "type {").await, Err(TenancyError::Sdl(_))));
    // Names that would become table names or are not names at all.
    assert!(matches!(tenancy::publish(store, "bad app", "v1", V1).await, Err(TenancyError::BadName { .. })));
    assert!(matches!(tenancy::publish(store, "a__b", "v1", V1).await, Err(TenancyError::BadName { .. })));
    assert!(matches!(tenancy::publish(store, "lib", "", V1).await, Err(TenancyError::BadName { .. })));
    assert!(matches!(tenancy::publish(store, "lib", "v/1", V1).await, Err(TenancyError::BadName { .. })));

    // Refusals published nothing; the app's releases are v1 and v2, in order, and the next
    // additive release is accepted under a name a refused one tried.
    let names: Vec<String> = store.releases(Some("lib")).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["v1", "v2"]);
    assert_eq!(tenancy::publish(store, "lib", "broken", V3).await.unwrap(), Published::Created);
    let names: Vec<String> = store.releases(Some("lib")).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["v1", "v2", "broken"]);
}

#[tokio::test]
async fn releases_via_the_admin_endpoint_answer_201_200_400_409() {
    let t = server().await;
    let post = |name: &str, sdl: &str| json!({ "app": "lib", "name": name, "sdl": sdl });

    let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("v1", V1)), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true, "{body}");
    let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("v1", V1)), Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "same name and SDL: unchanged: {body}");
    assert_eq!(body["created"], false, "{body}");
    let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("v2", V2)), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    for (what, sdl, words) in breaking_edits() {
        let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("v3", &sdl)), Some(KEY)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        let err = &body["errors"][0];
        assert_eq!(code(err), "VALIDATION", "{what}: {body}");
        let changes = err["extensions"]["incompatibleChanges"].as_array().unwrap_or_else(|| panic!("{what}: {body}"));
        assert_eq!(changes.len(), 1, "{what}: {body}");
        let change = changes[0].as_str().unwrap();
        for w in words {
            assert!(change.contains(w), "{what}: {change:?} should mention {w:?}");
            assert!(err["message"].as_str().unwrap().contains(w), "{what}: the message lists it too: {body}");
        }
    }

    let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("v2", V3)), Some(KEY)).await;
    assert_eq!(status, StatusCode::CONFLICT, "same name, other SDL: {body}");
    assert_eq!(code(&body["errors"][0]), "CONFLICT");

    let (status, body) =
        admin(&t, "POST", "/admin/releases", Some(post("v9", "type Book { x: Nope }")), Some(KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "invalid SDL: {body}");
    assert_eq!(code(&body["errors"][0]), "VALIDATION");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("1:"), "with line:column: {body}");
    assert!(body["errors"][0]["extensions"].get("incompatibleChanges").is_none(), "{body}");

    let (status, body) = admin(&t, "POST", "/admin/releases", Some(json!({ "app": "lib" })), Some(KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing fields: {body}");
    let (status, body) = admin(&t, "POST", "/admin/releases", Some(post("a b", V1)), Some(KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "bad name: {body}");

    let (status, body) = admin(&t, "GET", "/admin/releases?app=lib", None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(release_names(&body), ["v1", "v2"], "refusals published nothing: {body}");
    assert!(body["releases"].as_array().unwrap().iter().all(|r| r["app"] == "lib"), "{body}");
    let (status, body) = admin(&t, "GET", "/admin/releases", None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let apps: Vec<&str> = body["releases"].as_array().unwrap().iter().map(|r| r["app"].as_str().unwrap()).collect();
    assert!(apps.contains(&"default") && apps.contains(&"lib"), "every app without ?app: {body}");
}

#[tokio::test]
async fn admin_endpoints_require_the_admin_key() {
    let t = server().await;
    tenancy::publish(&t.app.store, "lib", "v1", V1).await.unwrap();
    let publish = json!({ "app": "lib", "name": "v2", "sdl": V2 });
    let create = json!({ "domain": "x.example", "app": "lib", "release": "v1" });
    let upgrade = json!({ "domain": "default", "release": "v1" });
    let calls: [(&str, &str, Option<Value>); 5] = [
        ("GET", "/admin/releases", None),
        ("POST", "/admin/releases", Some(publish)),
        ("GET", "/admin/instances", None),
        ("POST", "/admin/instances", Some(create)),
        ("POST", "/admin/instances/upgrade", Some(upgrade)),
    ];
    for (method, path, body) in &calls {
        for key in [None, Some("wrong"), Some("adminke"), Some("adminkeyy"), Some("")] {
            let (status, resp) = admin(&t, method, path, body.clone(), key).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}: {resp}");
            assert_eq!(code(&resp["errors"][0]), "UNAUTHENTICATED", "{method} {path}: {resp}");
        }
    }
    // Nothing happened.
    assert_eq!(t.app.store.releases(Some("lib")).await.unwrap().len(), 1);
    let instances = t.app.store.instance_rows().await.unwrap();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0].domain, "default");
    // With the key the same calls work.
    let (status, body) = admin(&t, "GET", "/admin/instances", None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

const FIND_BOOKS: &str = "{ find(type: Book, arcql: \"*\") { edges { node { ... on Book { title } } } } }";
const FIND_GADGETS: &str = "{ find(type: Gadget, arcql: \"*\") { edges { node { ... on Gadget { label } } } } }";

#[tokio::test]
async fn instances_are_created_over_admin_and_serve_their_own_release() {
    let t = server().await;
    let (status, body) =
        admin(&t, "POST", "/admin/releases", Some(json!({ "app": "lib", "name": "v1", "sdl": V1 })), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let create = json!({ "domain": "shop.example", "app": "lib", "release": "v1", "enableAnonymousRequests": true });
    let (status, body) = admin(&t, "POST", "/admin/instances", Some(create.clone()), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let inst = &body["instance"];
    assert_eq!(inst["domain"], "shop.example", "{body}");
    assert_eq!(inst["id"], "shop.example", "the instance id is its domain: {body}");
    assert_eq!(inst["app"], "lib");
    assert_eq!(inst["release"], "v1");
    assert_eq!(inst["enableAnonymousRequests"], true);
    assert_eq!(inst["enableAnonymousRegistrations"], false, "off unless asked for: {body}");

    // The new instance is served at once, with its own app's schema.
    let ids = on_ok(
        &t,
        "shop.example",
        "mutation { upsert(values: {Book: [{title: \"Dune\", rating: GOOD}]}) { id instanceId } }",
        json!({}),
    )
    .await;
    assert_eq!(ids["upsert"][0]["instanceId"], "shop.example", "{ids}");
    let data = on_ok(&t, "shop.example", FIND_BOOKS, json!({})).await;
    assert_eq!(data["find"]["edges"][0]["node"]["title"], "Dune", "{data}");
    // A type of the app exists there and not on `default`, and the other way round.
    let err = on_err(&t, "default", FIND_BOOKS, json!({})).await;
    assert!(err["message"].as_str().unwrap().contains("Book"), "{err}");
    let err = on_err(&t, "shop.example", FIND_GADGETS, json!({})).await;
    assert!(err["message"].as_str().unwrap().contains("Gadget"), "{err}");
    on_ok(&t, "default", FIND_GADGETS, json!({})).await;
    on_ok(&t, "default", "mutation { upsert(values: {Gadget: [{label: \"g\"}]}) { id } }", json!({})).await;

    // Settings are per instance: anonymous requests work on shop.example only.
    let (status, body) = t.post_with(&json!({ "query": FIND_BOOKS }), &[("hypi-domain", "shop.example")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let (status, body) = t.post_with(&json!({ "query": FIND_GADGETS }), &[("hypi-domain", "default")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Unknown domains are an error, never another instance.
    for domain in ["nope.example", "shop.example.", "SHOP.EXAMPLE", "shop", "shop.example2"] {
        let (status, body) = on(&t, domain, FIND_BOOKS, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{domain}: {body}");
        assert_eq!(code(&body["errors"][0]), "UNKNOWN_INSTANCE", "{domain}: {body}");
        assert!(body["data"].is_null(), "{domain}: {body}");
    }

    // Duplicate domain (also of `default`), unknown release or app, bad domain.
    let (status, body) = admin(&t, "POST", "/admin/instances", Some(create), Some(KEY)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body["errors"][0]), "CONFLICT");
    let dup_default = json!({ "domain": "default", "app": "lib", "release": "v1" });
    let (status, body) = admin(&t, "POST", "/admin/instances", Some(dup_default), Some(KEY)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances",
        Some(json!({ "domain": "y.example", "app": "lib", "release": "v7" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances",
        Some(json!({ "domain": "y.example", "app": "nosuchapp", "release": "v1" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances",
        Some(json!({ "domain": "bad domain/x", "app": "lib", "release": "v1" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The library refuses the same way.
    let dup = tenancy::create_instance(&t.app.store, "shop.example", "lib", "v1", InstanceSettings::default()).await;
    assert!(matches!(dup, Err(TenancyError::InstanceExists(_))), "{dup:?}");

    let (status, body) = admin(&t, "GET", "/admin/instances", None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let domains: Vec<&str> =
        body["instances"].as_array().unwrap().iter().map(|i| i["domain"].as_str().unwrap()).collect();
    assert_eq!(domains, ["default", "shop.example"], "{body}");

    // Created through the library: served after a registry refresh.
    tenancy::create_instance(&t.app.store, "lib2.example", "lib", "v1", InstanceSettings::default()).await.unwrap();
    t.app.registry.refresh().await.unwrap();
    let data = on_ok(&t, "lib2.example", FIND_BOOKS, json!({})).await;
    assert_eq!(data["find"]["edges"], json!([]), "a new instance starts empty: {data}");
}

const READ_BOOKS: &str = "{ find(type: Book, arcql: \"* SORT title ASC\") { edges { node { ... on Book {
    hypi { id } title price tags code rating author { name books { title } } related { title } } } } } }";

#[tokio::test]
async fn upgrade_keeps_data_and_refuses_downgrades() {
    let t = server().await;
    let store = &t.app.store;
    tenancy::publish(store, "lib", "v1", V1).await.unwrap();
    tenancy::create_instance(store, "up.example", "lib", "v1", InstanceSettings::default()).await.unwrap();
    tenancy::create_instance(store, "stay.example", "lib", "v1", InstanceSettings::default()).await.unwrap();
    t.app.registry.refresh().await.unwrap();

    // Data on v1: scalars, a scalar list, one-to-one and list references, an enum.
    on_ok(
        &t,
        "up.example",
        "mutation { upsert(values: {Book: [
            {hypi: {id: \"b1\"}, title: \"Alpha\", price: 1.5, tags: [\"x\", \"y\"], code: \"c1\", rating: GOOD,
             author: {hypi: {id: \"a1\"}, name: \"Ann\", books: [{hypi: {id: \"b2\"}, title: \"Beta\", rating: BAD}]},
             related: [{hypi: {id: \"b2\"}}]}
        ]}) { id } }",
        json!({}),
    )
    .await;
    on_ok(&t, "stay.example", "mutation { upsert(values: {Book: [{title: \"Stay\"}]}) { id } }", json!({})).await;
    let before = on_ok(&t, "up.example", READ_BOOKS, json!({})).await;
    assert_eq!(before["find"]["edges"].as_array().unwrap().len(), 2, "{before}");
    assert_eq!(before["find"]["edges"][0]["node"]["author"]["books"][0]["title"], "Beta", "{before}");

    // v2 is published: the instance still serves v1 until it is upgraded.
    let (status, body) =
        admin(&t, "POST", "/admin/releases", Some(json!({ "app": "lib", "name": "v2", "sdl": V2 })), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_field = "{ get(type: Book, id: \"b1\") { ... on Book { title subtitle } } }";
    on_err(&t, "up.example", new_field, json!({})).await;

    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances/upgrade",
        Some(json!({ "domain": "up.example", "release": "v2" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance"]["release"], "v2", "{body}");
    assert_eq!(body["instance"]["domain"], "up.example", "{body}");

    // Old objects intact, exactly as they were.
    let after = on_ok(&t, "up.example", READ_BOOKS, json!({})).await;
    assert_eq!(after, before, "the upgrade lost or changed data");
    let data = on_ok(&t, "up.example", new_field, json!({})).await;
    assert_eq!(data["get"], json!({ "title": "Alpha", "subtitle": null }), "{data}");

    // The new fields, type and enum value are writable and readable; old values stay.
    on_ok(
        &t,
        "up.example",
        "mutation { upsert(values: {Book: [{hypi: {id: \"b1\"}, subtitle: \"Sub\", rating: MEH, notes: [3, 4],
            top: {hypi: {id: \"r1\"}, stars: 5, text: \"great\"}, reviews: [{hypi: {id: \"r1\"}}, {stars: 2}]}]}) { id } }",
        json!({}),
    )
    .await;
    on_ok(
        &t,
        "up.example",
        "mutation { upsert(values: {Review: [{stars: 4, book: {hypi: {id: \"b2\"}}}]}) { id } }",
        json!({}),
    )
    .await;
    let data = on_ok(
        &t,
        "up.example",
        "{ get(type: Book, id: \"b1\") { ... on Book { title price tags code rating subtitle notes
            top { stars text } reviews { stars } author { name } related { title } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data["get"],
        json!({
            "title": "Alpha", "price": 1.5, "tags": ["x", "y"], "code": "c1", "rating": "MEH", "subtitle": "Sub",
            "notes": [3, 4], "top": { "stars": 5, "text": "great" }, "reviews": [{ "stars": 5 }, { "stars": 2 }],
            "author": { "name": "Ann" }, "related": [{ "title": "Beta" }]
        }),
        "{data}"
    );
    let data = on_ok(
        &t,
        "up.example",
        "{ find(type: Book, arcql: \"subtitle = 'Sub' AND rating = 'MEH'\") { edges { cursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(data["find"]["edges"], json!([{ "cursor": "b1" }]), "{data}");
    let data = on_ok(
        &t,
        "up.example",
        "{ find(type: Review, arcql: \"book.title = 'Beta'\") { edges { node { ... on Review { stars } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(data["find"]["edges"], json!([{ "node": { "stars": 4 } }]), "{data}");

    // The other instance of the app still runs v1 with its data.
    on_err(&t, "stay.example", "{ find(type: Review, arcql: \"*\") { edges { cursor } } }", json!({})).await;
    let data = on_ok(&t, "stay.example", FIND_BOOKS, json!({})).await;
    assert_eq!(data["find"]["edges"], json!([{ "node": { "title": "Stay" } }]), "{data}");

    // Downgrade: refused with the changes, over HTTP and through the library; nothing moved.
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances/upgrade",
        Some(json!({ "domain": "up.example", "release": "v1" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let changes = body["errors"][0]["extensions"]["incompatibleChanges"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert!(changes.iter().any(|c| c.as_str().unwrap().contains("Book.subtitle")), "{body}");
    assert!(changes.iter().any(|c| c.as_str().unwrap().contains("Review")), "{body}");
    assert!(changes.iter().any(|c| c.as_str().unwrap().contains("Rating.MEH")), "{body}");
    let r = tenancy::upgrade_instance(store, "up.example", "v1").await;
    assert!(matches!(r, Err(TenancyError::Breaking { .. })), "{r:?}");
    // v3 published, then v2 → v3 is fine but v3 → v2 is not.
    tenancy::publish(store, "lib", "v3", V3).await.unwrap();
    tenancy::upgrade_instance(store, "up.example", "v3").await.unwrap();
    let r = tenancy::upgrade_instance(store, "up.example", "v2").await;
    assert!(
        matches!(&r, Err(TenancyError::Breaking { changes, .. }) if changes.iter().any(|c| c.contains("Book.isbn"))),
        "{r:?}"
    );
    t.app.registry.refresh().await.unwrap();
    let row = store.instance_rows().await.unwrap().into_iter().find(|i| i.domain == "up.example").unwrap();
    assert_eq!(row.release.as_deref(), Some("v3"), "a refused downgrade leaves the instance where it was");
    on_ok(&t, "up.example", "{ get(type: Book, id: \"b1\") { ... on Book { isbn subtitle } } }", json!({})).await;

    // Unknown release / instance.
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances/upgrade",
        Some(json!({ "domain": "up.example", "release": "v99" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = admin(
        &t,
        "POST",
        "/admin/instances/upgrade",
        Some(json!({ "domain": "nope.example", "release": "v2" })),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A release of another app is not a release of this one.
    tenancy::publish(store, "other", "v9", GADGET).await.unwrap();
    let r = tenancy::upgrade_instance(store, "up.example", "v9").await;
    assert!(matches!(r, Err(TenancyError::UnknownRelease { .. })), "{r:?}");

    // Everything still there after all of it.
    let data = on_ok(&t, "up.example", READ_BOOKS, json!({})).await;
    let edges = data["find"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{data}");
    assert_eq!(edges[0]["node"]["tags"], json!(["x", "y"]), "{data}");
    assert_eq!(edges[0]["node"]["author"], before["find"]["edges"][0]["node"]["author"], "{data}");
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Run `arcbase ARGS --database URL`: (exit code, stdout JSON or Null, stderr).
fn cli(url: &str, args: &[&str]) -> (i32, Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
        .args(args)
        .args(["--database", url])
        .env_remove("ARCBASE_DATABASE_URL")
        .env_remove("ARCBASE_ADMIN_KEY")
        .output()
        .expect("run arcbase");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

/// A database URL of the test backend (PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`).
async fn database_url(dir: &tempfile::TempDir) -> String {
    if backend_is_postgres() {
        pg::fresh_database(pg::cluster().expect("PostgreSQL")).await
    } else {
        format!("sqlite://{}", dir.path().join("x.db").display())
    }
}

#[tokio::test]
async fn cli_release_and_instance_commands() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir).await;
    let file = |name: &str, sdl: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, sdl).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (v1, v2) = (file("v1.graphql", V1), file("v2.graphql", V2));
    let broken = file("broken.graphql", &breaking_edits()[0].1);
    let invalid = file("invalid.graphql", "type Book { x: Nope }");

    let (code, out, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v1", &v1]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, json!({ "app": "lib", "name": "v1", "created": true }));
    let (code, out, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v1", &v1]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["created"], false, "unchanged");
    let (code, out, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v2", &v2]);
    assert_eq!((code, &out["created"]), (0, &json!(true)), "{err}");

    let (code, out, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v3", &broken]);
    assert_eq!(code, 2, "a breaking release is refused: {out} {err}");
    assert!(err.contains("Book.price"), "stderr lists the change: {err}");
    let (code, _, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v2", &v1]);
    assert_eq!(code, 2, "same name, other SDL: {err}");
    let (code, _, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v3", &invalid]);
    assert_eq!(code, 2, "invalid SDL: {err}");
    assert!(err.contains("1:"), "with line:column: {err}");
    let missing = dir.path().join("missing.graphql").to_string_lossy().into_owned();
    let (code, _, err) = cli(&url, &["release", "publish", "--app", "lib", "--name", "v3", &missing]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = cli(&url, &["release", "list", "--app", "lib"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(release_names(&out), ["v1", "v2"], "{out}");
    assert!(out["releases"][0].get("created_at").is_some() || out["releases"][0].get("createdAt").is_some(), "{out}");

    let (code, out, err) = cli(
        &url,
        &[
            "instance",
            "create",
            "--domain",
            "a.example",
            "--app",
            "lib",
            "--release",
            "v1",
            "--allow-anonymous-requests",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["instance"]["domain"], "a.example", "{out}");
    assert_eq!(out["instance"]["release"], "v1", "{out}");
    assert_eq!(out["instance"]["enableAnonymousRequests"], true, "{out}");
    assert_eq!(out["instance"]["enableAnonymousRegistrations"], false, "{out}");
    let (code, _, err) = cli(&url, &["instance", "create", "--domain", "a.example", "--app", "lib", "--release", "v1"]);
    assert_eq!(code, 2, "duplicate domain: {err}");
    let (code, _, err) = cli(&url, &["instance", "create", "--domain", "b.example", "--app", "lib", "--release", "v8"]);
    assert_eq!(code, 2, "unknown release: {err}");
    let (code, _, err) = cli(
        &url,
        &[
            "instance",
            "create",
            "--domain",
            "b.example",
            "--app",
            "lib",
            "--release",
            "v2",
            "--allow-anonymous-registrations",
        ],
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = cli(&url, &["instance", "upgrade", "--domain", "a.example", "--release", "v2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["instance"]["release"], "v2", "{out}");
    let (code, _, err) = cli(&url, &["instance", "upgrade", "--domain", "a.example", "--release", "v1"]);
    assert_eq!(code, 2, "downgrade: {err}");
    assert!(err.contains("Book.subtitle"), "{err}");
    let (code, _, err) = cli(&url, &["instance", "upgrade", "--domain", "zzz.example", "--release", "v2"]);
    assert_eq!(code, 2, "unknown instance: {err}");

    let (code, out, err) = cli(&url, &["instance", "list"]);
    assert_eq!(code, 0, "{err}");
    let list = out["instances"].as_array().unwrap_or_else(|| panic!("{out}"));
    let a = list.iter().find(|i| i["domain"] == "a.example").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(a["release"], "v2");
    assert_eq!(a["enableAnonymousRequests"], true);
    let b = list.iter().find(|i| i["domain"] == "b.example").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(b["enableAnonymousRegistrations"], true);

    // A server on that database serves what the command line set up.
    let t = TestApp::at(GADGET, Some(KEY), Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    on_ok(&t, "a.example", "mutation { upsert(values: {Book: [{title: \"T\", subtitle: \"S\"}]}) { id } }", json!({}))
        .await;
    let (status, body) = t.post_with(&json!({ "query": FIND_BOOKS }), &[("hypi-domain", "a.example")]).await;
    assert_eq!(status, StatusCode::OK, "anonymous requests enabled by the command line: {body}");
    // Book is OWNER-read: an anonymous caller is served, but sees none of the admin's books.
    assert_eq!(body["data"]["find"]["edges"], json!([]), "{body}");
    let data = on_ok(&t, "a.example", FIND_BOOKS, json!({})).await;
    assert_eq!(data["find"]["edges"][0]["node"]["title"], "T", "{data}");
    let (status, body) = t.post_with(&json!({ "query": FIND_BOOKS }), &[("hypi-domain", "b.example")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "b.example does not allow anonymous requests: {body}");
    // b.example was created on v2.
    on_ok(&t, "b.example", "{ find(type: Book, arcql: \"subtitle = 'x'\") { edges { cursor } } }", json!({})).await;
}

// ---------------------------------------------------------------------------------------------
// Several nodes
// ---------------------------------------------------------------------------------------------

/// One HTTP/1.1 request to `addr` with extra headers; returns (status, JSON body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = resp.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

/// Poll `probe` until it returns true; returns how long that took (panics after 10 s).
fn time_until(what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if probe() {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_second_node_serves_a_new_instance_within_two_seconds() {
    // Several nodes share a PostgreSQL database (SQLite is one process's: a second `serve` on
    // its file is refused), so this runs on PostgreSQL whatever the test backend.
    let Some(url) = pg::database_or_skip("a_second_node_serves_a_new_instance_within_two_seconds").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.graphql");
    std::fs::write(&schema, GADGET).unwrap();
    let schema = schema.to_string_lossy().into_owned();
    let env = [("ARCBASE_ADMIN_KEY", KEY)];
    let a = Server::start(&["--schema", &schema, "--database", &url], &env);
    let b = Server::start(&["--schema", &schema, "--database", &url], &env);
    let auth = format!("Bearer {KEY}");
    let admin_h = [("Authorization", auth.as_str())];
    let on = |addr: &str, domain: &str, query: &str| {
        http(
            addr,
            "POST",
            "/graphql",
            &[("Authorization", auth.as_str()), ("hypi-domain", domain)],
            &json!({ "query": query }),
        )
    };

    let (status, body) = on(&b.addr, "multi.example", FIND_BOOKS);
    assert_eq!(status, 404, "not there yet: {body}");

    let (status, body) =
        http(&a.addr, "POST", "/admin/releases", &admin_h, &json!({ "app": "lib", "name": "v1", "sdl": V1 }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        &a.addr,
        "POST",
        "/admin/instances",
        &admin_h,
        &json!({ "domain": "multi.example", "app": "lib", "release": "v1" }),
    );
    assert_eq!(status, 201, "{body}");
    let took = time_until("node B serves multi.example", || {
        let (status, body) = on(&b.addr, "multi.example", FIND_BOOKS);
        status == 200 && body.get("errors").is_none()
    });
    assert!(took < Duration::from_secs(2), "node B took {took:?} to serve the new instance");
    // Node A served it at once.
    let (status, body) = on(&a.addr, "multi.example", FIND_BOOKS);
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    // One instance, two nodes: written through B, read through A.
    let (status, body) =
        on(&b.addr, "multi.example", "mutation { upsert(values: {Book: [{title: \"viaB\"}]}) { id } }");
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let (_, body) = on(&a.addr, "multi.example", FIND_BOOKS);
    assert_eq!(body["data"]["find"]["edges"][0]["node"]["title"], "viaB", "{body}");

    // An upgrade made through A reaches B in time too.
    let (status, body) =
        http(&a.addr, "POST", "/admin/releases", &admin_h, &json!({ "app": "lib", "name": "v2", "sdl": V2 }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        &a.addr,
        "POST",
        "/admin/instances/upgrade",
        &admin_h,
        &json!({ "domain": "multi.example", "release": "v2" }),
    );
    assert_eq!(status, 200, "{body}");
    let with_subtitle = "{ find(type: Book, arcql: \"*\") { edges { node { ... on Book { title subtitle } } } } }";
    let took = time_until("node B serves release v2", || {
        let (status, body) = on(&b.addr, "multi.example", with_subtitle);
        status == 200 && body.get("errors").is_none()
    });
    assert!(took < Duration::from_secs(2), "node B took {took:?} to serve the upgrade");
    let (_, body) = on(&b.addr, "multi.example", with_subtitle);
    assert_eq!(body["data"]["find"]["edges"][0]["node"], json!({ "title": "viaB", "subtitle": null }), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Storage names
// ---------------------------------------------------------------------------------------------

/// Names may start or end with one `_`, and storage names join app, type and field with `__`:
/// `B` + `_c` and `B_` + `c` must still be stored apart (or the SDL refused).
#[tokio::test]
async fn scalar_lists_of_different_types_never_share_a_table() {
    let t = server().await;
    let store = &t.app.store;

    match tenancy::publish(store, "lib", "v1", "type B { _c: [String] }\ntype B_ { c: [Int] }\n").await {
        Err(TenancyError::Sdl(_) | TenancyError::BadName { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => {
            tenancy::create_instance(store, "x.example", "lib", "v1", InstanceSettings::default()).await.unwrap();
            t.app.registry.refresh().await.unwrap();
            on_ok(
                &t,
                "x.example",
                "mutation { upsert(values: {B: [{hypi: {id: \"same\"}, _c: [\"x\"]}], B_: [{hypi: {id: \"same\"}, c: [1, 2]}]}) { id } }",
                json!({}),
            )
            .await;
            let data = on_ok(
                &t,
                "x.example",
                "{ b: get(type: B, id: \"same\") { ... on B { _c } } b_: get(type: B_, id: \"same\") { ... on B_ { c } } }",
                json!({}),
            )
            .await;
            assert_eq!(data, json!({ "b": { "_c": ["x"] }, "b_": { "c": [1, 2] } }), "B._c and B_.c share storage");
        }
    }
}

/// App `a` type `_B` and app `a_` type `B` are both `a` + `__` + `_B` = `a_` + `__` + `B`.
#[tokio::test]
async fn tables_of_different_apps_never_collide() {
    let t = server().await;
    let store = &t.app.store;
    let first = tenancy::publish(store, "a", "v1", "type _B { y: String @unique }\n").await;
    let second = tenancy::publish(store, "a_", "v1", "type B { y: String }\n").await;
    match (first, second) {
        (Ok(_), Ok(_)) => {
            tenancy::create_instance(store, "a.example", "a", "v1", InstanceSettings::default()).await.unwrap();
            tenancy::create_instance(store, "a2.example", "a_", "v1", InstanceSettings::default()).await.unwrap();
            t.app.registry.refresh().await.unwrap();
            for _ in 0..2 {
                // `a_`'s B.y is not @unique: the same value twice is fine.
                on_ok(&t, "a2.example", "mutation { upsert(values: {B: [{y: \"dup\"}]}) { id } }", json!({})).await;
            }
            let data = on_ok(&t, "a2.example", "{ find(type: B, arcql: \"*\") { edges { cursor } } }", json!({})).await;
            assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 2, "{data}");
            let err = on_err(
                &t,
                "a.example",
                "mutation { upsert(values: {_B: [{y: \"u\"}, {y: \"u\"}]}) { id } }",
                json!({}),
            )
            .await;
            assert_eq!(code(&err), "UNIQUE_VIOLATION", "control: `a`'s _B.y is unique: {err}");
        }
        (first, second) => {
            for r in [first, second] {
                assert!(
                    matches!(r, Ok(_) | Err(TenancyError::Sdl(_) | TenancyError::BadName { .. })),
                    "only a names refusal is acceptable: {r:?}"
                );
            }
        }
    }
}

/// SQLite compares table names without regard to case (`"Lib__Book"` is `"lib__Book"`): apps
/// `lib` and `Lib` must still not share tables (or the second name be refused).
#[tokio::test]
async fn apps_whose_names_differ_only_in_case_never_share_tables() {
    let t = server().await;
    let store = &t.app.store;
    tenancy::publish(store, "lib", "v1", "type Book { title: String @unique }\n").await.unwrap();
    match tenancy::publish(store, "Lib", "v1", "type Book { title: String  pages: Int }\n").await {
        Err(TenancyError::BadName { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => {
            tenancy::create_instance(store, "lower.example", "lib", "v1", InstanceSettings::default()).await.unwrap();
            tenancy::create_instance(store, "upper.example", "Lib", "v1", InstanceSettings::default()).await.unwrap();
            t.app.registry.refresh().await.unwrap();
            // `Lib`'s Book.title is not @unique.
            let twice = "mutation { upsert(values: {Book: [{title: \"same\", pages: 1}, {title: \"same\", pages: 2}]}) { id } }";
            on_ok(&t, "upper.example", twice, json!({})).await;
            let err = on_err(
                &t,
                "lower.example",
                "mutation { upsert(values: {Book: [{title: \"u\"}, {title: \"u\"}]}) { id } }",
                json!({}),
            )
            .await;
            assert_eq!(code(&err), "UNIQUE_VIOLATION", "control: `lib`'s Book.title is unique: {err}");
        }
    }
}

/// Index names are `ix__<table>__<purpose>`: the value index of the list table
/// `lib__B__unique` and the @unique index of field `B.value` would both be
/// `ix__lib__B__unique__value`, and the second `CREATE ... IF NOT EXISTS` is silently skipped.
/// A release that adds the @unique field must still enforce it (or be refused).
#[tokio::test]
async fn unique_is_enforced_whatever_the_other_fields_are_called() {
    let t = server().await;
    let store = &t.app.store;
    tenancy::publish(store, "lib", "v1", "type B { unique: [String] }\n").await.unwrap();
    match tenancy::publish(store, "lib", "v2", "type B { unique: [String]  value: String @unique }\n").await {
        Err(TenancyError::Sdl(_)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => {
            tenancy::create_instance(store, "u.example", "lib", "v2", InstanceSettings::default()).await.unwrap();
            t.app.registry.refresh().await.unwrap();
            on_ok(
                &t,
                "u.example",
                "mutation { upsert(values: {B: [{value: \"same\", unique: [\"x\"]}]}) { id } }",
                json!({}),
            )
            .await;
            let err =
                on_err(&t, "u.example", "mutation { upsert(values: {B: [{value: \"same\"}]}) { id } }", json!({}))
                    .await;
            assert_eq!(code(&err), "UNIQUE_VIOLATION", "B.value is @unique: {err}");
            let data =
                on_ok(&t, "u.example", "{ find(type: B, arcql: \"value = 'same'\") { edges { cursor } } }", json!({}))
                    .await;
            assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 1, "{data}");
        }
    }
}

/// `serve` without `--schema`, from a directory with no `schema/` folder (an installed binary):
/// an empty registry gets the example schema built into the binary; a registry with instances
/// is served as it is, and the start-up message says which.
#[test]
fn serve_without_a_schema_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("reg.db").display());
    {
        let s = Server::start_in(Some(dir.path()), &["--database", &db], &[]);
        assert!(s.banner.iter().any(|l| l.contains("built-in example schema")), "{:?}", s.banner);
        let (status, body) =
            s.post(&json!({ "query": "mutation { upsert(values: {Book: [{title: \"Dune\"}]}) { id } }" }));
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    // A second app and instance through the command line; the next start serves the registry.
    let sdl = dir.path().join("notes.graphql");
    std::fs::write(&sdl, "type Note { text: String }").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .current_dir(dir.path())
            .args(args)
            .args(["--database", &db])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["release", "publish", "--app", "notes", "--name", "v1", sdl.to_str().unwrap()]);
    run(&["instance", "create", "--domain", "notes.example", "--app", "notes", "--release", "v1"]);
    let s = Server::start_in(Some(dir.path()), &["--database", &db], &[]);
    assert!(s.banner.iter().any(|l| l.contains("2 instance(s) of the registry")), "{:?}", s.banner);
    let (_, body) = common::process::post_to(
        &s.addr,
        "/graphql",
        &json!({ "query": "{ find(type: Book, arcql: \"*\") { edges { node { ... on Book { title } } } } }" }),
        &[],
    );
    assert_eq!(body["data"]["find"]["edges"][0]["node"]["title"], "Dune", "{body}");
    let (_, body) = common::process::post_to(
        &s.addr,
        "/graphql",
        &json!({ "query": "mutation { upsert(values: {Note: [{text: \"hi\"}]}) { id } }" }),
        &[("hypi-domain", "notes.example")],
    );
    assert!(body.get("errors").is_none(), "{body}");
}

/// A server whose instance `domain` runs app `lib` at release v1.
async fn serving_v1(domain: &str) -> TestApp {
    let t = server().await;
    tenancy::publish(&t.app.store, "lib", "v1", V1).await.unwrap();
    tenancy::create_instance(&t.app.store, domain, "lib", "v1", InstanceSettings::default()).await.unwrap();
    t.app.registry.refresh().await.unwrap();
    t
}

/// Publish v2 of `lib` and upgrade `domain` to it, through the admin API.
async fn upgrade_to_v2(t: &TestApp, domain: &str) {
    let (status, body) =
        admin(t, "POST", "/admin/releases", Some(json!({ "app": "lib", "name": "v2", "sdl": V2 })), Some(KEY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let upgrade = json!({ "domain": domain, "release": "v2" });
    let (status, body) = admin(t, "POST", "/admin/instances/upgrade", Some(upgrade), Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The operation cache: a repeated text is a hit (`GET /admin/caches`), a refusal is cached
/// per release and not carried over to the next one, and the entries of a release no instance
/// runs any more are dropped when an instance is upgraded.
#[tokio::test]
async fn the_operation_cache_follows_releases() {
    let t = serving_v1("oc.example").await;
    async fn operations(t: &TestApp) -> Value {
        admin(t, "GET", "/admin/caches", None, Some(KEY)).await.1["operations"].clone()
    }
    let base = operations(&t).await;

    let list = "{ find(type: Book, arcql: \"*\") { edges { cursor } } }";
    on_ok(&t, "oc.example", list, json!({})).await;
    on_ok(&t, "oc.example", list, json!({})).await;
    let new_field = "{ get(type: Book, id: \"b1\") { ... on Book { title subtitle } } }";
    on_err(&t, "oc.example", new_field, json!({})).await;
    let e = on_err(&t, "oc.example", new_field, json!({})).await;
    assert_eq!(code(&e), "GRAPHQL_VALIDATION", "{e}");
    let after = operations(&t).await;
    let delta = |k: &str| after[k].as_u64().unwrap() - base[k].as_u64().unwrap();
    assert_eq!((delta("hits"), delta("misses")), (2, 2), "{after}");
    assert_eq!(after["entries"].as_u64().unwrap(), base["entries"].as_u64().unwrap() + 2, "{after}");

    upgrade_to_v2(&t, "oc.example").await;
    let upgraded = operations(&t).await;
    assert_eq!(upgraded["entries"], base["entries"], "v1's entries are dropped: {upgraded}");
    // The text refused under v1 is valid under v2: the cached refusal was v1's only.
    let data = on_ok(&t, "oc.example", new_field, json!({})).await;
    assert_eq!(data["get"], Value::Null, "{data}");
}

/// A root field's read plan is made once per text and then shared by every request, whatever
/// its root arguments (the id, the ArcQL); a text whose selection a variable can change
/// (`@include(if: $v)`, a nested list's `first: $n`) plans every request, and each request gets
/// the selection its own variables ask for.
#[tokio::test]
async fn read_plans_are_made_once_per_text_unless_variables_shape_them() {
    let t = serving_v1("plans.example").await;
    let upsert = "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }";
    let books = json!({ "Book": [
        { "hypi": { "id": "b1" }, "title": "Dune", "price": 9.5, "tags": ["a", "b", "c"] },
        { "hypi": { "id": "b2" }, "title": "Emma", "price": 3.0, "tags": ["d"] }
    ] });
    on_ok(&t, "plans.example", upsert, json!({ "v": books })).await;
    async fn plans(t: &TestApp) -> (u64, u64) {
        let p = admin(t, "GET", "/admin/caches", None, Some(KEY)).await.1["operations"]["plans"].clone();
        (p["made"].as_u64().unwrap(), p["reused"].as_u64().unwrap())
    }
    let (made0, reused0) = plans(&t).await;

    let get = "query($id: String!) { get(type: Book, id: $id) { ... on Book { title } } }";
    let find = "query($q: String!) { find(type: Book, arcql: $q) { edges { node { ... on Book { title price } } } } }";
    for (id, title) in [("b1", "Dune"), ("b2", "Emma"), ("b1", "Dune")] {
        let data = on_ok(&t, "plans.example", get, json!({ "id": id })).await;
        assert_eq!(data["get"], json!({ "title": title }), "{data}");
    }
    for (q, n) in [("title = 'Dune'", 1), ("*", 2)] {
        let data = on_ok(&t, "plans.example", find, json!({ "q": q })).await;
        assert_eq!(data["find"]["edges"].as_array().unwrap().len(), n, "{data}");
    }
    let (made, reused) = plans(&t).await;
    assert_eq!((made - made0, reused - reused0), (2, 3), "one plan per text, reused by the later requests");

    // Variables below the root: planned per request, and each answer follows its variables.
    let shaped = "query($id: String!, $p: Boolean!, $n: Int) { get(type: Book, id: $id) { ... on Book { title price @include(if: $p) tags(first: $n) } } }";
    let with = on_ok(&t, "plans.example", shaped, json!({ "id": "b1", "p": true, "n": 2 })).await;
    assert_eq!(with["get"], json!({ "title": "Dune", "price": 9.5, "tags": ["a", "b"] }), "{with}");
    let without = on_ok(&t, "plans.example", shaped, json!({ "id": "b1", "p": false, "n": 1 })).await;
    assert_eq!(without["get"], json!({ "title": "Dune", "tags": ["a"] }), "{without}");
    assert_eq!(plans(&t).await, (made, reused), "a text shaped by its variables keeps no plan");
}

/// The filter cache: an ArcQL text is planned once per release and type whether it is sent by
/// `find`, `aggregate` or a bulk write; a refused text (a field v1 lacks) keeps its error, for
/// v1 only; upgrading the instance drops v1's plans, and v2 plans the text again.
#[tokio::test]
async fn the_filter_cache_plans_each_text_once_per_release() {
    let t = serving_v1("fc.example").await;
    let upsert = "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }";
    let books = json!({ "Book": [
        { "hypi": { "id": "b1" }, "title": "Dune", "price": 9.5 },
        { "hypi": { "id": "b2" }, "title": "Emma", "price": 3.0 }
    ] });
    on_ok(&t, "fc.example", upsert, json!({ "v": books })).await;
    async fn filters(t: &TestApp) -> Value {
        admin(t, "GET", "/admin/caches", None, Some(KEY)).await.1["filters"].clone()
    }
    let base = filters(&t).await;

    let find = "query($q: String!) { find(type: Book, arcql: $q) { edges { cursor } } }";
    let sum = "query($q: String) { aggregate { book(where: $q) { price { sum } } } }";
    for _ in 0..2 {
        let data = on_ok(&t, "fc.example", find, json!({ "q": "price > 5" })).await;
        assert_eq!(data["find"]["edges"], json!([{ "cursor": "b1" }]), "{data}");
    }
    let data = on_ok(&t, "fc.example", sum, json!({ "q": "price > 5" })).await;
    assert_eq!(data["aggregate"]["book"]["price"]["sum"], 9.5, "{data}");
    for _ in 0..2 {
        let e = on_err(&t, "fc.example", find, json!({ "q": "subtitle = 'x'" })).await;
        assert_eq!(code(&e), "UNKNOWN_FIELD", "{e}");
        assert!(e["message"].as_str().unwrap().contains("Book.subtitle"), "{e}");
    }
    let after = filters(&t).await;
    let delta = |k: &str| after[k].as_u64().unwrap() - base[k].as_u64().unwrap();
    assert_eq!((delta("misses"), delta("hits"), delta("entries")), (2, 3, 2), "{after}");

    upgrade_to_v2(&t, "fc.example").await;
    assert_eq!(filters(&t).await["entries"], base["entries"], "v1's plans are dropped");
    let data = on_ok(&t, "fc.example", find, json!({ "q": "subtitle = 'x'" })).await;
    assert_eq!(data["find"]["edges"], json!([]), "{data}");
}

/// A client sending long texts (a query padded past 64 KiB, a filter past 4 KiB) over and over
/// cannot push the short texts every other client sends out of the operation cache or the
/// filter cache: the long ones are answered, and compiled and planned per request, never kept.
#[tokio::test]
async fn long_texts_are_answered_without_pushing_others_out_of_the_caches() {
    let t = serving_v1("long.example").await;
    let figures = || (t.app.registry.operations.figures(), t.app.registry.filters.figures());
    let find = "query($q: String!) { find(type: Book, arcql: $q) { edges { cursor } } }";
    on_ok(&t, "long.example", find, json!({ "q": "price > 5" })).await;
    let (ops, filters) = figures();

    let long_query = format!("{find}\n#{}", "x".repeat(64 << 10));
    let long_filter = format!("price > 5 OR title = '{}'", "y".repeat(4 << 10));
    for _ in 0..3 {
        let data = on_ok(&t, "long.example", &long_query, json!({ "q": long_filter })).await;
        assert_eq!(data["find"]["edges"], json!([]), "{data}");
    }
    let (ops_after, filters_after) = figures();
    assert_eq!((ops_after.entries, filters_after.entries), (ops.entries, filters.entries), "nothing long was kept");
    assert_eq!((ops_after.evictions, filters_after.evictions), (ops.evictions, filters.evictions));
    on_ok(&t, "long.example", find, json!({ "q": "price > 5" })).await;
    let (ops_end, filters_end) = figures();
    assert_eq!(
        (ops_end.hits - ops_after.hits, filters_end.hits - filters_after.hits),
        (1, 1),
        "the short texts still hit"
    );
}
