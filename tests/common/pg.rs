//! A throwaway PostgreSQL cluster for the tests, started once per test binary from the
//! machine's `initdb`/`pg_ctl` (as the unprivileged `postgres` user when running as root), on
//! a free port, and stopped by a watchdog when the test process exits. Each test gets a
//! database of its own.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path()).collect();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join("bin").join(name)).find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Run `args` as the cluster's owner.
fn as_owner(root: bool, args: &[&str]) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    }
}

fn start() -> Result<Cluster, String> {
    let initdb = find_bin("initdb").ok_or("initdb not found")?;
    let pg_ctl = find_bin("pg_ctl").ok_or("pg_ctl not found")?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("arcbase-pg-{}-{}", std::process::id(), ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if root {
        let ok = Command::new("chown").arg("postgres").arg(&dir).status().map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("cannot give the data directory to user postgres".into());
        }
    }
    let d = dir.to_string_lossy().to_string();
    let out = as_owner(
        root,
        &[
            &initdb.to_string_lossy(),
            "-D",
            &d,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    )
    .output()
    .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let opts = format!(
        "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
    );
    let log = format!("{d}/log");
    let out = as_owner(root, &[&pg_ctl.to_string_lossy(), "-D", &d, "-o", &opts, "-l", &log, "-w", "start"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("pg_ctl start failed: {}\n{log}", String::from_utf8_lossy(&out.stderr)));
    }
    // Stop the cluster and remove its files when this test process is gone.
    let watchdog = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {d} -m immediate stop >/dev/null 2>&1; rm -rf {d}",
        pid = std::process::id(),
        pg_ctl = pg_ctl.to_string_lossy()
    );
    let _ = as_owner(root, &["sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Ok(Cluster { port, dir })
}

/// The cluster, started on first use. `Err` says why PostgreSQL is not available.
pub fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER.get_or_init(start).as_ref().map_err(Clone::clone)
}

/// Whether a missing PostgreSQL must fail the run (CI) rather than skip.
pub fn required() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// A new, empty database on the cluster; returns its URL.
pub async fn fresh_database(c: &Cluster) -> String {
    use sqlx::Connection;
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", c.port);
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test cluster");
    let name = format!("t_{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
    let _ = conn.close().await;
    format!("postgres://postgres@127.0.0.1:{}/{name}", c.port)
}

/// PostgreSQL for a test: `Some(url)` of a fresh database, or `None` (after saying so loudly)
/// when the binaries are missing outside CI. Under `CI=true` a missing PostgreSQL panics.
pub async fn database_or_skip(test: &str) -> Option<String> {
    match cluster() {
        Ok(c) => Some(fresh_database(c).await),
        Err(why) if required() => panic!("PostgreSQL is required under CI=true but unavailable: {why}"),
        Err(why) => {
            eprintln!("\n*** SKIPPED {test}: PostgreSQL is not available ({why}) ***\n");
            None
        }
    }
}
