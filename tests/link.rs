//! `link` and `unlink` over HTTP (contract §3 link, unlink; §5 errors).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

const LINK: &str =
    "mutation($from: HypiMutationType!, $to: HypiMutationType!, $via: String!, $a: String!, $b: String!) {
    link(from: $from, to: $to, via: $via, whereFromID: $a, andToID: $b) }";
const UNLINK: &str =
    "mutation($from: HypiMutationType!, $to: HypiMutationType!, $via: String!, $a: String!, $b: String!) {
    unlink(from: $from, to: $to, via: $via, whereFromID: $a, andToID: $b) }";

fn args(from: &str, to: &str, via: &str, a: &str, b: &str) -> Value {
    json!({ "from": from, "to": to, "via": via, "a": a, "b": b })
}

async fn link(t: &TestApp, from: &str, to: &str, via: &str, a: &str, b: &str) {
    let data = t.ok(LINK, args(from, to, via, a, b)).await;
    assert_eq!(data["link"], true);
}

async fn unlink(t: &TestApp, from: &str, to: &str, via: &str, a: &str, b: &str) {
    let data = t.ok(UNLINK, args(from, to, via, a, b)).await;
    assert_eq!(data["unlink"], true);
}

async fn get(t: &TestApp, ty: &str, id: &str, sel: &str) -> Value {
    let q = format!("query($id: String!) {{ get(type: {ty}, id: $id) {{ ... on {ty} {{ {sel} }} }} }}");
    t.ok(&q, json!({ "id": id })).await["get"].clone()
}

/// The ids of an author's booklist, in order.
async fn booklist(t: &TestApp, author: &str) -> Vec<String> {
    let a = get(t, "Author", author, "booklist(first: 100) { hypi { id } }").await;
    a["booklist"].as_array().unwrap().iter().map(|b| b["hypi"]["id"].as_str().unwrap().to_string()).collect()
}

async fn bestbook(t: &TestApp, author: &str) -> Value {
    get(t, "Author", author, "bestbook { hypi { id } }").await["bestbook"]["hypi"]["id"].clone()
}

type Change = (String, String, String, String, i64);

async fn changes(t: &TestApp) -> Vec<Change> {
    t.changes().await
}

async fn rows(t: &TestApp, ty: &str) -> i64 {
    t.sql_int(&format!("SELECT COUNT(*) FROM \"default__{ty}\"")).await
}

/// An author and four books, written in one call.
async fn setup() -> (TestApp, String, Vec<String>) {
    let t = TestApp::new(EXAMPLE).await;
    let books =
        t.upsert(json!({ "Book": [{ "title": "B0" }, { "title": "B1" }, { "title": "B2" }, { "title": "B3" }] })).await;
    let author = t.upsert(json!({ "Author": [{ "name": "Ann" }] })).await.remove(0);
    (t, author, books)
}

#[tokio::test]
async fn one_to_one_link_sets_and_replaces_the_target() {
    let (t, a, b) = setup().await;
    link(&t, "Author", "Book", "bestbook", &a, &b[0]).await;
    assert_eq!(bestbook(&t, &a).await, b[0].as_str());
    link(&t, "Author", "Book", "bestbook", &a, &b[1]).await;
    assert_eq!(bestbook(&t, &a).await, b[1].as_str());
    // The old target is not deleted, and nothing else changed.
    assert_eq!(get(&t, "Book", &b[0], "title").await, json!({ "title": "B0" }));
    assert_eq!(get(&t, "Author", &a, "name booklist { title }").await, json!({ "name": "Ann", "booklist": [] }));
    assert_eq!(rows(&t, "Book").await, 4);
    // The reverse reference Book.author works the same way.
    link(&t, "Book", "Author", "author", &b[2], &a).await;
    assert_eq!(get(&t, "Book", &b[2], "author { name }").await, json!({ "author": { "name": "Ann" } }));
}

