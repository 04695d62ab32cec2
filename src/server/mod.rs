//! HTTP: the axum router, request ids and tracing, tenant and caller resolution, the
//! GraphQL transport, `/admin/`, the playground and health. The only module that knows HTTP.
//!
//! Every request gets an id (kept from a trusted proxy's `x-request-id`, else a new ULID):
//! it is answered in the `x-request-id` header, carried by every error's
//! `extensions.requestId`, and recorded on the request's span, so the log lines of one
//! request (each step has a span of its own) can be found from what the client saw.

mod admin;
pub mod body;
pub mod claim;
mod graphql;
mod hyper;
pub mod listen;
mod playground;
pub mod registry;
mod rest;
mod sse;
mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use crate::access::Viewer;
use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};
use crate::ops::{Caller, Engine};

/// Everything the router serves from.
pub struct App {
    pub store: crate::store::Store,
    /// The engine of the `default` instance as it was at start, if there is one (tests and
    /// diagnostics).
    pub engine: Option<Arc<Engine>>,
    /// What the server serves, for the start-up message.
    pub serving: String,
    /// The instances and the schema each runs; refreshed from the database.
    pub registry: Arc<registry::Registry>,
    pub limits: Limits,
    /// `ARCBASE_ADMIN_KEY`; `None` is development mode (every request is admin).
    pub admin_key: Option<String>,
    /// Signs session tokens: `ARCBASE_JWT_SECRET`, or generated once and stored.
    pub jwt_secret: Arc<[u8]>,
    /// Keep an incoming `x-request-id` (behind a proxy that sets it).
    pub trust_request_id: bool,
    /// The background tasks; shut down with the server.
    pub tasks: Arc<crate::tasks::Supervisor>,
    /// Tails the change feed for the subscriptions.
    pub hub: Arc<crate::realtime::Hub>,
    /// Hashing slots and failed-login records, for the whole server.
    pub guards: Arc<crate::ops::throttle::Guards>,
    /// Host names a development server answers besides loopback names and addresses.
    pub allowed_hosts: Vec<String>,
    /// The hyper services (data, cache, search, storage, queue) behind their ports.
    pub hyper: crate::hyper::Services,
    /// The built-in implementation of those services (its background work, its storage
    /// directory).
    pub hyper_builtin: Arc<crate::hyper::builtin::Builtin>,
    /// Verifies the tokens of hyper app keys.
    pub hyper_keys: Arc<crate::hyper::keys::Verifier>,
    /// SQLite: this process's hold on the database file, as long as the server lives.
    pub claim: Option<Arc<claim::Claim>>,
    /// Where the `@hyper` types' services are (the bridge's target).
    pub hyper_target: Arc<crate::hyper::bridge::Target>,
    /// Query texts of automatic persisted queries, by hash (see `graphql::persisted`).
    pub persisted: Arc<crate::graphql::persisted::PersistedQueries>,
}

/// The router: `/graphql` (POST, GET), `/admin/`, `/health`, and hyper's services at the
/// root (`/`, `/data/`, `/cache/`, `/search/`, `/storage/`, `/queue/`).
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.body_bytes;
    Router::new()
        .merge(hyper::router())
        .merge(rest::router())
        .route("/graphql", get(ws::get_or_upgrade).post(graphql::post))
        .route("/graphql/stream", get(sse::get).post(sse::post))
        .route("/health", get(|| async { "ok" }))
        .nest("/admin", admin::router())
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                ApiError::not_found("no such endpoint; GraphQL is served at /graphql"),
            )
        })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                ApiError::validation("method not allowed: use POST (or GET for queries and the playground)"),
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(app.clone(), dev_guard))
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_span))
        .with_state(app)
}

/// The address of the client at the other end of the connection (set by the listener).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// A request extension that makes `/graphql` compile the request's text afresh, neither
/// reading nor filling the operation cache. No front door sets it: the differential test adds
/// it to a second router over the same app, to compare the two paths' answers.
#[derive(Debug, Clone, Copy)]
pub struct FreshCompile;

