//! arcbase as a real process: start the built binary, find its address, talk HTTP/1.1 to it
//! over a plain TCP stream (no client library needed).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// What the server printed on standard output before its address.
    pub banner: Vec<String>,
    /// Where its log (standard error) goes.
    pub log: std::path::PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Server {
    /// Start `arcbase serve` with `args` and wait until it prints its address.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_in(None, args, env)
    }

    /// Like [`Server::start`], in the working directory `cwd`.
    pub fn start_in(cwd: Option<&std::path::Path>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arcbase"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.arg("serve").args(args).args(["--listen", "127.0.0.1:0"]);
        cmd.env_remove("ARCBASE_ADMIN_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log_dir = tempfile::tempdir().expect("log dir");
        let log = log_dir.path().join("arcbase.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = cmd.stdout(Stdio::piped()).stderr(log_file).spawn().expect("spawn arcbase");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("playground: http://") {
                        break rest.trim_end_matches("/graphql").to_string();
                    }
                    banner.push(line);
                }
                _ => {
                    let _ = child.kill();
                    panic!("arcbase exited before printing its address");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr, banner, log, _log_dir: log_dir }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POST a GraphQL request; returns (status, body).
    pub fn post(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        post(&self.addr, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 POST to `addr` /graphql with `Connection: close`.
pub fn post(addr: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    post_to(addr, "/graphql", body, &[])
}

/// One HTTP/1.1 POST of JSON to `path` with extra headers.
pub fn post_to(addr: &str, path: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let (status, _, json) = post_full(addr, path, body, headers);
    (status, json)
}

/// Like [`post_to`], with the response's head (status line and headers) as text.
pub fn post_full(
    addr: &str,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> (u16, String, serde_json::Value) {
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status: u16 = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let head = resp.split("\r\n\r\n").next().unwrap_or("").to_string();
    let json =
        resp.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(serde_json::Value::Null);
    (status, head, json)
}
