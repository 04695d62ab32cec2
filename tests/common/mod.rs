//! Test harness: an in-process arcbase (router + temporary SQLite file) driven through HTTP
//! requests with `tower::ServiceExt::oneshot`, no socket needed.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use arcbase::config::Limits;
use arcbase::server::{self, App, ServeOptions};

pub mod clients;
pub mod pg;
pub mod process;
pub mod rng;

/// The backend the behaviour suite runs on: `ARCBASE_TEST_BACKEND=postgres` runs every test
/// against a throwaway PostgreSQL cluster; anything else (the default) uses SQLite files.
pub fn backend_is_postgres() -> bool {
    std::env::var("ARCBASE_TEST_BACKEND").map(|v| v.eq_ignore_ascii_case("postgres")).unwrap_or(false)
}

/// A database URL of the test backend for a server process: a fresh PostgreSQL database with
/// `ARCBASE_TEST_BACKEND=postgres`, else the SQLite file `file` in `dir`.
#[allow(dead_code)]
pub fn backend_url(dir: &std::path::Path, file: &str) -> String {
    if backend_is_postgres() {
        let cluster = pg::cluster().unwrap_or_else(|why| panic!("PostgreSQL is unavailable: {why}"));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(pg::fresh_database(cluster))
    } else {
        format!("sqlite://{}", dir.join(file).display())
    }
}

pub const EXAMPLE: &str = include_str!("../../schema/example.graphql");

pub struct TestApp {
    pub app: Arc<App>,
    pub router: axum::Router,
    /// The same app with the operation cache bypassed (see [`TestApp::post_graphql`]).
    pub fresh_router: axum::Router,
    pub dir: tempfile::TempDir,
    /// Statements run by the differential's second requests (left out of [`TestApp::statements`]).
    shadow_statements: std::sync::atomic::AtomicU64,
    /// Run the differential (on by default; off for tests whose reads race their own writes
    /// or count the object cache's hits).
    differential: std::sync::atomic::AtomicBool,
}

/// Does the differential run this request a second time? Only reads that change nothing:
/// queries, not mutations or subscriptions, and no credential checks (they count attempts).
fn differential_applies(query: &str) -> bool {
    let q = query.trim_start();
    let writes = q.starts_with("mutation") || q.starts_with("subscription");
    let credentials = ["login", "createAccount", "loginByEmail"].iter().any(|f| query.contains(f));
    !writes && !credentials
}

/// Send the server's log (`tracing`, WARN and above unless `RUST_LOG` says otherwise) to the
/// test harness's captured output, so a failing test prints what the server logged (an
/// internal error's cause is logged, never answered) and a passing one prints nothing.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The first test of a binary to start a server installs it; the others find it there.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

impl TestApp {
    /// A fresh server for `sdl` on a new database of the test backend.
    pub async fn new(sdl: &str) -> TestApp {
        Self::with(sdl, None, Limits::default()).await
    }