/// The id of the request being served (set by the request-span middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A request id from a client is kept only if it looks like one.
fn acceptable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Give the request its id and span, answer the id, and log the request's end.
async fn request_span(State(app): State<Arc<App>>, mut req: Request, next: Next) -> axum::response::Response {
    let incoming = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).filter(|id| acceptable_id(id));
    let id = match incoming {
        Some(id) if app.trust_request_id => id.to_string(),
        _ => ulid::Ulid::new().to_string(),
    };
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "served")
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Is `host` (a `Host` header or an `Origin`'s host, port removed) one a development server
/// answers: a loopback name, an IP address, or one listed in `ARCBASE_ALLOWED_HOSTS`? A web
/// page reaching a developer's server through DNS rebinding names it by a domain, so every
/// other name is refused.
fn dev_host_allowed(app: &App, host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host.as_str(), |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host.as_str()
            }
        }),
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || app.allowed_hosts.iter().any(|h| h == name)
}

/// Development mode (no admin key: every request acts as admin) answers only requests that
/// name it by a loopback name or an address (`Host`), and only from pages of such hosts
/// (`Origin`): another site's page cannot drive it through the browser, directly or by DNS
/// rebinding.
async fn dev_guard(State(app): State<Arc<App>>, req: Request, next: Next) -> axum::response::Response {
    if app.admin_key.is_some() {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host =
        headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Some(h) = host {
        if !dev_host_allowed(&app, h) {
            return error_response(
                StatusCode::FORBIDDEN,
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!("development mode answers only localhost and IP addresses, not '{h}' (set ARCBASE_ALLOWED_HOSTS or ARCBASE_ADMIN_KEY)"),
                ),
            );
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin != "null" && !dev_host_allowed(&app, origin_host) {
            return error_response(
                StatusCode::FORBIDDEN,
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!("development mode refuses requests from pages of '{origin}'"),
                ),
            );
        }
    }
    next.run(req).await
}

/// A response carrying only errors, with `extensions.code`.
pub(crate) fn error_response(status: StatusCode, e: ApiError) -> axum::response::Response {
    let err = crate::graphql::response::GqlError::from_api(e, Vec::new(), None);
    let body = serde_json::json!({ "errors": [err] });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(crate) fn unauthorized(msg: &str) -> axum::response::Response {
    let mut resp = error_response(StatusCode::UNAUTHORIZED, ApiError::new(ErrorCode::Unauthenticated, msg));
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The credential of a request: `Authorization: <token>` or `Bearer <token>` (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn credential(headers: &HeaderMap) -> &str {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    match given.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => given,
    }
}

/// Is this the admin key (always true in development mode)?
pub(crate) fn is_admin(app: &App, headers: &HeaderMap) -> bool {
    match &app.admin_key {
        None => true,
        Some(key) => constant_time_eq(credential(headers).as_bytes(), key.as_bytes()),
    }
}

/// What a request runs against: its instance's release and the caller.
pub(crate) struct Resolved {
    pub served: Arc<crate::graphql::Served>,
    pub caller: Caller,
    /// Callers without credentials may use every operation, not only login and registration.
    pub anonymous_requests: bool,
}

impl Resolved {
    /// The execution context of one request of this caller (`credentials` counts the
    /// credential checks it makes).
    pub fn context<'a>(
        &'a self,
        only_queries: bool,
        credentials: &'a std::sync::atomic::AtomicUsize,
    ) -> crate::graphql::Context<'a> {
        crate::graphql::Context {
            caller: &self.caller,
            anonymous_requests: self.anonymous_requests,
            only_queries,
            credentials,
        }
    }
}

