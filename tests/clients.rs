//! Real GraphQL clients against the real binary (`tests/clients/`): graphql-http's
//! GraphQL-over-HTTP server audits, Apollo Client's normalized cache and cursor paging, and
//! GraphQL Code Generator with graphql-js introspection. Each suite is a Node.js script; each
//! test here starts its own `arcbase serve` on a fresh SQLite file with the example schema and
//! runs one script against it.
//!
//! The pinned npm packages (`tests/clients/graphql/package-lock.json`) are installed with
//! `npm ci` once into `$ARCBASE_TEST_CACHE` (default `~/.cache/arcbase-tests`), in a folder
//! named after a hash of the package files and the Node.js version, and reused from there; the
//! scripts are copied next to that `node_modules` so that their imports resolve. Without `node`
//! and `npm`, or when the install fails, the tests say `SKIPPED` loudly; under `CI=true` they
//! fail instead. Every child process is bounded in time.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUITES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/graphql");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/example.graphql");
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn graphql_over_http_audits() {
    run_suite("graphql_over_http_audits", "audits.mjs", false);
}

#[test]
fn apollo_client_cache_and_paging() {
    run_suite("apollo_client_cache_and_paging", "apollo.mjs", false);
}

#[test]
fn codegen_and_introspection() {
    run_suite("codegen_and_introspection", "codegen.mjs", true);
}

/// Install (or reuse) the packages, start a fresh server, run `script` against it.
fn run_suite(test: &str, script: &str, with_sdl: bool) {
    let modules = match installed() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, why),
    };
    let work = tempfile::tempdir().expect("tempdir");
    // The scripts next to the installed node_modules, so that `import 'graphql'` resolves.
    let scripts = tempfile::Builder::new().prefix("run-").tempdir_in(modules).expect("script folder in the cache");
    for entry in fs::read_dir(SUITES).expect("read tests/clients/graphql") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "mjs") {
            let name = path.file_name().expect("file name");
            fs::copy(&path, scripts.path().join(name)).expect("copy a script");
        }
    }
    let mut args = vec![];
    if with_sdl {
        let sdl = work.path().join("built.graphql");
        let out = bounded(
            Command::new(env!("CARGO_BIN_EXE_arcbase")).args(["schema", "build", SCHEMA, "--out"]).arg(&sdl),
            work.path(),
            "schema-build",
            START_TIMEOUT,
        );
        assert!(out.ok, "arcbase schema build failed:\n{}", out.text);
        args.push("--sdl".to_string());
        args.push(sdl.display().to_string());
    }

    let server = Server::start(work.path());
    let url = format!("http://{}/graphql", server.addr);
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(&url).args(&args).current_dir(scripts.path()).env("ARCBASE_URL", &url);
    let out = bounded(&mut cmd, work.path(), script, SCRIPT_TIMEOUT);
    if !out.ok {
        panic!(
            "{test}: `node {script} {url}{}` failed ({}):\n{}\n---- server log (last 60 lines) ----\n{}",
            args.iter().map(|a| format!(" {a}")).collect::<String>(),
            out.status,
            out.text,
            server.log_tail(60)
        );
    }
    println!("{}", out.text);
}

/// A missing prerequisite: skip loudly, or fail under CI.
fn unavailable(test: &str, why: String) {
    let ci = std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false);
    if ci {
        panic!("{test}: the client suites are required under CI=true but cannot run: {why}");
    }
    // Straight to the process's stderr, past the test harness's output capture: a skip must be
    // seen.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***\n");
}

/// The folder holding `node_modules` with the pinned packages, installed once per process (and
/// reused across processes through the cache folder).
fn installed() -> Result<&'static Path, String> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED.get_or_init(install).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}

fn install() -> Result<PathBuf, String> {
    let node = version_of("node")?;
    let npm = version_of("npm")?;
    let package = fs::read(Path::new(SUITES).join("package.json")).map_err(|e| format!("package.json: {e}"))?;
    let lock = fs::read(Path::new(SUITES).join("package-lock.json")).map_err(|e| format!("package-lock.json: {e}"))?;
    let key = fnv1a(&[&package, &lock, node.as_bytes()]);
    let root = cache_root();
    let dir = root.join(format!("clients-graphql-{key:016x}"));
    let done = dir.join(".installed");
    if done.exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    // Install into a private folder, then rename it into place: concurrent test processes
    // never see a half-installed folder.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = root.join(format!("clients-graphql-{key:016x}.tmp-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = (|| {
        fs::write(tmp.join("package.json"), &package).map_err(|e| e.to_string())?;
        fs::write(tmp.join("package-lock.json"), &lock).map_err(|e| e.to_string())?;
        eprintln!("clients: installing the pinned npm packages into {} (node {node}, npm {npm})", dir.display());
        let started = Instant::now();
        let out = bounded(
            Command::new("npm").args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"]),
            &tmp,
            "npm-ci",
            INSTALL_TIMEOUT,
        );
        if !out.ok {
            return Err(format!("`npm ci` in {} failed ({}):\n{}", tmp.display(), out.status, out.text));
        }
        eprintln!("clients: installed in {:.1} s", started.elapsed().as_secs_f64());
        fs::write(tmp.join(".installed"), format!("node {node}, npm {npm}\n")).map_err(|e| e.to_string())?;
        Ok(())
    })();
    if let Err(why) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(why);
    }
    if fs::rename(&tmp, &dir).is_err() {
        // Another process finished first: use its folder.
        let _ = fs::remove_dir_all(&tmp);
        if !done.exists() {
            return Err(format!("could not move the install into {}", dir.display()));
        }
    }
    Ok(dir)
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARCBASE_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("arcbase-tests"),
        None => std::env::temp_dir().join("arcbase-tests"),
    }
}

/// `PROGRAM --version`, or why it cannot be run.
fn version_of(program: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = bounded(Command::new(program).arg("--version"), dir.path(), program, Duration::from_secs(60));
    if !out.ok {
        let detail = out.text.trim();
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        return Err(format!("`{program} --version` failed ({}){detail}", out.status));
    }
    Ok(out.text.trim().to_string())
}

/// FNV-1a over the parts (with a separator): a stable cache key without a hashing crate.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

struct Output {
    ok: bool,
    status: String,
    /// stdout, then stderr.
    text: String,
}

/// Run `cmd` (in `dir` unless it has a working folder) with stdout and stderr to files in `dir`
/// (no pipe can fill up), killing it after `timeout`.
fn bounded(cmd: &mut Command, dir: &Path, name: &str, timeout: Duration) -> Output {
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
/// mode (no admin key), stopped on drop.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let log = dir.join("server.log");
        let database = if common::backend_is_postgres() {
            let cluster = common::pg::cluster().unwrap_or_else(|why| panic!("PostgreSQL is unavailable: {why}"));
            tokio::runtime::Runtime::new().expect("runtime").block_on(common::pg::fresh_database(cluster))
        } else {
            format!("sqlite://{}", dir.join("x.db").display())
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_arcbase"))
            .args(["serve", "--schema", SCHEMA, "--database", &database, "--listen", "127.0.0.1:0"])
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
            Err(_) => panic!("arcbase did not print its address within {START_TIMEOUT:?}:\n{}", server.log_tail(60)),
        }
        server
    }

    fn log_tail(&self, n: usize) -> String {
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
