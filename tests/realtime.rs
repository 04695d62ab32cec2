//! Subscriptions end to end against a real `arcbase serve` (SQLite; PostgreSQL with
//! `ARCBASE_TEST_BACKEND=postgres`, and always for the two-node test): both WebSocket
//! sub-protocols and server-sent events; every operation's event; arcql, ids and ops; resume
//! after 1,000 changes; kill -9 mid-stream; access per event; the protocol's limits; a slow
//! consumer cut off; two nodes on one PostgreSQL database.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use common::process::{post_full, Server};

const SDL: &str = r#"
type Author @access(read: PUBLIC, write: PUBLIC) {
  name: String
  books: [Book]
}
type Book {
  title: String
  year: Int
}
"#;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Node {
    server: Server,
    _dir: tempfile::TempDir,
    db: String,
    schema: String,
}

async fn database(dir: &std::path::Path) -> String {
    if common::backend_is_postgres() {
        common::pg::fresh_database(common::pg::cluster().unwrap()).await
    } else {
        format!("sqlite://{}", dir.join("rt.db").display())
    }
}

async fn node(env: &[(&str, &str)]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let schema = dir.path().join("schema.graphql");
    std::fs::write(&schema, SDL).unwrap();
    let schema = schema.display().to_string();
    let storage = dir.path().join("storage").display().to_string();
    let server = Server::start(&["--schema", &schema, "--database", &db, "--storage-dir", &storage], env);
    Node { server, _dir: dir, db, schema }
}

fn gql(addr: &str, query: &str, variables: Value, auth: Option<&str>) -> Value {
    let h = auth.map(|a| format!("Bearer {a}"));
    let headers: Vec<(&str, &str)> = h.iter().map(|v| ("authorization", v.as_str())).collect();
    let (status, _, body) = post_full(addr, "/graphql", &json!({ "query": query, "variables": variables }), &headers);
    assert_eq!(status, 200, "{body}");
    body
}

fn upsert(addr: &str, values: Value) -> Vec<String> {
    let body =
        gql(addr, "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", json!({ "v": values }), None);
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

async fn connect(addr: &str, protocol: &str) -> Ws {
    let mut req = format!("ws://{addr}/graphql").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message (10 s), or the close frame's code as `{"close": code}`.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ka" {
                    continue;
                }
                return v;
            }
            Some(Ok(Message::Close(f))) => return json!({ "close": f.map(|f| u16::from(f.code)), }),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return json!({ "close": null }),
        }
    }
}

async fn init(ws: &mut Ws, payload: Value) {
    send(ws, json!({ "type": "connection_init", "payload": payload })).await;
    assert_eq!(recv(ws).await["type"], "connection_ack");
}

const CHANGES: &str = "subscription($after: String, $ops: [ChangeOp!], $arcql: String, $ids: [String!]) { changes(type: Author, after: $after, ops: $ops, arcql: $arcql, ids: $ids) { cursor op id type version node { ... on Author { name books { title } } } } }";