/// Pick the instance (`hypi-domain`, else `default`) and authenticate the caller
/// (`Authorization`: the admin key or a session token); errors are already HTTP responses.
pub(crate) async fn resolve(
    app: &App,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<Resolved, axum::response::Response> {
    // A header that is present but not text names no instance: it must not fall back to the
    // default one.
    let domain = match headers.get("hypi-domain").map(|v| v.to_str()) {
        None => "default",
        Some(Ok(d)) if d.trim().is_empty() => "default",
        Some(Ok(d)) => d.trim(),
        Some(Err(_)) => {
            return Err(error_response(
                StatusCode::NOT_FOUND,
                ApiError::new(ErrorCode::UnknownInstance, "the hypi-domain header is not valid text"),
            ))
        }
    };
    let snapshot = app.registry.snapshot();
    let Some(tenant) = snapshot.tenants.get(domain) else {
        return Err(error_response(
            StatusCode::NOT_FOUND,
            ApiError::new(ErrorCode::UnknownInstance, format!("unknown instance domain '{domain}'")),
        ));
    };
    let instance = tenant.row.id.clone();
    let token = credential(headers);
    let is_key = app.admin_key.as_deref().is_some_and(|k| constant_time_eq(token.as_bytes(), k.as_bytes()));
    let viewer = if is_key {
        Viewer::Admin
    } else if !token.is_empty() {
        let engine = &tenant.served.engine;
        match crate::ops::account::viewer_for_token(engine, &app.jwt_secret, &instance, token).await {
            Ok(v) => v,
            Err(crate::ops::account::TokenRefused::Invalid(why)) => {
                tracing::info!(%domain, "token refused: {why}");
                return Err(unauthorized("invalid credentials"));
            }
            Err(crate::ops::account::TokenRefused::Failed(e)) => {
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, e));
            }
        }
    } else if app.admin_key.is_none() {
        Viewer::Admin
    } else {
        Viewer::Anonymous
    };
    Ok(Resolved {
        served: tenant.served.clone(),
        caller: Caller {
            instance,
            viewer,
            anonymous_registrations: tenant.row.anonymous_registrations,
            jwt_secret: app.jwt_secret.clone(),
            client,
            guards: app.guards.clone(),
            hyper: Some(app.hyper_target.clone()),
            pending: Default::default(),
            fresh: false,
        },
        anonymous_requests: tenant.row.anonymous_requests,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, at most `limit` bytes within `body_read_ms`; a 413 (read far enough for the
/// client to see it, and closing the connection), a 408, or a 400 otherwise.
pub(crate) async fn read_body(
    app: &App,
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<axum::body::Bytes, Box<axum::response::Response>> {
    let time = std::time::Duration::from_millis(app.limits.body_read_ms);
    match body::read_limited(body, headers, limit, time).await {
        Ok(b) => Ok(b),
        Err(body::BodyError::TooLarge) => {
            let mut r = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::limit(format!("the request body is larger than {limit} bytes")),
            );
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(Box::new(r))
        }
        Err(body::BodyError::Timeout) => {
            let mut r = error_response(
                StatusCode::REQUEST_TIMEOUT,
                ApiError::limit(format!("the request body did not arrive within {} ms", app.limits.body_read_ms)),
            );
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(Box::new(r))
        }
        Err(body::BodyError::Read(e)) => Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            ApiError::validation(format!("cannot read the request body: {e}")),
        ))),
    }
}

