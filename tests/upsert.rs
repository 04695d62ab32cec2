//! `upsert` and `get` over HTTP: one test per rule of the contract (§3 upsert, get; §5 errors).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

const UPSERT: &str =
    "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id impl created updated trashed createdBy instanceId } }";

/// A schema with one field of every scalar kind, for value validation.
const THING: &str = r#"
type Thing {
  n: Int
  big: Long
  data: Json
  when: DateTime
  flag: Boolean
  ratio: Float
  kind: Kind
  label: String
  code: String @unique
  codeName: String @unique
  nums: [Int]
  flags: [Boolean]
  kinds: [Kind]
  blobs: [Json]
  ratios: [Float]
  stamps: [DateTime]
}
enum Kind { A B }
"#;

async fn upsert_full(t: &TestApp, values: Value) -> Vec<Value> {
    t.ok(UPSERT, json!({ "v": values })).await["upsert"].as_array().unwrap().clone()
}

async fn upsert_err(t: &TestApp, values: Value) -> Value {
    t.err(UPSERT, json!({ "v": values })).await
}

/// `get(type: ty, id: id) { ... on ty { sel } }`.
async fn get(t: &TestApp, ty: &str, id: &str, sel: &str) -> Value {
    let q = format!("query($id: String!) {{ get(type: {ty}, id: $id) {{ ... on {ty} {{ {sel} }} }} }}");
    t.ok(&q, json!({ "id": id })).await["get"].clone()
}

/// Rows of the object table of `ty` (all instances, trashed included).
async fn rows(t: &TestApp, ty: &str) -> i64 {
    t.sql_int(&format!("SELECT COUNT(*) FROM \"default__{ty}\"")).await
}

type Change = (String, String, String, String, i64);

/// The change feed, in order.
async fn changes(t: &TestApp) -> Vec<Change> {
    t.changes().await
}

fn message(err: &Value) -> &str {
    err["message"].as_str().unwrap_or("")
}

fn is_ulid(id: &str) -> bool {
    const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    id.len() == 26 && id.chars().all(|c| CROCKFORD.contains(c)) && ulid::Ulid::from_string(id).is_ok()
}

fn is_datetime(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// ids: insert, client id, update

#[tokio::test]
async fn insert_without_id_gets_a_ulid() {
    let t = TestApp::new(EXAMPLE).await;
    let ids = t.upsert(json!({ "Author": [{ "name": "Ann" }, { "name": "Bob" }] })).await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert!(is_ulid(id), "not a ULID: {id}");
    }
    assert_ne!(ids[0], ids[1]);
    // Ids made in one call sort in creation order, even within one millisecond.
    let many: Vec<Value> = (0..25).map(|i| json!({ "name": format!("n{i}") })).collect();
    let many = t.upsert(json!({ "Author": many })).await;
    assert!(many.windows(2).all(|w| w[0] < w[1]), "{many:?}");
    assert!(ids[1] < many[0]);
    assert_eq!(
        get(&t, "Author", &ids[0], "name hypi { id }").await,
        json!({ "name": "Ann", "hypi": { "id": ids[0] } })
    );
    assert_eq!(get(&t, "Author", &ids[1], "name").await, json!({ "name": "Bob" }));
}

#[tokio::test]
async fn insert_with_client_id_uses_it() {
    let t = TestApp::new(EXAMPLE).await;
    let ids = t.upsert(json!({ "Author": [{ "hypi": { "id": "author-1" }, "name": "Ann" }] })).await;
    assert_eq!(ids, vec!["author-1"]);
    assert_eq!(
        get(&t, "Author", "author-1", "name hypi { id }").await,
        json!({ "name": "Ann", "hypi": { "id": "author-1" } })
    );
    assert_eq!(rows(&t, "Author").await, 1);
}

#[tokio::test]
async fn upsert_with_existing_id_updates() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t.upsert(json!({ "Author": [{ "name": "Ann", "age": 40 }] })).await.remove(0);
    let again = t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "name": "Anna", "age": 41 }] })).await;
    assert_eq!(again, vec![id.clone()]);
    assert_eq!(get(&t, "Author", &id, "name age").await, json!({ "name": "Anna", "age": 41 }));
    assert_eq!(rows(&t, "Author").await, 1, "an update must not insert a second row");
}

// ---------------------------------------------------------------------------------------------
// partial update and nulls

#[tokio::test]
async fn partial_update_keeps_omitted_fields() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t
        .upsert(json!({ "Author": [{
            "name": "Ann", "age": 40, "tags": ["x"],
            "bestbook": { "title": "Best" }, "booklist": [{ "title": "L1" }]
        }] }))
        .await
        .remove(0);
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "age": 41 }] })).await;
    let a = get(&t, "Author", &id, "name age tags bestbook { title } booklist { title }").await;
    assert_eq!(
        a,
        json!({ "name": "Ann", "age": 41, "tags": ["x"], "bestbook": { "title": "Best" }, "booklist": [{ "title": "L1" }] })
    );
}

#[tokio::test]
async fn null_clears_a_field() {
    let t = TestApp::new(EXAMPLE).await;
    let id =
        t.upsert(json!({ "Author": [{ "name": "Ann", "age": 40, "bestbook": { "title": "Best" } }] })).await.remove(0);
    let book = get(&t, "Author", &id, "bestbook { hypi { id } }").await["bestbook"]["hypi"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "age": null, "bestbook": null }] })).await;
    assert_eq!(
        get(&t, "Author", &id, "name age bestbook { title }").await,
        json!({ "name": "Ann", "age": null, "bestbook": null })
    );
    // Clearing a reference does not delete its target.
    assert_eq!(get(&t, "Book", &book, "title").await, json!({ "title": "Best" }));
}

#[tokio::test]
async fn null_on_a_required_field_is_an_error_and_changes_nothing() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t.upsert(json!({ "Author": [{ "name": "Ann", "age": 40 }] })).await.remove(0);
    let before = changes(&t).await;
    let err = upsert_err(
        &t,
        json!({ "Author": [{ "hypi": { "id": id }, "age": 50 }, { "hypi": { "id": id }, "name": null }] }),
    )
    .await;
    assert_eq!(code(&err), "VALIDATION", "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    assert!(message(&err).contains("values.Author[1]"), "{err}");
    assert_eq!(get(&t, "Author", &id, "name age").await, json!({ "name": "Ann", "age": 40 }));
    assert_eq!(changes(&t).await, before);
}

