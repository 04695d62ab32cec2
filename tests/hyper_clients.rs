//! The official hyper clients against arcbase's hyper-compatible REST API (`tests/clients/hyper/`):
//! every example of the README of `hyper-connect` 0.0.10 (PyPI, plus the upstream `examples.py`
//! and `examples_async.py` it links to) and of `hyper-connect` 0.12.0 (npm), run unchanged
//! against a real `arcbase serve` and checked against the documented results. Each test starts
//! its own server on a fresh database with a fresh storage folder, in development mode, and runs
//! one script against it.
//!
//! The clients are installed once into `$ARCBASE_TEST_CACHE` (default `~/.cache/arcbase-tests`)
//! and reused from there: the Python one into a venv `hyper-py-<hash>` (hash of
//! `py/requirements.txt` and the Python version, `pip install --no-deps -r requirements.txt`:
//! every package pinned, see that file), the npm one with `npm ci` into `hyper-js-<hash>` (hash
//! of `js/package.json`, `js/package-lock.json` and the Node.js version). Without `python3` or
//! `node`/`npm`, or when an install fails, the tests say `SKIPPED` loudly; under `CI=true` they
//! fail instead. Every child process is bounded in time.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::clients::{
    bounded, cached_install, fnv1a, npm_install, unavailable, version_of, Server, INSTALL_TIMEOUT, SCRIPT_TIMEOUT,
    START_TIMEOUT,
};

const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/hyper/py");
const JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/hyper/js");

/// The PyPI README's examples (PY-1 .. PY-8) and every call of examples.py and
/// examples_async.py, with the Python client, sync and async.
#[test]
fn hyper_connect_python_readme_and_examples() {
    let test = "hyper_connect_python_readme_and_examples";
    let venv = match python_venv() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    let work = tempfile::tempdir().expect("tempdir");
    let run = work.path().join("run");
    fs::create_dir_all(&run).expect("run folder");
    fs::copy(Path::new(PY).join("readme.py"), run.join("readme.py")).expect("copy readme.py");

    let mut target = Target::start(work.path());
    let hyper = format!("http://{}/readme", target.addr());
    // As in the README: the connection string comes from ./.env.
    fs::write(run.join(".env"), format!("HYPER={hyper}\n")).expect("write .env");
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.arg("readme.py").current_dir(&run).env("PYTHONUNBUFFERED", "1").env("PYTHONDONTWRITEBYTECODE", "1");
    no_proxy(&mut cmd);
    let out = bounded(&mut cmd, work.path(), "readme.py", SCRIPT_TIMEOUT);
    finish(test, &format!("python readme.py (HYPER={hyper} in .env)"), &out, &mut target);
}

/// The npm README's examples (JS-1 .. JS-7), JS-2 with a real file and JS-7 with a real queue
/// delivery verified by `createHyperVerify`.
#[test]
fn hyper_connect_js_readme() {
    let test = "hyper_connect_js_readme";
    let modules = match js_modules() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    let work = tempfile::tempdir().expect("tempdir");
    // The script next to the installed node_modules, so that `import 'hyper-connect'` resolves.
    let run = tempfile::Builder::new().prefix("run-").tempdir_in(modules).expect("script folder in the cache");
    fs::copy(Path::new(JS).join("readme.mjs"), run.path().join("readme.mjs")).expect("copy readme.mjs");

    let mut target = Target::start(work.path());
    let hyper = format!("http://{}/jsreadme", target.addr());
    let mut cmd = Command::new("node");
    cmd.arg("readme.mjs").current_dir(run.path()).env("HYPER", &hyper).env_remove("QUEUE_SECRET");
    no_proxy(&mut cmd);
    let out = bounded(&mut cmd, work.path(), "readme.mjs", SCRIPT_TIMEOUT);
    finish(test, &format!("HYPER={hyper} node readme.mjs"), &out, &mut target);
}

/// The hyper server under test: a fresh `arcbase serve` (a fresh database and storage folder
/// under `dir`), or, to check the scripts themselves against another hyper server, the one at
/// `$ARCBASE_TEST_HYPER_SERVER` (`127.0.0.1:PORT`, whose stores must start empty).
enum Target {
    Arcbase(Server),
    External(String),
}

impl Target {
    fn start(dir: &Path) -> Target {
        if let Some(addr) = std::env::var("ARCBASE_TEST_HYPER_SERVER").ok().filter(|a| !a.is_empty()) {
            eprintln!("hyper_clients: against the server at {addr} (ARCBASE_TEST_HYPER_SERVER), not arcbase");
            return Target::External(addr);
        }
        let server_dir = dir.join("server");
        let storage = server_dir.join("storage");
        fs::create_dir_all(&storage).expect("storage folder");
        let storage = storage.display().to_string();
        Target::Arcbase(Server::start(&server_dir, &["--storage-dir", &storage]))
    }

    fn addr(&self) -> &str {
        match self {
            Target::Arcbase(server) => &server.addr,
            Target::External(addr) => addr,
        }
    }