/// The content type of a POST body: JSON in UTF-8. A missing one, another charset, or a type a
/// browser may send cross-site without a CORS preflight (the check Apollo calls CSRF
/// prevention) is refused.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(ErrorCode::Forbidden, "send GraphQL requests as Content-Type: application/json"));
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" {
        return Err(ApiError::new(ErrorCode::Forbidden, "send GraphQL requests as Content-Type: application/json"));
    }
    for p in parts {
        if let Some(cs) = p.trim().to_ascii_lowercase().strip_prefix("charset=") {
            if cs.trim_matches('"') != "utf-8" {
                return Err(ApiError::validation("GraphQL requests are UTF-8: charset must be utf-8"));
            }
        }
    }
    Ok(())
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read schema file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", format_diagnostics(.path, .errors))]
    Sdl { path: String, errors: Vec<crate::model::Diagnostic> },
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("building the GraphQL schema: {0}")]
    Schema(#[from] async_graphql::dynamic::SchemaError),
    #[error("{0}")]
    Tenancy(#[from] crate::tenancy::TenancyError),
    #[error("{0}")]
    Config(String),
}

/// `FILE:line:column: message`, one per line.
pub fn format_diagnostics(path: &str, errors: &[crate::model::Diagnostic]) -> String {
    errors.iter().map(|d| format!("{path}:{d}")).collect::<Vec<_>>().join("\n")
}

/// The example app schema, built into the binary: what a server with an empty registry and
/// no `--schema` serves.
pub const EXAMPLE_SDL: &str = include_str!("../../schema/example.graphql");

/// What `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--schema`: served as the `default` app's release on the `default` instance. Without
    /// it the server serves the registry as it is, or the built-in example schema when the
    /// registry holds no instance.
    pub schema_path: Option<String>,
    pub database_url: String,
    pub admin_key: Option<String>,
    pub limits: Limits,
    /// Keep an incoming `x-request-id` (`ARCBASE_TRUST_REQUEST_ID`).
    pub trust_request_id: bool,
    /// `ARCBASE_ALLOWED_HOSTS`: names a development server answers besides loopback names
    /// and addresses.
    pub allowed_hosts: Vec<String>,
    /// `--storage-dir`: where hyper storage keeps object bytes. Default: next to the SQLite
    /// file (`<file>-storage`), or `arcbase-storage` in the working directory.
    pub storage_dir: Option<std::path::PathBuf>,
    /// `ARCBASE_QUEUE_PRIVATE_TARGETS`: hyper queues may post to loopback and private
    /// addresses although an admin key is set (development mode always may).
    pub queue_private_targets: bool,
    /// `--hyper URL`: the hyper server the `@hyper` types follow into (a connection string);
    /// without it, the built-in services.
    pub hyper_url: Option<String>,
    /// `ARCBASE_HYPER_ATOMIC_TIMEOUT_MS`: how long a write with an ATOMIC `@hyper` service
    /// waits for a remote hyper server before it fails (default 5 s).
    pub hyper_atomic_timeout: std::time::Duration,
}

