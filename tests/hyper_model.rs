//! The `@hyper` model's options on the built-in services (the test backend: SQLite, or
//! PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`): `count` (a counter kept in every write's
//! transaction, checked against `count(*)` after every step of random write sequences),
//! `cache` (each object under `<type>-<id>`, removed with it; the counter under
//! `<type>~count`; `get` answered from the object cache and never stale after a write
//! answers), `notify` (one queue job per change, in order), and ATOMIC services (search and
//! notify visible the moment the mutation answers).

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

    // The mutation says what the bridge still has to send (NON_ATOMIC services only).
    let body = t
        .gql("mutation { upsert(values: {Book: [{title: \"Kim\"}], Film: [{name: \"Ran\"}]}) { id } }", json!({}))
        .await;
    assert_eq!(
        body["extensions"]["hyper"]["pending"],
        json!({ "Book": ["data", "cache"], "Film": ["notify"] }),
        "{body}"
    );
    let body = t.gql("{ count(type: Book) }", json!({})).await;
    assert!(body.get("extensions").is_none(), "a read leaves nothing pending: {body}");
    t.ok("mutation { delete(type: Book, arcql: \"*\") delete2: delete(type: Film, arcql: \"*\") }", json!({})).await;

    // NON_ATOMIC notify: the bridge enqueues each change of a Film, in order.
    let f = t.upsert(json!({ "Film": [{ "name": "Alien" }] })).await;
    t.upsert(json!({ "Film": [{ "hypi": { "id": f[0] }, "name": "Aliens" }] })).await;
    t.ok(&format!("mutation {{ trash(type: Film, arcql: \"hypi.id = '{}'\") }}", f[0]), json!({})).await;
    eventually("the Film jobs", || async {
        let films: Vec<String> = jobs(&t, &app)
            .await
            .iter()
            .filter(|j| j["type"] == "Film")
            .map(|j| format!("{} {}", j["action"].as_str().unwrap(), j["version"]))
            .collect();
        if films == ["insert 1", "delete 1", "insert 1", "update 2", "trash 3"] {
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
    let mut rng = common::rng::Rng(0x5eed_cafe);
    let mut rnd = |n: usize| rng.index(n);
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

/// The object cache's figures from `GET /admin/caches`: (enabled, hits, misses).
async fn cache_figures(t: &TestApp) -> (bool, u64, u64) {
    let (s, v) = call(t, "GET", "/admin/caches", None).await;
    assert_eq!(s, 200, "{v}");
    let o = &v["objects"];
    (o["enabled"].as_bool().unwrap(), o["hits"].as_u64().unwrap(), o["misses"].as_u64().unwrap())
}

async fn get_book(t: &TestApp, id: &str, auth: Option<&str>) -> Value {
    let q = json!({ "query": "query($id: String!) { get(type: Book, id: $id) { ... on Book { title year hypi { id updated } } } }", "variables": { "id": id } });
    let headers: Vec<(&str, String)> = auth.map(|a| vec![("authorization", format!("Bearer {a}"))]).unwrap_or_default();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, body) = t.post_with(&q, &headers).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["get"].clone()
}

/// `get` of a `cache: true` type comes from the node's memory (SQLite) and is never stale
/// after a write answers: random updates, trashes, untrashes and a delete, each followed at
/// once by `get`s checked against the model; accounts are kept apart; a selection with more
/// than the object's own fields is read from the database. On PostgreSQL the cache is off and
/// every answer is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_cached_type_is_served_from_memory_and_never_stale() {
    let t = TestApp::new(SDL).await;
    // It counts the object cache's hits: no second requests.
    t.differential(false);
    let pg = common::backend_is_postgres();
    let (enabled, _, _) = cache_figures(&t).await;
    assert_eq!(enabled, !pg, "the object cache is on with SQLite only");
    let ids = t.upsert(json!({ "Book": [{ "title": "Dune", "year": 1965 }, { "title": "Emma", "year": 1815 }] })).await;
    let mut model: Vec<Option<(String, i64)>> = vec![Some(("Dune".into(), 1965)), Some(("Emma".into(), 1815))];
    let mut trashed = [false, false];

    let first = get_book(&t, &ids[0], None).await;
    let (_, h0, m0) = cache_figures(&t).await;
    let again = get_book(&t, &ids[0], None).await;
    assert_eq!(first, again);
    let (_, h1, m1) = cache_figures(&t).await;
    if pg {
        assert_eq!((h1, m1), (0, 0), "nothing is looked up with the cache off");
    } else {
        assert_eq!((h1 - h0, m1 - m0), (1, 0), "the second get is a hit");
    }

    let mut rng = common::rng::Rng(0xc0ff_ee11);
    let mut rnd = |n: u64| rng.below(n);
    for step in 0..80 {
        let i = rnd(2) as usize;
        let id = ids[i].clone();
        let what = match rnd(4) {
            0 | 1 if !trashed[i] => {
                let year = rnd(3000) as i64;
                let title = format!("t{step}");
                t.upsert(json!({ "Book": [{ "hypi": { "id": id }, "title": title, "year": year }] })).await;
                model[i] = Some((title, year));
                "update"
            }
            2 if !trashed[i] => {
                t.ok(&format!("mutation {{ trash(type: Book, arcql: \"hypi.id = '{id}'\") }}"), json!({})).await;
                trashed[i] = true;
                "trash"
            }
            _ if trashed[i] => {
                t.ok(&format!("mutation {{ untrash(type: Book, arcql: \"hypi.id = '{id}'\") }}"), json!({})).await;
                trashed[i] = false;
                "untrash"
            }
            _ => "read only",
        };
        for k in 0..2 {
            for (j, book) in ids.iter().enumerate() {
                let got = get_book(&t, book, None).await;
                let want = if trashed[j] { None } else { model[j].clone() };
                match want {
                    None => assert_eq!(got, Value::Null, "step {step} ({what}), read {k}: book {j} is trashed"),
                    Some((title, year)) => {
                        assert_eq!(
                            (got["title"].as_str(), got["year"].as_i64()),
                            (Some(title.as_str()), Some(year)),
                            "step {step} ({what}), read {k}, book {j}: {got}"
                        );
                    }
                }
            }
        }
    }
    // Deleted: gone at once.
    for id in &ids {
        get_book(&t, id, None).await;
    }
    t.ok(&format!("mutation {{ delete(type: Book, arcql: \"hypi.id = '{}'\") }}", ids[0]), json!({})).await;
    assert_eq!(get_book(&t, &ids[0], None).await, Value::Null, "deleted");
    let (_, hits, _) = cache_figures(&t).await;
    assert!(pg || hits > 80, "most reads of the sequence were hits: {hits}");

    // Accounts: Books are read by their owner only; one account's cached document is not
    // another's, and the admin's is not an account's.
    let mut tokens = Vec::new();
    for name in ["ann", "bob"] {
        t.ok(&format!("mutation {{ createAccount(value: {{username: \"{name}\", password: \"correct horse 1\", emails: [\"{name}@example.com\"]}}) {{ id }} }}"), json!({})).await;
        let d = t
            .ok(
                &format!("{{ login(username: \"{name}\", password: \"correct horse 1\") {{ sessionToken }} }}"),
                json!({}),
            )
            .await;
        tokens.push(d["login"]["sessionToken"].as_str().unwrap().to_string());
    }
    let (s, body) = t
        .post_with(
            &json!({ "query": "mutation { upsert(values: {Book: [{title: \"Ann's\"}]}) { id } }" }),
            &[("authorization", &format!("Bearer {}", tokens[0]))],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let ann_book = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(get_book(&t, &ann_book, Some(&tokens[0])).await["title"], "Ann's");
        assert_eq!(get_book(&t, &ann_book, None).await["title"], "Ann's", "the admin reads it");
        assert_eq!(get_book(&t, &ann_book, Some(&tokens[1])).await, Value::Null, "bob may not read Ann's book");
    }

    // Aliases of the object's own fields are still a plain selection, answered the same.
    let q = json!({ "query": "query($id: String!) { a: get(type: Book, id: $id) { ... on Book { t: title title } } }", "variables": { "id": ids[1] } });
    let (s, body) = t.post_with(&q, &[]).await;
    assert_eq!(s, 200, "{body}");
    let live = model[1].clone().filter(|_| !trashed[1]);
    match live {
        Some((title, _)) => assert_eq!(body["data"]["a"], json!({ "t": title, "title": title })),
        None => assert_eq!(body["data"]["a"], Value::Null),
    }
}

/// Readers racing writers never go back in time: each writer reads its own write right after
/// it answers; each reader's view of a book only moves forward (a read that raced a write must
/// not leave the older document in the cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_gets_racing_writes_never_go_back() {
    let t = std::sync::Arc::new(TestApp::new(SDL).await);
    // Its reads race its writes: a second read may see a later version.
    t.differential(false);
    let ids = t.upsert(json!({ "Book": [{ "title": "a", "year": 0 }, { "title": "b", "year": 0 }] })).await;
    let mut tasks = Vec::new();
    for (w, id) in ids.iter().enumerate() {
        let (t, id) = (t.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            for year in 1..=60 {
                t.upsert(json!({ "Book": [{ "hypi": { "id": id }, "year": year }] })).await;
                let got = get_book(&t, &id, None).await;
                assert_eq!(got["year"], year, "writer {w} reads its own write at once");
            }
        }));
    }
    for r in 0..4 {
        let (t, ids) = (t.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = [0i64; 2];
            for n in 0..150 {
                let i = n % 2;
                let year = get_book(&t, &ids[i], None).await["year"].as_i64().unwrap();
                assert!(year >= seen[i], "reader {r}: book {i} went back from {} to {year}", seen[i]);
                seen[i] = year;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for id in &ids {
        assert_eq!(get_book(&t, id, None).await["year"], 60);
    }
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

    /// One raw request: (status, body text).
    pub fn http(addr: &str, method: &str, path: &str, body: &[u8], auth: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, resp.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default())
    }

    /// [`setup`] for a test outside this module: (local address, remote address, the servers).
    pub fn setup_for_tests(sdl: &str) -> (String, String, Setup) {
        let s = setup(sdl);
        (s.local.addr.clone(), s.remote.addr.clone(), s)
    }

    fn head(db: &str) -> i64 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["hyper", "status", "--database", db])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("hyper status: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["targets"][0]["head"].as_i64().unwrap_or(0)
    }

    pub struct Setup {
        _dir: tempfile::TempDir,
        remote: Server,
        local: Server,
        local_db: String,
        mode: Arc<AtomicU8>,
    }

    /// A remote `arcbase serve` (admin key), a proxy to it, and a local server following
    /// `sdl` into it.
    fn setup(sdl: &str) -> Setup {
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
        std::fs::write(&schema, sdl).unwrap();
        let local_db = super::common::backend_url(dir.path(), "local.db");
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
        Setup { _dir: dir, remote, local, local_db, mode }
    }

    #[test]
    fn atomic_writes_wait_for_the_remote_and_roll_back_when_it_fails() {
        let Setup { _dir: _kept, remote, local, local_db, mode } = setup(SDL);
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

const FILES: &str = r#"
type Doc @hyper(attachments: true) {
  title: String
}
type Plain {
  title: String
}
"#;

async fn raw(t: &TestApp, method: &str, path: &str, body: &[u8], auth: Option<&str>) -> (u16, String, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let (s, h, text) = t.send_full(req.body(Body::from(body.to_vec())).unwrap()).await;
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (s.as_u16(), ct, text)
}

/// Files per object: REST upload, listing, download, replace and removal; the GraphQL
/// `attachments` field read in the object's own statement; access; limits; and the files
/// going with their object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_uploaded_listed_downloaded_and_deleted_with_their_object() {
    let limits = arcbase::config::Limits { object_bytes: 1000, ..Default::default() };
    let t = TestApp::with(FILES, Some("admin-key"), limits).await;
    let app = t.engine().app.clone();
    let admin = Some("admin-key");
    let (s, body) = t
        .post_with(
            &json!({ "query": "mutation { upsert(values: {Doc: [{title: \"a\"}], Plain: [{title: \"p\"}]}) { id } }" }),
            &[("authorization", "Bearer admin-key")],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let id = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    let plain = body["data"]["upsert"][1]["id"].as_str().unwrap().to_string();
    let base = format!("/rest/v1/Doc/{id}/attachments");

    let (s, ct, text) = raw(&t, "PUT", &format!("{base}/notes/a%20b.txt"), b"hello", admin).await;
    assert_eq!(s, 201, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let a: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        a,
        json!({ "name": "notes/a b.txt", "size": 5, "contentType": "text/plain", "url": format!("{base}/notes/a%20b.txt") })
    );
    let (s, _, text) = raw(&t, "POST", &format!("{base}/pic.png"), &[1, 2, 3], admin).await;
    assert_eq!(s, 201, "{text}");

    // GraphQL: in name order, aliases work, nested in find as in get.
    let q = "query($id: String!) { get(type: Doc, id: $id) { ... on Doc { title attachments { name size contentType url } } } find(type: Doc, arcql: \"*\") { edges { node { ... on Doc { files: attachments { name } } } } } }";
    let (s, body) =
        t.post_with(&json!({ "query": q, "variables": { "id": id } }), &[("authorization", "Bearer admin-key")]).await;
    assert_eq!(s, 200, "{body}");
    let got = &body["data"]["get"]["attachments"];
    assert_eq!(got[0]["name"], "notes/a b.txt", "{body}");
    assert_eq!(
        (got[1]["name"].clone(), got[1]["size"].clone(), got[1]["contentType"].clone()),
        (json!("pic.png"), json!(3), json!("image/png"))
    );
    assert_eq!(got[1]["url"], format!("{base}/pic.png"));
    assert_eq!(body["data"]["find"]["edges"][0]["node"]["files"].as_array().unwrap().len(), 2, "{body}");

    // Download, replace, list, remove.
    let (s, ct, text) = raw(&t, "GET", &format!("{base}/notes/a%20b.txt"), b"", admin).await;
    assert_eq!((s, ct.as_str(), text.as_str()), (200, "text/plain", "hello"));
    let (s, _, _) = raw(&t, "PUT", &format!("{base}/pic.png"), &[9; 10], admin).await;
    assert_eq!(s, 201);
    let (s, _, text) = raw(&t, "GET", &base, b"", admin).await;
    assert_eq!(s, 200, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["attachments"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list["attachments"][1]["size"], 10, "replaced: {list}");
    let (s, _, text) = raw(&t, "DELETE", &format!("{base}/pic.png"), b"", admin).await;
    assert_eq!(s, 200, "{text}");
    let (s, _, _) = raw(&t, "GET", &format!("{base}/pic.png"), b"", admin).await;
    assert_eq!(s, 404);
    let (s, _, _) = raw(&t, "GET", &format!("/storage/{app}/Doc/{id}/pic.png"), b"", admin).await;
    assert_eq!(s, 404, "its bytes are gone from storage");

    // Bad requests: clear errors, nothing kept.
    let (s, _, text) = raw(&t, "PUT", &format!("{base}/big.bin"), &[0; 1001], admin).await;
    assert_eq!(s, 413, "{text}");
    let (s, _, text) = raw(&t, "GET", &base, b"", admin).await;
    assert!(s == 200 && !text.contains("big.bin"), "{text}");
    let (s, _, text) = raw(&t, "PUT", &format!("/rest/v1/Plain/{plain}/attachments/x.txt"), b"x", admin).await;
    assert!(s == 404 && text.contains("attachments: true"), "{s} {text}");
    let (s, _, _) = raw(&t, "PUT", "/rest/v1/Nope/1/attachments/x.txt", b"x", admin).await;
    assert_eq!(s, 404);
    let (s, _, text) = raw(&t, "PUT", "/rest/v1/Doc/missing/attachments/x.txt", b"x", admin).await;
    assert!(s == 404 && text.contains("does not exist"), "{s} {text}");
    let (s, _, _) = raw(&t, "PUT", &format!("{base}/x.txt"), b"x", None).await;
    assert_eq!(s, 401, "credentials are required");

    // An account may not touch the admin's object, but its own.
    t.post_with(&json!({ "query": "mutation { createAccount(value: {username: \"u1\", password: \"correct horse 1\", emails: [\"u1@example.com\"]}) { id } }" }), &[("authorization", "Bearer admin-key")]).await;
    let (_, d) = t
        .post_with(
            &json!({ "query": "{ login(username: \"u1\", password: \"correct horse 1\") { sessionToken } }" }),
            &[],
        )
        .await;
    let token = d["data"]["login"]["sessionToken"].as_str().unwrap().to_string();
    let (s, _, _) = raw(&t, "PUT", &format!("{base}/mine.txt"), b"x", Some(&token)).await;
    assert_eq!(s, 404, "another's object is not there for an account");
    let (s, _, _) = raw(&t, "GET", &format!("{base}/notes/a%20b.txt"), b"", Some(&token)).await;
    assert_eq!(s, 404);
    let (_, body) = t
        .post_with(
            &json!({ "query": "mutation { upsert(values: {Doc: [{title: \"mine\"}]}) { id } }" }),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    let own = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    let (s, _, text) = raw(&t, "PUT", &format!("/rest/v1/Doc/{own}/attachments/mine.txt"), b"mine", Some(&token)).await;
    assert_eq!(s, 201, "{text}");

    // Deleting the object deletes its files.
    let (s, body) = t
        .post_with(
            &json!({ "query": format!("mutation {{ delete(type: Doc, arcql: \"hypi.id = '{id}'\") }}") }),
            &[("authorization", "Bearer admin-key")],
        )
        .await;
    assert_eq!((s.as_u16(), body["data"]["delete"].clone()), (200, json!(1)), "{body}");
    let storage_path = format!("/storage/{app}/Doc/{id}/notes/a%20b.txt");
    eventually("the deleted object's file gone from storage", || async {
        let (s, _, _) = raw(&t, "GET", &storage_path, b"", admin).await;
        let rows = t.sql_int(&format!("SELECT count(*) FROM arcbase_attachments WHERE object_id = '{id}'")).await;
        if s == 404 && rows == 0 {
            Ok(())
        } else {
            Err(format!("{s}, {rows} rows"))
        }
    })
    .await;
    let (s, _, _) = raw(&t, "GET", &format!("/rest/v1/Doc/{own}/attachments/mine.txt"), b"", Some(&token)).await;
    assert_eq!(s, 200, "other objects keep their files");
}

/// Attachments on a remote hyper server's storage: uploaded and read through arcbase, the
/// bytes on the remote, removed there when their object is deleted.
#[test]
fn attachments_live_in_the_remote_storage() {
    use common::process::post_full;
    let sdl = "type Doc @hyper(attachments: true) {\n  title: String\n}\n";
    let s = remote::setup_for_tests(sdl);
    let (status, _, body) = post_full(
        &s.0,
        "/graphql",
        &json!({ "query": "mutation { upsert(values: {Doc: [{title: \"a\"}]}) { id } }" }),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    let (status, text) =
        remote::http(&s.0, "PUT", &format!("/rest/v1/Doc/{id}/attachments/r.txt"), b"remote bytes", None);
    assert_eq!(status, 201, "{text}");
    let (status, text) =
        remote::http(&s.1, "GET", &format!("/storage/books/Doc/{id}/r.txt"), b"", Some("remote-admin"));
    assert_eq!((status, text.as_str()), (200, "remote bytes"), "the bytes are on the remote");
    let (status, text) = remote::http(&s.0, "GET", &format!("/rest/v1/Doc/{id}/attachments/r.txt"), b"", None);
    assert_eq!((status, text.as_str()), (200, "remote bytes"));
    let (status, _, body) = post_full(
        &s.0,
        "/graphql",
        &json!({ "query": format!("mutation {{ delete(type: Doc, arcql: \"hypi.id = '{id}'\") }}") }),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let (status, _) =
            remote::http(&s.1, "GET", &format!("/storage/books/Doc/{id}/r.txt"), b"", Some("remote-admin"));
        if status == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the file is still on the remote: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s.2);
}

#[test]
fn the_new_options_are_validated_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.graphql");
    std::fs::write(
        &bad,
        "type A @hyper(attachments: true, count: true, modes: {count: ATOMIC}) {\n  attachments: String\n}\n",
    )
    .unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_arcbase")).args(["schema", "build"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["bad.graphql:1:", "which the type already has", "count takes no mode"] {
        assert!(err.contains(want), "the errors name {want:?}:\n{err}");
    }
    let good = dir.path().join("good.graphql");
    std::fs::write(&good, SDL.to_string() + FILES).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
        .args(["schema", "build"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sdl = String::from_utf8_lossy(&out.stdout);
    for want in [
        "cache: true",
        "count: true",
        "notify: true",
        "attachments: true",
        "attachments: [Attachment!]",
        "count(type: HypiMutationType!): Int!",
    ] {
        assert!(sdl.contains(want), "the generated SDL shows {want:?}:\n{sdl}");
    }
}

/// Randomized interleavings of concurrent writers against a model of their effects: four
/// tasks upsert shuffled subsets of the same objects, and trash and untrash single ones, all at
/// once. No write fails (on PostgreSQL, writers of overlapping objects deadlocked before
/// writes locked their objects in one order). Afterwards each object is trashed exactly when
/// the trashes that changed it outnumber the untrashes that did, the `@hyper(count: true)`
/// counter equals the objects left, and each object's change feed is one row per effective
/// write, versions consecutive: nothing lost, nothing applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_the_counter_and_the_feed_exact() {
    let t = std::sync::Arc::new(TestApp::new("type Item @hyper(count: true) { n: Int }").await);
    t.differential(false);
    let ids = t.upsert(json!({ "Item": (0..4).map(|n| json!({ "n": n })).collect::<Vec<_>>() })).await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (t, ids) = (t.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = common::rng::Rng(0x2545_f491_4f6c_dd1d_u64 ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rnd = move |n: u64| rng.below(n);
            // Per object: writes that changed it (upserts, trashes, untrashes), and the net
            // trashes (trashes that changed it less untrashes that did).
            let mut writes = vec![0i64; ids.len()];
            let mut net = vec![0i64; ids.len()];
            for step in 0..25 {
                let i = rnd(ids.len() as u64) as usize;
                match rnd(3) {
                    0 => {
                        let mut order: Vec<usize> = (0..ids.len()).collect();
                        for k in (1..order.len()).rev() {
                            order.swap(k, rnd(k as u64 + 1) as usize);
                        }
                        order.truncate(2 + rnd(3) as usize);
                        let items: Vec<Value> = order
                            .iter()
                            .map(|&k| json!({ "hypi": { "id": ids[k] }, "n": step * 10 + w as i64 }))
                            .collect();
                        t.ok(
                            "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }",
                            json!({ "v": { "Item": items } }),
                        )
                        .await;
                        for k in order {
                            writes[k] += 1;
                        }
                    }
                    op => {
                        let name = if op == 1 { "trash" } else { "untrash" };
                        let q = format!("mutation {{ {name}(type: Item, arcql: \"hypi.id = '{}'\") }}", ids[i]);
                        let changed = t.ok(&q, json!({})).await[name].as_i64().unwrap();
                        assert!(changed == 0 || changed == 1, "{name}: {changed}");
                        writes[i] += changed;
                        net[i] += if op == 1 { changed } else { -changed };
                    }
                }
            }
            (writes, net)
        }));
    }
    let (mut writes, mut net) = (vec![0i64; ids.len()], vec![0i64; ids.len()]);
    for task in tasks {
        let (w, n) = task.await.expect("a writer finished without an error");
        for k in 0..ids.len() {
            writes[k] += w[k];
            net[k] += n[k];
        }
    }
    let mut left = 0;
    for (k, id) in ids.iter().enumerate() {
        let got = t
            .ok(&format!("{{ get(type: Item, id: \"{id}\", includeTrashed: true) {{ ... on Item {{ hypi {{ trashed }} }} }} }}"), json!({}))
            .await;
        let trashed = !got["get"]["hypi"]["trashed"].is_null();
        assert_eq!(net[k], i64::from(trashed), "{id}: net trashes {} against trashed = {trashed}", net[k]);
        left += i64::from(!trashed);
    }
    assert_eq!(counts(&t, "Item").await, (left, left), "the counter and count(*) agree with the model");
    let changes = t.changes().await;
    for (k, id) in ids.iter().enumerate() {
        let versions: Vec<i64> = changes.iter().filter(|c| &c.2 == id).map(|c| c.4).collect();
        assert_eq!(versions, (1..=1 + writes[k]).collect::<Vec<_>>(), "{id}: one change per effective write");
    }
}