    /// Whether the server still runs, and the tail of its log.
    fn report(&mut self) -> String {
        match self {
            Target::External(addr) => format!("(the server at {addr} is not arcbase: no log)"),
            Target::Arcbase(server) => {
                let state = match server.exited() {
                    Some(status) => format!("*** the arcbase server is no longer running: it exited ({status}) ***\n"),
                    None => String::new(),
                };
                format!(
                    "{state}---- arcbase server log (last 60 lines) ----\n{}\n---- end of the server log ----",
                    server.log_tail(60)
                )
            }
        }
    }
}

/// The clients talk to 127.0.0.1 directly, whatever proxy the environment names.
fn no_proxy(cmd: &mut Command) {
    for var in ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1");
}

/// Pass, or fail with the script's report (each failed example with what was expected and what
/// came back, and the requests it sent), the server's state and the tail of its log.
fn finish(test: &str, what: &str, out: &common::clients::Output, target: &mut Target) {
    if out.ok {
        println!("{}", out.text);
        return;
    }
    panic!(
        "{test}: `{what}` failed ({}):\n\n{}\n\n{}\n\
         {test}: FAILED, see the FAIL lines above (each with expected / got and the requests it sent)",
        out.status,
        out.text.trim_end(),
        target.report()
    );
}

/// The venv with the pinned Python packages, installed once per process (and reused across
/// processes through the cache folder).
fn python_venv() -> Result<&'static Path, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(install_python).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}

fn install_python() -> Result<PathBuf, String> {
    let python = version_of("python3")?;
    let requirements_path = Path::new(PY).join("requirements.txt");
    let requirements = fs::read(&requirements_path).map_err(|e| format!("{}: {e}", requirements_path.display()))?;
    let key = fnv1a(&[&requirements, python.as_bytes()]);
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let venv = cached_install("hyper-py", key, &python, |tmp| {
        let out = bounded(Command::new("python3").args(["-m", "venv"]).arg(tmp), logs.path(), "venv", INSTALL_TIMEOUT);
        if !out.ok {
            return Err(format!("`python3 -m venv {}` failed ({}):\n{}", tmp.display(), out.status, out.text));
        }
        fs::write(tmp.join("requirements.txt"), &requirements).map_err(|e| e.to_string())?;
        // --no-deps: hyper-connect's own pins include numpy 1.22.3 (no wheel for current
        // Pythons) and development tools; requirements.txt lists the complete runtime set.
        let mut pip = Command::new(tmp.join("bin").join("python"));
        pip.args(["-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check", "-r"])
            .arg(tmp.join("requirements.txt"))
            .env("PIP_NO_INPUT", "1");
        let out = bounded(&mut pip, logs.path(), "pip-install", INSTALL_TIMEOUT);
        if !out.ok {
            return Err(format!("`pip install --no-deps -r requirements.txt` failed ({}):\n{}", out.status, out.text));
        }
        Ok(())
    })?;
    // The venv was made under another name and moved: check that it works where it is.
    let check = bounded(
        Command::new(venv.join("bin").join("python")).args([
            "-c",
            "import dotenv, hyper_connect, requests, requests_toolbelt; \
             from hyper_connect.types import Hyper, ListOptions, QueryOptions, SearchQueryOptions",
        ]),
        logs.path(),
        "import-check",
        START_TIMEOUT,
    );
    if !check.ok {
        let _ = fs::remove_dir_all(&venv);
        return Err(format!(
            "the venv {} cannot import the client ({}):\n{}",
            venv.display(),
            check.status,
            check.text
        ));
    }
    Ok(venv)
}

/// The folder holding `node_modules` with the pinned npm package, installed once per process.
fn js_modules() -> Result<&'static Path, String> {
    static MODULES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MODULES.get_or_init(|| npm_install("hyper-js", Path::new(JS))).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}

