//! Benchmark helper for `bench/run.sh`:
//!
//! - `load DATABASE_URL [MESSAGES]`: publish `bench/schema.graphql` as the `default` app's
//!   release and fill it with 1,000 members and 100,000 messages, or MESSAGES (the same data
//!   `bench/postgraphile.sql` makes).
//! - `raw DATABASE_URL WORKLOAD CONNECTIONS SECONDS`: run the statements arcbase renders for a
//!   workload (`get`, `find`, `count`) straight through the store (SQLite: on the calling
//!   thread; with `ARCBASE_LIMIT_SQLITE_INLINE_US=0` through sqlx's threads), no HTTP and no GraphQL: the
//!   physical limit of the database path (`noop`: `SELECT 1`, the driver's own cost per
//!   statement). Prints one JSON line with rps, p50 and p99.
//! - `graphql DATABASE_URL CONNECTIONS SECONDS`: `get by id` through the GraphQL layer in
//!   process (no HTTP).
//! - `router DATABASE_URL CONNECTIONS SECONDS literal|variables|find|count [MESSAGES]`: `get by id`
//!   through the whole HTTP handler in process (no socket), with the id in the text or in the
//!   variables; `find` / `count`: the `find 25 + cursor` / `count + sum` workloads of
//!   `bench/wrk/workload.lua` instead (MESSAGES: how many the database holds, 100,000 unless
//!   given).
//! - `sql sqlite|postgres WORKLOAD`: print the statement `raw` runs for WORKLOAD and its binds.
//! - `static ADDR`: an axum server answering every POST with a fixed GraphQL response: the
//!   limit of the HTTP stack.

// The server's allocator (src/main.rs), so that `static` and the in-process figures measure
// the stack `arcbase serve` runs on.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arcbase::model::Model;
use arcbase::plan::aggregate::{AggCall, AggField, AggFn, AggPlan, AggTarget};
use arcbase::plan::filter::{plan_query, Col};
use arcbase::plan::read::{Item, ObjectSelection};
use arcbase::sql::aggregate::AggRenderer;
use arcbase::sql::find::{FindRenderer, Output, Seek, Select, Trashed};
use arcbase::sql::read::ReadRenderer;
use arcbase::sql::{Sql, Viewer};
use arcbase::store::Store;

const SDL: &str = include_str!("../bench/schema.graphql");
const MEMBERS: i64 = 1_000;
const MESSAGES: i64 = 100_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "load" => load(&arg(1), arg(2).parse().unwrap_or(MESSAGES)).await,
        "raw" => raw(&arg(1), &arg(2), arg(3).parse().unwrap_or(16), arg(4).parse().unwrap_or(10)).await,
        "static" => serve_static(&arg(1)).await,
        "sql" => {
            let model = arcbase::model::parse_sdl(SDL).expect("bench SDL");
            let d = if arg(1) == "postgres" { arcbase::sql::Dialect::Postgres } else { arcbase::sql::Dialect::Sqlite };
            let sql = statement(&model, "default", d, &arg(2), &mut Rng(7));
            println!("{}\n{:?}", sql.driver_text(), sql.binds);
        }
        "graphql" => graphql(&arg(1), arg(2).parse().unwrap_or(16), arg(3).parse().unwrap_or(10)).await,
        "router" => {
            let messages = arg(5).parse().unwrap_or(MESSAGES);
            router(&arg(1), arg(2).parse().unwrap_or(16), arg(3).parse().unwrap_or(10), &arg(4), messages).await
        }
        _ => {
            eprintln!("usage: bench load URL | raw URL get|find|count CONNECTIONS SECONDS | static ADDR");
            std::process::exit(2);
        }
    }
}

/// The store at `url` with the `ARCBASE_LIMIT_*` settings of the environment (so that
/// `ARCBASE_LIMIT_SQLITE_INLINE_US=0` measures SQLite reads through the pool's threads).
async fn open(url: &str) -> Store {
    let limits = arcbase::config::Limits::from_env(|k| std::env::var(k).ok()).expect("ARCBASE_LIMIT_* settings");
    let budgets = arcbase::store::Budgets::from_limits(&limits);
    let store = Store::open_with(url, budgets).await.expect("open database");
    arcbase::tenancy::serve_default(&store, SDL).await.expect("publish the bench schema");
    store
}

