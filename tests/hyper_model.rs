//! The `@hyper` model's options on the built-in services (the test backend: SQLite, or
//! PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`): `count` (a counter kept in every write's
//! transaction, checked against `count(*)` after every step of random write sequences),
//! `cache` (each object under `<type>-<id>`, removed with it; the counter under
//! `<type>~count`), `notify` (one queue job per change, in order), and ATOMIC services (search
//! and notify visible the moment the mutation answers).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};

use common::TestApp;

const SDL: &str = r#"
type Book @hyper(search: ["title"], cache: true, count: true, notify: true, modes: {search: ATOMIC, notify: ATOMIC}) {
  title: String!
  year: Int
}
type Film @hyper(count: true, notify: true, data: false) {
  name: String
}
"#;

async fn call(t: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let (s, v) = t.send(req).await;
    (s.as_u16(), v)
}

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

async fn counts(t: &TestApp, type_name: &str) -> (i64, i64) {
    let q = format!(
        "{{ count(type: {type_name}) aggregate {{ {t}(where: \"*\") {{ hypi_id {{ count }} }} }} }}",
        t = type_name[..1].to_lowercase() + &type_name[1..]
    );
    let d = t.ok(&q, json!({})).await;
    (
        d["count"].as_i64().unwrap(),
        d["aggregate"][type_name[..1].to_lowercase() + &type_name[1..]]["hypi_id"]["count"].as_i64().unwrap(),
    )
}