/// The official clients read what the bridge wrote: a local `arcbase serve --hyper` follows
/// its `@hyper` Books into a second arcbase serving the hyper API; then `hyper-connect` for
/// Python and for JS, against that remote, `data.get`, `data.query` and `search.query` them.
#[test]
fn hyper_connect_reads_what_the_bridge_wrote() {
    let test = "hyper_connect_reads_what_the_bridge_wrote";
    let venv = match python_venv() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    let modules = match js_modules() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    let work = tempfile::tempdir().expect("tempdir");
    let remote_dir = work.path().join("remote");
    fs::create_dir_all(remote_dir.join("storage")).expect("remote folder");
    let storage = remote_dir.join("storage").display().to_string();
    let remote = Server::start(&remote_dir, &["--storage-dir", &storage]);
    let schema = work.path().join("books.graphql");
    fs::write(
        &schema,
        "type Book @hyper(search: [\"title\"], store: [\"title\", \"year\"]) {\n  title: String!\n  year: Int\n}\n",
    )
    .expect("schema");
    let local_dir = work.path().join("local");
    fs::create_dir_all(local_dir.join("storage")).expect("local folder");
    let hyper = format!("http://{}/books", remote.addr);
    let local_storage = local_dir.join("storage").display().to_string();
    let schema = schema.display().to_string();
    let local = Server::start(&local_dir, &["--schema", &schema, "--hyper", &hyper, "--storage-dir", &local_storage]);

    let q = serde_json::json!({ "query": "mutation { upsert(values: {Book: [{title: \"Dune\", year: 1965}, {title: \"Dune Messiah\", year: 1969}, {title: \"Emma\", year: 1815}]}) { id } }" });
    let (status, _, body) = common::process::post_full(&local.addr, "/graphql", &q, &[]);
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> = body["data"]["upsert"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|h| h["id"].as_str().expect("id").to_string())
        .collect();
    let ids_json = serde_json::to_string(&ids).expect("json");

    let py = r#"
import json, sys, time
from hyper_connect import connect
hyper = connect(sys.argv[1])
ids = json.loads(sys.argv[2])
deadline = time.time() + 20
while True:
    s = hyper.search.query("dune", {"fields": ["title"], "filter": None})
    if s.get("ok") and len(s.get("matches", [])) == 2:
        break
    if time.time() > deadline:
        sys.exit(f"FAIL search.query('dune') never found the two Dune books: {s}")
    time.sleep(0.2)
assert sorted(m["id"] for m in s["matches"]) == sorted(ids[:2]), s
assert all(m["type"] == "Book" and "title" in m for m in s["matches"]), s
got = hyper.data.get(ids[0])
assert got["_id"] == ids[0] and got["type"] == "Book" and got["title"] == "Dune" and got["year"] == 1965, got
q = hyper.data.query({"type": "Book"}, {"fields": ["_id", "title"], "sort": None, "limit": 100, "useIndex": None})
assert q["ok"] and sorted(d["_id"] for d in q["docs"]) == sorted(ids), q
print("PASS python hyper-connect read the mirrored Books:", len(q["docs"]), "docs,", len(s["matches"]), "matches")
"#;
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(["-c", py, &hyper, &ids_json]).env("PYTHONDONTWRITEBYTECODE", "1");
    no_proxy(&mut cmd);
    let out = bounded(&mut cmd, work.path(), "bridge-python", SCRIPT_TIMEOUT);
    assert!(out.ok, "{test}: python: {}\n{}", out.status, out.text);
    println!("{}", out.text);

    let js = r#"
import { connect } from 'hyper-connect';
const [hyperUrl, idsJson] = process.argv.slice(2);
const ids = JSON.parse(idsJson);
const hyper = connect(hyperUrl);
const fail = (what, got) => { console.log(`FAIL ${what}: ${JSON.stringify(got)}`); process.exit(1); };
const got = await hyper.data.get(ids[0]);
if (!got.ok || got.doc?._id !== ids[0] || got.doc?.title !== 'Dune') fail('data.get', got);
const q = await hyper.data.query({ type: 'Book' });
if (!q.ok || q.docs.map((d) => d._id).sort().join() !== [...ids].sort().join()) fail('data.query', q);
const s = await hyper.search.query('messiah');
if (!s.ok || s.matches.length !== 1 || s.matches[0].id !== ids[1]) fail('search.query', s);
console.log(`PASS js hyper-connect read the mirrored Books: ${q.docs.length} docs, search found ${s.matches[0].title}`);
"#;
    let run = tempfile::Builder::new().prefix("bridge-").tempdir_in(modules).expect("script folder in the cache");
    fs::write(run.path().join("bridge.mjs"), js).expect("write bridge.mjs");
    let mut cmd = Command::new("node");
    cmd.arg("bridge.mjs").arg(&hyper).arg(&ids_json).current_dir(run.path());
    no_proxy(&mut cmd);
    let out = bounded(&mut cmd, work.path(), "bridge-js", SCRIPT_TIMEOUT);
    assert!(out.ok, "{test}: js: {}\n{}", out.status, out.text);
    println!("{}", out.text);
    drop(local);
}

/// The Python block of README.md's "hyper services" section runs as printed (the address
/// replaced by the test server's), raising nothing.
#[test]
fn the_readme_python_block_runs() {
    let test = "the_readme_python_block_runs";
    let venv = match python_venv() {
        Ok(dir) => dir,
        Err(why) => return unavailable(test, &why),
    };
    let readme = include_str!("../README.md");
    let section = readme.split("## hyper services").nth(1).expect("the README's hyper services section");
    let block = section.split("```python\n").nth(1).and_then(|b| b.split("```").next()).expect("a python block");
    let work = tempfile::tempdir().expect("tempdir");
    let mut target = Target::start(work.path());
    let code = block.replace("127.0.0.1:4000", target.addr());
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(["-c", &code]).env("PYTHONDONTWRITEBYTECODE", "1");
    no_proxy(&mut cmd);
    let out = bounded(&mut cmd, work.path(), "readme-block", SCRIPT_TIMEOUT);
    finish(test, "the README's python block", &out, &mut target);
}
