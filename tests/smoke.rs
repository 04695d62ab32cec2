mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn upsert_then_get() {
    let t = TestApp::new(EXAMPLE).await;
    let ids = t.upsert(json!({"Author": [{"name": "Ann", "age": 40}]})).await;
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) { ... on Author { name age hypi { id } } } }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(data["get"]["name"], "Ann");
    assert_eq!(data["get"]["hypi"]["id"], ids[0].as_str());
}