/// The jobs waiting in the app's queue (it has no target, so they stay READY), oldest first.
async fn jobs(t: &TestApp, app: &str) -> Vec<Value> {
    let (s, v) = call(t, "GET", &format!("/queue/{app}?status=READY&limit=1000"), None).await;
    if s == 404 {
        return Vec::new();
    }
    assert_eq!(s, 200, "{v}");
    v["jobs"].as_array().unwrap().iter().map(|j| j["job"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_cache_notify_and_atomic_search_on_the_builtin_services() {
    let t = TestApp::new(SDL).await;
    let app = t.engine().app.clone();
    let ids = t.upsert(json!({ "Book": [{ "title": "Dune", "year": 1965 }, { "title": "Emma", "year": 1815 }] })).await;

    // ATOMIC search: found the moment the mutation answered, no waiting.
    let d =
        t.ok("{ search(type: Book, query: \"dune\") { edges { node { ... on Book { title } } } } }", json!({})).await;
    assert_eq!(d["search"]["edges"][0]["node"]["title"], "Dune", "{d}");
    // ATOMIC notify: one job per change, there already.
    let js = jobs(&t, &app).await;
    assert_eq!(js.len(), 2, "{js:?}");
    assert_eq!(
        (js[0]["action"].clone(), js[0]["type"].clone(), js[0]["id"].clone()),
        (json!("insert"), json!("Book"), json!(ids[0]))
    );
    assert_eq!(js[0]["version"], 1);
    assert!(js[0]["at"].is_string());
    // count: exact at once.
    assert_eq!(counts(&t, "Book").await, (2, 2));

    // cache: each object under book-<id>, the counter under book~count (followed by the bridge).
    let key = format!("/cache/{app}/book-{}", ids[0].to_lowercase());
    eventually("the Book in the cache", || async {
        let (s, v) = call(&t, "GET", &key, None).await;
        if s == 200 && v["title"] == "Dune" {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    })
    .await;
    let upd = json!({ "Book": [{ "hypi": { "id": ids[0] }, "title": "Dune Messiah" }] });
    t.upsert(upd).await;
    eventually("the updated Book in the cache", || async {
        let (s, v) = call(&t, "GET", &key, None).await;
        if s == 200 && v["title"] == "Dune Messiah" {
            Ok(())
        } else {
            Err(format!("{s} {v}"))
        }
    })
    .await;
    t.ok(&format!("mutation {{ trash(type: Book, arcql: \"hypi.id = '{}'\") }}", ids[0]), json!({})).await;
    assert_eq!(counts(&t, "Book").await, (1, 1), "a trashed object is not counted");
    eventually("the trashed Book out of the cache, the counter at 1", || async {
        let (s, v) = call(&t, "GET", &key, None).await;
        let (_, n) = call(&t, "GET", &format!("/cache/{app}/book~count"), None).await;
        if s == 404 && n == json!(1) {
            Ok(())
        } else {
            Err(format!("{s} {v} count {n}"))
        }
    })
    .await;
    // ATOMIC search follows the trash at once.
    let d = t.ok("{ search(type: Book, query: \"dune\") { edges { cursor } } }", json!({})).await;
    assert_eq!(d["search"]["edges"], json!([]), "{d}");
    let js = jobs(&t, &app).await;
    let actions: Vec<&str> = js.iter().map(|j| j["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["insert", "insert", "update", "trash"]);

    // Deleting a trashed object does not count twice; untrash counts again.
    t.ok(&format!("mutation {{ untrash(type: Book, arcql: \"hypi.id = '{}'\") }}", ids[0]), json!({})).await;
    assert_eq!(counts(&t, "Book").await, (2, 2));
    t.ok(&format!("mutation {{ trash(type: Book, arcql: \"hypi.id = '{}'\") }}", ids[0]), json!({})).await;
    t.ok("mutation { delete(type: Book, arcql: \"*\") }", json!({})).await;
    assert_eq!(counts(&t, "Book").await, (0, 0));

    // NON_ATOMIC notify: the bridge enqueues each change of a Film, in order.
    let f = t.upsert(json!({ "Film": [{ "name": "Alien" }] })).await;
    t.upsert(json!({ "Film": [{ "hypi": { "id": f[0] }, "name": "Aliens" }] })).await;
    t.ok(&format!("mutation {{ trash(type: Film, arcql: \"hypi.id = '{}'\") }}", f[0]), json!({})).await;
    eventually("three Film jobs", || async {
        let films: Vec<String> = jobs(&t, &app)
            .await
            .iter()
            .filter(|j| j["type"] == "Film")
            .map(|j| format!("{} {}", j["action"].as_str().unwrap(), j["version"]))
            .collect();
        if films == ["insert 1", "update 2", "trash 3"] {
            Ok(())
        } else {
            Err(format!("{films:?}"))
        }
    })
    .await;
    let (s, _) = call(&t, "GET", &format!("/data/{app}/{}", f[0]), None).await;
    assert_eq!(s, 404, "data: false keeps Films out of the data service");
}

/// The counter against `count(*)` and an in-memory model after every step of random
/// sequences of inserts, updates, trashes, untrashes and deletes (some of them batches,
/// some matching nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_follows_random_write_sequences() {
    let t = TestApp::new(SDL).await;
    let mut live: Vec<String> = Vec::new();
    let mut trashed: Vec<String> = Vec::new();
    let mut seed: u64 = 0x5eed_cafe;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    for step in 0..60 {
        let pick = rnd(6);
        let what = match pick {
            0 | 1 => {
                let n = 1 + rnd(3);
                let films: Vec<Value> = (0..n).map(|i| json!({ "name": format!("f{step}-{i}") })).collect();
                live.extend(t.upsert(json!({ "Film": films })).await);
                format!("insert {n}")
            }
            2 if !live.is_empty() => {
                let id = live[rnd(live.len())].clone();
                t.upsert(json!({ "Film": [{ "hypi": { "id": id }, "name": "renamed" }] })).await;
                "update".into()
            }
            3 if !live.is_empty() => {
                let id = live.remove(rnd(live.len()));
                t.ok(&format!("mutation {{ trash(type: Film, arcql: \"hypi.id = '{id}'\") }}"), json!({})).await;
                trashed.push(id);
                "trash".into()
            }
            4 if !trashed.is_empty() => {
                let id = trashed.remove(rnd(trashed.len()));
                t.ok(&format!("mutation {{ untrash(type: Film, arcql: \"hypi.id = '{id}'\") }}"), json!({})).await;
                live.push(id);
                "untrash".into()
            }
            _ => {
                // Delete a live and a trashed one together (either may be missing).
                let mut gone = Vec::new();
                if !live.is_empty() {
                    gone.push(live.remove(rnd(live.len())));
                }
                if !trashed.is_empty() {
                    gone.push(trashed.remove(rnd(trashed.len())));
                }
                let list = gone.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", ");
                let arcql =
                    if gone.is_empty() { "hypi.id = 'none'".to_string() } else { format!("hypi.id IN ({list})") };
                t.ok(&format!("mutation {{ delete(type: Film, arcql: \"{arcql}\") }}"), json!({})).await;
                format!("delete {}", gone.len())
            }
        };
        let (counter, counted) = counts(&t, "Film").await;
        assert_eq!((counter, counted), (live.len() as i64, live.len() as i64), "after step {step} ({what})");
    }
}

/// A caller that may read only its own objects is answered with what it can read, not the
/// type's counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_answers_what_the_caller_can_read() {
    let t = TestApp::new(SDL).await;
    t.upsert(json!({ "Book": [{ "title": "A" }, { "title": "B" }] })).await;
    let d = t.ok("{ count(type: Book) }", json!({})).await;
    assert_eq!(d["count"], 2);
    // An account created by the admin, logged in: it owns no Book.
    t.ok("mutation { createAccount(value: {username: \"reader\", password: \"correct horse 1\", emails: [\"r@example.com\"]}) { id } }", json!({})).await;
    let d = t.ok("{ login(username: \"reader\", password: \"correct horse 1\") { sessionToken } }", json!({})).await;
    let token = d["login"]["sessionToken"].as_str().unwrap().to_string();
    let (s, body) = t
        .post_with(&json!({ "query": "{ count(type: Book) }" }), &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["count"], 0, "{body}");
}

mod remote {
    //! ATOMIC against a remote hyper server (a second `arcbase serve`), through a proxy that
    //! can refuse connections or answer 500 to the search service only.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::common::process::{post_full, Server};

    const PASS: u8 = 0;
    const REFUSE: u8 = 1;
    const FAIL_SEARCH: u8 = 2;
    const ADMIN: &str = "remote-admin";
    const SDL: &str = "type Book @hyper(search: [\"title\"], mode: ATOMIC) {\n  title: String!\n}\n";

    /// One request per connection (`Connection: close` is added), so each is judged alone.
    fn proxy(upstream: String) -> (String, Arc<AtomicU8>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(PASS));
        let m = mode.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let mode = m.load(Ordering::SeqCst);
                if mode == REFUSE {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    client.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        let Ok(n) = client.read(&mut chunk) else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let Ok(n) = client.read(&mut chunk) else { return };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let path = head.split(' ').nth(1).unwrap_or("");
                    if mode == FAIL_SEARCH && path.starts_with("/search") {
                        let body = r#"{"ok":false,"msg":"injected"}"#;
                        let _ = write!(client, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream) else { return };
                    let kept: Vec<&str> = head
                        .trim_end()
                        .lines()
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .collect();
                    let new_head = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n"));
                    if server.write_all(new_head.as_bytes()).is_err() || server.write_all(&buf[head_end..]).is_err() {
                        return;
                    }
                    let mut resp = Vec::new();
                    let _ = server.read_to_end(&mut resp);
                    let _ = client.write_all(&resp);
                });
            }
        });
        (addr, mode)
    }

    fn remote_call(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or(Value::Null))
    }

    fn gql(addr: &str, query: &str, variables: Value) -> Value {
        let (status, _, body) = post_full(addr, "/graphql", &json!({ "query": query, "variables": variables }), &[]);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn head(db: &str) -> i64 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["hyper", "status", "--database", db])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["targets"][0]["head"].as_i64().unwrap_or(0)
    }

    #[test]
    fn atomic_writes_wait_for_the_remote_and_roll_back_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let remote_db = format!("sqlite://{}", dir.path().join("remote.db").display());
        let storage = dir.path().join("remote-storage").display().to_string();
        let env = [("ARCBASE_ADMIN_KEY", ADMIN), ("ARCBASE_JWT_SECRET", "atomic-test-secret")];
        let remote = Server::start(&["--database", &remote_db, "--storage-dir", &storage], &env);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["key", "create", "--domain", "default", "--database", &remote_db])
            .env("ARCBASE_JWT_SECRET", "atomic-test-secret")
            .output()
            .unwrap();
        let k: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (proxy, mode) = proxy(remote.addr.clone());
        let schema = dir.path().join("schema.graphql");
        std::fs::write(&schema, SDL).unwrap();
        let local_db = format!("sqlite://{}", dir.path().join("local.db").display());
        let hyper = format!("http://{}:{}@{proxy}/books", k["key"].as_str().unwrap(), k["secret"].as_str().unwrap());
        let local_storage = dir.path().join("local-storage").display().to_string();
        let local = Server::start(
            &[
                "--schema",
                &schema.display().to_string(),
                "--database",
                &local_db,
                "--hyper",
                &hyper,
                "--storage-dir",
                &local_storage,
            ],
            &[("ARCBASE_HYPER_ATOMIC_TIMEOUT_MS", "3000")],
        );
        let upsert = "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }";
        let title_of = |id: &str| {
            let d = gql(
                &local.addr,
                "query($id: String!) { get(type: Book, id: $id) { ... on Book { title } } }",
                json!({ "id": id }),
            );
            d["data"]["get"]["title"].clone()
        };

        // Written on the remote before the mutation answers: data and search.
        let body = gql(&local.addr, upsert, json!({ "v": { "Book": [{ "title": "Dune" }] } }));
        assert!(body.get("errors").is_none(), "{body}");
        let id = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
        let (s, doc) = remote_call(&remote.addr, "GET", &format!("/data/books/{id}"), "");
        assert_eq!((s, doc["title"].clone()), (200, json!("Dune")), "{doc}");
        let (s, found) = remote_call(&remote.addr, "POST", "/search/books/_query", r#"{"query":"dune"}"#);
        assert_eq!((s, found["matches"][0]["id"].clone()), (200, json!(id)), "{found}");

        // Search fails after data took the update: the local write is rolled back, the data
        // document is put back as it was, the client is told.
        mode.store(FAIL_SEARCH, Ordering::SeqCst);
        let before = head(&local_db);
        let body =
            gql(&local.addr, upsert, json!({ "v": { "Book": [{ "hypi": { "id": id }, "title": "Dune Messiah" }] } }));
        let err = &body["errors"][0];
        assert_eq!(err["extensions"]["code"], "HYPER_UNAVAILABLE", "{body}");
        assert!(err["message"].as_str().unwrap().contains("rolled back"), "{body}");
        assert_eq!(title_of(&id), json!("Dune"), "the local object is as it was");
        assert_eq!(head(&local_db), before, "no change row");
        let (_, doc) = remote_call(&remote.addr, "GET", &format!("/data/books/{id}"), "");
        assert_eq!(doc["title"], "Dune", "the remote data document was compensated: {doc}");

        // The remote down: a new object is not written at all.
        mode.store(REFUSE, Ordering::SeqCst);
        let body = gql(&local.addr, upsert, json!({ "v": { "Book": [{ "title": "Emma" }] } }));
        assert_eq!(body["errors"][0]["extensions"]["code"], "HYPER_UNAVAILABLE", "{body}");
        let d = gql(&local.addr, "{ find(type: Book, arcql: \"title = 'Emma'\") { edges { cursor } } }", json!({}));
        assert_eq!(d["data"]["find"]["edges"], json!([]), "{d}");
        assert_eq!(head(&local_db), before, "no change row");

        // Back up: the same write goes through.
        mode.store(PASS, Ordering::SeqCst);
        let body = gql(&local.addr, upsert, json!({ "v": { "Book": [{ "title": "Emma" }] } }));
        assert!(body.get("errors").is_none(), "{body}");
        let emma = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
        let (s, _) = remote_call(&remote.addr, "GET", &format!("/data/books/{emma}"), "");
        assert_eq!(s, 200);
    }
}