async fn load(url: &str, count: i64) {
    let store = open(url).await;
    let d = store.dialect();
    let now = "'2026-01-01T00:00:00.000Z'";
    let members = match d {
        arcbase::sql::Dialect::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MEMBERS}) \
             INSERT INTO \"default__Member\" (hypi_instance, hypi_id, hypi_created, hypi_updated, name) \
             SELECT 'default', printf('a%04d', i), {now}, {now}, 'member ' || i FROM n"
        ),
        arcbase::sql::Dialect::Postgres => format!(
            "INSERT INTO \"default__Member\" (hypi_instance, hypi_id, hypi_created, hypi_updated, name) \
             SELECT 'default', 'a' || lpad(i::text, 4, '0'), {now}, {now}, 'member ' || i FROM generate_series(1, {MEMBERS}) i"
        ),
    };
    // Messages m000001 ... in chunks of 100,000 (each statement within the statement budget).
    let messages = |from: i64, to: i64| {
        match d {
        arcbase::sql::Dialect::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) \
             INSERT INTO \"default__Message\" (hypi_instance, hypi_id, hypi_created, hypi_updated, text, score, account) \
             SELECT 'default', printf('m%06d', i), {now}, {now}, 'message ' || i, (i * 37) % 100, \
             printf('a%04d', ((i - 1) % {MEMBERS}) + 1) FROM n"
        ),
        arcbase::sql::Dialect::Postgres => format!(
            "INSERT INTO \"default__Message\" (hypi_instance, hypi_id, hypi_created, hypi_updated, text, score, account) \
             SELECT 'default', 'm' || CASE WHEN i < 1000000 THEN lpad(i::text, 6, '0') ELSE i::text END, {now}, {now}, \
             'message ' || i, (i * 37) % 100, 'a' || lpad((((i - 1) % {MEMBERS}) + 1)::text, 4, '0') \
             FROM generate_series({from}, {to}) i"
        ),
    }
    };
    let mut statements =
        vec!["DELETE FROM \"default__Message\"".to_string(), "DELETE FROM \"default__Member\"".to_string(), members];
    let mut from = 1;
    while from <= count {
        let to = (from + 99_999).min(count);
        statements.push(messages(from, to));
        from = to + 1;
    }
    for sql in &statements {
        store.execute(&Sql::raw(d, sql)).await.expect("load");
    }
    // Fresh statistics, so the planner sees the data it will serve.
    let _ = store.execute(&Sql::raw(d, "ANALYZE")).await;
    store.close().await;
    println!("loaded {MEMBERS} members and {count} messages into {url}");
}

/// Pseudo-random numbers without a dependency (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

fn statement(model: &Model, app: &str, d: arcbase::sql::Dialect, workload: &str, rng: &mut Rng) -> Sql {
    let (msg, _) = model.type_by_name("Message").expect("Message");
    let text = model.types[msg].field("text").expect("text").0;
    let score = model.types[msg].field("score").expect("score").0;
    let viewer = Viewer::Admin;
    let sel = ObjectSelection { type_idx: msg, items: vec![Item::Column(text), Item::Column(score)] };
    let member = rng.below(MEMBERS) + 1;
    match workload {
        // The floor of one statement through the driver: on SQLite, the hop to the
        // connection's thread and back around a statement that does nothing.
        "noop" => Sql::raw(d, "SELECT 1"),
        "get" => {
            let id = format!("m{:06}", rng.below(MESSAGES) + 1);
            ReadRenderer { model, app, dialect: d, viewer: &viewer }.get_by_id(&sel, "default", &id, false)
        }
        "find" => {
            let filter =
                plan_query(model, msg, &format!("account.hypi.id = 'a{member:04}' AND score > 5")).expect("arcql");
            let after = format!("m{:06}", member + MEMBERS * rng.below(50));
            let s = Select {
                type_idx: msg,
                filter: &filter,
                instance: "default",
                trashed: Trashed::Hide,
                seeks: vec![Seek { values: &[], id: &after, backward: false, negate: false }],
                reverse: false,
                limit: Some(26),
                offset: 0,
            };
            FindRenderer { model, app, dialect: d }.select(&s, Output::Documents(&sel))
        }
        _ => {
            let filter = plan_query(model, msg, &format!("account.hypi.id = 'a{member:04}'")).expect("arcql");
            let target = AggTarget::Column(Col::Field { type_idx: msg, field: score }, arcbase::model::Scalar::Int);
            let calls = vec![
                AggCall { key: "count".into(), func: AggFn::Count, distinct: false },
                AggCall { key: "sum".into(), func: AggFn::Sum, distinct: false },
            ];
            let plan = AggPlan {
                type_idx: msg,
                fields: vec![AggField { key: "score".into(), target, calls, group_values: false }],
                filter,
                group_by: Vec::new(),
                having: None,
                include_trashed: false,
            };
            AggRenderer { model, app, dialect: d }.select(&plan, "default", None)
        }
    }
}

