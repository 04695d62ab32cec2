//! The hyper bridge: objects of `@hyper` types follow into hyper's data and search services,
//! through the change feed. Built in (the same server's `/data` and `/search`, on the test
//! backend), and to a remote: a second `arcbase serve` with an admin key, reached over HTTP
//! with an app key's minted tokens, and refusing a wrong secret (the sync pauses and says why).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};

use common::process::{post_full, Server};
use common::TestApp;

const SDL: &str = r#"
type Book @hyper(search: ["title", "summary"], store: ["title", "year"]) {
  title: String!
  summary: String
  year: Int
  author: Author
  tags: [String]
}
type Author @hyper(search: ["name"]) {
  name: String!
}
type Note {
  text: String
}
"#;

async fn hyper_get(t: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let (s, v) = t.send(req).await;
    (s.as_u16(), v)
}

/// Poll until `f` is true (10 s).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(()) => return,
            Err(last) if start.elapsed() > Duration::from_secs(10) => panic!("waited 10 s for {what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_follow_into_the_builtin_data_and_search_services() {
    let t = TestApp::new(SDL).await;
    let app = t.engine().app.clone();
    let data = t
        .ok(
            "mutation { upsert(values: {Book: [{title: \"Dune\", summary: \"Spice and sand on Arrakis\", year: 1965, author: {name: \"Frank Herbert\"}, tags: [\"sf\"]}, {title: \"Emma\", summary: \"A matchmaker in Highbury\", year: 1815}], Note: [{text: \"not followed\"}]}) { id } }",
            json!({}),
        )
        .await;
    let ids: Vec<String> =
        data["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    let (dune, emma, note) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    let path = format!("/data/{app}/{dune}");
    eventually("the Book in the data service", || async {
        let (s, v) = hyper_get(&t, "GET", &path, None).await;
        if s == 200 {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    })
    .await;
    let (_, doc) = hyper_get(&t, "GET", &path, None).await;
    assert_eq!(doc["_id"], dune.as_str());
    assert_eq!(doc["type"], "Book");
    assert_eq!((doc["title"].clone(), doc["year"].clone()), (json!("Dune"), json!(1965)));
    assert!(doc["author"].as_str().is_some_and(|a| a.len() > 5), "a reference as the id it points at: {doc}");
    assert!(doc["updated"].is_string(), "{doc}");
    assert_eq!(doc["_v"], 1, "the version as _v: {doc}");
    let (s, _) = hyper_get(&t, "GET", &format!("/data/{app}/{note}"), None).await;
    assert_eq!(s, 404, "a type without @hyper is not followed");

    // Search: ranked, with the stored fields and the type (data goes first, search next).
    eventually("the Book in the search service", || async {
        let (_, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "arrakis" }))).await;
        if r["matches"][0]["id"] == dune.as_str() {
            Ok(())
        } else {
            Err(r.to_string())
        }
    })
    .await;
    let (s, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "arrakis" }))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["matches"][0]["id"], dune.as_str(), "{r}");
    assert_eq!(r["matches"][0]["title"], "Dune");
    assert_eq!(r["matches"][0]["type"], "Book");
    let (_, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "herbert" }))).await;
    let st = arcbase::hyper::bridge::status(&t.app.store).await.unwrap();
    assert_eq!(r["matches"][0]["type"], "Author", "{r} {st}");

    // The GraphQL search root field: ranked, filtered by ArcQL, paged.
    t.ok("mutation { upsert(values: {Book: [{title: \"Dune Messiah\", summary: \"Arrakis again\", year: 1969}, {title: \"Children of Dune\", summary: \"More spice\", year: 1976}]}) { id } }", json!({})).await;
    let q = "query($q: String!, $f: String, $first: Int, $after: String) { search(type: Book, query: $q, filter: $f, first: $first, after: $after) { edges { score cursor node { ... on Book { title year } } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let titles = |d: &Value| -> Vec<String> {
        d["search"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["title"].as_str().unwrap().to_string())
            .collect()
    };
    let mut got = Vec::new();
    // While the bridge indexes the new Books, two runs of one request may see different
    // indexes: the differential (cached vs fresh compile) waits until the polling is over.
    t.differential(false);
    for _ in 0..100 {
        let d = t.ok(q, json!({ "q": "dune" })).await;
        got = titles(&d);
        if got.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.differential(true);
    assert_eq!(got.len(), 3, "three Books have 'dune' in their title: {got:?}");
    let d = t.ok(q, json!({ "q": "arrakis spice" })).await;
    let edges = d["search"]["edges"].as_array().unwrap();
    assert_eq!(edges[0]["node"]["title"], "Dune", "both words rank first: {d}");
    assert!(edges.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()), "{d}");
    let d = t.ok(q, json!({ "q": "dune", "f": "year > 1966" })).await;
    let mut filtered = titles(&d);
    filtered.sort();
    assert_eq!(filtered, vec!["Children of Dune", "Dune Messiah"], "ArcQL filters the matches");
    let p1 = t.ok(q, json!({ "q": "dune", "first": 2 })).await;
    assert_eq!(p1["search"]["pageInfo"]["hasNextPage"], true, "{p1}");
    let after = p1["search"]["pageInfo"]["endCursor"].as_str().unwrap().to_string();
    let p2 = t.ok(q, json!({ "q": "dune", "first": 2, "after": after })).await;
    assert_eq!(titles(&p2).len(), 1, "{p2}");
    assert_eq!(p2["search"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(p2["search"]["pageInfo"]["hasPreviousPage"], true);
    let mut all = titles(&p1);
    all.extend(titles(&p2));
    all.sort();
    assert_eq!(all, vec!["Children of Dune", "Dune", "Dune Messiah"], "the pages cover the matches once");
    let e = t.err("{ search(type: Note, query: \"x\") { edges { cursor } } }", json!({})).await;
    assert!(e["message"].as_str().unwrap().contains("not searched"), "{e}");
    let e = t.err("{ search(type: Book, query: \"  \") { edges { cursor } } }", json!({})).await;
    assert!(e["message"].as_str().unwrap().contains("query"), "{e}");

    // An update, a trash, an untrash, a delete: each followed.
    t.ok(&format!("mutation {{ upsert(values: {{Book: [{{hypi: {{id: \"{emma}\"}}, title: \"Emma.\", summary: \"A novel of manners\"}}]}}) {{ id }} }}"), json!({})).await;
    eventually("the updated search document", || async {
        let (_, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "manners" }))).await;
        if r["matches"][0]["id"] == emma.as_str() {
            Ok(())
        } else {
            Err(r.to_string())
        }
    })
    .await;
    let (_, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "highbury" }))).await;
    assert!(r["matches"].as_array().unwrap().is_empty(), "the old text is gone: {r}");

    t.ok(&format!("mutation {{ trash(type: Book, arcql: \"hypi.id = '{dune}'\") }}"), json!({})).await;
    eventually("the trashed Book removed from data and search", || async {
        let (s, v) = hyper_get(&t, "GET", &path, None).await;
        let (_, r) = hyper_get(&t, "POST", &format!("/search/{app}/_query"), Some(json!({ "query": "arrakis" }))).await;
        let found = r["matches"].as_array().unwrap().iter().any(|m| m["id"] == dune.as_str());
        if s == 404 && !found {
            Ok(())
        } else {
            Err(format!("{s} {v} {r}"))
        }
    })
    .await;
    t.ok(&format!("mutation {{ untrash(type: Book, arcql: \"hypi.id = '{dune}'\") }}"), json!({})).await;
    eventually("the untrashed Book back", || async {
        let (s, v) = hyper_get(&t, "GET", &path, None).await;
        if s == 200 {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    })
    .await;
    t.ok(&format!("mutation {{ delete(type: Book, arcql: \"hypi.id = '{dune}'\") }}"), json!({})).await;
    eventually("the deleted Book removed", || async {
        let (s, v) = hyper_get(&t, "GET", &path, None).await;
        if s == 404 {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    })
    .await;

    // Where the sync stands (the same figures as `arcbase hyper status`), once the round
    // that sent the last change has moved the position.
    eventually("the position past the last change", || async {
        let (_, status) = hyper_get(&t, "GET", "/admin/hyper", None).await;
        if status["targets"][0]["behind"] == 0 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;
    let (s, status) = hyper_get(&t, "GET", "/admin/hyper", None).await;
    assert_eq!(s, 200, "{status}");
    let target = &status["targets"][0];
    assert_eq!(target["target"], "builtin", "{status}");
    assert_eq!(target["behind"], 0, "{status}");
    assert!(target["sent"].as_i64().unwrap() >= 8, "{status}");
    assert_eq!(target["dead"], 0, "{status}");
}

#[test]
fn the_directive_is_validated_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.graphql");
    std::fs::write(
        &bad,
        "type A @hyper(search: [\"n\", \"r\", \"missing\", \"tags\"], cash: true, mode: SOMETIMES) {\n  n: Int\n  r: B\n  tags: [String]\n}\ntype B { x: String }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arcbase")).args(["schema", "build"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "'n', which is not a single String",
        "'r', a reference",
        "'missing', which is not a field",
        "'tags', which is not a single String",
        "not cash",
        "mode is ATOMIC or NON_ATOMIC",
        "bad.graphql:1:",
    ] {
        assert!(err.contains(want), "the errors name {want:?}:\n{err}");
    }
    let good = dir.path().join("good.graphql");
    std::fs::write(&good, SDL).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arcbase")).args(["schema", "build"]).arg(&good).output().unwrap();
    let sdl = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        sdl.contains("type Book @hyper(data: true, search: [\"title\", \"summary\"], store: [\"title\", \"year\"]"),
        "the generated SDL shows the directive:\n{sdl}"
    );
}

fn key_create(db: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arcbase"))
        .args(["key", "create", "--domain", "default", "--database", db])
        .env("ARCBASE_JWT_SECRET", "bridge-test-secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["key"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
}

fn http_get(addr: &str, path: &str, auth: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {auth}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn hyper_status(db: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_arcbase")).args(["hyper", "status", "--database", db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait(what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(last) if start.elapsed() > Duration::from_secs(15) => panic!("waited 15 s for {what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn objects_follow_into_a_remote_hyper_server_with_minted_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // The remote: another arcbase, with an admin key, so every request needs a credential.
    let remote_db = format!("sqlite://{}", dir.path().join("remote.db").display());
    let remote_storage = dir.path().join("remote-storage").display().to_string();
    let admin = [("ARCBASE_ADMIN_KEY", "remote-admin"), ("ARCBASE_JWT_SECRET", "bridge-test-secret")];
    let remote = Server::start(&["--database", &remote_db, "--storage-dir", &remote_storage], &admin);
    let (key, secret) = key_create(&remote_db);

    let schema = dir.path().join("schema.graphql");
    std::fs::write(&schema, SDL).unwrap();
    let schema = schema.display().to_string();
    let local_db = common::backend_url(dir.path(), "local.db");
    let hyper = format!("http://{key}:{secret}@{}/books", remote.addr);
    let local = Server::start(&["--schema", &schema, "--database", &local_db, "--hyper", &hyper], &[]);

    let q = json!({ "query": "mutation { upsert(values: {Book: [{title: \"Dune\", summary: \"Spice\", year: 1965}, {title: \"Emma\", year: 1815}]}) { id } }" });
    let (status, _, body) = post_full(&local.addr, "/graphql", &q, &[]);
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> =
        body["data"]["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    for id in &ids {
        wait("the Book on the remote", || {
            let (s, v) = http_get(&remote.addr, &format!("/data/books/{id}"), "remote-admin");
            if s == 200 {
                Ok(())
            } else {
                Err(format!("{s} {v}"))
            }
        });
    }
    let (_, doc) = http_get(&remote.addr, &format!("/data/books/{}", ids[0]), "remote-admin");
    assert_eq!(
        (doc["type"].clone(), doc["title"].clone(), doc["year"].clone()),
        (json!("Book"), json!("Dune"), json!(1965))
    );
    let s = hyper_status(&local_db);
    let target = &s["targets"][0];
    assert_eq!(target["target"], format!("http://{}/books", remote.addr), "no credentials shown: {s}");
    assert!(!s.to_string().contains(&secret), "the secret never shows: {s}");
    wait("the sync caught up", || {
        let s = hyper_status(&local_db);
        if s["targets"][0]["behind"] == 0 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });

    // A deletion follows.
    let q = json!({ "query": format!("mutation {{ delete(type: Book, arcql: \"hypi.id = '{}'\") }}", ids[1]) });
    let (status, _, body) = post_full(&local.addr, "/graphql", &q, &[]);
    assert_eq!(status, 200, "{body}");
    wait("the deletion on the remote", || {
        let (s, v) = http_get(&remote.addr, &format!("/data/books/{}", ids[1]), "remote-admin");
        if s == 404 {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    });
    drop(local);

    // Wrong credentials: the sync pauses, says why, and loses nothing.
    let wrong_db = format!("sqlite://{}", dir.path().join("wrong.db").display());
    let hyper = format!("http://{key}:not-the-secret@{}/books", remote.addr);
    let wrong = Server::start(&["--schema", &schema, "--database", &wrong_db, "--hyper", &hyper], &[]);
    let q = json!({ "query": "mutation { upsert(values: {Book: [{title: \"Kept\"}]}) { id } }" });
    let (status, _, body) = post_full(&wrong.addr, "/graphql", &q, &[]);
    assert_eq!(status, 200, "{body}");
    wait("the pause", || {
        let s = hyper_status(&wrong_db);
        let t = &s["targets"][0];
        if t["paused"].as_str().is_some_and(|p| p.contains("401")) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let s = hyper_status(&wrong_db);
    assert!(s["targets"][0]["behind"].as_i64().unwrap() > 0, "nothing passed over: {s}");
}

/// `arcbase hyper resync`: a target that lost its documents gets them back from the local
/// objects; the walk resumes from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_rebuilds_a_target_and_resumes_from_its_checkpoint() {
    let t = TestApp::new(SDL).await;
    let app = t.engine().app.clone();
    let data = t
        .ok("mutation { upsert(values: {Book: [{title: \"A\"}, {title: \"B\"}, {title: \"C\"}], Note: [{text: \"n\"}]}) { id } }", json!({}))
        .await;
    let mut ids: Vec<String> =
        data["upsert"].as_array().unwrap().iter().take(3).map(|h| h["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    for id in &ids {
        let path = format!("/data/{app}/{id}");
        eventually("the first sync", || async {
            let (s, v) = hyper_get(&t, "GET", &path, None).await;
            if s == 200 {
                Ok(())
            } else {
                Err(format!("{s} {v}"))
            }
        })
        .await;
    }
    // The target loses everything.
    let (s, v) = hyper_get(&t, "DELETE", &format!("/data/{app}"), None).await;
    assert_eq!(s, 200, "{v}");
    let mut pages = Vec::new();
    let r = arcbase::hyper::bridge::resync(&t.app.store, Some("Book"), &mut |ty, domain, n| {
        pages.push(format!("{ty} {domain} {n}"))
    })
    .await
    .unwrap();
    assert_eq!(r["resync"][0]["queued"], 3, "{r}");
    assert_eq!(pages, vec!["Book default 3"]);
    for id in &ids {
        let path = format!("/data/{app}/{id}");
        eventually("the resynced Book", || async {
            let (s, v) = hyper_get(&t, "GET", &path, None).await;
            if s == 200 {
                Ok(())
            } else {
                Err(format!("{s} {v}"))
            }
        })
        .await;
    }
    // The queue empties once the round that sent them has recorded it.
    eventually("the resync queue empty", || async {
        let status = arcbase::hyper::bridge::status(&t.app.store).await.unwrap();
        if status["targets"][0]["resyncPending"] == 0 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;

    // An interrupted walk continues after its checkpoint.
    let d = t.app.store.dialect();
    t.app
        .store
        .execute(&arcbase::sql::hyper::sync::set_checkpoint(d, "builtin", "default", "Book", &ids[0]))
        .await
        .unwrap();
    let r = arcbase::hyper::bridge::resync(&t.app.store, Some("Book"), &mut |_, _, _| {}).await.unwrap();
    assert_eq!(r["resync"][0]["queued"], 2, "only the objects after the checkpoint: {r}");
    let e = arcbase::hyper::bridge::resync(&t.app.store, Some("Note"), &mut |_, _, _| {}).await.unwrap_err();
    assert!(e.contains("no instance serves a type 'Note' with @hyper"), "{e}");
}