impl ServeOptions {
    /// Options for `database_url` with defaults otherwise.
    pub fn new(schema_path: Option<String>, database_url: &str) -> Self {
        ServeOptions {
            schema_path,
            database_url: database_url.to_string(),
            admin_key: None,
            limits: Limits::default(),
            trust_request_id: false,
            allowed_hosts: Vec::new(),
            storage_dir: None,
            queue_private_targets: false,
            hyper_url: None,
            hyper_atomic_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// The storage directory: `--storage-dir`, else next to the SQLite file, else
    /// `arcbase-storage`.
    pub fn storage_dir(&self) -> std::path::PathBuf {
        if let Some(d) = &self.storage_dir {
            return d.clone();
        }
        match claim::sqlite_file(&self.database_url) {
            Some(p) => std::path::PathBuf::from(format!("{}-storage", p.display())),
            None => std::path::PathBuf::from("arcbase-storage"),
        }
    }
}

/// Read and validate the schema (if one is given), open the database, publish the schema as
/// the `default` app's release and serve it on the `default` instance, load every instance:
/// everything `serve` does before it listens.
pub async fn build(opts: &ServeOptions) -> Result<Arc<App>, StartError> {
    let given = match &opts.schema_path {
        Some(path) => {
            let sdl =
                std::fs::read_to_string(path).map_err(|source| StartError::Read { path: path.clone(), source })?;
            let model =
                crate::model::parse_sdl(&sdl).map_err(|errors| StartError::Sdl { path: path.clone(), errors })?;
            // If the model cannot become a valid GraphQL schema, fail before the database is
            // touched (nothing is half-applied).
            crate::graphql::check_schema(&model, &opts.limits)?;
            Some((path.clone(), sdl))
        }
        None => None,
    };
    let budgets = crate::store::Budgets {
        remote_wait: opts.hyper_atomic_timeout,
        ..crate::store::Budgets::from_limits(&opts.limits)
    };
    let store = crate::store::Store::open_with(&opts.database_url, budgets).await?;
    let serving = match given {
        Some((path, sdl)) => {
            crate::tenancy::serve_default(&store, &sdl).await?;
            tracing::info!(schema = %path, "serving the schema file as the default instance");
            format!("{path} (instance default)")
        }
        None => {
            // The migrations create the `default` instance without a release: an instance
            // counts once it runs one.
            let instances: Vec<_> = store.instance_rows().await?.into_iter().filter(|i| i.release.is_some()).collect();
            if instances.is_empty() {
                crate::tenancy::serve_default(&store, EXAMPLE_SDL).await?;
                tracing::info!("the registry holds no instance: serving the example schema built into the binary");
                "the built-in example schema (instance default)".to_string()
            } else {
                tracing::info!(instances = instances.len(), "serving the instances of the registry");
                format!("{} instance(s) of the registry", instances.len())
            }
        }
    };
    let secret: Arc<[u8]> = Arc::from(crate::auth::server_secret(&store).await?.into_bytes().into_boxed_slice());
    let tasks = Arc::new(crate::tasks::Supervisor::default());
    let storage_dir = opts.storage_dir();
    std::fs::create_dir_all(&storage_dir)
        .map_err(|source| StartError::Read { path: storage_dir.display().to_string(), source })?;
    let builtin = Arc::new(crate::hyper::builtin::Builtin::new(
        store.with_own_count(),
        crate::hyper::HyperLimits::from_limits(&opts.limits),
        storage_dir,
        opts.admin_key.is_none() || opts.queue_private_targets,
    ));
    builtin.start(&tasks);
    // SQLite: this process claims the file (one serving process per file), and the object
    // cache comes with the claim; PostgreSQL: no cache (see `ops::read_cache`).
    let claim = match claim::sqlite_file(&opts.database_url) {
        Some(file) => Some(claim::claim(&file, &opts.limits).map_err(StartError::Config)?),
        None => None,
    };
    let read_cache = match &claim {
        Some(c) => c.read_cache.clone(),
        None => Arc::new(crate::ops::read_cache::ReadCache::new(false, 0, 0)),
    };
    let registry = Arc::new(registry::Registry::load(store.clone(), opts.limits.clone(), read_cache).await?);
    registry::Registry::watch(&registry, &tasks);
    let target = match &opts.hyper_url {
        Some(url) => {
            let remote = crate::hyper::remote::Remote::parse(url, std::time::Duration::from_secs(8))
                .map_err(|why| StartError::Config(format!("--hyper: {why}")))?;
            tracing::info!(remote = %remote.describe(), "the @hyper types follow into a remote hyper server");
            crate::hyper::bridge::Target::remote(
                remote,
                opts.hyper_atomic_timeout,
                crate::hyper::HyperLimits::from_limits(&opts.limits).object_bytes,
            )
        }
        None => crate::hyper::bridge::Target::builtin(&builtin),
    };
    let lookup_registry = registry.clone();
    let lookup: crate::hyper::bridge::Lookup = Arc::new(move |instance: &str| {
        let snapshot = lookup_registry.snapshot();
        snapshot
            .tenants
            .get(instance)
            .filter(|t| t.row.id == instance)
            .or_else(|| snapshot.tenants.values().find(|t| t.row.id == instance))
            .map(|t| t.served.engine.clone())
    });
    let active_registry = registry.clone();
    let active: crate::hyper::bridge::Active = Arc::new(move || {
        active_registry
            .snapshot()
            .tenants
            .values()
            .any(|t| t.served.engine.model.types.iter().any(|ty| ty.hyper.is_some()))
    });
    let hyper_target = Arc::new(target.clone());
    let guards = Arc::new(crate::ops::throttle::Guards::new(&opts.limits));
    crate::hyper::bridge::Bridge::new(store.with_own_count(), target, lookup, active, guards.clone()).start(&tasks);
    let hub = crate::realtime::Hub::start(store.with_own_count(), &opts.limits, &tasks)
        .await
        .map_err(|e| StartError::Config(format!("the realtime hub: {}", e.message)))?;
    let engine = registry.snapshot().tenants.get("default").map(|t| t.served.engine.clone());
    Ok(Arc::new(App {
        store,
        engine,
        serving,
        registry,
        limits: opts.limits.clone(),
        admin_key: opts.admin_key.clone(),
        hyper: builtin.services.clone(),
        hyper_builtin: builtin,
        hyper_keys: Arc::new(crate::hyper::keys::Verifier::new(secret.clone())),
        claim,
        hyper_target,
        persisted: Arc::new(crate::graphql::persisted::PersistedQueries::new(
            opts.limits.persisted_query_entries,
            opts.limits.persisted_query_bytes,
        )),
        jwt_secret: secret,
        trust_request_id: opts.trust_request_id,
        hub,
        tasks,
        guards,
        allowed_hosts: opts.allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
    }))
}
