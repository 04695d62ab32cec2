//! The hyper bridge under faults, end to end with real processes: a local `arcbase serve
//! --hyper` writing through a fault-injecting TCP proxy to a remote `arcbase serve` (the hyper
//! API). The remote goes down under a steady write load (connections refused), answers 500 and
//! 429, and the local server is killed with `kill -9` mid-sync; afterwards the remote holds
//! exactly the local objects, none lost, none twice. On PostgreSQL two local nodes drain one
//! feed. Figures (outage, backlog, drain time) are printed. `ARCBASE_FAULT_DOWN_SECS` sets the
//! outage (default 8 s; the issue's 60 s: `ARCBASE_FAULT_DOWN_SECS=60`).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::process::{post_full, Server};

const SDL: &str = "type Book @hyper(search: [\"title\"]) {\n  title: String!\n  n: Int\n}\n";
const ADMIN: &str = "remote-admin";

thread_local! {
    /// The local database, for the diagnostics of a failed wait.
    static DB: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// The remote's log file.
    static REMOTE_LOG: std::cell::RefCell<std::path::PathBuf> = std::cell::RefCell::new(std::path::PathBuf::new());
}

/// How the proxy treats new connections.
const PASS: u8 = 0;
const REFUSE: u8 = 1;
const ANSWER_500: u8 = 2;
const ANSWER_429: u8 = 3;

/// A TCP proxy to `upstream` whose behaviour `mode` switches at any time (existing
/// connections are cut when it leaves PASS).
fn proxy(upstream: String) -> (String, Arc<AtomicU8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mode = Arc::new(AtomicU8::new(PASS));
    let m = mode.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let mode = m.load(Ordering::SeqCst);
            match mode {
                REFUSE => drop(client),
                ANSWER_500 | ANSWER_429 => {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        client.set_read_timeout(Some(Duration::from_millis(200))).ok();
                        let _ = client.read(&mut buf);
                        let (line, extra) = if mode == ANSWER_500 {
                            ("500 Internal Server Error", "")
                        } else {
                            ("429 Too Many Requests", "Retry-After: 1\r\n")
                        };
                        let body = r#"{"ok":false,"msg":"injected"}"#;
                        let _ = write!(
                            client,
                            "HTTP/1.1 {line}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    });
                }
                _ => {
                    let upstream = upstream.clone();
                    let m = m.clone();
                    std::thread::spawn(move || {
                        let Ok(server) = TcpStream::connect(&upstream) else { return };
                        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        let m2 = m.clone();
                        let up = std::thread::spawn(move || pump(&mut c2, &mut s2, &m2));
                        let (mut s3, mut c3) = (server, client);
                        pump(&mut s3, &mut c3, &m);
                        let _ = up.join();
                    });
                }
            }
        }
    });
    (addr, mode)
}