/// Closed-loop load: `connections` tasks each run `one(rng)` back to back for `seconds`, then
/// print one JSON line with throughput and latency percentiles (each call is one request).
async fn drive<F, Fut>(connections: usize, seconds: u64, one: F)
where
    F: Fn(Rng) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Rng> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (stop, one) = (stop.clone(), one.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                rng = one(rng).await;
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{{\"rps\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"requests\": {}}}",
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.len()
    );
}

async fn raw(url: &str, workload: &str, connections: usize, seconds: u64) {
    let store = open(url).await;
    let model = Arc::new(arcbase::model::parse_sdl(SDL).expect("bench SDL"));
    let workload: Arc<str> = Arc::from(workload);
    let s = store.clone();
    drive(connections, seconds, move |mut rng| {
        let (store, model, workload) = (s.clone(), model.clone(), workload.clone());
        async move {
            let sql = statement(&model, "default", store.dialect(), &workload, &mut rng);
            let rows = store.fetch_rows(&sql).await.expect("statement runs");
            assert!(!rows.is_empty() || &*workload == "find", "{workload} returned nothing");
            rng
        }
    })
    .await;
    store.close().await;
}

/// `get by id` through the GraphQL layer in process (no HTTP): how much of a request's cost
/// is GraphQL parsing, validation and execution on top of the statement.
async fn graphql(url: &str, connections: usize, seconds: u64) {
    let opts = arcbase::server::ServeOptions::new(Some("bench/schema.graphql".into()), url);
    let app = arcbase::server::build(&opts).await.expect("build");
    let served = app.registry.snapshot().tenants.get("default").expect("default").served.clone();
    let secret = app.jwt_secret.clone();
    let guards = app.guards.clone();
    drive(connections, seconds, move |mut rng| {
        let (served, secret, guards) = (served.clone(), secret.clone(), guards.clone());
        async move {
            let q = format!(
                "{{ get(type: Message, id: \"m{:06}\") {{ ... on Message {{ text score }} }} }}",
                rng.below(MESSAGES) + 1
            );
            let caller = arcbase::ops::Caller {
                instance: "default".into(),
                viewer: Viewer::Admin,
                anonymous_registrations: false,
                jwt_secret: secret,
                client: None,
                guards: guards.clone(),
                hyper: None,
                pending: Default::default(),
                fresh: false,
            };
            let credentials = std::sync::atomic::AtomicUsize::new(0);
            let ctx = arcbase::graphql::Context {
                caller: &caller,
                anonymous_requests: false,
                only_queries: false,
                credentials: &credentials,
            };
            let req = arcbase::graphql::Request { query: q, ..Default::default() };
            let (resp, _) = arcbase::graphql::execute(&served, &ctx, req).await;
            assert!(resp.errors.is_empty(), "{:?}", resp.errors);
            rng
        }
    })
    .await;
}

/// `get by id` through the whole HTTP handler (router, middleware, body, JSON) in process, with
/// no socket: what the front door costs apart from the network. `texts`: `literal` (the id in
/// the query text, a new text per request) or `variables` (one text, the id a variable).
async fn router(url: &str, connections: usize, seconds: u64, texts: &str, messages: i64) {
    use tower::ServiceExt;
    let opts = arcbase::server::ServeOptions::new(Some("bench/schema.graphql".into()), url);
    let app = arcbase::server::build(&opts).await.expect("build");
    let router = arcbase::server::router(app);
    let literal = texts == "literal";
    let find = texts == "find";
    let count = texts == "count";
    drive(connections, seconds, move |mut rng| {
        let router = router.clone();
        async move {
            let id = rng.below(messages) + 1;
            let body = if count {
                let a = rng.below(MEMBERS) + 1;
                format!(
                    r#"{{"query":"query Count($where: String) {{ aggregate {{ message(where: $where) {{ score {{ count sum }} }} }} }}","variables":{{"where":"account.hypi.id = 'a{a:04}'"}}}}"#
                )
            } else if find {
                let a = rng.below(MEMBERS) + 1;
                let after = a + 1000 * rng.below(messages / 2000);
                format!(
                    r#"{{"query":"query Find($arcql: String!, $after: String) {{ find(type: Message, arcql: $arcql, first: 25, after: $after) {{ edges {{ cursor node {{ ... on Message {{ text score }} }} }} pageInfo {{ hasNextPage endCursor }} }} }}","variables":{{"arcql":"account.hypi.id = 'a{a:04}' AND score > 5","after":"m{after:06}"}}}}"#
                )
            } else if literal {
                format!(r#"{{"query":"{{ get(type: Message, id: \"m{id:06}\") {{ ... on Message {{ text score }} }} }}"}}"#)
            } else {
                format!(
                    r#"{{"query":"query($id: String!) {{ get(type: Message, id: $id) {{ ... on Message {{ text score }} }} }}","variables":{{"id":"m{id:06}"}}}}"#
                )
            };
            let req = axum::http::Request::post("/graphql")
                .header("content-type", "application/json")
                .header("host", "127.0.0.1")
                .body(axum::body::Body::from(body))
                .expect("request");
            let resp = router.oneshot(req).await.expect("response");
            assert_eq!(resp.status(), 200);
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
            assert!(!bytes.windows(8).any(|w| w == b"\"errors\""), "{}", String::from_utf8_lossy(&bytes));
            rng
        }
    })
    .await;
}

async fn serve_static(addr: &str) {
    use axum::routing::post;
    let body = r#"{"data":{"get":{"text":"message 1","score":37}}}"#;
    let app = axum::Router::new().route(
        "/graphql",
        post(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("static on {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
