//! `/admin/`: releases and instances over HTTP, guarded by the admin key. The same operations
//! as the command line (`crate::tenancy`), answered in JSON.
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /admin/releases?app=APP` | | list the releases of an app (all apps without `app`) |
//! | `POST /admin/releases` | `{app, name, sdl}` | publish a release (201 created, 200 unchanged) |
//! | `GET /admin/instances` | | list instances |
//! | `POST /admin/instances` | `{domain, app, release, enableAnonymousRequests?, enableAnonymousRegistrations?}` | create an instance |
//! | `POST /admin/instances/upgrade` | `{domain, release}` | move an instance to a newer release |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{error_response, is_admin, read_body, unauthorized, App};
use crate::error::{ApiError, ErrorCode};
use crate::tenancy::{self, InstanceSettings, Published, TenancyError};

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/releases", get(list_releases).post(publish))
        .route("/instances", get(list_instances).post(create_instance))
        .route("/instances/upgrade", post(upgrade))
        .route("/hyper", get(hyper_status))
        .route("/caches", get(caches))
}

/// `GET /admin/caches`: the node's caches, their size and how often they answered.
async fn caches(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    let objects = serde_json::to_value(app.registry.read_cache.figures()).unwrap_or_default();
    let operations = serde_json::to_value(app.registry.operations.report()).unwrap_or_default();
    let filters = serde_json::to_value(app.registry.filters.figures()).unwrap_or_default();
    let persisted = serde_json::to_value(app.persisted.figures()).unwrap_or_default();
    // SQLite: how reads were answered (on the calling thread or on the pool's); null on PostgreSQL.
    let reads = serde_json::to_value(app.store.read_figures()).unwrap_or_default();
    ok(
        StatusCode::OK,
        serde_json::json!({
            "objects": objects,
            "operations": operations,
            "filters": filters,
            "persistedQueries": persisted,
            "sqliteReads": reads
        }),
    )
}

/// `GET /admin/hyper`: where the hyper bridge's sync stands (what `arcbase hyper status`
/// prints).
async fn hyper_status(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    match crate::hyper::bridge::status(&app.store).await {
        Ok(v) => ok(StatusCode::OK, v),
        Err(e) => refused(e.into()),
    }
}

fn ok(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refused(e: TenancyError) -> Response {
    if !e.is_client_error() {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(e));
    }
    let (status, code) = match &e {
        TenancyError::ReleaseExists { .. } | TenancyError::InstanceExists(_) => {
            (StatusCode::CONFLICT, ErrorCode::Conflict)
        }
        TenancyError::UnknownRelease { .. } | TenancyError::UnknownInstance(_) => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        }
        _ => (StatusCode::BAD_REQUEST, ErrorCode::Validation),
    };
    let mut body = json!({ "errors": [{ "message": e.to_string(), "extensions": { "code": code.as_str() } }] });
    if let TenancyError::Breaking { changes, .. } = &e {
        body["errors"][0]["extensions"]["incompatibleChanges"] = json!(changes);
    }
    ok(status, body)
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(error_response(StatusCode::BAD_REQUEST, ApiError::validation(format!("invalid JSON body: {e}"))))
    })
}

/// The registry changed here: serve it now rather than at the next poll.
async fn refreshed(app: &App) {
    if let Err(e) = app.registry.refresh().await {
        tracing::warn!("registry refresh failed: {e}");
    }
}

#[derive(Deserialize)]
struct AppQuery {
    app: Option<String>,
}

async fn list_releases(State(app): State<Arc<App>>, headers: HeaderMap, q: Query<AppQuery>) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    match app.store.releases(q.app.as_deref()).await {
        Ok(rows) => ok(StatusCode::OK, json!({ "releases": rows })),
        Err(e) => refused(e.into()),
    }
}

#[derive(Deserialize)]
struct PublishBody {
    app: String,
    name: String,
    sdl: String,
}

async fn publish(State(app): State<Arc<App>>, headers: HeaderMap, raw: Body) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    if let Err(e) = super::check_content_type(&headers) {
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, e);
    }
    let bytes = match read_body(&app, raw, &headers, app.limits.body_bytes).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let b: PublishBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match tenancy::publish(&app.store, &b.app, &b.name, &b.sdl).await {
        Ok(p) => {
            refreshed(&app).await;
            let status = if p == Published::Created { StatusCode::CREATED } else { StatusCode::OK };
            ok(status, json!({ "app": b.app, "name": b.name, "created": p == Published::Created }))
        }
        Err(e) => refused(e),
    }
}

async fn list_instances(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    match app.store.instance_rows().await {
        Ok(rows) => ok(StatusCode::OK, json!({ "instances": rows })),
        Err(e) => refused(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    domain: String,
    app: String,
    release: String,
    #[serde(default)]
    enable_anonymous_requests: bool,
    #[serde(default)]
    enable_anonymous_registrations: bool,
}

async fn create_instance(State(app): State<Arc<App>>, headers: HeaderMap, raw: Body) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    if let Err(e) = super::check_content_type(&headers) {
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, e);
    }
    let bytes = match read_body(&app, raw, &headers, app.limits.body_bytes).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let b: CreateBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let settings = InstanceSettings {
        anonymous_requests: b.enable_anonymous_requests,
        anonymous_registrations: b.enable_anonymous_registrations,
    };
    match tenancy::create_instance(&app.store, &b.domain, &b.app, &b.release, settings).await {
        Ok(row) => {
            refreshed(&app).await;
            ok(StatusCode::CREATED, json!({ "instance": row }))
        }
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct UpgradeBody {
    domain: String,
    release: String,
}

async fn upgrade(State(app): State<Arc<App>>, headers: HeaderMap, raw: Body) -> Response {
    if !is_admin(&app, &headers) {
        return unauthorized("the admin key is required");
    }
    if let Err(e) = super::check_content_type(&headers) {
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, e);
    }
    let bytes = match read_body(&app, raw, &headers, app.limits.body_bytes).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let b: UpgradeBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match tenancy::upgrade_instance(&app.store, &b.domain, &b.release).await {
        Ok(row) => {
            refreshed(&app).await;
            ok(StatusCode::OK, json!({ "instance": row }))
        }
        Err(e) => refused(e),
    }
}
