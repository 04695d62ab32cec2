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

/// PostgreSQL: a reference index that an `@indices` set starting with the same field makes
/// redundant, made by an earlier arcbase, is found (`pg_indexes`) and dropped when a server
/// first serves the release; a second pass finds nothing to drop.
#[tokio::test]
async fn postgres_drops_a_redundant_reference_index_at_the_next_start() {
    let Some(url) = pg::database_or_skip("postgres_drops_a_redundant_reference_index_at_the_next_start").await else {
        return;
    };
    const SDL: &str = "type Member { name: String }
        type Message @indices(sets: [[\"account\"]]) { text: String account: Member }";
    let t = TestApp::at(SDL, None, arcbase::config::Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    let engine = t.engine();
    let (_, ty) = engine.model.type_by_name("Message").unwrap();
    let table = arcbase::sql::names::object_table(&engine.app, ty);
    let old = arcbase::sql::names::index_name(&table, "ref__account");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
    assert!(!has_old(&mut conn, &old).await);
    sqlx::query(&format!("CREATE INDEX \"{old}\" ON \"{table}\" (hypi_instance, account)"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(has_old(&mut conn, &old).await);
    assert_eq!(t.app.store.drop_redundant_indexes(&engine.app, &engine.model).await.unwrap(), 1);
    assert!(!has_old(&mut conn, &old).await);
    assert_eq!(t.app.store.drop_redundant_indexes(&engine.app, &engine.model).await.unwrap(), 0);
}

async fn has_old(conn: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_indexes WHERE indexname = $1")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
        == 1
}