async fn subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) {
    send(ws, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await;
}

/// The next `next` event's `data.changes`.
async fn next_change(ws: &mut Ws) -> Value {
    let m = recv(ws).await;
    assert_eq!(m["type"], "next", "{m}");
    m["payload"]["data"]["changes"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_reaches_a_graphql_transport_ws_subscriber() {
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({ "after": "0" })).await;
    // The subscription is live once the server has it: a ping answered after it proves the
    // subscribe was read; give the hub a moment to join.
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let a = upsert(&addr, json!({ "Author": [{ "name": "Le Guin" }] }))[0].clone();
    let b = upsert(&addr, json!({ "Book": [{ "title": "Earthsea" }] }))[0].clone();
    upsert(&addr, json!({ "Author": [{ "hypi": { "id": a }, "name": "Ursula K. Le Guin" }] }));
    for q in [
        format!("mutation {{ trash(type: Author, arcql: \"hypi.id = '{a}'\") }}"),
        format!("mutation {{ untrash(type: Author, arcql: \"hypi.id = '{a}'\") }}"),
        format!("mutation {{ link(from: Author, to: Book, via: \"books\", whereFromID: \"{a}\", andToID: \"{b}\") }}"),
        format!(
            "mutation {{ unlink(from: Author, to: Book, via: \"books\", whereFromID: \"{a}\", andToID: \"{b}\") }}"
        ),
        format!("mutation {{ delete(type: Author, arcql: \"hypi.id = '{a}'\") }}"),
    ] {
        let body = gql(&addr, &q, json!({}), None);
        assert!(body.get("errors").is_none(), "{q}: {body}");
    }
    let mut got = Vec::new();
    let mut last_cursor = 0i64;
    for _ in 0..7 {
        let c = next_change(&mut ws).await;
        assert_eq!(c["id"], a, "only Author events: {c}");
        assert_eq!(c["type"], "Author");
        let cursor: i64 = c["cursor"].as_str().unwrap().parse().unwrap();
        assert!(cursor > last_cursor, "cursors grow: {c}");
        last_cursor = cursor;
        got.push((c["op"].as_str().unwrap().to_string(), c["node"]["name"].clone(), c["version"].as_i64().unwrap()));
    }
    let ops: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(ops, ["INSERT", "UPDATE", "TRASH", "UNTRASH", "LINK", "UNLINK", "DELETE"]);
    // Each event carries the object as it is when the event is read: never older than the
    // change (a batch read after the rename shows the new name).
    assert!(got[0].1 == "Le Guin" || got[0].1 == "Ursula K. Le Guin", "{got:?}");
    assert_eq!(got[1].1, "Ursula K. Le Guin");
    assert_eq!(got[6].1, Value::Null, "a DELETE has no node");
    assert!(got.windows(2).take(5).all(|w| w[1].2 > w[0].2), "versions grow: {got:?}");

    // complete stops it: nothing more arrives for id 1.
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    upsert(&addr, json!({ "Author": [{ "name": "after complete" }] }));
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong", "no event after complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arcql_ids_and_ops_filter_and_queries_run_once() {
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    let ids = upsert(&addr, json!({ "Author": [{ "name": "a" }, { "name": "b" }] }));
    subscribe(&mut ws, "arcql", CHANGES, json!({ "arcql": "name = 'keep'" })).await;
    subscribe(&mut ws, "ids", CHANGES, json!({ "ids": [ids[1]] })).await;
    subscribe(&mut ws, "ops", CHANGES, json!({ "ops": ["TRASH"] })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    upsert(
        &addr,
        json!({ "Author": [{ "hypi": { "id": ids[0] }, "name": "keep" }, { "hypi": { "id": ids[1] }, "name": "drop" }] }),
    );
    gql(&addr, &format!("mutation {{ trash(type: Author, arcql: \"hypi.id = '{}'\") }}", ids[1]), json!({}), None);
    let mut by_sub: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for _ in 0..4 {
        let m = recv(&mut ws).await;
        assert_eq!(m["type"], "next", "{m}");
        let c = &m["payload"]["data"]["changes"];
        by_sub.entry(m["id"].as_str().unwrap().to_string()).or_default().push(format!(
            "{} {}",
            c["op"].as_str().unwrap(),
            c["node"]["name"].as_str().unwrap_or("-")
        ));
    }
    assert_eq!(by_sub["arcql"], ["UPDATE keep"]);
    assert_eq!(by_sub["ids"], ["UPDATE drop", "TRASH drop"]);
    assert_eq!(by_sub["ops"], ["TRASH drop"]);

    // A query sent over the socket is answered once, then completed.
    send(&mut ws, json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ find(type: Author, arcql: \"*\") { edges { cursor } } }" } })).await;
    let m = recv(&mut ws).await;
    assert_eq!((m["id"].clone(), m["type"].clone()), (json!("q"), json!("next")), "{m}");
    assert_eq!(m["payload"]["data"]["find"]["edges"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(recv(&mut ws).await["type"], "complete");

    // A bad subscription is an error for its id, and the connection goes on.
    subscribe(&mut ws, "bad", "subscription { changes(type: Nope) { cursor } }", json!({})).await;
    let m = recv(&mut ws).await;
    assert_eq!((m["id"].clone(), m["type"].clone()), (json!("bad"), json!("error")), "{m}");
    subscribe(&mut ws, "old", CHANGES, json!({ "ops": ["CURRENT"] })).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["type"], "error", "{m}");
}

/// Disconnect, 1,000 changes, reconnect with the last cursor: exactly those 1,000, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_a_cursor_replays_exactly_what_was_missed() {
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({ "after": "0" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    upsert(&addr, json!({ "Author": [{ "name": "first" }] }));
    let cursor = next_change(&mut ws).await["cursor"].as_str().unwrap().to_string();
    drop(ws);

    let mut written = Vec::new();
    for round in 0..40 {
        let authors: Vec<Value> = (0..25).map(|i| json!({ "name": format!("a{}", round * 25 + i) })).collect();
        written.extend(upsert(&addr, json!({ "Author": authors })));
    }
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "2", CHANGES, json!({ "after": cursor })).await;
    let mut seen = Vec::new();
    let mut last: i64 = cursor.parse().unwrap();
    for _ in 0..1000 {
        let c = next_change(&mut ws).await;
        let p: i64 = c["cursor"].as_str().unwrap().parse().unwrap();
        assert!(p > last, "in order, none twice");
        last = p;
        seen.push(c["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, written, "exactly the 1,000 missed, in write order");
    // And live after the replay, with no gap at the seam.
    let live = upsert(&addr, json!({ "Author": [{ "name": "live" }] }));
    assert_eq!(next_change(&mut ws).await["id"], live[0]);
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong", "nothing twice");

    // A cursor that is not one is refused for that subscription.
    subscribe(&mut ws, "3", CHANGES, json!({ "after": "yesterday" })).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
}

/// kill -9 mid-stream, restart on the same database, resume: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_loses_nothing_and_repeats_nothing() {
    let mut n = node(&[]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({ "after": "0" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut written = Vec::new();
    for round in 0..4 {
        let authors: Vec<Value> = (0..25).map(|i| json!({ "name": format!("k{}", round * 25 + i) })).collect();
        written.extend(upsert(&addr, json!({ "Author": authors })));
    }
    let mut got = Vec::new();
    let mut cursor = String::new();
    for _ in 0..40 {
        let c = next_change(&mut ws).await;
        cursor = c["cursor"].as_str().unwrap().to_string();
        got.push(c["id"].as_str().unwrap().to_string());
    }
    n.server.child.kill().unwrap();
    n.server.child.wait().unwrap();
    drop(ws);
    let storage = n._dir.path().join("storage").display().to_string();
    let server = Server::start(&["--schema", &n.schema, "--database", &n.db, "--storage-dir", &storage], &[]);
    let mut ws = connect(&server.addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "2", CHANGES, json!({ "after": cursor })).await;
    for _ in 0..60 {
        got.push(next_change(&mut ws).await["id"].as_str().unwrap().to_string());
    }
    assert_eq!(got, written, "every change once, in order, across the kill");
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong", "nothing twice");
}

/// The legacy protocol (subscriptions-transport-ws): start → data, stop → complete, ka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_graphql_ws_protocol_works() {
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-ws").await;
    init(&mut ws, json!({})).await;
    let q = "subscription { subscribe { Author { name } } }";
    send(&mut ws, json!({ "id": "7", "type": "start", "payload": { "query": q } })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    upsert(&addr, json!({ "Author": [{ "name": "Hypi style" }], "Book": [{ "title": "not selected" }] }));
    let m = recv(&mut ws).await;
    assert_eq!((m["id"].clone(), m["type"].clone()), (json!("7"), json!("data")), "{m}");
    assert_eq!(m["payload"]["data"]["subscribe"]["Author"]["name"], "Hypi style", "{m}");
    send(&mut ws, json!({ "id": "7", "type": "stop" })).await;
    let m = recv(&mut ws).await;
    assert_eq!((m["id"].clone(), m["type"].clone()), (json!("7"), json!("complete")), "{m}");
    send(&mut ws, json!({ "type": "connection_terminate" })).await;
    assert_eq!(recv(&mut ws).await["close"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_their_codes() {
    let n = node(&[("ARCBASE_LIMIT_WS_INIT_MS", "300"), ("ARCBASE_ADMIN_KEY", "rt-admin")]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    assert_eq!(recv(&mut ws).await["close"], 4408, "no connection_init in time");
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    subscribe(&mut ws, "1", CHANGES, json!({})).await;
    assert_eq!(recv(&mut ws).await["close"], 4401, "subscribe before the ack");
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": "Bearer wrong" } })).await;
    assert_eq!(recv(&mut ws).await["close"], 4403, "refused credentials");
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({ "Authorization": "Bearer rt-admin" })).await;
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(recv(&mut ws).await["close"], 4429, "a second connection_init");
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({ "authorization": "rt-admin" })).await;
    subscribe(&mut ws, "1", CHANGES, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({})).await;
    assert_eq!(recv(&mut ws).await["close"], 4409, "an id already running");
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["close"], 4400);
    // Without credentials an instance that takes no anonymous requests refuses subscriptions.
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
}

/// An account's subscription sees only what it may `get`: its own Books, not the admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_only_objects_it_can_read() {
    let n = node(&[("ARCBASE_ADMIN_KEY", "rt-admin")]).await;
    let addr = n.server.addr.clone();
    let admin = Some("rt-admin");
    gql(&addr, "mutation { createAccount(value: {username: \"reader\", password: \"correct horse 1\", emails: [\"r@example.com\"]}) { id } }", json!({}), admin);
    let d =
        gql(&addr, "{ login(username: \"reader\", password: \"correct horse 1\") { sessionToken } }", json!({}), None);
    let token = d["data"]["login"]["sessionToken"].as_str().unwrap().to_string();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({ "Authorization": format!("Bearer {token}") })).await;
    // From the feed's start (a fresh database): no race with the subscription going live.
    let q = "subscription { changes(type: Book, after: \"0\") { op id node { ... on Book { title } } } }";
    subscribe(&mut ws, "1", q, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = gql(&addr, "mutation { upsert(values: {Book: [{title: \"the admin's\"}]}) { id } }", json!({}), admin);
    let admins = b["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    gql(&addr, &format!("mutation {{ delete(type: Book, arcql: \"hypi.id = '{admins}'\") }}"), json!({}), admin);
    let mine = gql(&addr, "mutation { upsert(values: {Book: [{title: \"mine\"}]}) { id } }", json!({}), Some(&token));
    let mine = mine["data"]["upsert"][0]["id"].as_str().unwrap().to_string();
    gql(&addr, &format!("mutation {{ delete(type: Book, arcql: \"hypi.id = '{mine}'\") }}"), json!({}), Some(&token));
    let m = recv(&mut ws).await;
    assert_eq!(m["payload"]["data"]["changes"]["id"], mine, "the admin's Book never arrives: {m}");
    // The INSERT shows the Book, or no node when it was read after its DELETE.
    let node = &m["payload"]["data"]["changes"]["node"];
    assert!(node["title"] == "mine" || node.is_null(), "{m}");
    let m = recv(&mut ws).await;
    assert_eq!(
        (m["payload"]["data"]["changes"]["op"].clone(), m["payload"]["data"]["changes"]["id"].clone()),
        (json!("DELETE"), json!(mine)),
        "its own DELETE: {m}"
    );
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await["type"], "pong", "nothing of the admin's, not even its DELETE");
}

/// Server-sent events: `id:` is the cursor; `Last-Event-ID` resumes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_resume_with_last_event_id() {
    use std::io::{BufRead, BufReader, Write};
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let open = |last: Option<&str>| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let q = "subscription%20%7B%20changes(type%3A%20Author)%20%7B%20cursor%20op%20node%20%7B%20...%20on%20Author%20%7B%20name%20%7D%20%7D%20%7D%20%7D";
        let last = last.map(|l| format!("Last-Event-ID: {l}\r\n")).unwrap_or_default();
        write!(s, "GET /graphql/stream?query={q} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{last}\r\n")
            .unwrap();
        BufReader::new(s)
    };
    // Read events (id, data) until `n` arrived.
    let events = |r: &mut BufReader<std::net::TcpStream>, n: usize| {
        let mut out = Vec::new();
        let mut id = String::new();
        let mut line = String::new();
        while out.len() < n {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "the stream ended");
            let l = line.trim_end();
            if let Some(v) = l.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = l.strip_prefix("data: ") {
                if let Ok(j) = serde_json::from_str::<Value>(v) {
                    if j.get("data").is_some() {
                        out.push((id.clone(), j["data"]["changes"]["node"]["name"].as_str().unwrap_or("").to_string()));
                    }
                }
            }
        }
        out
    };
    let mut r = open(None);
    let start = Instant::now();
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    assert!(head.contains("200"), "{head}");
    std::thread::sleep(Duration::from_millis(300));
    upsert(&addr, json!({ "Author": [{ "name": "s1" }] }));
    upsert(&addr, json!({ "Author": [{ "name": "s2" }] }));
    let got = events(&mut r, 2);
    assert_eq!(got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    drop(r);
    upsert(&addr, json!({ "Author": [{ "name": "s3" }] }));
    let mut r = open(Some(&got[0].0));
    let again = events(&mut r, 2);
    assert_eq!(again.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), ["s2", "s3"], "resumed after s1");
    assert!(start.elapsed() < Duration::from_secs(20));
}

/// Server-sent events take automatic persisted queries as `POST /graphql` does (the same
/// decoding): an unknown hash is answered 400 `PERSISTED_QUERY_NOT_FOUND`; once the text was sent
/// with its hash, the hash alone opens the stream and it delivers; a hash that is not the text's
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_take_persisted_queries() {
    use std::io::{BufRead, BufReader, Write};
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let text = "subscription { changes(type: Author) { op node { ... on Author { name } } } }";
    let ext = |hash: &str| json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let hash = arcbase::graphql::persisted::sha256_hex(text);
    let (status, _, body) = post_full(&addr, "/graphql/stream", &json!({ "extensions": ext(&hash) }), &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND", "{body}");
    let wrong = json!({ "query": text, "extensions": ext(&"0".repeat(64)) });
    let (status, _, body) = post_full(&addr, "/graphql/stream", &wrong, &[]);
    assert_eq!(status, 400, "a hash that is not the text's: {body}");
    let open = |body: Value| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let b = body.to_string();
        write!(
            s,
            "POST /graphql/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        r.read_line(&mut head).unwrap();
        (head, r)
    };
    let (head, with_text) = open(json!({ "query": text, "extensions": ext(&hash) }));
    assert!(head.contains(" 200"), "{head}");
    drop(with_text);
    let (head, mut r) = open(json!({ "extensions": ext(&hash) }));
    assert!(head.contains(" 200"), "the hash alone, once the text was sent: {head}");
    std::thread::sleep(Duration::from_millis(300));
    upsert(&addr, json!({ "Author": [{ "name": "persisted" }] }));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the stream ended before the event");
        let Some(data) = line.trim_end().strip_prefix("data: ") else { continue };
        let Ok(j) = serde_json::from_str::<Value>(data) else { continue };
        if j["data"]["changes"]["node"]["name"] == "persisted" {
            assert_eq!(j["data"]["changes"]["op"], "INSERT", "{j}");
            break;
        }
    }
}

/// The abuse replay of `/graphql`'s deep JSON, on the stream: variables nested past the limit
/// (64) are refused with LIMIT_EXCEEDED, over POST and GET alike (now by the decoding the
/// stream shares with `/graphql`, before its JSON is parsed; the guard on coerced variables
/// stands behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_refuse_variables_nested_past_the_limit() {
    use std::io::{Read, Write};
    let n = node(&[]).await;
    let addr = n.server.addr.clone();
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let text = "subscription { changes(type: Author) { op } }";
    let body: Value = serde_json::from_str(&format!(r#"{{"query":"{text}","variables":{{"v":{deep}}}}}"#)).unwrap();
    let (status, _, body) = post_full(&addr, "/graphql/stream", &body, &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    let q = "subscription%20%7B%20changes(type%3A%20Author)%20%7B%20op%20%7D%20%7D";
    let v = format!("%7B%22v%22%3A{}1{}%7D", "%5B".repeat(100), "%5D".repeat(100));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /graphql/stream?query={q}&variables={v} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("LIMIT_EXCEEDED"), "{resp}");
}

/// A consumer that stops reading is cut off with a reason and a cursor to resume from, while
/// the server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_with_a_cursor_to_resume_from() {
    let n = node(&[("ARCBASE_LIMIT_SUBSCRIBER_QUEUE", "20")]).await;
    let addr = n.server.addr.clone();
    let mut ws = connect(&addr, "graphql-transport-ws").await;
    init(&mut ws, json!({})).await;
    subscribe(&mut ws, "1", CHANGES, json!({ "after": "0" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let big = "x".repeat(16_000);
    for _ in 0..40 {
        let authors: Vec<Value> = (0..25).map(|_| json!({ "name": big })).collect();
        upsert(&addr, json!({ "Author": authors }));
    }
    // Stay away longer than a full queue may wait (5 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    // Now read: some events, then the error that says where to resume.
    let mut events = 0;
    loop {
        let m = recv(&mut ws).await;
        match m["type"].as_str() {
            Some("next") => events += 1,
            Some("error") => {
                let msg = m["payload"][0]["message"].as_str().unwrap();
                assert!(msg.contains("fell too far behind") && msg.contains("after"), "{m}");
                break;
            }
            _ => panic!("unexpected {m}"),
        }
    }
    assert!(events < 1000, "cut off before all 1,000 were queued ({events} arrived)");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", n.server.child.id())).unwrap_or_default();
    let kb: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("slow consumer cut off after {events} events; server RSS {kb} KiB");
    assert!(kb < 200 * 1024, "the server's memory stays bounded: {kb} KiB");
}

/// Two nodes on one PostgreSQL database: four subscribers on node B see every write made on
/// node A, in order (LISTEN/NOTIFY wakes B; the feed is the truth).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_every_write_reaches_every_subscriber() {
    let Some(db) = common::pg::database_or_skip("two_nodes_on_postgresql_every_write_reaches_every_subscriber").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.graphql");
    std::fs::write(&schema, SDL).unwrap();
    let schema = schema.display().to_string();
    let a = Server::start(
        &["--schema", &schema, "--database", &db, "--storage-dir", &dir.path().join("a").display().to_string()],
        &[],
    );
    let b = Server::start(
        &["--schema", &schema, "--database", &db, "--storage-dir", &dir.path().join("b").display().to_string()],
        &[],
    );
    let mut subs = Vec::new();
    for i in 0..4 {
        let mut ws = connect(&b.addr, "graphql-transport-ws").await;
        init(&mut ws, json!({})).await;
        subscribe(&mut ws, &i.to_string(), CHANGES, json!({ "after": "0" })).await;
        subs.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Four writers at once: their transactions commit out of position order (the feed's late
    // commits), which node B must wait out, not skip.
    let started = Instant::now();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let addr = a.addr.clone();
            std::thread::spawn(move || {
                (0..50)
                    .flat_map(|i| upsert(&addr, json!({ "Author": [{ "name": format!("w{w}-{i}") }] })))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut written: Vec<String> = writers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    written.sort();
    let mut orders = Vec::new();
    for ws in &mut subs {
        let mut got = Vec::new();
        while got.len() < written.len() {
            got.push(next_change(ws).await["id"].as_str().unwrap().to_string());
        }
        orders.push(got.clone());
        got.sort();
        assert_eq!(got, written, "every write on node A reaches node B, once");
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every subscriber sees the same (feed) order");
    eprintln!("two nodes: {} writes on A reached 4 subscribers on B in {:?}", written.len(), started.elapsed());
}
