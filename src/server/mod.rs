//! HTTP: the axum router, authentication, tenant selection, request limits, the playground
//! and health. The only module that knows HTTP.
//!
//! A GraphQL request goes: body cap (413) → admin key → `hypi-domain` → content type (no
//! CORS-simple types: CSRF) → JSON nesting ([`limits::json_nesting`]) → JSON → batch size and
//! request shape → [`limits::scan`] → variables nesting → parse → [`limits::check`] → (GET:
//! queries only) → async-graphql, with a panic turned into an `INTERNAL` error. Every error
//! response, unknown routes and wrong methods included, is JSON with `extensions.code`.

mod admin;
pub mod body;
pub mod limits;
mod playground;
pub mod registry;

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{BatchRequest, BatchResponse, Request, Response, ServerError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};
use crate::graphql::{Engine, RequestCtx};
use crate::sql::Viewer;

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
}

/// The router: `POST/GET /graphql`, `GET /health`.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.body_bytes;
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
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
        .with_state(app)
}

/// A response carrying only errors, with `extensions.code`.
pub(crate) fn error_response(status: StatusCode, e: ApiError) -> axum::response::Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": e.message, "extensions": { "code": e.code.as_str() } }]
    });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn server_error(e: ApiError) -> ServerError {
    let mut se = ServerError::new(e.message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", e.code.as_str());
    se.extensions = Some(ext);
    se
}

pub(crate) fn unauthorized(msg: &str) -> axum::response::Response {
    let mut resp = error_response(StatusCode::UNAUTHORIZED, ApiError::new(ErrorCode::Unauthenticated, msg));
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
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

/// What a request runs against: its instance's schema and the caller.
struct Resolved {
    served: Arc<registry::Served>,
    ctx: RequestCtx,
    /// Callers without credentials may use every operation, not only login and registration.
    anonymous_requests: bool,
}

/// Pick the instance and authenticate; errors are already HTTP responses.
async fn resolve(app: &App, headers: &HeaderMap) -> Result<Resolved, axum::response::Response> {
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
    let (viewer, account) =
        if let Some(key) = app.admin_key.as_deref().filter(|k| constant_time_eq(token.as_bytes(), k.as_bytes())) {
            let _ = key;
            (Viewer::Admin, None)
        } else if !token.is_empty() {
            let claims = match crate::auth::verify(&app.jwt_secret, token, &instance) {
                Ok(c) => c,
                Err(why) => {
                    tracing::info!(%domain, "token refused: {why}");
                    return Err(unauthorized("invalid credentials"));
                }
            };
            let engine = &tenant.served.engine;
            let Some(account_type) = engine.model.account_type() else {
                return Err(unauthorized("invalid credentials"));
            };
            let r = crate::sql::account::AccountRenderer {
                model: &engine.model,
                app: &engine.app,
                dialect: engine.store.dialect(),
                account_type,
            };
            match engine.store.fetch_rows(&r.exists(&instance, &claims.sub)).await {
                Ok(rows) if !rows.is_empty() => {}
                Ok(_) => return Err(unauthorized("invalid credentials")),
                Err(e) => return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, ApiError::internal(e))),
            }
            (Viewer::Account(claims.sub.clone()), Some(claims.sub))
        } else if app.admin_key.is_none() {
            (Viewer::Admin, None)
        } else {
            (Viewer::Anonymous, None)
        };
    Ok(Resolved {
        served: tenant.served.clone(),
        ctx: RequestCtx {
            instance,
            account,
            viewer,
            anonymous_registrations: tenant.row.anonymous_registrations,
            jwt_secret: app.jwt_secret.clone(),
        },
        anonymous_requests: tenant.row.anonymous_requests,
    })
}

/// Root fields a caller without credentials may always use: logging in and registering
/// (which checks the instance's setting itself).
const OPEN_FIELDS: &[&str] = &["login", "loginByEmail", "createAccount"];

/// Does the operation `op_name` of `doc` use only [`OPEN_FIELDS`]?
fn only_open_fields(doc: &ExecutableDocument, op_name: Option<&str>) -> bool {
    let ops: Vec<_> = doc
        .operations
        .iter()
        .filter(|(n, _)| op_name.is_none() || n.map(|n| n.as_str()) == op_name)
        .map(|(_, op)| op)
        .collect();
    fn open(doc: &ExecutableDocument, set: &async_graphql::parser::types::SelectionSet, depth: usize) -> bool {
        depth < 32
            && set.items.iter().all(|item| match &item.node {
                Selection::Field(f) => OPEN_FIELDS.contains(&f.node.name.node.as_str()),
                Selection::InlineFragment(i) => open(doc, &i.node.selection_set.node, depth + 1),
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_none_or(|f| open(doc, &f.node.selection_set.node, depth + 1)),
            })
    }
    ops.iter().all(|op| open(doc, &op.node.selection_set.node, 0))
}