/// Copy until EOF, or until the proxy leaves PASS (then cut both ends).
fn pump(from: &mut TcpStream, to: &mut TcpStream, mode: &AtomicU8) {
    from.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let mut buf = [0u8; 16384];
    loop {
        if mode.load(Ordering::SeqCst) != PASS {
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn key_create(db: &str) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
        .args(["key", "create", "--domain", "default", "--database", db])
        .env("ARCBASE_JWT_SECRET", "fault-test-secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["key"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
}

/// One request to the remote's hyper API as admin: (status, body).
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

/// The ids of the remote's Book documents.
fn remote_ids(addr: &str) -> Vec<String> {
    // Pages of 1,000 (the remote's page limit): a minute's outage writes more than one.
    let mut ids: Vec<String> = Vec::new();
    loop {
        let q = json!({ "selector": { "type": "Book" }, "sort": [{ "_id": "ASC" }], "limit": 1000, "skip": ids.len() });
        let (status, v) = remote_call(addr, "POST", "/data/books/_query", &q.to_string());
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "{v}");
        let page: Vec<String> =
            v["docs"].as_array().unwrap().iter().map(|d| d["_id"].as_str().unwrap().to_string()).collect();
        let done = page.len() < 1000;
        ids.extend(page);
        if done {
            break;
        }
    }
    ids.sort();
    ids
}

fn write_books(addr: &str, from: usize, n: usize) -> Vec<String> {
    let books: Vec<Value> = (from..from + n).map(|i| json!({ "title": format!("Book {i}"), "n": i })).collect();
    let q = json!({ "query": "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", "variables": { "v": { "Book": books } } });
    let (status, _, body) = post_full(addr, "/graphql", &q, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            let db = DB.with(|d| d.borrow().clone());
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_arcbase"))
                .args(["hyper", "status", "--database", &db])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let log = REMOTE_LOG.with(|p| std::fs::read_to_string(&*p.borrow()).unwrap_or_default());
            let errors: Vec<&str> =
                log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).take(20).collect();
            panic!(
                "waited {limit:?} for {what}; hyper status of {db}:\n{status}\nthe remote's errors:\n{}",
                errors.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

struct Setup {
    _dir: tempfile::TempDir,
    remote: Server,
    proxy: String,
    mode: Arc<AtomicU8>,
    schema: String,
    key: String,
    secret: String,
    dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let remote_db = format!("sqlite://{}", path.join("remote.db").display());
    let storage = path.join("remote-storage").display().to_string();
    let env = [("ARCBASE_ADMIN_KEY", ADMIN), ("ARCBASE_JWT_SECRET", "fault-test-secret")];
    let remote = Server::start(&["--database", &remote_db, "--storage-dir", &storage], &env);
    let (key, secret) = key_create(&remote_db);
    let (proxy, mode) = proxy(remote.addr.clone());
    REMOTE_LOG.with(|p| *p.borrow_mut() = remote.log.clone());
    let schema = path.join("schema.graphql");
    std::fs::write(&schema, SDL).unwrap();
    Setup { schema: schema.display().to_string(), remote, proxy, mode, key, secret, dir: path, _dir: dir }
}

impl Setup {
    fn local(&self, db: &str) -> Server {
        let hyper = format!("http://{}:{}@{}/books", self.key, self.secret, self.proxy);
        let storage = self.dir.join(format!("local-storage-{}", db.len())).display().to_string();
        Server::start(&["--schema", &self.schema, "--database", db, "--hyper", &hyper, "--storage-dir", &storage], &[])
    }
}

#[test]
fn an_outage_500s_429s_and_kill_9_lose_nothing_and_duplicate_nothing() {
    let s = setup();
    let db = common::backend_url(&s.dir, "local.db");
    DB.with(|d| *d.borrow_mut() = db.clone());
    let local = s.local(&db);
    let mut ids = write_books(&local.addr, 0, 10);
    wait_for("the first books on the remote", Duration::from_secs(15), || remote_ids(&s.remote.addr).len() == 10);

    // The remote goes down under a steady write load.
    let down: u64 = std::env::var("ARCBASE_FAULT_DOWN_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    s.mode.store(REFUSE, Ordering::SeqCst);
    let start = Instant::now();
    let mut n = 10;
    while start.elapsed() < Duration::from_secs(down) {
        ids.extend(write_books(&local.addr, n, 5));
        n += 5;
        std::thread::sleep(Duration::from_millis(200));
    }
    let backlog = ids.len() - remote_ids(&s.remote.addr).len();
    assert!(backlog > 0, "the outage held writes back");
    s.mode.store(PASS, Ordering::SeqCst);
    let drained =
        wait_for("the backlog drained", Duration::from_secs(30), || remote_ids(&s.remote.addr).len() == ids.len());
    eprintln!("outage {down} s under load: {} objects written, backlog {backlog}, drained {drained:?} after the remote returned", ids.len());

    // 500s, then 429s with Retry-After: retried until they pass.
    for mode in [ANSWER_500, ANSWER_429] {
        s.mode.store(mode, Ordering::SeqCst);
        ids.extend(write_books(&local.addr, n, 5));
        n += 5;
        std::thread::sleep(Duration::from_millis(1500));
        s.mode.store(PASS, Ordering::SeqCst);
        wait_for("the books after injected errors", Duration::from_secs(30), || {
            remote_ids(&s.remote.addr).len() == ids.len()
        });
    }

    // kill -9 with a backlog: after the restart it drains, nothing twice.
    s.mode.store(REFUSE, Ordering::SeqCst);
    ids.extend(write_books(&local.addr, n, 20));
    std::thread::sleep(Duration::from_millis(500));
    let mut local = local;
    local.child.kill().unwrap();
    local.child.wait().unwrap();
    s.mode.store(PASS, Ordering::SeqCst);
    let local = s.local(&db);
    let drained = wait_for("the backlog after kill -9", Duration::from_secs(30), || {
        remote_ids(&s.remote.addr).len() == ids.len()
    });
    eprintln!("after kill -9 with 20 objects pending: drained {drained:?} after the restart");
    let mut want = ids.clone();
    want.sort();
    assert_eq!(remote_ids(&s.remote.addr), want, "the remote holds exactly the local objects");
    drop(local);
}

#[test]
fn two_nodes_on_postgresql_drain_one_feed() {
    if !common::backend_is_postgres() && common::pg::cluster().is_err() {
        common::clients::unavailable("two_nodes_on_postgresql_drain_one_feed", "PostgreSQL is unavailable");
        return;
    }
    let db = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { common::pg::fresh_database(common::pg::cluster().unwrap()).await });
    let s = setup();
    DB.with(|d| *d.borrow_mut() = db.clone());
    let a = s.local(&db);
    let b = s.local(&db);
    let mut ids = Vec::new();
    for round in 0..10 {
        ids.extend(write_books(&a.addr, round * 20, 10));
        ids.extend(write_books(&b.addr, round * 20 + 10, 10));
    }
    wait_for("200 books from two nodes", Duration::from_secs(30), || remote_ids(&s.remote.addr).len() == ids.len());
    std::thread::sleep(Duration::from_millis(500));
    ids.sort();
    assert_eq!(remote_ids(&s.remote.addr), ids, "every object once");
}