#[tokio::test]
async fn insert_requires_every_non_null_field() {
    let t = TestApp::new(EXAMPLE).await;
    let err = upsert_err(&t, json!({ "Author": [{ "age": 3 }] })).await;
    assert_eq!(code(&err), "VALIDATION", "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    assert!(message(&err).contains("values.Author[0]"), "{err}");

    // A nested new object is checked too, and named by its place in the input.
    let err =
        upsert_err(&t, json!({ "Author": [{ "name": "Ann", "booklist": [{ "title": "ok" }, { "price": 1.5 }] }] }))
            .await;
    assert_eq!(code(&err), "VALIDATION", "{err}");
    assert!(message(&err).contains("Book.title"), "{err}");
    assert!(message(&err).contains("values.Author[0].booklist[1]"), "{err}");

    // An update with a client id that does not exist is an insert: required fields apply.
    let err = upsert_err(&t, json!({ "Author": [{ "hypi": { "id": "nobody" }, "age": 3 }] })).await;
    assert!(message(&err).contains("Author.name"), "{err}");

    assert_eq!(rows(&t, "Author").await, 0);
    assert_eq!(rows(&t, "Book").await, 0);
}

#[tokio::test]
async fn a_single_object_counts_as_a_list_of_one() {
    let t = TestApp::new(EXAMPLE).await;
    // GraphQL coerces a single input value to a list of one.
    let data = t
        .ok(
            r#"mutation { upsert(values: { Author: { name: "Solo", booklist: { title: "B" } } }) { id impl } }"#,
            json!({}),
        )
        .await;
    let id = data["upsert"][0]["id"].as_str().unwrap();
    assert_eq!(data["upsert"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&t, "Author", id, "name booklist { title }").await,
        json!({ "name": "Solo", "booklist": [{ "title": "B" }] })
    );
    let ids = t.upsert(json!({ "Book": { "title": "C" } })).await;
    assert_eq!(get(&t, "Book", &ids[0], "title").await, json!({ "title": "C" }));
}

// ---------------------------------------------------------------------------------------------
// nested objects

#[tokio::test]
async fn nested_object_without_id_is_created_and_linked() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t
        .upsert(json!({ "Author": [{
            "name": "Ann",
            "bestbook": { "title": "Best", "price": 9.5 },
            "booklist": [{ "title": "L1" }, { "title": "L2" }, { "title": "L3" }]
        }] }))
        .await
        .remove(0);
    let a = get(&t, "Author", &id, "bestbook { title price hypi { id } } booklist { title hypi { id } }").await;
    assert_eq!(a["bestbook"]["title"], "Best");
    assert_eq!(a["bestbook"]["price"], 9.5);
    assert_eq!(titles(&a["booklist"]), ["L1", "L2", "L3"]);
    assert_eq!(rows(&t, "Book").await, 4);
    // The nested objects are real objects of their own.
    let best = a["bestbook"]["hypi"]["id"].as_str().unwrap();
    assert!(is_ulid(best));
    assert_eq!(get(&t, "Book", best, "title").await, json!({ "title": "Best" }));
    let l2 = a["booklist"][1]["hypi"]["id"].as_str().unwrap();
    assert_eq!(get(&t, "Book", l2, "title").await, json!({ "title": "L2" }));
}

#[tokio::test]
async fn nested_object_with_only_an_id_links_the_existing_object() {
    let t = TestApp::new(EXAMPLE).await;
    let books = t.upsert(json!({ "Book": [{ "title": "B1", "price": 1.0 }, { "title": "B2" }] })).await;
    let id = t
        .upsert(json!({ "Author": [{
            "name": "Ann",
            "bestbook": { "hypi": { "id": books[0] } },
            "booklist": [{ "hypi": { "id": books[1] } }, { "hypi": { "id": books[0] } }]
        }] }))
        .await
        .remove(0);
    let a = get(&t, "Author", &id, "bestbook { title price hypi { id } } booklist { title hypi { id } }").await;
    assert_eq!(a["bestbook"], json!({ "title": "B1", "price": 1.0, "hypi": { "id": books[0] } }));
    assert_eq!(
        a["booklist"],
        json!([{ "title": "B2", "hypi": { "id": books[1] } }, { "title": "B1", "hypi": { "id": books[0] } }])
    );
    assert_eq!(rows(&t, "Book").await, 2, "linking must not create objects");
}

#[tokio::test]
async fn nested_link_to_a_missing_object_is_not_found() {
    let t = TestApp::new(EXAMPLE).await;
    let book = t.upsert(json!({ "Book": [{ "title": "B1" }] })).await.remove(0);
    let err =
        upsert_err(&t, json!({ "Author": [{ "name": "Ann", "bestbook": { "hypi": { "id": "no-such-book" } } }] }))
            .await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    assert!(message(&err).contains("no-such-book"), "{err}");
    assert!(message(&err).contains("values.Author[0].bestbook"), "{err}");

    let err = upsert_err(
        &t,
        json!({ "Author": [{ "name": "Ann", "booklist": [{ "hypi": { "id": book } }, { "hypi": { "id": "gone" } }] }] }),
    )
    .await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    assert!(message(&err).contains("values.Author[0].booklist[1]"), "{err}");

    // An id of an object of another type is not a Book.
    let author = t.upsert(json!({ "Author": [{ "name": "Zed" }] })).await.remove(0);
    let err = upsert_err(&t, json!({ "Author": [{ "name": "Ann", "bestbook": { "hypi": { "id": author } } }] })).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");

    // A trashed object cannot be linked either: it behaves like a missing one.
    t.sql(
        "UPDATE \"default__Book\" SET hypi_trashed = '2020-01-01T00:00:00.000Z' WHERE hypi_id = ?",
        vec![arcbase::sql::SqlValue::Text(book.clone())],
    )
    .await;
    let err = upsert_err(&t, json!({ "Author": [{ "name": "Ann", "booklist": [{ "hypi": { "id": book } }] }] })).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");

    assert_eq!(rows(&t, "Author").await, 1);
    assert_eq!(rows(&t, "Book").await, 1);
}

#[tokio::test]
async fn nested_object_with_id_and_fields_is_updated_and_linked() {
    let t = TestApp::new(EXAMPLE).await;
    let books = t.upsert(json!({ "Book": [{ "title": "B1", "pages": 10 }, { "title": "B2", "pages": 20 }] })).await;
    let id = t
        .upsert(json!({ "Author": [{
            "name": "Ann",
            "bestbook": { "hypi": { "id": books[0] }, "price": 9.5 },
            "booklist": [{ "hypi": { "id": books[1] }, "title": "B2 revised" }]
        }] }))
        .await
        .remove(0);
    let a = get(&t, "Author", &id, "bestbook { title price pages } booklist { title pages }").await;
    assert_eq!(a["bestbook"], json!({ "title": "B1", "price": 9.5, "pages": 10 }));
    assert_eq!(a["booklist"], json!([{ "title": "B2 revised", "pages": 20 }]));
    assert_eq!(get(&t, "Book", &books[1], "title").await, json!({ "title": "B2 revised" }));
    assert_eq!(rows(&t, "Book").await, 2);
}

// ---------------------------------------------------------------------------------------------
// lists