/// Content types a browser may send cross-origin without a CORS preflight. A GraphQL POST
/// with one of them could be a forged request from another site, so it is refused (the
/// check Apollo calls CSRF prevention); clients send `application/json`.
fn is_simple_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else { return false };
    let essence = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(essence.as_str(), "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn graphql_post(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Body) -> axum::response::Response {
    let resolved = match resolve(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if is_simple_content_type(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::new(ErrorCode::Forbidden, "send GraphQL requests as Content-Type: application/json"),
        );
    }
    let body = match read_body(body, &headers, app.limits.body_bytes).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let batch = match parse_body(&body, &app.limits) {
        Ok(b) => b,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, e);
        }
    };
    let mut denied = false;
    let response = match batch {
        BatchRequest::Single(req) => {
            let (resp, d) = run(&app, &resolved, req, false).await;
            denied = d;
            BatchResponse::Single(resp)
        }
        BatchRequest::Batch(reqs) => {
            let mut out = Vec::with_capacity(reqs.len());
            for req in reqs {
                let (resp, d) = run(&app, &resolved, req, false).await;
                denied |= d;
                out.push(resp);
            }
            BatchResponse::Batch(out)
        }
    };
    if denied {
        return unauthorized("authentication required: send Authorization: Bearer <token or admin key>");
    }
    json_response(&response)
}

/// The body, at most `limit` bytes; a 413 (read far enough for the client to see it, and
/// closing the connection) or a 400 otherwise.
pub(crate) async fn read_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Box<axum::response::Response>> {
    match body::read_limited(body, headers, limit).await {
        Ok(b) => Ok(b),
        Err(body::BodyError::TooLarge) => {
            let mut r = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::limit(format!("the request body is larger than {limit} bytes")),
            );
            r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            Err(Box::new(r))
        }
        Err(body::BodyError::Read(e)) => Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            ApiError::validation(format!("cannot read the request body: {e}")),
        ))),
    }
}

/// The POST body → one request or a batch. Checked in this order, each step bounded by the
/// one before: JSON nesting (a linear scan, so no parser recurses deeper than the limit),
/// JSON syntax, the batch size, then the shape of each request (`query` must be a string).
fn parse_body(body: &[u8], limits: &Limits) -> Result<BatchRequest, ApiError> {
    // A batch array and the request object sit above the variables, whose own nesting is
    // judged in `run` against `limits.nesting`.
    if limits::json_nesting(body) > limits.nesting + 2 {
        return Err(ApiError::limit(format!("the JSON body nests deeper than {} levels", limits.nesting + 2)));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("the body is not a GraphQL request in JSON: {e}")))?;
    let one = |v: serde_json::Value| -> Result<Request, ApiError> {
        match v.get("query") {
            Some(serde_json::Value::String(_)) => {}
            Some(_) => return Err(ApiError::validation("'query' must be a string")),
            None => return Err(ApiError::validation("a GraphQL request needs a 'query' string")),
        }
        serde_json::from_value(v).map_err(|e| ApiError::validation(format!("not a GraphQL request: {e}")))
    };
    match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::validation("a batch needs at least one operation"));
            }
            if items.len() > limits.batch {
                return Err(ApiError::limit(format!(
                    "a batch may hold at most {} operations, got {}",
                    limits.batch,
                    items.len()
                )));
            }
            Ok(BatchRequest::Batch(items.into_iter().map(one).collect::<Result<_, _>>()?))
        }
        v @ serde_json::Value::Object(_) => Ok(BatchRequest::Single(one(v)?)),
        _ => Err(ApiError::validation("the body must be a GraphQL request object or a batch array of them")),
    }
}

#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn graphql_get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> axum::response::Response {
    let Ok(Query(params)) = params else {
        return error_response(StatusCode::BAD_REQUEST, ApiError::validation("invalid query string"));
    };
    let Some(query) = params.query else {
        return Html(playground::page("/graphql")).into_response();
    };
    let resolved = match resolve(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut req = Request::new(query);
    req.operation_name = params.operation_name;
    if let Some(vars) = params.variables {
        if limits::json_nesting(vars.as_bytes()) > app.limits.nesting {
            return error_response(
                StatusCode::BAD_REQUEST,
                ApiError::limit(format!("the variables nest deeper than {} levels", app.limits.nesting)),
            );
        }
        match serde_json::from_str(&vars) {
            Ok(v) => req.variables = async_graphql::Variables::from_json(v),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ApiError::validation(format!("variables are not JSON: {e}")),
                )
            }
        }
    }
    let (resp, denied) = run(&app, &resolved, req, true).await;
    if denied {
        return unauthorized("authentication required: send Authorization: Bearer <token or admin key>");
    }
    json_response(&BatchResponse::Single(resp))
}

