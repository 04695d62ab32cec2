//! The REST front door under `/rest/v1/`: today the files of objects whose type declares
//! `@hyper(attachments: true)`.
//!
//! ```text
//! GET    /rest/v1/{Type}/{id}/attachments          → {"attachments": [{name, size, contentType, url}]}
//! PUT    /rest/v1/{Type}/{id}/attachments/{name}   the body is the file (POST too) → 201 {name, size, contentType, url}
//! GET    /rest/v1/{Type}/{id}/attachments/{name}   the bytes, with the content type of the name's extension
//! DELETE /rest/v1/{Type}/{id}/attachments/{name}   → {"deleted": true}
//! ```
//!
//! The instance and the caller come from the same headers as GraphQL's (`hypi-domain`,
//! `Authorization`); every rule is in `ops::attachments`. Errors are the GraphQL error shape
//! (`{"errors": [{message, extensions: {code}}]}`) with the HTTP status of their code.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;

use super::{error_response, resolve, App, ClientAddr, Resolved};
use crate::error::{ApiError, ErrorCode};
use crate::ops::attachments::{self as att, FileRef};

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/rest/v1/{type_name}/{id}/attachments", get(list))
        .route("/rest/v1/{type_name}/{id}/attachments/{*name}", get(download).put(upload).post(upload).delete(remove))
}

/// The HTTP status of an error code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound | ErrorCode::UnknownInstance => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::LimitExceeded => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Conflict | ErrorCode::UniqueViolation => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overloaded | ErrorCode::HyperUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn failed(e: ApiError) -> Response {
    error_response(status_of(e.code), e)
}

/// The caller, its engine and the type: refused without credentials unless the instance
/// takes anonymous requests.
async fn open(
    app: &App,
    headers: &HeaderMap,
    client: Option<Extension<ClientAddr>>,
    type_name: &str,
) -> Result<(Resolved, usize), Response> {
    let resolved = resolve(app, headers, client.map(|c| c.0 .0.ip())).await?;
    if resolved.caller.viewer == crate::access::Viewer::Anonymous && !resolved.anonymous_requests {
        return Err(super::unauthorized("credentials required"));
    }
    let type_idx = resolved
        .served
        .engine
        .type_index(type_name)
        .map_err(|_| failed(ApiError::not_found(format!("unknown type '{type_name}'"))))?;
    Ok((resolved, type_idx))
}

async fn list(
    State(app): State<Arc<App>>,
    Path((type_name, id)): Path<(String, String)>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let (r, type_idx) = match open(&app, &headers, client, &type_name).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match att::list(&r.served.engine, &r.caller, type_idx, &id).await {
        Ok(files) => (StatusCode::OK, axum::Json(json!({ "attachments": files }))).into_response(),
        Err(e) => failed(e),
    }
}

async fn upload(
    State(app): State<Arc<App>>,
    Path((type_name, id, name)): Path<(String, String, String)>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (r, type_idx) = match open(&app, &headers, client, &type_name).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let stall = Duration::from_millis(app.limits.body_read_ms);
    let f = FileRef { type_idx, id, name };
    let storage = app.hyper_target.storage.clone();
    match att::put(&r.served.engine, &r.caller, storage.as_ref(), &f, super::hyper::stalling(body, stall)).await {
        Ok(a) => (StatusCode::CREATED, axum::Json(json!(a))).into_response(),
        Err(e) => failed(e),
    }
}

async fn download(
    State(app): State<Arc<App>>,
    Path((type_name, id, name)): Path<(String, String, String)>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let (r, type_idx) = match open(&app, &headers, client, &type_name).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let f = FileRef { type_idx, id, name };
    let storage = app.hyper_target.storage.clone();
    match att::get(&r.served.engine, &r.caller, storage.as_ref(), &f).await {
        Ok(object) => {
            let mut resp = Response::new(Body::from_stream(object.body));
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&object.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
            resp
        }
        Err(e) => failed(e),
    }
}

async fn remove(
    State(app): State<Arc<App>>,
    Path((type_name, id, name)): Path<(String, String, String)>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let (r, type_idx) = match open(&app, &headers, client, &type_name).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let f = FileRef { type_idx, id, name };
    let storage = app.hyper_target.storage.clone();
    match att::remove(&r.served.engine, &r.caller, storage.as_ref(), &f).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "deleted": true }))).into_response(),
        Err(e) => failed(e),
    }
}