#[tokio::test]
async fn list_references_append_without_duplicates_in_order() {
    let t = TestApp::new(EXAMPLE).await;
    let b =
        t.upsert(json!({ "Book": [{ "title": "B0" }, { "title": "B1" }, { "title": "B2" }, { "title": "B3" }] })).await;
    let link = |i: usize| json!({ "hypi": { "id": b[i] } });
    let id = t.upsert(json!({ "Author": [{ "name": "Ann", "booklist": [link(0), link(1)] }] })).await.remove(0);
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "booklist": [link(1), link(2), link(0)] }] })).await;
    let a = get(&t, "Author", &id, "booklist { title }").await;
    assert_eq!(titles(&a["booklist"]), ["B0", "B1", "B2"]);

    // The same element twice in one call is linked once; a new one is appended after it.
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "booklist": [link(3), link(3), { "title": "B4" }] }] })).await;
    let a = get(&t, "Author", &id, "booklist { title }").await;
    assert_eq!(titles(&a["booklist"]), ["B0", "B1", "B2", "B3", "B4"]);
}

#[tokio::test]
async fn scalar_lists_append_in_order() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t.upsert(json!({ "Author": [{ "name": "Ann", "tags": ["b", "a"] }] })).await.remove(0);
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "tags": ["c", "a"] }] })).await;
    assert_eq!(get(&t, "Author", &id, "tags").await, json!({ "tags": ["b", "a", "c", "a"] }));

    let t2 = TestApp::new(THING).await;
    let id =
        t2.upsert(json!({ "Thing": [{ "nums": [3, 1, 2], "stamps": ["2020-07-09T10:00:00+02:00"] }] })).await.remove(0);
    t2.upsert(json!({ "Thing": [{ "hypi": { "id": id }, "nums": [0], "flags": [true, false], "kinds": ["B", "A"] }] }))
        .await;
    t2.upsert(
        json!({ "Thing": [{ "hypi": { "id": id }, "flags": [false], "blobs": [{ "k": null }, [1], "s", null] }] }),
    )
    .await;
    assert_eq!(
        get(&t2, "Thing", &id, "nums stamps flags kinds blobs").await,
        json!({ "nums": [3, 1, 2, 0], "stamps": ["2020-07-09T08:00:00.000Z"], "flags": [true, false, false],
                "kinds": ["B", "A"], "blobs": [{ "k": null }, [1], "s", null] })
    );
    // Paging a scalar list.
    assert_eq!(get(&t2, "Thing", &id, "nums(last: 2)").await, json!({ "nums": [2, 0] }));
    assert_eq!(get(&t2, "Thing", &id, "nums(first: 1)").await, json!({ "nums": [3] }));
}

// ---------------------------------------------------------------------------------------------
// order and atomicity

#[tokio::test]
async fn results_are_in_input_order() {
    let t = TestApp::new(EXAMPLE).await;
    let old_book = t.upsert(json!({ "Book": [{ "title": "old" }] })).await.remove(0);
    let old_author = t.upsert(json!({ "Author": [{ "name": "Old" }] })).await.remove(0);
    // Book is written before Author in the input although Author comes first in the schema
    // and in alphabetical order; the literal keeps the client's order.
    let q = format!(
        r#"mutation {{ upsert(values: {{
            Book: [{{ title: "new1" }}, {{ hypi: {{ id: "{old_book}" }}, title: "old2" }}, {{ title: "new3" }}],
            Author: [{{ hypi: {{ id: "{old_author}" }}, age: 7 }}, {{ name: "New" }}]
        }}) {{ id impl }} }}"#
    );
    let res = t.ok(&q, json!({})).await["upsert"].as_array().unwrap().clone();
    let impls: Vec<&str> = res.iter().map(|r| r["impl"].as_str().unwrap()).collect();
    assert_eq!(impls, ["Book", "Book", "Book", "Author", "Author"]);
    let ids: Vec<&str> = res.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids[1], old_book);
    assert_eq!(ids[3], old_author);
    assert_eq!(get(&t, "Book", ids[0], "title").await, json!({ "title": "new1" }));
    assert_eq!(get(&t, "Book", ids[1], "title").await, json!({ "title": "old2" }));
    assert_eq!(get(&t, "Book", ids[2], "title").await, json!({ "title": "new3" }));
    assert_eq!(get(&t, "Author", ids[3], "name age").await, json!({ "name": "Old", "age": 7 }));
    assert_eq!(get(&t, "Author", ids[4], "name").await, json!({ "name": "New" }));
    // Inserted ids sort in creation order (ULIDs), so new1 < new3 < New.
    assert!(ids[0] < ids[2] && ids[2] < ids[4], "{ids:?}");
}

/// Input order is the order of the JSON text of the variables, too. The server currently
/// parses the body into a `serde_json::Value` (`server::parse_body`), whose map sorts keys
/// because serde_json's `preserve_order` feature is off: Author then comes before Book.
#[tokio::test]
async fn results_are_in_input_order_with_variables() {
    let t = TestApp::new(EXAMPLE).await;
    let body = r#"{"query": "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { impl } }",
        "variables": {"v": {"Book": [{"title": "x"}], "Author": [{"name": "Y"}]}}}"#;
    let req = axum::http::Request::post("/graphql")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let (status, resp) = t.send(req).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["data"]["upsert"], json!([{ "impl": "Book" }, { "impl": "Author" }]), "{resp}");
}

#[tokio::test]
async fn a_failing_object_rolls_back_the_whole_call() {
    let t = TestApp::new(EXAMPLE).await;
    let existing = t.upsert(json!({ "Author": [{ "name": "Ann", "age": 40 }] })).await.remove(0);
    let (authors, books, feed) = (rows(&t, "Author").await, rows(&t, "Book").await, changes(&t).await);

    // The third object repeats a unique name: only the database can tell.
    let err = upsert_err(
        &t,
        json!({ "Author": [
            { "name": "Bob", "booklist": [{ "title": "nested" }], "tags": ["t"] },
            { "hypi": { "id": existing }, "age": 41, "bestbook": { "title": "new best" } },
            { "name": "Ann" }
        ] }),
    )
    .await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("values.Author[2]"), "{err}");
    assert_eq!(
        get(&t, "Author", &existing, "name age bestbook { title }").await,
        json!({ "name": "Ann", "age": 40, "bestbook": null })
    );
    assert_eq!(rows(&t, "Author").await, authors);
    assert_eq!(rows(&t, "Book").await, books);
    assert_eq!(changes(&t).await, feed, "a rolled-back upsert leaves no change row");

    // The third object lacks a required field: found only when it is about to be inserted.
    let err = upsert_err(
        &t,
        json!({ "Author": [
            { "hypi": { "id": "client-id" }, "name": "Cid" },
            { "hypi": { "id": existing }, "age": 42 },
            { "age": 1 }
        ] }),
    )
    .await;
    assert_eq!(code(&err), "VALIDATION", "{err}");
    assert!(message(&err).contains("values.Author[2]"), "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    assert_eq!(get(&t, "Author", "client-id", "name").await, Value::Null);
    assert_eq!(get(&t, "Author", &existing, "age").await, json!({ "age": 40 }));
    assert_eq!(rows(&t, "Author").await, authors);
    assert_eq!(changes(&t).await, feed);

    // After the failures the same store still writes normally.
    t.upsert(json!({ "Author": [{ "hypi": { "id": "client-id" }, "name": "Cid" }] })).await;
    assert_eq!(rows(&t, "Author").await, authors + 1);
}

