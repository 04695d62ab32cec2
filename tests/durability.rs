//! Ack means durable (security.md "Durability promises"): the real binary on a real SQLite
//! file, a writer sending upserts over plain HTTP/1.1 while the server is killed with
//! SIGKILL, then a restart on the same file. Every acknowledged object must be there with its
//! content; a batch whose answer was lost is all-or-nothing; the file passes
//! `PRAGMA integrity_check`. SIGTERM shuts down gracefully.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/example.graphql");
/// Authors per upsert batch; each has a nested new Book, so a batch writes six objects plus
/// scalar-list rows and links.
const PER_BATCH: usize = 3;

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Start `arcbase serve` on `db` and wait for its `playground:` line.
    fn start(dir: &Path, db: &Path, run: usize) -> Server {
        let log = dir.join(format!("server-{run}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["serve", "--schema", SCHEMA, "--listen", "127.0.0.1:0", "--database"])
            .arg(format!("sqlite://{}", db.display()))
            .env_remove("ARCBASE_ADMIN_KEY")
            .env_remove("ARCBASE_SCHEMA")
            .env_remove("ARCBASE_DATABASE_URL")
            .env_remove("ARCBASE_LISTEN")
            // A client that never finishes its request holds a graceful shutdown up at most
            // this long.
            .env("ARCBASE_SHUTDOWN_GRACE", "2")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read the banner on a thread so a server that never prints cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("playground: http://") {
                    let _ = tx.send(rest.trim_end_matches("/graphql").to_string());
                }
            }
            // Keep draining until the process exits.
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        Server { child, addr, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGKILL (what `Child::kill` sends on unix) and reap.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "a killed server does not exit cleanly");
    }

    /// Wait for the process to exit by itself, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind when a test fails half-way.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Outcome {
    /// A complete response: status and JSON body.
    Answer(u16, Value),
    /// The connection failed before anything was sent: the request cannot have run.
    NotSent,
    /// Sent, but no complete answer: it may or may not have been applied.
    Unknown,
}

fn http_post(addr: SocketAddr, body: &str, keep_alive: bool) -> Outcome {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Outcome::NotSent;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let req = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return Outcome::Unknown;
    }
    read_response(&mut s).map_or(Outcome::Unknown, |(status, body)| Outcome::Answer(status, body))
}

