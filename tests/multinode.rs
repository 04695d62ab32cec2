//! Several arcbase nodes on one PostgreSQL database: simultaneous start (migrations and DDL
//! under an advisory lock), writes through one node read through the other, and concurrent
//! clients that must lose no update and create no duplicates. Runs under plain `cargo test`
//! with a throwaway cluster; skipped loudly without PostgreSQL, and fails under CI=true.
#![allow(clippy::unwrap_used)]

mod common;
use common::process::Server;
use common::*;
use serde_json::json;

const SCHEMA: &str = "type Counter { name: String  f0: Int f1: Int f2: Int f3: Int f4: Int f5: Int f6: Int f7: Int }\n";

fn schema_file(dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("schema.graphql");
    std::fs::write(&p, SCHEMA).unwrap();
    p.to_string_lossy().into_owned()
}

fn two_nodes(url: &str, schema: &str) -> (Server, Server) {
    // Started together: both run migrations and DDL against the same empty database.
    let args = ["--schema", schema, "--database", url];
    let a = std::thread::spawn({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    });
    let b = Server::start(&args, &[]);
    (a.join().unwrap(), b)
}

#[test]
fn two_nodes_share_one_database() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(url) = rt.block_on(pg::database_or_skip("two_nodes_share_one_database")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(&dir);
    let (a, b) = two_nodes(&url, &schema);

    // A write through one node is read through the other.
    let (status, body) = a.post(
        &json!({"query": "mutation { upsert(values: {Counter: [{hypi: {id: \"c\"}, name: \"x\", f0: 0}]}) { id } }"}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let (_, body) = b.post(&json!({"query": "{ get(type: Counter, id: \"c\") { ... on Counter { name f0 } } }"}));
    assert_eq!(body["data"]["get"]["name"], "x", "{body}");

    // Eight clients, four per node, each updating only its own field 25 times: no update is lost.
    let rounds = 25;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr.clone() } else { b.addr.clone() };
            std::thread::spawn(move || {
                for n in 1..=rounds {
                    let q = format!(
                        "mutation {{ upsert(values: {{Counter: [{{hypi: {{id: \"c\"}}, f{i}: {n}}}]}}) {{ id }} }}"
                    );
                    let (status, body) = common::process::post(&addr, &json!({ "query": q }));
                    assert_eq!(status, 200, "{body}");
                    assert!(body.get("errors").is_none(), "{body}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (_, body) = a.post(
        &json!({"query": "{ get(type: Counter, id: \"c\") { ... on Counter { name f0 f1 f2 f3 f4 f5 f6 f7 } } }"}),
    );
    let got = &body["data"]["get"];
    assert_eq!(got["name"], "x");
    for i in 0..8 {
        assert_eq!(got[format!("f{i}")], rounds, "field f{i} lost an update: {got}");
    }

    // Eight clients creating the same new id at once: exactly one object, no 5xx, no error.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr.clone() } else { b.addr.clone() };
            std::thread::spawn(move || {
                let q = format!("mutation {{ upsert(values: {{Counter: [{{hypi: {{id: \"same\"}}, name: \"n{i}\", f{i}: 1}}]}}) {{ id }} }}");
                common::process::post(&addr, &json!({ "query": q }))
            })
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert!(status < 500, "{status} {body}");
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["upsert"][0]["id"], "same");
    }
    let (_, body) = b.post(&json!({"query": "{ find(type: Counter, arcql: \"hypi.id = 'same'\") { edges { node { ... on Counter { f0 f1 f2 f3 f4 f5 f6 f7 } } } } }"}));
    let edges = body["data"]["find"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{body}");
    for i in 0..8 {
        assert_eq!(edges[0]["node"][format!("f{i}")], 1, "every creator's field survives: {body}");
    }
}

/// A release published and an instance created through one node are served by the other
/// within 2 seconds (it polls the registry version).
#[test]
fn registry_changes_reach_every_node_within_two_seconds() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(url) = rt.block_on(pg::database_or_skip("registry_changes_reach_every_node_within_two_seconds")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(&dir);
    let (a, b) = two_nodes(&url, &schema);
    let sdl = "type Ticket { title: String }";
    let (status, body) =
        common::process::post_to(&a.addr, "/admin/releases", &json!({"app": "desk", "name": "v1", "sdl": sdl}), &[]);
    assert_eq!(status, 201, "{body}");
    let (status, body) = common::process::post_to(
        &a.addr,
        "/admin/instances",
        &json!({"domain": "acme", "app": "desk", "release": "v1"}),
        &[],
    );
    assert_eq!(status, 201, "{body}");
    let started = std::time::Instant::now();
    let query = json!({"query": "mutation { upsert(values: {Ticket: [{title: \"t\"}]}) { id instanceId } }"});
    loop {
        let (status, body) = common::process::post_to(&b.addr, "/graphql", &query, &[("hypi-domain", "acme")]);
        if status == 200 && body.get("errors").is_none() {
            assert_eq!(body["data"]["upsert"][0]["instanceId"], "acme");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "node B still answers {status} {body}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test]
async fn statement_timeout_is_applied() {
    let Some(url) = pg::database_or_skip("statement_timeout_is_applied").await else { return };
    let t = TestApp::at(EXAMPLE, None, arcbase::config::Limits::default(), tempfile::tempdir().unwrap(), &url).await;
    assert_eq!(t.app.store.statement_timeout().await.unwrap().as_deref(), Some("5s"));
    // A statement over the limit is cancelled, and reported as an internal error, not a hang.
    let err =
        t.app.store.fetch_rows(&arcbase::sql::Sql::raw(arcbase::sql::Dialect::Postgres, "SELECT pg_sleep(6)")).await;
    assert!(err.is_err(), "pg_sleep(6) must hit the 5 s statement timeout");
}
