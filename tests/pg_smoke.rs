#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn postgres_round_trip() {
    let Some(url) = pg::database_or_skip("postgres_round_trip").await else { return };
    let t = TestApp::at(EXAMPLE, None, arcbase::config::Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    let ids = t.upsert(json!({"Author": [{"name": "Ann", "age": 40, "tags": ["a", null, "b"], "booklist": [{"title": "x", "price": 2.5, "available": true}]}]})).await;
    let data = t.ok("query($id: String!) { get(type: Author, id: $id) { ... on Author { name age tags booklist { title price available } } } }", json!({"id": ids[0]})).await;
    assert_eq!(data["get"]["name"], "Ann");
    assert_eq!(data["get"]["tags"], json!(["a", null, "b"]));
    assert_eq!(data["get"]["booklist"][0]["available"], true);
    let data = t.ok("{ find(type: Book, arcql: \"title ~ 'X' AND price IN [2, 3)\") { edges { node { ... on Book { title } } } } }", json!({})).await;
    assert_eq!(data["find"]["edges"][0]["node"]["title"], "x");
}
