//! The hyper services across `kill -9` of a real `arcbase serve` (SQLite file and storage
//! folder kept between runs): an upload cut off by the kill leaves no object, visible or on
//! disk among the objects; a queue job whose delivery was under way when the server died is
//! delivered after the restart, once its lease runs out.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process::Server;
use serde_json::{json, Value};

fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let db = format!("sqlite://{}", dir.join("hyper.db").display());
    let storage = dir.join("storage").display().to_string();
    Server::start(&["--database", &db, "--storage-dir", &storage], env)
}

fn kill9(mut s: Server) {
    s.child.kill().expect("SIGKILL");
    let status = s.child.wait().expect("reap");
    assert!(!status.success(), "a killed server does not exit cleanly");
}

/// One HTTP/1.1 request (`Connection: close`); (status, body).
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, resp[split + 4..].to_vec())
}

fn http_json(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, bytes) = http(addr, method, path, b.as_bytes());
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn an_upload_cut_by_kill_9_leaves_no_object() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    // A 64 MiB upload of which 8 MiB arrive before the kill.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /storage/media/big.bin HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        64u64 << 20
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0xabu8; 1 << 20];
    for _ in 0..8 {
        s.write_all(&chunk).unwrap();
    }
    let tmp = dir.path().join("storage").join("tmp");
    let start_wait = Instant::now();
    while files_under(&tmp).is_empty() {
        assert!(start_wait.elapsed() < Duration::from_secs(10), "the upload never reached its temporary file");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    kill9(server);
    drop(s);

    let server = start(dir.path(), &[]);
    let (status, body) = http(&server.addr, "GET", "/storage/media/big.bin", b"");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let objects = files_under(&dir.path().join("storage").join("objects"));
    assert!(objects.is_empty(), "no object file from the cut upload: {objects:?}");
    // The bucket works as before.
    let (status, _) = http(&server.addr, "POST", "/storage/media/big.bin", b"complete");
    assert_eq!(status, 201);
    assert_eq!(http(&server.addr, "GET", "/storage/media/big.bin", b""), (200, b"complete".to_vec()));
}

/// A webhook target: the first delivery is read and never answered (the server is killed
/// meanwhile); later ones are answered 200. Reports each job id it receives.
fn hanging_target() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head and the body (Content-Length).
            let job_id = loop {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-hyper-job-id:").map(|v| v.trim().to_uppercase()));
                }
            };
            let Some(id) = job_id else { continue };
            let _ = tx.send(id);
            if n == 0 {
                held.push(conn);
            } else {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        }
    });
    (url, rx)
}

#[test]
fn a_job_in_delivery_at_kill_9_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ARCBASE_LIMIT_QUEUE_LEASE_MS", "2000"), ("ARCBASE_LIMIT_QUEUE_TIMEOUT_MS", "60000")];
    let server = start(dir.path(), &env);
    let (url, deliveries) = hanging_target();
    let (s, v) = http_json(&server.addr, "PUT", "/queue/jobs", Some(json!({ "target": url })));
    assert_eq!(s, 201, "{v}");
    let (s, v) = http_json(&server.addr, "POST", "/queue/jobs", Some(json!({ "send": "mail" })));
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_uppercase();
    let first = deliveries.recv_timeout(Duration::from_secs(15)).expect("a first delivery");
    assert_eq!(first, id);
    kill9(server);

    let server = start(dir.path(), &env);
    let again = deliveries.recv_timeout(Duration::from_secs(20)).expect("the job again after the restart");
    assert_eq!(again, id, "the same job");
    let start_wait = Instant::now();
    loop {
        let (s, v) = http_json(&server.addr, "GET", "/queue/jobs?status=READY", None);
        assert_eq!(s, 200, "{v}");
        if v["jobs"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(start_wait.elapsed() < Duration::from_secs(10), "the delivered job leaves the queue: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(deliveries.recv_timeout(Duration::from_millis(1500)).is_err(), "delivered once after the restart");
}
