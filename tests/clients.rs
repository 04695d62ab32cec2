//! Real GraphQL clients against the real binary (`tests/clients/`): graphql-http's
//! GraphQL-over-HTTP server audits, Apollo Client's normalized cache and cursor paging, and
//! GraphQL Code Generator with graphql-js introspection, and subscriptions with graphql-ws,
//! subscriptions-transport-ws and Apollo Client's GraphQLWsLink; and the GraphiQL playground
//! in headless Chromium (Playwright). Each suite is a Node.js script; each test here starts its
//! own `arcbase serve` on a fresh SQLite file with the example schema and runs one script
//! against it.
//!
//! The pinned npm packages (`tests/clients/graphql/package-lock.json`) are installed with
//! `npm ci` once into `$ARCBASE_TEST_CACHE` (default `~/.cache/arcbase-tests`), in a folder
//! named after a hash of the package files and the Node.js version, and reused from there; the
//! scripts are copied next to that `node_modules` so that their imports resolve. Without `node`
//! and `npm`, or when the install fails, the tests say `SKIPPED` loudly; under `CI=true` they
//! fail instead. The browser test also needs Chromium (`$ARCBASE_CHROMIUM`, else
//! `/usr/bin/chromium` or `chromium` on the PATH; `.ci/run` installs Debian's). Every child
//! process is bounded in time.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::clients::{bounded, npm_install, unavailable, Server, SCRIPT_TIMEOUT, START_TIMEOUT};

const SUITES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/graphql");
const BROWSER_SUITES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/browser");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/example.graphql");

#[test]
fn graphql_over_http_audits() {
    run_suite("graphql_over_http_audits", "audits.mjs", false);
}

/// The playground page in headless Chromium: GraphiQL loads, runs a query, and shows a
/// subscription's events as upserts happen.
#[test]
fn playground_in_a_browser() {
    let chromium = match chromium() {
        Some(path) => path,
        None => {
            return unavailable(
                "playground_in_a_browser",
                "no Chromium: set ARCBASE_CHROMIUM or install Debian's `chromium` package",
            )
        }
    };
    let modules = match installed_in(&BROWSER, "clients-browser", BROWSER_SUITES) {
        Ok(dir) => dir,
        Err(why) => return unavailable("playground_in_a_browser", &why),
    };
    run_in(
        "playground_in_a_browser",
        modules,
        BROWSER_SUITES,
        "playground.mjs",
        false,
        &[("ARCBASE_CHROMIUM", chromium.as_os_str())],
    );
}

/// `$ARCBASE_CHROMIUM`, else Debian's `/usr/bin/chromium`, else `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ARCBASE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.exists() {
        return Some(debian);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.exists())
}

#[test]
fn apollo_client_cache_and_paging() {
    run_suite("apollo_client_cache_and_paging", "apollo.mjs", false);
}

/// Apollo Client's automatic persisted queries over POST and GET.
#[test]
fn apollo_persisted_queries() {
    run_suite("apollo_persisted_queries", "persisted.mjs", false);
}

/// graphql-ws, subscriptions-transport-ws and Apollo Client's GraphQLWsLink against the
/// WebSocket subscriptions.
#[test]
fn subscription_clients() {
    run_suite("subscription_clients", "realtime.mjs", false);
}

#[test]
fn codegen_and_introspection() {
    run_suite("codegen_and_introspection", "codegen.mjs", true);
}

/// Install (or reuse) the packages, start a fresh server, run `script` against it.
fn run_suite(test: &str, script: &str, with_sdl: bool) {
    let modules = match installed_in(&GRAPHQL, "clients-graphql", SUITES) {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    run_in(test, modules, SUITES, script, with_sdl, &[]);
}

/// Copy the scripts of `suites` next to `modules`, start a fresh server, run `script`.
fn run_in(test: &str, modules: &Path, suites: &str, script: &str, with_sdl: bool, env: &[(&str, &std::ffi::OsStr)]) {
    let work = tempfile::tempdir().expect("tempdir");
    // The scripts next to the installed node_modules, so that `import 'graphql'` resolves.
    let scripts = tempfile::Builder::new().prefix("run-").tempdir_in(modules).expect("script folder in the cache");
    for entry in fs::read_dir(suites).expect("read the suite's folder") {
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

    let server = Server::start(work.path(), &["--schema", SCHEMA]);
    let url = format!("http://{}/graphql", server.addr);
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(&url).args(&args).current_dir(scripts.path()).env("ARCBASE_URL", &url);
    for (key, value) in env {
        cmd.env(key, value);
    }
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

static GRAPHQL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static BROWSER: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The folder holding `node_modules` with a suite's pinned packages, installed once per process
/// (and reused across processes through the cache folder).
fn installed_in(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    name: &str,
    suites: &str,
) -> Result<&'static Path, String> {
    cell.get_or_init(|| npm_install(name, Path::new(suites))).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}