#[tokio::test]
async fn list_link_appends_and_is_idempotent() {
    let (t, a, b) = setup().await;
    link(&t, "Author", "Book", "booklist", &a, &b[2]).await;
    link(&t, "Author", "Book", "booklist", &a, &b[0]).await;
    link(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    assert_eq!(booklist(&t, &a).await, [b[2].clone(), b[0].clone(), b[1].clone()]);
    // Linking again changes nothing: no duplicate, no reordering.
    link(&t, "Author", "Book", "booklist", &a, &b[0]).await;
    assert_eq!(booklist(&t, &a).await, [b[2].clone(), b[0].clone(), b[1].clone()]);
    // After links made by upsert, link still appends at the end.
    t.upsert(json!({ "Author": [{ "hypi": { "id": a }, "booklist": [{ "hypi": { "id": b[3] } }] }] })).await;
    let other = t.upsert(json!({ "Book": [{ "title": "B4" }] })).await.remove(0);
    link(&t, "Author", "Book", "booklist", &a, &other).await;
    assert_eq!(booklist(&t, &a).await, [b[2].clone(), b[0].clone(), b[1].clone(), b[3].clone(), other]);
}

#[tokio::test]
async fn unlink_on_one_to_one_sets_null() {
    let (t, a, b) = setup().await;
    link(&t, "Author", "Book", "bestbook", &a, &b[0]).await;
    // Unlinking another book than the current one leaves the reference alone.
    unlink(&t, "Author", "Book", "bestbook", &a, &b[1]).await;
    assert_eq!(bestbook(&t, &a).await, b[0].as_str());
    unlink(&t, "Author", "Book", "bestbook", &a, &b[0]).await;
    assert_eq!(get(&t, "Author", &a, "name bestbook { title }").await, json!({ "name": "Ann", "bestbook": null }));
    assert_eq!(get(&t, "Book", &b[0], "title").await, json!({ "title": "B0" }));
    assert_eq!(rows(&t, "Book").await, 4);
}

#[tokio::test]
async fn unlink_on_a_list_removes_only_that_element() {
    let (t, a, b) = setup().await;
    for id in &b {
        link(&t, "Author", "Book", "booklist", &a, id).await;
    }
    unlink(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    assert_eq!(booklist(&t, &a).await, [b[0].clone(), b[2].clone(), b[3].clone()]);
    // Unlinking what is not linked is harmless.
    unlink(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    assert_eq!(booklist(&t, &a).await, [b[0].clone(), b[2].clone(), b[3].clone()]);
    // Relinking appends at the end.
    link(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    assert_eq!(booklist(&t, &a).await, [b[0].clone(), b[2].clone(), b[3].clone(), b[1].clone()]);
    // Neither operation deletes an object.
    assert_eq!(get(&t, "Book", &b[1], "title").await, json!({ "title": "B1" }));
    assert_eq!(rows(&t, "Book").await, 4);
    // Another author's list is untouched by this author's unlink.
    let other =
        t.upsert(json!({ "Author": [{ "name": "Bob", "booklist": [{ "hypi": { "id": b[0] } }] }] })).await.remove(0);
    unlink(&t, "Author", "Book", "booklist", &a, &b[0]).await;
    assert_eq!(booklist(&t, &other).await, [b[0].clone()]);
    assert_eq!(booklist(&t, &a).await, [b[2].clone(), b[3].clone(), b[1].clone()]);
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let (t, a, b) = setup().await;
    let feed = changes(&t).await;
    for q in [LINK, UNLINK] {
        for (from_id, to_id, missing) in [("nobody", b[0].as_str(), "nobody"), (a.as_str(), "nothing", "nothing")] {
            for via in ["bestbook", "booklist"] {
                let err = t.err(q, args("Author", "Book", via, from_id, to_id)).await;
                assert_eq!(code(&err), "NOT_FOUND", "{via}: {err}");
                assert!(err["message"].as_str().unwrap().contains(missing), "{err}");
            }
        }
        // An id of the wrong type does not exist as that type.
        let err = t.err(q, args("Author", "Book", "booklist", &a, &a)).await;
        assert_eq!(code(&err), "NOT_FOUND", "{err}");
        let err = t.err(q, args("Author", "Book", "booklist", &b[0], &b[1])).await;
        assert_eq!(code(&err), "NOT_FOUND", "{err}");
    }
    assert_eq!(
        get(&t, "Author", &a, "bestbook { title } booklist { title }").await,
        json!({ "bestbook": null, "booklist": [] })
    );
    assert_eq!(changes(&t).await, feed, "a failed link writes no change row");
}

#[tokio::test]
async fn via_must_be_a_reference_from_from_to_to() {
    let (t, a, b) = setup().await;
    for q in [LINK, UNLINK] {
        // A reference, but to Book, not to Author.
        let err = t.err(q, args("Author", "Author", "bestbook", &a, &a)).await;
        assert_eq!(code(&err), "VALIDATION", "{err}");
        assert!(err["message"].as_str().unwrap().contains("Author.bestbook"), "{err}");
        // A scalar field and a scalar list.
        let err = t.err(q, args("Author", "Book", "name", &a, &b[0])).await;
        assert_eq!(code(&err), "VALIDATION", "{err}");
        let err = t.err(q, args("Author", "Book", "tags", &a, &b[0])).await;
        assert_eq!(code(&err), "VALIDATION", "{err}");
        // A field of the target type, not of `from`.
        let err = t.err(q, args("Author", "Book", "author", &a, &b[0])).await;
        assert_eq!(code(&err), "UNKNOWN_FIELD", "{err}");
        let err = t.err(q, args("Author", "Book", "nosuchfield", &a, &b[0])).await;
        assert_eq!(code(&err), "UNKNOWN_FIELD", "{err}");
        assert!(err["message"].as_str().unwrap().contains("nosuchfield"), "{err}");
        // `hypi` is not a reference either.
        let err = t.err(q, args("Author", "Book", "hypi", &a, &b[0])).await;
        assert!(["VALIDATION", "UNKNOWN_FIELD"].contains(&code(&err)), "{err}");
    }
    assert_eq!(
        get(&t, "Author", &a, "name bestbook { title } booklist { title }").await,
        json!({ "name": "Ann", "bestbook": null, "booklist": [] })
    );
}

#[tokio::test]
async fn link_and_unlink_of_trashed_objects_are_not_found() {
    let (t, a, b) = setup().await;
    link(&t, "Author", "Book", "booklist", &a, &b[0]).await;
    t.sql(
        "UPDATE \"default__Book\" SET hypi_trashed = '2020-01-01T00:00:00.000Z' WHERE hypi_id = ?",
        vec![arcbase::sql::SqlValue::Text(b[1].clone())],
    )
    .await;
    let err = t.err(LINK, args("Author", "Book", "booklist", &a, &b[1])).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    let err = t.err(LINK, args("Author", "Book", "bestbook", &a, &b[1])).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    assert_eq!(booklist(&t, &a).await, [b[0].clone()]);
}

#[tokio::test]
async fn each_link_and_unlink_writes_a_change_row() {
    let (t, a, b) = setup().await;
    let start = changes(&t).await.len();
    link(&t, "Author", "Book", "bestbook", &a, &b[0]).await;
    link(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    unlink(&t, "Author", "Book", "booklist", &a, &b[1]).await;
    unlink(&t, "Author", "Book", "bestbook", &a, &b[0]).await;
    let feed = changes(&t).await;
    let row = |op: &str, v: i64| ("default".to_string(), "Author".to_string(), a.clone(), op.to_string(), v);
    assert_eq!(feed[start..], [row("link", 2), row("link", 3), row("unlink", 4), row("unlink", 5)]);

    // The version the feed reports is the object's own: an upsert after it continues from it.
    t.upsert(json!({ "Author": [{ "hypi": { "id": a }, "age": 1 }] })).await;
    assert_eq!(changes(&t).await.last().unwrap(), &row("update", 6));

    // Links also move `updated`.
    let old = "2001-02-03T04:05:06.789Z";
    t.sql(
        "UPDATE \"default__Author\" SET hypi_updated = ? WHERE hypi_id = ?",
        vec![arcbase::sql::SqlValue::Text(old.into()), arcbase::sql::SqlValue::Text(a.clone())],
    )
    .await;
    link(&t, "Author", "Book", "booklist", &a, &b[2]).await;
    let updated = get(&t, "Author", &a, "hypi { updated }").await["hypi"]["updated"].as_str().unwrap().to_string();
    assert!(updated.as_str() > old, "{updated}");
}