fn json_response(response: &BatchResponse) -> axum::response::Response {
    match serde_json::to_string(response) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(e)),
    }
}

/// Guard, execute, and give every error an `extensions.code`. The flag is true when the
/// request was refused for want of credentials (the caller answers 401).
async fn run(app: &App, resolved: &Resolved, mut req: Request, over_get: bool) -> (Response, bool) {
    let fail = |e: ApiError| (Response::from_errors(vec![server_error(e)]), false);
    if let Err(e) = limits::scan(&req.query, &app.limits) {
        return fail(e);
    }
    if let Err(e) = limits::check_variables(&req.variables, &app.limits) {
        return fail(e);
    }
    let op_name = req.operation_name.clone();
    let checked = match req.parsed_query() {
        Ok(doc) => {
            limits::check(doc, op_name.as_deref(), &app.limits).map(|t| (t, only_open_fields(doc, op_name.as_deref())))
        }
        Err(e) => Err(ApiError::new(ErrorCode::GraphqlValidation, e.message)),
    };
    let open = match checked {
        Err(e) => return fail(e),
        Ok((OperationType::Query, open)) => open,
        Ok(_) if over_get => {
            return fail(ApiError::new(ErrorCode::Forbidden, "mutations are not allowed over GET; use POST"));
        }
        Ok((_, open)) => open,
    };
    if resolved.ctx.viewer == Viewer::Anonymous && !resolved.anonymous_requests && !open {
        return (
            Response::from_errors(vec![server_error(ApiError::new(
                ErrorCode::Unauthenticated,
                "authentication required",
            ))]),
            true,
        );
    }
    // A panic in a resolver must not drop the connection: it becomes an INTERNAL error
    // (detail and request id in the log), like any other internal failure.
    let execution = std::panic::AssertUnwindSafe(resolved.served.schema.execute(req.data(resolved.ctx.clone())));
    let mut resp = match futures_util::FutureExt::catch_unwind(execution).await {
        Ok(resp) => resp,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a resolver panicked".to_string());
            return fail(ApiError::internal(format!("panic: {detail}")));
        }
    };
    for err in &mut resp.errors {
        let has_code = err.extensions.as_ref().is_some_and(|x| x.get("code").is_some());
        if !has_code {
            // async-graphql checks argument values against the input types before any
            // resolver runs; a value of the wrong type is a VALIDATION error like ours.
            let code = if err.message.starts_with("Invalid value for argument") {
                ErrorCode::Validation
            } else {
                ErrorCode::GraphqlValidation
            };
            err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
        }
    }
    (resp, false)
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
}

/// Read and validate the schema (if one is given), open the database, publish the schema as
/// the `default` app's release and serve it on the `default` instance, load every instance:
/// everything `serve` does before it listens.
pub async fn build(opts: &ServeOptions) -> Result<Arc<App>, StartError> {
    let given = match &opts.schema_path {
        Some(path) => {
            let sdl = std::fs::read_to_string(path).map_err(|source| StartError::Read { path: path.clone(), source })?;
            let model =
                crate::model::parse_sdl(&sdl).map_err(|errors| StartError::Sdl { path: path.clone(), errors })?;
            // Build the schema once without an engine first: if the model cannot become a
            // valid GraphQL schema, fail before the database is touched (nothing is
            // half-applied).
            crate::graphql::build_schema(&model, None, &opts.limits)?;
            Some((path.clone(), sdl))
        }
        None => None,
    };
    let store = crate::store::Store::open(&opts.database_url).await?;
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
    let secret = match std::env::var("ARCBASE_JWT_SECRET").ok().filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => store.setting_or_insert("jwt_secret", &crate::auth::random_secret()).await?,
    };
    let registry = Arc::new(registry::Registry::load(store.clone(), opts.limits.clone()).await?);
    registry::Registry::watch(&registry);
    let engine = registry.snapshot().tenants.get("default").map(|t| t.served.engine.clone());
    Ok(Arc::new(App {
        store,
        engine,
        serving,
        registry,
        limits: opts.limits.clone(),
        admin_key: opts.admin_key.clone(),
        jwt_secret: Arc::from(secret.into_bytes().into_boxed_slice()),
    }))
}