/// Read one response: the status line, the headers, and a `Content-Length` or chunked body.
fn read_response(s: &mut TcpStream) -> Option<(u16, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let header =
        |name: &str| head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()));
    let mut body = buf[header_end..].to_vec();
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        while body.len() < len {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        // Read to the terminating chunk, then decode.
        while !body.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(line_end + 2..line_end + 2 + size)?);
            rest = rest.get(line_end + 4 + size..)?;
        }
        body = out;
    } else {
        s.read_to_end(&mut body).ok()?;
    }
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// POST a GraphQL request that must succeed; returns `data`.
fn gql_ok(addr: SocketAddr, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    match http_post(addr, &body, false) {
        Outcome::Answer(200, v) if v.get("errors").is_none() => v["data"].clone(),
        other => panic!("request failed: {other:?}\nquery: {query}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------------

/// One upsert batch with known ids and content.
#[derive(Clone, Debug)]
struct Batch {
    /// (author id, book id, n) per author.
    items: Vec<(String, String, u64)>,
}

impl Batch {
    fn new(seq: u64) -> Batch {
        let items = (0..PER_BATCH as u64)
            .map(|k| {
                let n = seq * 100 + k;
                (format!("author-{n:08}"), format!("book-{n:08}"), n)
            })
            .collect();
        Batch { items }
    }

    fn variables(&self) -> Value {
        let authors: Vec<Value> = self
            .items
            .iter()
            .map(|(aid, bid, n)| {
                json!({
                    "hypi": { "id": aid },
                    "name": format!("writer {n}"),
                    "age": n % 1000,
                    "tags": [format!("t{n}"), format!("u{n}")],
                    "bestbook": { "hypi": { "id": bid }, "title": format!("title {n}"), "price": *n as f64 / 4.0 },
                })
            })
            .collect();
        json!({ "v": { "Author": authors } })
    }
}

const UPSERT: &str = "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Logged {
    Ack,
    Err,
    Unknown,
}

/// Send batches back to back until `stop` is set or the server goes away.
fn writer(addr: SocketAddr, first_seq: u64, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<(Batch, Logged)>>>) {
    let mut seq = first_seq;
    while !stop.load(Ordering::SeqCst) {
        let batch = Batch::new(seq);
        seq += 1;
        let body = json!({ "query": UPSERT, "variables": batch.variables() }).to_string();
        let logged = match http_post(addr, &body, false) {
            Outcome::NotSent => return,
            Outcome::Unknown => Logged::Unknown,
            Outcome::Answer(200, v) if v.get("errors").is_none() => {
                let ids: Vec<&str> =
                    v["data"]["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
                let want: Vec<&str> = batch.items.iter().map(|(a, _, _)| a.as_str()).collect();
                assert_eq!(ids, want, "upsert answers the ids in input order");
                Logged::Ack
            }
            Outcome::Answer(status, v) => {
                assert!(status < 500, "5xx from the server: {status} {v}");
                Logged::Err
            }
        };
        let done = logged == Logged::Unknown;
        log.lock().unwrap().push((batch, logged));
        if done {
            return;
        }
    }
}

/// What a batch looks like in the database: `Some(true)` all there and right, `Some(false)`
/// none there, `None` partial or wrong.
fn batch_state(addr: SocketAddr, batch: &Batch) -> Result<bool, String> {
    let mut q = String::from("query {");
    for (i, (aid, bid, _)) in batch.items.iter().enumerate() {
        q.push_str(&format!(
            " a{i}: get(type: Author, id: \"{aid}\") {{ ... on Author {{ name age tags bestbook {{ title price hypi {{ id }} }} hypi {{ id }} }} }}\
             b{i}: get(type: Book, id: \"{bid}\") {{ ... on Book {{ title price hypi {{ id }} }} }}"
        ));
    }
    q.push_str(" }");
    let data = gql_ok(addr, &q, json!({}));
    let mut present = 0;
    for (i, (aid, bid, n)) in batch.items.iter().enumerate() {
        let a = &data[format!("a{i}")];
        let b = &data[format!("b{i}")];
        let book = json!({ "title": format!("title {n}"), "price": *n as f64 / 4.0, "hypi": { "id": bid } });
        let author = json!({
            "name": format!("writer {n}"),
            "age": n % 1000,
            "tags": [format!("t{n}"), format!("u{n}")],
            "bestbook": book,
            "hypi": { "id": aid },
        });
        match (a.is_null(), b.is_null()) {
            (true, true) => {}
            (false, false) if *a == author && *b == book => present += 1,
            _ => return Err(format!("batch {batch:?}: object {i} is partial or wrong: author {a}, book {b}")),
        }
    }
    match present {
        0 => Ok(false),
        p if p == batch.items.len() => Ok(true),
        _ => Err(format!("batch {batch:?}: {present} of {} objects present", batch.items.len())),
    }
}

/// Check every logged batch against a running server.
fn verify(addr: SocketAddr, log: &[(Batch, Logged)]) -> (usize, usize) {
    let (mut acked, mut unknown) = (0, 0);
    for (batch, logged) in log {
        let state = batch_state(addr, batch).unwrap_or_else(|e| panic!("{e}"));
        match logged {
            Logged::Ack => {
                assert!(state, "acknowledged batch lost: {batch:?}");
                acked += 1;
            }
            Logged::Err => assert!(!state, "a rejected batch was written: {batch:?}"),
            Logged::Unknown => unknown += 1,
        }
    }
    (acked, unknown)
}

fn integrity_check(db: &Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(db).connect().await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.unwrap();
        let fk: Vec<sqlx::sqlite::SqliteRow> =
            sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut conn).await.unwrap();
        assert!(fk.is_empty(), "{} foreign key violations", fk.len());
        rows.join("\n")
    })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledged_upserts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let log: Arc<Mutex<Vec<(Batch, Logged)>>> = Arc::default();
    // Kill after different amounts of work, so the kill lands at different moments.
    let delays = [150u64, 420, 260, 610];
    let mut seq = 0;
    for (round, delay) in delays.iter().enumerate() {
        let server = Server::start(dir.path(), &db, round);
        let addr = server.addr;
        if round > 0 {
            // Everything from the rounds before, after a SIGKILL and a restart.
            let (acked, _) = verify(addr, &log.lock().unwrap());
            assert!(acked > 0, "round {round}: nothing was acknowledged before the kill");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || writer(addr, seq, stop, log))
        };
        let before = log.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(*delay));
        server.kill9();
        w.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        let acked = log.lock().unwrap()[before..].iter().filter(|(_, l)| *l == Logged::Ack).count();
        assert!(acked > 0, "round {round}: the writer made progress");
        seq = 1_000 * (round as u64 + 1);
    }
    // The file itself is sound after a kill (SQLite recovers the WAL on open).
    assert_eq!(integrity_check(&db), "ok");

    let server = Server::start(dir.path(), &db, 99);
    let log = log.lock().unwrap();
    let (acked, unknown) = verify(server.addr, &log);
    assert!(acked >= delays.len(), "acked {acked}");
    let errs = log.iter().filter(|(_, l)| *l == Logged::Err).count();
    assert_eq!(errs, 0, "no upsert of this workload is invalid");
    eprintln!("{acked} acknowledged batches survived, {unknown} in flight at a kill were all-or-nothing");
    // The restarted server also takes new writes on the recovered file.
    let next = Batch::new(999_999);
    gql_ok(server.addr, UPSERT, next.variables());
    assert_eq!(batch_state(server.addr, &next), Ok(true));
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let mut server = Server::start(dir.path(), &db, 0);
    let addr = server.addr;
    let first = Batch::new(1);
    gql_ok(addr, UPSERT, first.variables());

    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = json!({ "query": "{ __typename }" }).to_string();
    write!(
        idle,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (status, answer) = read_response(&mut idle).unwrap();
    assert_eq!((status, &answer["data"]["__typename"]), (200, &json!("Query")));

    // A writer keeps going while the signal arrives.
    let log: Arc<Mutex<Vec<(Batch, Logged)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || writer(addr, 100, stop, log))
    };
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    let kill = Command::new("kill").arg("-TERM").arg(server.pid()).status().unwrap();
    assert!(kill.success());
    let status = server.wait_exit(Duration::from_secs(15));
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("no exit 15 s after SIGTERM: {}", server.log()));
    assert!(status.success(), "exit status after SIGTERM: {status:?}\n{}", server.log());
    assert!(sent.elapsed() < Duration::from_secs(10), "shutdown took {:?}", sent.elapsed());
    // The port is closed.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "still listening");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    drop(server);

    assert_eq!(integrity_check(&db), "ok");
    let server = Server::start(dir.path(), &db, 1);
    assert_eq!(batch_state(server.addr, &first), Ok(true));
    let log = log.lock().unwrap();
    let (acked, _) = verify(server.addr, &log);
    assert!(acked > 0, "the writer got answers before the signal");
    // A graceful stop answers every request it started to read; a request it never read (one
    // still in the kernel's queue when the listener closed) is cut off and was not applied.
    for (batch, logged) in log.iter() {
        if *logged == Logged::Unknown {
            assert_eq!(batch_state(server.addr, batch), Ok(false), "a request cut off by SIGTERM was applied");
        }
    }
}

