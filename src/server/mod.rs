//! HTTP: the axum router, authentication, tenant selection, request limits, the playground
//! and health. The only module that knows HTTP.
//!
//! A GraphQL request goes: body cap (413) → admin key → `hypi-domain` → content type (no
//! CORS-simple types: CSRF) → JSON nesting ([`limits::json_nesting`]) → JSON → batch size and
//! request shape → [`limits::scan`] → variables nesting → parse → [`limits::check`] → (GET:
//! queries only) → async-graphql, with a panic turned into an `INTERNAL` error. Every error
//! response, unknown routes and wrong methods included, is JSON with `extensions.code`.

pub mod limits;
mod playground;

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::OperationType;
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

/// Everything the router serves from, built once at start.
pub struct App {
    pub schema: Schema,
    pub engine: Arc<Engine>,
    pub limits: Limits,
    /// `ARCBASE_ADMIN_KEY`; `None` is development mode (every request is admin).
    pub admin_key: Option<String>,
    /// Instance domain → instance id.
    pub instances: HashMap<String, String>,
}

/// The router: `POST/GET /graphql`, `GET /health`.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.body_bytes;
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/health", get(|| async { "ok" }))
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
fn error_response(status: StatusCode, e: ApiError) -> axum::response::Response {
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

/// Authenticate and pick the instance; errors are already HTTP responses.
#[allow(clippy::result_large_err)]
fn request_ctx(app: &App, headers: &HeaderMap) -> Result<RequestCtx, axum::response::Response> {
    if let Some(key) = &app.admin_key {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
        // The auth scheme is case-insensitive (RFC 9110 §11.1); a bare token is accepted too.
        let token = match given.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => given,
        };
        if !constant_time_eq(token.as_bytes(), key.as_bytes()) {
            let msg = if given.is_empty() {
                "authentication required: send Authorization: Bearer <key>"
            } else {
                "invalid credentials"
            };
            let mut resp = error_response(StatusCode::UNAUTHORIZED, ApiError::new(ErrorCode::Unauthenticated, msg));
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return Err(resp);
        }
    }
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
    match app.instances.get(domain) {
        Some(id) => Ok(RequestCtx { instance: id.clone(), account: None }),
        None => Err(error_response(
            StatusCode::NOT_FOUND,
            ApiError::new(ErrorCode::UnknownInstance, format!("unknown instance domain '{domain}'")),
        )),
    }
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

async fn graphql_post(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> axum::response::Response {
    let ctx = match request_ctx(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if is_simple_content_type(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::new(ErrorCode::Forbidden, "send GraphQL requests as Content-Type: application/json"),
        );
    }
    // The body extractor stops reading as soon as the cap is passed (and refuses a
    // Content-Length above it without reading at all).
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::limit(format!("the request body is larger than {} bytes", app.limits.body_bytes)),
            )
        }
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ApiError::validation(format!("cannot read the request body: {e}")),
            )
        }
    };
    let batch = match parse_body(&body, &app.limits) {
        Ok(b) => b,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, e);
        }
    };
    let response = match batch {
        BatchRequest::Single(req) => BatchResponse::Single(run(&app, req, &ctx, false).await),
        BatchRequest::Batch(reqs) => {
            let mut out = Vec::with_capacity(reqs.len());
            for req in reqs {
                out.push(run(&app, req, &ctx, false).await);
            }
            BatchResponse::Batch(out)
        }
    };
    json_response(&response)
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
    let ctx = match request_ctx(&app, &headers) {
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
    json_response(&BatchResponse::Single(run(&app, req, &ctx, true).await))
}

fn json_response(response: &BatchResponse) -> axum::response::Response {
    match serde_json::to_string(response) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(e)),
    }
}

/// Guard, execute, and give every error an `extensions.code`.
async fn run(app: &App, mut req: Request, ctx: &RequestCtx, over_get: bool) -> Response {
    if let Err(e) = limits::scan(&req.query, &app.limits) {
        return Response::from_errors(vec![server_error(e)]);
    }
    if let Err(e) = limits::check_variables(&req.variables, &app.limits) {
        return Response::from_errors(vec![server_error(e)]);
    }
    let op_name = req.operation_name.clone();
    let op_type = match req.parsed_query() {
        Ok(doc) => limits::check(doc, op_name.as_deref(), &app.limits),
        Err(e) => Err(ApiError::new(ErrorCode::GraphqlValidation, e.message)),
    };
    match op_type {
        Err(e) => return Response::from_errors(vec![server_error(e)]),
        Ok(OperationType::Query) => {}
        Ok(_) if over_get => {
            return Response::from_errors(vec![server_error(ApiError::new(
                ErrorCode::Forbidden,
                "mutations are not allowed over GET; use POST",
            ))])
        }
        Ok(_) => {}
    }
    // A panic in a resolver must not drop the connection: it becomes an INTERNAL error
    // (detail and request id in the log), like any other internal failure.
    let execution = std::panic::AssertUnwindSafe(app.schema.execute(req.data(ctx.clone())));
    let mut resp = match futures_util::FutureExt::catch_unwind(execution).await {
        Ok(resp) => resp,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a resolver panicked".to_string());
            return Response::from_errors(vec![server_error(ApiError::internal(format!("panic: {detail}")))]);
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
    resp
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
}

/// `FILE:line:column: message`, one per line.
pub fn format_diagnostics(path: &str, errors: &[crate::model::Diagnostic]) -> String {
    errors.iter().map(|d| format!("{path}:{d}")).collect::<Vec<_>>().join("\n")
}

/// What `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub schema_path: String,
    pub database_url: String,
    pub admin_key: Option<String>,
    pub limits: Limits,
}

/// Read and validate the schema, open the database, create the app's tables and build the
/// GraphQL schema: everything `serve` does before it listens.
pub async fn build(opts: &ServeOptions) -> Result<Arc<App>, StartError> {
    let sdl = std::fs::read_to_string(&opts.schema_path)
        .map_err(|source| StartError::Read { path: opts.schema_path.clone(), source })?;
    let model =
        crate::model::parse_sdl(&sdl).map_err(|errors| StartError::Sdl { path: opts.schema_path.clone(), errors })?;
    // Build the schema once without an engine first: if the model cannot become a valid
    // GraphQL schema, fail before the database is touched (nothing is half-applied).
    crate::graphql::build_schema(&model, None, &opts.limits)?;
    let store = crate::store::Store::open(&opts.database_url).await?;
    let app_name = "default".to_string();
    store.apply_model(&app_name, &model).await?;
    let instances = store.instances().await?;
    let engine = Arc::new(Engine { model: Arc::new(model), store, app: app_name, limits: opts.limits.clone() });
    let schema = crate::graphql::build_schema(&engine.model, Some(engine.clone()), &opts.limits)?;
    Ok(Arc::new(App { schema, engine, limits: opts.limits.clone(), admin_key: opts.admin_key.clone(), instances }))
}