#[tokio::test]
async fn at_most_25_top_level_objects_per_call() {
    let t = TestApp::new(EXAMPLE).await;
    let authors: Vec<Value> = (0..26).map(|i| json!({ "name": format!("a{i}") })).collect();
    let err = upsert_err(&t, json!({ "Author": authors })).await;
    assert_eq!(code(&err), "LIMIT_EXCEEDED", "{err}");
    assert_eq!(rows(&t, "Author").await, 0);

    // The cap counts every type together.
    let books: Vec<Value> = (0..13).map(|i| json!({ "title": format!("b{i}") })).collect();
    let err = upsert_err(&t, json!({ "Author": authors[..13].to_vec(), "Book": books })).await;
    assert_eq!(code(&err), "LIMIT_EXCEEDED", "{err}");
    assert_eq!(rows(&t, "Author").await, 0);
    assert_eq!(rows(&t, "Book").await, 0);
    assert!(changes(&t).await.is_empty());

    let ids = t.upsert(json!({ "Author": authors[..25].to_vec() })).await;
    assert_eq!(ids.len(), 25);
    assert_eq!(rows(&t, "Author").await, 25);
    assert_eq!(get(&t, "Author", &ids[24], "name").await, json!({ "name": "a24" }));
}

// ---------------------------------------------------------------------------------------------
// @unique

