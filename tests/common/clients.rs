//! Helpers for the tests that run real client programs against the real binary
//! (`tests/clients.rs`, `tests/hyper_clients.rs`): installs of pinned packages into a cache
//! folder, child processes bounded in time, loud skips, and an `arcbase serve` on a fresh
//! database.
//!
//! Installs go to `$ARCBASE_TEST_CACHE` (default `~/.cache/arcbase-tests`), each in a folder
//! named after a hash of what it installs and the tool's version, made in a private folder and
//! renamed into place when complete, so concurrent test processes never see half an install.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on each install step (`npm ci`, `pip install`, `python -m venv`).
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on each client script.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on the server printing its address, and on small helper commands.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this run is CI's (`CI=true` or `CI=1`): there a missing prerequisite fails.
pub fn under_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// A missing prerequisite: skip loudly, or fail under CI.
pub fn unavailable(test: &str, why: &str) {
    if under_ci() {
        panic!("{test}: the client suites are required under CI=true but cannot run: {why}");
    }
    // Straight to the process's stderr, past the test harness's output capture: a skip must be
    // seen.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***\n");
}

/// Where installs are cached: `$ARCBASE_TEST_CACHE`, else `~/.cache/arcbase-tests`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARCBASE_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("arcbase-tests"),
        None => std::env::temp_dir().join("arcbase-tests"),
    }
}

/// `PROGRAM --version`, or why it cannot be run.
pub fn version_of(program: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = bounded(Command::new(program).arg("--version"), dir.path(), program, START_TIMEOUT);
    if !out.ok {
        let detail = out.text.trim();
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        return Err(format!("`{program} --version` failed ({}){detail}", out.status));
    }
    Ok(out.text.trim().to_string())
}

/// FNV-1a over the parts (with a separator): a stable cache key without a hashing crate.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The folder `<cache>/<name>-<key>`, made once: when it is missing, `fill` populates a private
/// folder (which it gets as argument, and which is moved into place afterwards, so `fill` must
/// leave nothing that depends on its absolute path), then `.installed` is written with `stamp`.
pub fn cached_install(
    name: &str,
    key: u64,
    stamp: &str,
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let root = cache_root();
    let dir = root.join(format!("{name}-{key:016x}"));
    let done = dir.join(".installed");
    if done.exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = root.join(format!("{name}-{key:016x}.tmp-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    eprintln!("{name}: installing into {} ({stamp})", dir.display());
    let started = Instant::now();
    let result =
        fill(&tmp).and_then(|()| fs::write(tmp.join(".installed"), format!("{stamp}\n")).map_err(|e| e.to_string()));
    if let Err(why) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(why);
    }
    eprintln!("{name}: installed in {:.1} s", started.elapsed().as_secs_f64());
    if fs::rename(&tmp, &dir).is_err() {
        // Another process finished first: use its folder.
        let _ = fs::remove_dir_all(&tmp);
        if !done.exists() {
            return Err(format!("could not move the install into {}", dir.display()));
        }
    }
    Ok(dir)
}

/// The pinned npm packages of `package_dir` (its `package.json` and `package-lock.json`),
/// installed with `npm ci` into the cache folder `<name>-<hash>`; returns that folder (it holds
/// `node_modules`).
pub fn npm_install(name: &str, package_dir: &Path) -> Result<PathBuf, String> {
    let node = version_of("node")?;
    let npm = version_of("npm")?;
    let package = fs::read(package_dir.join("package.json")).map_err(|e| format!("package.json: {e}"))?;
    let lock = fs::read(package_dir.join("package-lock.json")).map_err(|e| format!("package-lock.json: {e}"))?;
    let key = fnv1a(&[&package, &lock, node.as_bytes()]);
    cached_install(name, key, &format!("node {node}, npm {npm}"), |tmp| {
        fs::write(tmp.join("package.json"), &package).map_err(|e| e.to_string())?;
        fs::write(tmp.join("package-lock.json"), &lock).map_err(|e| e.to_string())?;
        let out = bounded(
            Command::new("npm").args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"]),
            tmp,
            "npm-ci",
            INSTALL_TIMEOUT,
        );
        if !out.ok {
            return Err(format!("`npm ci` in {} failed ({}):\n{}", tmp.display(), out.status, out.text));
        }
        Ok(())
    })
}

pub struct Output {
    pub ok: bool,
    pub status: String,
    /// stdout, then stderr.
    pub text: String,
}

/// Run `cmd` (in `dir` unless it has a working folder) with stdout and stderr to files in `dir`
/// (no pipe can fill up), killing it after `timeout`.
pub fn bounded(cmd: &mut Command, dir: &Path, name: &str, timeout: Duration) -> Output {
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    let stdout = fs::File::create(&out_path).expect("stdout file");
    let stderr = fs::File::create(&err_path).expect("stderr file");
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(dir);
    }
    let child = cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Output { ok: false, status: format!("cannot start: {e}"), text: String::new() },
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("killed after {} s", timeout.as_secs());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break format!("wait failed: {e}"),
        }
    };
    let ok = status == "exit status: 0";
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let (o, e) = (read(&out_path), read(&err_path));
    let text = if e.trim().is_empty() { o } else { format!("{o}\n---- stderr ----\n{e}") };
    Output { ok, status, text }
}

/// `arcbase serve` on a fresh database of the test backend (a SQLite file in `dir`, or with
/// `ARCBASE_TEST_BACKEND=postgres` a new database of the throwaway cluster), in development
/// mode (no admin key), listening on a free loopback port, stopped on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl Server {
    /// Start `arcbase serve --database … --listen 127.0.0.1:0 ARGS…` in `dir` and wait until it
    /// prints its address.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let log = dir.join("server.log");
        let database = if super::backend_is_postgres() {
            let cluster = super::pg::cluster().unwrap_or_else(|why| panic!("PostgreSQL is unavailable: {why}"));
            tokio::runtime::Runtime::new().expect("runtime").block_on(super::pg::fresh_database(cluster))
        } else {
            format!("sqlite://{}", dir.join("db.sqlite").display())
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["serve", "--database", &database, "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("ARCBASE_ADMIN_KEY")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("server log"))
            .spawn()
            .expect("start arcbase serve");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("playground: http://") {
                    let _ = tx.send(rest.trim_end_matches("/graphql").to_string());
                    break;
                }
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = Server { child, addr: String::new(), log };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => server.addr = addr,
            Err(e) => {
                // Closed output usually means it exited: give it a moment to be reaped.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut exited = server.exited();
                while exited.is_none() && matches!(e, mpsc::RecvTimeoutError::Disconnected) && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(50));
                    exited = server.exited();
                }
                let state = match (exited, e) {
                    (Some(status), _) => format!("it exited ({status})"),
                    (None, mpsc::RecvTimeoutError::Disconnected) => {
                        "it closed its output without printing its address".into()
                    }
                    (None, mpsc::RecvTimeoutError::Timeout) => {
                        format!("it did not print its address within {} s", START_TIMEOUT.as_secs())
                    }
                };
                panic!(
                    "`arcbase serve --database {database} --listen 127.0.0.1:0 {}` failed to start: {state}\n\
                     ---- server log (last 60 lines) ----\n{}",
                    args.join(" "),
                    server.log_tail(60)
                );
            }
        }
        server
    }

    /// Whether the server has stopped, and how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// The last `n` lines of the server's log (its standard error).
    pub fn log_tail(&self, n: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