    pub async fn with(sdl: &str, admin_key: Option<&str>, limits: Limits) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = if backend_is_postgres() {
            match pg::cluster() {
                Ok(c) => pg::fresh_database(c).await,
                Err(why) => panic!("ARCBASE_TEST_BACKEND=postgres but PostgreSQL is unavailable: {why}"),
            }
        } else {
            format!("sqlite://{}", dir.path().join("test.db").display())
        };
        Self::at(sdl, admin_key, limits, dir, &database_url).await
    }

    /// A server for `sdl` on the database at `database_url`.
    pub async fn at(
        sdl: &str,
        admin_key: Option<&str>,
        limits: Limits,
        dir: tempfile::TempDir,
        database_url: &str,
    ) -> TestApp {
        capture_logs();
        let schema_path = dir.path().join("schema.graphql");
        std::fs::write(&schema_path, sdl).expect("write schema");
        let opts = ServeOptions {
            schema_path: Some(schema_path.to_string_lossy().into_owned()),
            database_url: database_url.to_string(),
            admin_key: admin_key.map(str::to_string),
            limits,
            trust_request_id: false,
            allowed_hosts: Vec::new(),
            storage_dir: Some(dir.path().join("storage")),
            queue_private_targets: true,
            hyper_url: None,
            hyper_atomic_timeout: Duration::from_secs(5),
        };
        let app = server::build(&opts).await.expect("server builds");
        let router = server::router(app.clone());
        let fresh_router = server::router(app.clone()).layer(axum::Extension(server::FreshCompile));
        TestApp {
            app,
            router,
            fresh_router,
            dir,
            shadow_statements: Default::default(),
            differential: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Send a request; returns the status and the JSON body (`Value::Null` if not JSON).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Send a request; returns the status, the headers and the body as text.
    pub async fn send_full(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// POST a GraphQL body with extra headers.
    pub async fn post_with(&self, body: &Value, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let (status, _, text) = self.post_graphql(body, headers).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Turn the differential of [`TestApp::post_graphql`] off (or on again).
    pub fn differential(&self, on: bool) {
        self.differential.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// POST a GraphQL body with extra headers; returns the status, headers and body text.
    ///
    /// The differential test of the operation cache (`graphql::compiled`) and the filter
    /// cache (`plan::filter_cache`) runs here, for every query the behaviour suites send: the
    /// text is first compiled into the operation cache; the request then runs with both caches
    /// bypassed (a second router over the same app), which plans its ArcQL filters afresh and
    /// leaves them in the filter cache; then the request runs as a client's does, from both
    /// caches, and the two answers must be the same bytes (the request id aside). The shadow
    /// request's statements are left out of [`TestApp::statements`].
    pub async fn post_graphql(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = |headers: &[(&str, &str)]| {
            let mut req = Request::post("/graphql").header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(Body::from(body.to_string())).expect("request")
        };
        let on = self.differential.load(std::sync::atomic::Ordering::Relaxed);
        let query = body.get("query").and_then(Value::as_str).filter(|q| on && differential_applies(q));
        let served = match (query, headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("hypi-domain"))) {
            (Some(_), false) => self.app.registry.snapshot().tenants.get("default").map(|t| t.served.clone()),
            _ => None,
        };
        let (Some(q), Some(served)) = (query, served) else {
            let answer = self.send_full(request(headers)).await;
            assert_canonical_json(&answer.2);
            return answer;
        };
        let name = body.get("operationName").and_then(Value::as_str);
        arcbase::graphql::exec::prepare(&served, q, name).await;
        let before = self.app.store.statement_count();
        let resp = self.fresh_router.clone().oneshot(request(headers)).await.expect("router answers");
        let (status, fresh_headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let shadow = self.app.store.statement_count() - before;
        self.shadow_statements.fetch_add(shadow, std::sync::atomic::Ordering::Relaxed);
        let first = self.send_full(request(headers)).await;
        let id =
            |h: &axum::http::HeaderMap| h.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = String::from_utf8_lossy(&bytes).replace(&id(&fresh_headers), &id(&first.1));
        assert_eq!(
            (first.0, &first.2),
            (status, &text),
            "differential: the answer from the caches differs from a fresh compile and plan's for {body}"
        );
        assert_canonical_json(&first.2);
        first
    }

    /// POST `query` with `variables`; asserts HTTP 200 and returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post_with(&json!({ "query": query, "variables": variables }), &[]).await;
        assert_eq!(status, StatusCode::OK, "body: {body}");
        body
    }

    /// Like [`gql`], and asserts there are no errors; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Like [`gql`], and asserts there is an error; returns the first error.
    pub async fn err(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("expected errors: {body}"));
        assert!(!errors.is_empty(), "expected errors: {body}");
        errors[0].clone()
    }

    /// Upsert `values` and return the ids in input order.
    pub async fn upsert(&self, values: Value) -> Vec<String> {
        let data =
            self.ok("mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", json!({ "v": values })).await;
        data["upsert"].as_array().expect("list").iter().map(|h| h["id"].as_str().expect("id").to_string()).collect()
    }

    /// Run SQL written with `?` placeholders against the test database, whatever the
    /// backend; returns the rows.
    pub async fn sql(&self, text: &str, binds: Vec<arcbase::sql::SqlValue>) -> Vec<Vec<arcbase::sql::SqlValue>> {
        let store = &self.app.store;
        let sql = arcbase::sql::Sql::with_binds(store.dialect(), text, binds);
        store.execute(&sql).await.expect("test SQL runs")
    }

    /// `SELECT COUNT(*)`-style single integer.
    pub async fn sql_int(&self, text: &str) -> i64 {
        self.sql(text, Vec::new()).await[0][0].as_i64().expect("an integer")
    }

    /// The change feed in order: (instance, type, id, operation, version).
    pub async fn changes(&self) -> Vec<(String, String, String, String, i64)> {
        let rows = self
            .sql(
                "SELECT instance_id, type_name, object_id, operation, version FROM arcbase_changes ORDER BY seq",
                Vec::new(),
            )
            .await;
        rows.into_iter()
            .map(|r| {
                let s = |i: usize| r[i].as_str().expect("text").to_string();
                (s(0), s(1), s(2), s(3), r[4].as_i64().expect("version"))
            })
            .collect()
    }

    /// The engine of the `default` instance.
    pub fn engine(&self) -> &std::sync::Arc<arcbase::ops::Engine> {
        self.app.engine.as_ref().expect("a default instance")
    }

    /// Statements the store has executed so far.
    pub fn statements(&self) -> u64 {
        self.app.store.statement_count() - self.shadow_statements.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The `code` extension of an error.
pub fn code(err: &Value) -> &str {
    err["extensions"]["code"].as_str().unwrap_or("")
}

/// A GraphQL answer is exactly what serializing its JSON value again gives: compact, each key
/// once, in order, numbers and strings as serde_json writes them. The encoder writes `data`
/// straight into the response's bytes (`graphql::encode`), and this holds it to the bytes a
/// serialized tree of values would be, on every answer of every suite.
pub fn assert_canonical_json(body: &str) {
    let Ok(value) = serde_json::from_str::<Value>(body) else { return };
    assert_eq!(
        serde_json::to_string(&value).expect("serializes"),
        body,
        "the answer is not in canonical JSON form (what serializing its value gives)"
    );
}