#[tokio::test]
async fn unique_violation_names_the_field_not_the_value() {
    let t = TestApp::new(EXAMPLE).await;
    let ann = t.upsert(json!({ "Author": [{ "name": "Ann" }, { "name": "Bob" }] })).await;
    let err = upsert_err(&t, json!({ "Author": [{ "name": "Ann" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    assert!(message(&err).contains("already taken") && !message(&err).contains("Ann"), "{err}");

    // Renaming onto a used value is refused too.
    let err = upsert_err(&t, json!({ "Author": [{ "hypi": { "id": ann[1] }, "name": "Ann" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    assert_eq!(get(&t, "Author", &ann[1], "name").await, json!({ "name": "Bob" }));

    // Re-saving an object with its own value is not a violation.
    t.upsert(json!({ "Author": [{ "hypi": { "id": ann[0] }, "name": "Ann" }] })).await;
}

#[tokio::test]
async fn unique_violation_within_one_call() {
    let t = TestApp::new(EXAMPLE).await;
    let err = upsert_err(&t, json!({ "Author": [{ "name": "Cy" }, { "name": "Dee" }, { "name": "Cy" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("Author.name"), "{err}");
    // The value itself is not repeated: the object holding it may be one the caller cannot see.
    assert!(message(&err).contains("already taken") && !message(&err).contains("Cy"), "{err}");
    assert!(message(&err).contains("values.Author[2]"), "{err}");
    assert_eq!(rows(&t, "Author").await, 0);

    let t = TestApp::new(THING).await;
    let err = upsert_err(&t, json!({ "Thing": [{ "code": "x1", "n": 1 }, { "code": "x1", "n": 2 }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("Thing.code"), "{err}");
    assert!(!message(&err).contains("x1"), "{err}");
    assert_eq!(rows(&t, "Thing").await, 0);
    // Nulls never collide.
    t.upsert(json!({ "Thing": [{ "n": 1 }, { "n": 2 }] })).await;

    // The error names the field whose index refused, not one whose name is a prefix of it.
    t.upsert(json!({ "Thing": [{ "code": "a", "codeName": "x" }] })).await;
    let err = upsert_err(&t, json!({ "Thing": [{ "code": "b", "codeName": "x" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    assert!(message(&err).contains("Thing.codeName"), "{err}");
    assert!(!message(&err).contains("'x'"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// value validation

/// Whether an error message names `Type.field`: arcbase's own checks write `Thing.n`; values
/// that GraphQL input coercion refuses first are named by their path, `values.Thing.0.n`.
fn names_field(msg: &str, qualified: &str) -> bool {
    let (ty, field) = qualified.split_once('.').unwrap();
    msg.contains(qualified) || msg.contains(&format!("values.{ty}.0.{field}"))
}

/// An upsert of one Thing that must fail naming `field`, sent as a variable and as a literal.
async fn thing_err(t: &TestApp, value: Value, field: &str) {
    let err = upsert_err(t, json!({ "Thing": [value.clone()] })).await;
    assert!(names_field(message(&err), field), "{value}: {err}");
    assert!(["VALIDATION", "GRAPHQL_VALIDATION"].contains(&code(&err)), "{value}: {err}");
    let mut literal = value.to_string();
    for key in ["n", "when", "kind", "flag", "ratio", "label", "big", "nums"] {
        literal = literal.replace(&format!("\"{key}\":"), &format!("{key}:"));
    }
    let body = t.gql(&format!("mutation {{ upsert(values: {{ Thing: [{literal}] }}) {{ id }} }}"), json!({})).await;
    let err = &body["errors"][0];
    assert!(names_field(message(err), field), "literal {literal}: {body}");
}

#[tokio::test]
async fn wrong_values_are_errors_naming_the_field() {
    let t = TestApp::new(THING).await;
    thing_err(&t, json!({ "n": "abc" }), "Thing.n").await;
    thing_err(&t, json!({ "n": 1.5 }), "Thing.n").await;
    thing_err(&t, json!({ "n": 2147483648_i64 }), "Thing.n").await;
    thing_err(&t, json!({ "n": -2147483649_i64 }), "Thing.n").await;
    thing_err(&t, json!({ "when": "yesterday" }), "Thing.when").await;
    thing_err(&t, json!({ "when": "2020-13-01T00:00:00Z" }), "Thing.when").await;
    thing_err(&t, json!({ "when": 12 }), "Thing.when").await;
    thing_err(&t, json!({ "flag": "yes" }), "Thing.flag").await;
    thing_err(&t, json!({ "ratio": "fast" }), "Thing.ratio").await;
    thing_err(&t, json!({ "label": 5 }), "Thing.label").await;
    thing_err(&t, json!({ "big": "12x" }), "Thing.big").await;
    thing_err(&t, json!({ "big": 1.5 }), "Thing.big").await;
    thing_err(&t, json!({ "big": 9_223_372_036_854_775_808_u64 }), "Thing.big").await;
    thing_err(&t, json!({ "nums": [1, "two"] }), "Thing.nums").await;
    assert_eq!(rows(&t, "Thing").await, 0);
}

#[tokio::test]
async fn unknown_enum_value_is_an_error_naming_the_field() {
    let t = TestApp::new(EXAMPLE).await;
    let err = upsert_err(&t, json!({ "Book": [{ "title": "x", "rating": "MEDIOCRE" }] })).await;
    assert!(names_field(message(&err), "Book.rating"), "{err}");
    assert!(message(&err).contains("MEDIOCRE"), "{err}");
    let body =
        t.gql(r#"mutation { upsert(values: { Book: [{ title: "x", rating: MEDIOCRE }] }) { id } }"#, json!({})).await;
    assert!(names_field(message(&body["errors"][0]), "Book.rating"), "{body}");
    assert!(message(&body["errors"][0]).contains("MEDIOCRE"), "{body}");
    let t2 = TestApp::new(THING).await;
    thing_err(&t2, json!({ "kind": "C" }), "Thing.kind").await;
    assert_eq!(rows(&t, "Book").await, 0);

    let id = t.upsert(json!({ "Book": [{ "title": "x", "rating": "GOOD" }] })).await.remove(0);
    assert_eq!(get(&t, "Book", &id, "rating").await, json!({ "rating": "GOOD" }));
}

#[tokio::test]
async fn long_accepts_64_bit_values() {
    let t = TestApp::new(THING).await;
    for big in [i64::MAX, i64::MIN, 9_007_199_254_740_993, 2_147_483_648] {
        let id = t.upsert(json!({ "Thing": [{ "big": big }] })).await.remove(0);
        assert_eq!(get(&t, "Thing", &id, "big").await, json!({ "big": big }));
    }
    let body = t.ok("mutation { upsert(values: { Thing: [{ big: 9223372036854775807 }] }) { id } }", json!({})).await;
    let id = body["upsert"][0]["id"].as_str().unwrap();
    assert_eq!(get(&t, "Thing", id, "big").await, json!({ "big": i64::MAX }));
}

#[tokio::test]
async fn json_values_come_back_intact() {
    let t = TestApp::new(THING).await;
    let values = [
        json!({ "a": [1, { "b": null, "c": "x\"y" }], "d": { "e": true, "f": 1.5 } }),
        json!([1, "two", { "three": [3] }, null, false]),
        json!("just a string"),
        json!(42),
        json!({}),
        json!([]),
    ];
    for v in values {
        let id = t.upsert(json!({ "Thing": [{ "data": v }] })).await.remove(0);
        assert_eq!(get(&t, "Thing", &id, "data").await, json!({ "data": v }));
    }
    // An object literal in the document.
    let body =
        t.ok(r#"mutation { upsert(values: { Thing: [{ data: { k: [1, 2], s: "v" } }] }) { id } }"#, json!({})).await;
    let id = body["upsert"][0]["id"].as_str().unwrap();
    assert_eq!(get(&t, "Thing", id, "data").await, json!({ "data": { "k": [1, 2], "s": "v" } }));
}

#[tokio::test]
async fn datetime_is_stored_utc_and_printed_with_milliseconds() {
    let t = TestApp::new(THING).await;
    let cases = [
        ("2020-07-09T10:00:00+02:00", "2020-07-09T08:00:00.000Z"),
        ("2020-07-09T08:00:00Z", "2020-07-09T08:00:00.000Z"),
        ("2020-07-09T08:00:00.5-01:30", "2020-07-09T09:30:00.500Z"),
        ("2020-07-09", "2020-07-09T00:00:00.000Z"),
    ];
    for (given, stored) in cases {
        let id = t.upsert(json!({ "Thing": [{ "when": given }] })).await.remove(0);
        assert_eq!(get(&t, "Thing", &id, "when").await, json!({ "when": stored }), "{given}");
    }
}

#[tokio::test]
async fn booleans_and_floats_round_trip() {
    let t = TestApp::new(THING).await;
    let ids = t
        .upsert(json!({ "Thing": [
            { "flag": true, "ratio": 0.1 },
            { "flag": false, "ratio": -2.5e-7 },
            { "flag": null, "ratio": 3 },
            { "ratio": 1.7976931348623157e308 }
        ] }))
        .await;
    assert_eq!(get(&t, "Thing", &ids[0], "flag ratio").await, json!({ "flag": true, "ratio": 0.1 }));
    assert_eq!(get(&t, "Thing", &ids[1], "flag ratio").await, json!({ "flag": false, "ratio": -2.5e-7 }));
    assert_eq!(get(&t, "Thing", &ids[2], "flag ratio").await, json!({ "flag": null, "ratio": 3.0 }));
    assert_eq!(get(&t, "Thing", &ids[3], "ratio").await, json!({ "ratio": 1.7976931348623157e308 }));
    // Every double comes back exactly, also in a scalar list.
    let exact = [1.2345678901234567, 0.30000000000000004, 123456789012345680.0, 5e-324, -0.0, 1e300];
    let id = t.upsert(json!({ "Thing": [{ "ratio": exact[0], "ratios": exact }] })).await.remove(0);
    let got = get(&t, "Thing", &id, "ratio ratios").await;
    assert_eq!(got["ratio"].as_f64(), Some(exact[0]), "{got}");
    let ratios: Vec<f64> = got["ratios"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(ratios, exact, "{got}");
    // Booleans in the example schema.
    let e = TestApp::new(EXAMPLE).await;
    let b =
        e.upsert(json!({ "Book": [{ "title": "t", "available": false }, { "title": "u", "available": true }] })).await;
    assert_eq!(get(&e, "Book", &b[0], "available").await, json!({ "available": false }));
    assert_eq!(get(&e, "Book", &b[1], "available").await, json!({ "available": true }));
}

/// Any double survives the trip. The SQL side prints the digits that read back exactly (see
/// `sql::read`), but serde_json without its `float_roundtrip` feature parses long decimals
/// 1 ulp off (it does not round-trip its own output): the request body and the read document
/// both go through it. Enable `serde_json = { features = ["float_roundtrip"] }` to run this.
#[tokio::test]
async fn floats_of_every_magnitude_round_trip_exactly() {
    let t = TestApp::new(THING).await;
    // Doubles of every magnitude, from bit patterns (deterministic xorshift).
    let mut rng = common::rng::Rng(0x9e37_79b9_7f4a_7c15);
    let mut many = Vec::new();
    while many.len() < 100 {
        let x = f64::from_bits(rng.next());
        if x.is_finite() {
            many.push(x);
        }
    }
    let id = t.upsert(json!({ "Thing": [{ "ratios": many }] })).await.remove(0);
    let got = get(&t, "Thing", &id, "ratios(first: 100)").await;
    let back: Vec<f64> = got["ratios"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(back, many);
}

// ---------------------------------------------------------------------------------------------
// hypi system fields

#[tokio::test]
async fn hypi_fields_are_set_by_the_system() {
    let t = TestApp::new(EXAMPLE).await;
    let res = upsert_full(&t, json!({ "Author": [{ "name": "Ann" }], "Book": [{ "title": "B" }] })).await;
    let (a, b) = (&res[0], &res[1]);
    assert_eq!(a["impl"], "Author");
    assert_eq!(b["impl"], "Book");
    for r in [a, b] {
        assert!(is_datetime(&r["created"]), "{r}");
        assert_eq!(r["created"], r["updated"], "{r}");
        assert_eq!(r["instanceId"], "default");
        assert_eq!(r["createdBy"], Value::Null, "dev mode acts as admin: no account");
        assert_eq!(r["trashed"], Value::Null);
    }
    let id = a["id"].as_str().unwrap();
    let got = get(&t, "Author", id, "hypi { id impl created updated trashed createdBy instanceId }").await;
    assert_eq!(
        got["hypi"],
        json!({ "id": id, "impl": "Author", "created": a["created"], "updated": a["updated"],
                "trashed": null, "createdBy": null, "instanceId": "default" })
    );
}

#[tokio::test]
async fn update_moves_updated_and_keeps_created() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t.upsert(json!({ "Author": [{ "name": "Ann" }] })).await.remove(0);
    // Put the object in the past, so the update's time is surely later.
    let old = "2001-02-03T04:05:06.789Z";
    t.sql(
        "UPDATE \"default__Author\" SET hypi_created = ?, hypi_updated = ? WHERE hypi_id = ?",
        vec![
            arcbase::sql::SqlValue::Text(old.into()),
            arcbase::sql::SqlValue::Text(old.into()),
            arcbase::sql::SqlValue::Text(id.clone()),
        ],
    )
    .await;
    let res = upsert_full(&t, json!({ "Author": [{ "hypi": { "id": id }, "age": 3 }] })).await;
    assert_eq!(res[0]["created"], old);
    assert!(is_datetime(&res[0]["updated"]));
    assert!(res[0]["updated"].as_str().unwrap() > old, "{}", res[0]);
    let got = get(&t, "Author", &id, "hypi { created updated }").await;
    assert_eq!(got["hypi"], json!({ "created": old, "updated": res[0]["updated"] }));

    // A nested update moves the nested object's `updated` too.
    let book = t.upsert(json!({ "Book": [{ "title": "B" }] })).await.remove(0);
    t.sql(
        "UPDATE \"default__Book\" SET hypi_created = ?, hypi_updated = ? WHERE hypi_id = ?",
        vec![
            arcbase::sql::SqlValue::Text(old.into()),
            arcbase::sql::SqlValue::Text(old.into()),
            arcbase::sql::SqlValue::Text(book.clone()),
        ],
    )
    .await;
    t.upsert(json!({ "Author": [{ "hypi": { "id": id }, "bestbook": { "hypi": { "id": book }, "price": 2.0 } }] }))
        .await;
    let got = get(&t, "Book", &book, "hypi { created updated }").await;
    assert_eq!(got["hypi"]["created"], old);
    assert!(got["hypi"]["updated"].as_str().unwrap() > old, "{got}");
}

// ---------------------------------------------------------------------------------------------
// change feed

#[tokio::test]
async fn every_written_object_appends_a_change_row() {
    let t = TestApp::new(EXAMPLE).await;
    let linked = t.upsert(json!({ "Book": [{ "title": "linked" }] })).await.remove(0);
    assert_eq!(changes(&t).await, vec![("default".into(), "Book".into(), linked.clone(), "insert".into(), 1)]);

    let res = upsert_full(
        &t,
        json!({ "Author": [{ "name": "Ann", "bestbook": { "title": "new" }, "booklist": [{ "hypi": { "id": linked } }] }] }),
    )
    .await;
    let author = res[0]["id"].as_str().unwrap().to_string();
    let best = get(&t, "Author", &author, "bestbook { hypi { id } }").await["bestbook"]["hypi"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let feed = changes(&t).await;
    // The nested new Book and the Author; linking an existing object writes nothing to it.
    assert_eq!(
        feed[1..],
        [
            ("default".to_string(), "Book".to_string(), best.clone(), "insert".to_string(), 1),
            ("default".to_string(), "Author".to_string(), author.clone(), "insert".to_string(), 1),
        ]
    );

    t.upsert(json!({ "Author": [{ "hypi": { "id": author }, "age": 5 }] })).await;
    t.upsert(json!({ "Author": [{ "hypi": { "id": author }, "age": 6 }] })).await;
    let feed = changes(&t).await;
    assert_eq!(feed.len(), 5);
    assert_eq!(feed[3], ("default".into(), "Author".into(), author.clone(), "update".into(), 2));
    assert_eq!(feed[4], ("default".into(), "Author".into(), author.clone(), "update".into(), 3));

    // A nested object with id and fields is updated: its own update row, then the parent's.
    t.upsert(json!({ "Author": [{ "hypi": { "id": author }, "bestbook": { "hypi": { "id": best }, "price": 3.0 } }] }))
        .await;
    let feed = changes(&t).await;
    assert_eq!(feed.len(), 7);
    assert_eq!(feed[5], ("default".into(), "Book".into(), best.clone(), "update".into(), 2));
    assert_eq!(feed[6], ("default".into(), "Author".into(), author.clone(), "update".into(), 4));

    // A failed call adds nothing, although its first object was written before the failure.
    let err = upsert_err(&t, json!({ "Book": [{ "title": "ok" }, { "price": 1.0 }] })).await;
    assert_eq!(code(&err), "VALIDATION");
    assert_eq!(changes(&t).await, feed);
}

// ---------------------------------------------------------------------------------------------
// get

#[tokio::test]
async fn get_returns_null_for_unknown_ids_and_other_types() {
    let t = TestApp::new(EXAMPLE).await;
    let author = t.upsert(json!({ "Author": [{ "name": "Ann" }] })).await.remove(0);
    assert_eq!(get(&t, "Author", "no-such-id", "name").await, Value::Null);
    assert_eq!(get(&t, "Book", &author, "title").await, Value::Null);
    let data = t
        .ok(
            "query($id: String!) { get(type: Book, id: $id) { ... on Author { name } ... on Book { title } } }",
            json!({ "id": author }),
        )
        .await;
    assert_eq!(data["get"], Value::Null);
    assert_eq!(get(&t, "Author", &author, "name").await, json!({ "name": "Ann" }));
}

// ---------------------------------------------------------------------------------------------
// self-references and cycles

const PERSON: &str = "type Person { name: String  friend: Person  friends: [Person!] }";

#[tokio::test]
async fn self_references_read_three_levels_deep() {
    let t = TestApp::new(PERSON).await;
    let p1 = t
        .upsert(json!({ "Person": [{
            "name": "p1",
            "friend": { "name": "p2", "friend": { "name": "p3", "friend": { "name": "p4" } } },
            "friends": [{ "name": "f1", "friends": [{ "name": "f11" }, { "name": "f12" }] }, { "name": "f2" }]
        }] }))
        .await
        .remove(0);
    let got = get(&t, "Person", &p1, "name friend { name friend { name friend { name friend { name } } } }").await;
    assert_eq!(
        got,
        json!({ "name": "p1", "friend": { "name": "p2", "friend": { "name": "p3", "friend": { "name": "p4", "friend": null } } } })
    );
    let got = get(&t, "Person", &p1, "friends { name friends { name friends { name } } }").await;
    assert_eq!(
        got,
        json!({ "friends": [
            { "name": "f1", "friends": [{ "name": "f11", "friends": [] }, { "name": "f12", "friends": [] }] },
            { "name": "f2", "friends": [] }
        ] })
    );

    // An object may reference itself, one-to-one and in a list.
    t.upsert(json!({ "Person": [{ "hypi": { "id": p1 }, "friend": { "hypi": { "id": p1 } }, "friends": [{ "hypi": { "id": p1 } }] }] }))
        .await;
    let got = get(
        &t,
        "Person",
        &p1,
        "name friend { name friend { name friend { name } } } friends { name friends { name } }",
    )
    .await;
    assert_eq!(got["friend"], json!({ "name": "p1", "friend": { "name": "p1", "friend": { "name": "p1" } } }));
    assert_eq!(got["friends"].as_array().unwrap().len(), 3);
    assert_eq!(got["friends"][2]["name"], "p1");
    assert_eq!(got["friends"][2]["friends"][2]["name"], "p1");
}

#[tokio::test]
async fn reference_cycles_between_types() {
    let t = TestApp::new("type A { name: String  b: B }\ntype B { name: String  a: A }").await;
    let a = t.upsert(json!({ "A": [{ "name": "a", "b": { "name": "b" } }] })).await.remove(0);
    let b = get(&t, "A", &a, "b { hypi { id } }").await["b"]["hypi"]["id"].as_str().unwrap().to_string();
    t.upsert(json!({ "B": [{ "hypi": { "id": b }, "a": { "hypi": { "id": a } } }] })).await;
    let got = get(&t, "A", &a, "name b { name a { name b { name a { hypi { id } } } } }").await;
    assert_eq!(
        got,
        json!({ "name": "a", "b": { "name": "b", "a": { "name": "a", "b": { "name": "b", "a": { "hypi": { "id": a } } } } } })
    );
    let got = get(&t, "B", &b, "a { b { a { name } } }").await;
    assert_eq!(got, json!({ "a": { "b": { "a": { "name": "a" } } } }));
}

// ---------------------------------------------------------------------------------------------
// fragments and aliases

#[tokio::test]
async fn fragments_on_the_union_and_named_fragments() {
    let t = TestApp::new(EXAMPLE).await;
    let id = t
        .upsert(json!({ "Author": [{
            "name": "Ann", "age": 40,
            "bestbook": { "title": "Best", "price": 5.0 },
            "booklist": [{ "title": "L1" }, { "title": "L2" }, { "title": "L3" }, { "title": "L4" }]
        }] }))
        .await
        .remove(0);

    // A Book fragment next to the Author one must not disturb the Author read.
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) {
                __typename
                ... on Author { name bestbook { title } }
                ... on Book { title price author { name } }
                ... on Author { age }
            } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["get"],
        json!({ "__typename": "Author", "name": "Ann", "bestbook": { "title": "Best" }, "age": 40 })
    );

    // Named fragments, nested and on the inner type.
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) { ...A ...B } }
             fragment A on Author { name bestbook { ...Bk } booklist(first: 2) { ...Bk } }
             fragment B on Book { title pages }
             fragment Bk on Book { title price }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["get"],
        json!({ "name": "Ann", "bestbook": { "title": "Best", "price": 5.0 },
                "booklist": [{ "title": "L1", "price": null }, { "title": "L2", "price": null }] })
    );

    // Aliases of one list with different pages and selections.
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) { ... on Author {
                head: booklist(first: 1) { title }
                tail: booklist(last: 2) { title hypi { impl } }
                all: booklist { title }
                booklist(first: 3) { title }
                n1: name
                b1: bestbook { title }
                b2: bestbook { price }
            } } }",
            json!({ "id": id }),
        )
        .await;
    let g = &data["get"];
    assert_eq!(titles(&g["head"]), ["L1"]);
    assert_eq!(
        g["tail"],
        json!([{ "title": "L3", "hypi": { "impl": "Book" } }, { "title": "L4", "hypi": { "impl": "Book" } }])
    );
    assert_eq!(titles(&g["all"]), ["L1", "L2", "L3", "L4"]);
    assert_eq!(titles(&g["booklist"]), ["L1", "L2", "L3"]);
    assert_eq!(g["n1"], "Ann");
    assert_eq!(g["b1"], json!({ "title": "Best" }));
    assert_eq!(g["b2"], json!({ "price": 5.0 }));
}

/// An upsert asks whether its named ids exist once per type and kind of access (one statement
/// each), writes each object with one statement and appends every change-feed row with one
/// more: 25 objects (12 updates, 13 new ones each linking an existing object) are 30
/// statements with `BEGIN` and `COMMIT`, where asking and recording per object made 77.
#[tokio::test]
async fn an_upsert_is_one_statement_per_object_written_and_a_few_more() {
    let t = TestApp::new(EXAMPLE).await;
    t.differential(false);
    let books =
        t.upsert(json!({ "Book": (0..12).map(|i| json!({ "title": format!("B{i}") })).collect::<Vec<_>>() })).await;
    let mut values: Vec<Value> = books.iter().map(|id| json!({ "hypi": { "id": id }, "price": 2.5 })).collect();
    for i in 0..13 {
        values.push(json!({ "title": format!("new {i}"), "author": { "hypi": { "id": "a-1" } } }));
    }
    t.upsert(json!({ "Author": [{ "hypi": { "id": "a-1" }, "name": "Ann" }] })).await;
    let before = t.statements();
    let ids = t.upsert(json!({ "Book": values })).await;
    assert_eq!(t.statements() - before, 30, "BEGIN, 2 existence checks, 25 writes, 1 feed insert, COMMIT");
    assert_eq!(ids.len(), 25);
    assert_eq!(&ids[..12], &books[..]);
    assert_eq!(get(&t, "Book", &books[3], "price").await, json!({ "price": 2.5 }));
    assert_eq!(
        get(&t, "Book", &ids[20], "title author { name }").await,
        json!({ "title": "new 8", "author": { "name": "Ann" } })
    );
    let feed = changes(&t).await;
    let last: Vec<(&str, &str)> = feed[feed.len() - 25..].iter().map(|c| (c.2.as_str(), c.3.as_str())).collect();
    let expected: Vec<(&str, &str)> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), if i < 12 { "update" } else { "insert" })).collect();
    assert_eq!(last, expected, "one change row per object, in input order");
}

/// Existence is asked for the whole call before anything is written, so what the call itself
/// writes must be seen by its later objects as if each had been asked on its own: the same id
/// twice (created, then updated), a nested link to an object an earlier object of the call
/// created; and what it learned up front still holds for objects it did not touch (a trashed
/// object cannot be linked next to objects the call writes, a missing one is created, a
/// trashed one named with fields is updated).
#[tokio::test]
async fn what_one_call_writes_is_seen_by_its_later_objects() {
    let t = TestApp::new(EXAMPLE).await;
    t.differential(false);
    // The same new id twice: the first creates it (required fields checked), the second updates.
    let ids = t
        .upsert(json!({ "Book": [
            { "hypi": { "id": "b-1" }, "title": "first" },
            { "hypi": { "id": "b-1" }, "price": 3.0 }
        ] }))
        .await;
    assert_eq!(ids, ["b-1", "b-1"]);
    assert_eq!(get(&t, "Book", "b-1", "title price").await, json!({ "title": "first", "price": 3.0 }));
    let ops: Vec<String> = changes(&t).await.iter().map(|c| c.3.clone()).collect();
    assert_eq!(ops[ops.len() - 2..], ["insert", "update"]);

    // A later object links, by id alone, a book an earlier object of the same call created.
    let ids = t
        .upsert(json!({ "Author": [
            { "name": "Ann", "bestbook": { "hypi": { "id": "b-2" }, "title": "made here" } },
            { "name": "Bob", "bestbook": { "hypi": { "id": "b-2" } }, "booklist": [{ "hypi": { "id": "b-2" } }] }
        ] }))
        .await;
    let bob = get(&t, "Author", &ids[1], "bestbook { title } booklist { title }").await;
    assert_eq!(bob, json!({ "bestbook": { "title": "made here" }, "booklist": [{ "title": "made here" }] }));

    // The second object of a call names a new id the first left alone: still created.
    let ids = t
        .upsert(json!({ "Book": [{ "hypi": { "id": "b-3" }, "title": "three" }, { "hypi": { "id": "b-4" }, "title": "four" }] }))
        .await;
    assert_eq!(ids, ["b-3", "b-4"]);

    // A trashed book cannot be linked, even next to objects the call writes.
    t.sql(
        "UPDATE \"default__Book\" SET hypi_trashed = '2020-01-01T00:00:00.000Z' WHERE hypi_id = ?",
        vec![arcbase::sql::SqlValue::Text("b-3".into())],
    )
    .await;
    let err = upsert_err(
        &t,
        json!({ "Author": [{ "name": "Cid", "bestbook": { "hypi": { "id": "b-4" }, "price": 1.0 } }, { "name": "Dee", "bestbook": { "hypi": { "id": "b-3" } } }] }),
    )
    .await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    assert!(message(&err).contains("values.Author[1].bestbook"), "{err}");
    assert_eq!(get(&t, "Book", "b-4", "price").await, json!({ "price": null }), "the failed call changed nothing");

    // An update of a trashed object still updates it (and it stays trashed), as on its own.
    t.upsert(json!({ "Book": [{ "hypi": { "id": "b-3" }, "price": 9.0 }] })).await;
    let rows = t
        .sql(
            "SELECT price, hypi_trashed FROM \"default__Book\" WHERE hypi_id = ?",
            vec![arcbase::sql::SqlValue::Text("b-3".into())],
        )
        .await;
    assert_eq!(rows[0][0], arcbase::sql::SqlValue::Real(9.0));
    assert!(rows[0][1] != arcbase::sql::SqlValue::Null, "still trashed");
}

/// Writers that update the same objects in opposite orders, at once: on PostgreSQL two such
/// transactions deadlocked (one was answered an error) until upserts locked their objects up
/// front in id order; it passes with `ops::retrying` off. Every write lands exactly once: the change feed holds one
/// update per write of each object, with consecutive versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_the_same_objects_in_opposite_orders_all_land() {
    let t = std::sync::Arc::new(TestApp::new("type Note { text: String }").await);
    let ids = t.upsert(json!({ "Note": [{ "text": "a" }, { "text": "b" }, { "text": "c" }] })).await;
    let (writers, rounds) = (4, 12);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (t, ids) = (t.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..rounds {
                let mut order = ids.clone();
                if (w + i) % 2 == 1 {
                    order.reverse();
                }
                let notes: Vec<Value> =
                    order.iter().map(|id| json!({ "hypi": { "id": id }, "text": format!("w{w} r{i}") })).collect();
                let body = t
                    .gql(
                        "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }",
                        json!({ "v": { "Note": notes } }),
                    )
                    .await;
                assert!(body.get("errors").is_none(), "writer {w}, round {i}: {body}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer finished without an error");
    }
    let changes = t.changes().await;
    for id in &ids {
        let versions: Vec<i64> = changes.iter().filter(|c| &c.2 == id).map(|c| c.4).collect();
        let want: Vec<i64> = (1..=(1 + writers * rounds) as i64).collect();
        assert_eq!(versions, want, "{id}: one change per write, versions in order");
    }
}

/// Writers that link objects to each other in both directions at once (`friends` lists): an
/// upsert holds the objects it changes and, adding a link row, needs a key-share lock on the
/// row it links to, which another upsert may be changing. The up-front lock must not conflict
/// with that (PostgreSQL: `FOR NO KEY UPDATE`, not `FOR UPDATE`, which deadlocked these).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_linking_objects_to_each_other_all_land() {
    let t = std::sync::Arc::new(TestApp::new("type User { name: String friends: [User] }").await);
    let ids = t.upsert(json!({ "User": (0..4).map(|i| json!({ "name": format!("u{i}") })).collect::<Vec<_>>() })).await;
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let (t, ids) = (t.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10usize {
                let (me, friend) = ((w + i) % ids.len(), (w + 2 * i + 1) % ids.len());
                let user = json!({ "hypi": { "id": ids[me] }, "name": format!("w{w} r{i}"),
                                   "friends": [{ "hypi": { "id": ids[friend] } }] });
                let body = t
                    .gql(
                        "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }",
                        json!({ "v": { "User": [user] } }),
                    )
                    .await;
                assert!(body.get("errors").is_none(), "writer {w}, round {i}: {body}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer finished without an error");
    }
}