#[test]
fn sigterm_does_not_wait_forever_for_a_slow_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &dir.path().join("d.db"), 0);
    // Headers and half a body, then nothing: a graceful shutdown waits for this request, but
    // only for the grace period (2 s here).
    let mut slow = TcpStream::connect(server.addr).unwrap();
    write!(slow, "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\":").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    assert!(Command::new("kill").arg("-TERM").arg(server.pid()).status().unwrap().success());
    let status =
        server.wait_exit(Duration::from_secs(15)).unwrap_or_else(|| panic!("no exit after SIGTERM: {}", server.log()));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(took >= Duration::from_millis(1500), "the request in progress was given its grace period: {took:?}");
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    drop(slow);
}

/// Deeply nested ArcQL (security.md: "ArcQL parentheses 100 / 5,000 / 50,000 → a GraphQL
/// error, no crash"), sent to the real process: a stack overflow there aborts the whole
/// server, which only a separate process can show without taking the test down with it.
#[test]
fn deep_arcql_does_not_kill_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &dir.path().join("d.db"), 0);
    let find = "query($a: String!) { find(type: Author, arcql: $a) { edges { cursor } } }";
    let mut probes = Vec::new();
    for n in [100, 5_000, 50_000] {
        probes.push(format!("{}age = 1{}", "(".repeat(n), ")".repeat(n)));
        probes.push(format!("{}age = 1{}", "NOT (".repeat(n), ")".repeat(n)));
    }
    // Within the 8 KiB text cap: chains of NOT and long AND / OR chains.
    for n in [100, 1_000, 2_000] {
        probes.push(format!("{}age = 1", "NOT ".repeat(n)));
    }
    probes.push(vec!["age = 1"; 680].join(" AND "));
    probes.push(vec!["age = 1"; 740].join(" OR "));
    for arcql in &probes {
        let body = json!({ "query": find, "variables": { "a": arcql } }).to_string();
        let what = format!("{}... ({} bytes)", &arcql[..arcql.len().min(24)], arcql.len());
        match http_post(server.addr, &body, false) {
            Outcome::Answer(200, v) => {
                if let Some(errors) = v["errors"].as_array() {
                    assert!(errors.iter().all(|e| e["extensions"]["code"].is_string()), "{what}: {v}");
                } else {
                    assert!(v["data"]["find"]["edges"].is_array(), "{what}: {v}");
                }
            }
            other => panic!("{what}: the server did not answer: {other:?}\n{}", server.log()),
        }
    }
    // Still alive.
    assert_eq!(gql_ok(server.addr, "{ __typename }", json!({}))["__typename"], "Query");
}

/// One serving process per SQLite file: a second `serve` on the file stops at start, naming
/// the reason, while the first keeps serving; once the first is killed (-9: the lock goes with
/// the process) a new one starts on the file.
#[test]
fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("one.db");
    let mut first = Server::start(dir.path(), &db, 0);
    let out = Command::new(env!("CARGO_BIN_EXE_arcbase"))
        .args(["serve", "--schema", SCHEMA, "--listen", "127.0.0.1:0", "--database"])
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("ARCBASE_ADMIN_KEY")
        .env_remove("ARCBASE_SCHEMA")
        .env_remove("ARCBASE_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second server must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is served by another arcbase process"), "{err}");
    let d = gql_ok(first.addr, "{ __typename }", json!({}));
    assert_eq!(d["__typename"], "Query", "the first still serves");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = Server::start(dir.path(), &db, 1);
    let d = gql_ok(second.addr, "{ __typename }", json!({}));
    assert_eq!(d["__typename"], "Query");
}
