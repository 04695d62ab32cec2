//! hyper's REST API at the root: `/data/{store}`, `/cache/{store}`, `/search/{store}`,
//! `/storage/{store}`, `/queue/{store}` and `GET /`, as the official `hyper-connect` clients
//! call them. Each route decodes the request into the types of `crate::hyper`, calls the
//! service's port, and encodes the answer hyper's way: `{"ok": true, ...}` or
//! `{"ok": false, "status": N, "msg": "..."}` with status N, always as
//! `Content-Type: application/json` (both clients fail without it); a client's mistake is
//! never a 5xx.
//!
//! Who calls: in development mode (no `ARCBASE_ADMIN_KEY`) the `Authorization` header is
//! ignored (the Python client always sends a token, signed with the port number when the
//! URL has one) and the instance is `hypi-domain`'s, else `default`. Otherwise the header
//! carries the admin key (then `hypi-domain` picks the instance) or an app key's token
//! (`hyper::keys`), and anything else is 401. A signed storage URL needs no header.
//!
//! Bodies are parsed as JSON whatever their content type, chunked or not; an empty body or
//! `null` is no body. Paths are percent-decoded; an id, key or object name may contain `/`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::App;
use crate::hyper::cache::{parse_ttl, Pattern};
use crate::hyper::data::{named_id, BulkOp, FindQuery, IndexSpec, ListQuery};
use crate::hyper::queue::{JobStatus, QueueConfig};
use crate::hyper::search::{bulk_key, IndexConfig, SearchQuery};
use crate::hyper::{json_depth, HyperError, HyperResult, Scope, Service, StoreName};

/// The hyper routes.
pub(crate) fn router() -> Router<Arc<App>> {
    let mut r = Router::new().route("/", get(info));
    for service in Service::ALL {
        let s = service.as_str();
        r = r
            .route(&format!("/{s}"), any(move |State(app): State<Arc<App>>, req: Request| serve(app, service, req)))
            .route(
                &format!("/{s}/{{*rest}}"),
                any(move |State(app): State<Arc<App>>, req: Request| serve(app, service, req)),
            );
    }
    r
}

/// `GET /`: hyper's service list, or the playground for a browser (an `Accept` that prefers
/// `text/html`).
async fn info(headers: HeaderMap) -> Response {
    if prefers_html(&headers) {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/graphql")]).into_response();
    }
    reply(
        StatusCode::OK,
        json!({
            "name": "hyper",
            "version": concat!("arcbase ", env!("CARGO_PKG_VERSION")),
            "services": Service::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        }),
    )
}

/// Does `Accept` rank `text/html` above JSON?
fn prefers_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return false };
    let q_of = |want: &str| -> f32 {
        accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let media = parts.next()?.trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .next()
                    .unwrap_or(1.0);
                (media == want).then_some(q)
            })
            .fold(0.0, f32::max)
    };
    let html = q_of("text/html");
    html > 0.0 && html > q_of("application/json")
}

/// A JSON answer.
fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// hyper's error answer.
fn failure(e: HyperError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = reply(status, json!({ "ok": false, "status": e.status, "msg": e.msg }));
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if e.status == 401 {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if e.status == 413 || e.status == 408 {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn ok(status: StatusCode, extra: Value) -> Response {
    let mut body = Map::new();
    body.insert("ok".into(), Value::Bool(true));
    if let Value::Object(m) = extra {
        body.extend(m);
    }
    reply(status, Value::Object(body))
}

/// One hyper request, taken apart.
struct Call {
    method: Method,
    headers: HeaderMap,
    /// The decoded path segments after `/{service}`.
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Body,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty() && *v != "undefined")
    }

    /// The rest of the path after the store, `/`-joined (an id, key or object name).
    fn rest(&self) -> String {
        self.segments[1..].join("/")
    }
}

/// Decode the path after `/{service}` into segments.
fn segments(path: &str, service: Service) -> HyperResult<Vec<String>> {
    let rest = path.strip_prefix('/').and_then(|p| p.strip_prefix(service.as_str())).unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|s| percent_decode(s).ok_or_else(|| HyperError::invalid("the path is not valid percent-encoded UTF-8")))
        .collect()
}

/// Percent-decode one path segment (`+` stays a plus in paths).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Dispatch a request to its service.
async fn serve(app: Arc<App>, service: Service, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let segs = match segments(parts.uri.path(), service) {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    if segs.is_empty() {
        return failure(HyperError::not_found(format!("name the {}: /{}/{{name}}", service.noun(), service.as_str())));
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let call = Call { method: parts.method, headers: parts.headers, segments: segs, query, body };
    let store = match StoreName::parse(&call.segments[0]) {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let token = super::credential(&call.headers).to_string();
    let signed = if service == Service::Storage && matches!(call.method, Method::GET | Method::POST | Method::PUT) {
        signed_scope(&app, &call, &store)
    } else {
        Ok(None)
    };
    let domain = match call.headers.get("hypi-domain").map(|v| v.to_str()) {
        None => Ok(String::new()),
        Some(Ok(d)) => Ok(d.trim().to_string()),
        Some(Err(_)) => Err(HyperError::not_found("the hypi-domain header is not valid text")),
    };
    let scope = match scope_of(&app, signed, domain, token).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let result = match service {
        Service::Data => data(&app, &scope, &store, call).await,
        Service::Cache => cache(&app, &scope, &store, call).await,
        Service::Search => search(&app, &scope, &store, call).await,
        Service::Storage => storage(&app, &scope, &store, call).await,
        Service::Queue => queue(&app, &scope, &store, call).await,
    };
    result.unwrap_or_else(failure)
}

/// The instance a request acts for (see the module documentation): a signed URL's, or the
/// admin key's (`hypi-domain`'s instance), or an app key token's.
async fn scope_of(
    app: &App,
    signed: HyperResult<Option<Scope>>,
    domain: HyperResult<String>,
    token: String,
) -> HyperResult<Scope> {
    if let Some(scope) = signed? {
        return Ok(scope);
    }
    let by_domain = || -> HyperResult<Scope> {
        let domain = domain.clone()?;
        if domain.is_empty() || domain == "default" {
            return Ok(Scope { instance: "default".into() });
        }
        let snapshot = app.registry.snapshot();
        match snapshot.tenants.get(domain.as_str()) {
            Some(t) => Ok(Scope { instance: t.row.id.clone() }),
            None => Err(HyperError::not_found(format!("unknown instance domain '{domain}'"))),
        }
    };
    let Some(admin_key) = &app.admin_key else { return by_domain() };
    if !token.is_empty() && super::constant_time_eq(token.as_bytes(), admin_key.as_bytes()) {
        return by_domain();
    }
    if token.is_empty() {
        return Err(HyperError::new(401, "not authorized"));
    }
    match app.hyper_keys.verify(&app.store, &token).await {
        Ok(instance) => Ok(Scope { instance }),
        Err(crate::hyper::keys::Refused::Invalid(why)) => {
            tracing::info!("hyper token refused: {why}");
            Err(HyperError::new(401, "not authorized"))
        }
        Err(crate::hyper::keys::Refused::Store(e)) => Err(e.into()),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A signed storage URL's instance, when the request carries a valid signature.
fn signed_scope(app: &App, call: &Call, bucket: &StoreName) -> HyperResult<Option<Scope>> {
    let (Some(instance), Some(expires), Some(sig)) =
        (call.param("instance"), call.param("expires"), call.param("signature"))
    else {
        return Ok(None);
    };
    let expires: u64 = expires.parse().map_err(|_| HyperError::new(401, "not authorized"))?;
    let scope = Scope { instance: instance.to_string() };
    let method = if call.method == Method::GET { "GET" } else { "POST" };
    let name = call.rest();
    if crate::hyper::storage::verify(&app.jwt_secret, method, &scope, bucket, &name, expires, sig, unix_now()) {
        Ok(Some(scope))
    } else {
        Err(HyperError::new(401, "not authorized: the signed URL is invalid or expired"))
    }
}

/// Read a JSON body of at most `limit` bytes; `None` when empty or `null`.
async fn json_body(app: &App, call: Call, limit: usize) -> HyperResult<Option<Value>> {
    let time = Duration::from_millis(app.limits.body_read_ms);
    let bytes = match super::body::read_limited(call.body, &call.headers, limit, time).await {
        Ok(b) => b,
        Err(super::body::BodyError::TooLarge) => {
            return Err(HyperError::too_large(format!("the body is larger than {limit} bytes")))
        }
        Err(super::body::BodyError::Timeout) => {
            return Err(HyperError::new(408, format!("the body did not arrive within {} ms", app.limits.body_read_ms)))
        }
        Err(super::body::BodyError::Read(e)) => {
            return Err(HyperError::bad_request(format!("cannot read the body: {e}")))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| HyperError::bad_request(format!("the body is not JSON: {e}")))?;
    if json_depth(&v) > app.hyper.limits.json_depth {
        return Err(HyperError::invalid(format!("the body nests deeper than {} levels", app.hyper.limits.json_depth)));
    }
    Ok((!v.is_null()).then_some(v))
}

/// A JSON body that must be there.
async fn required_body(app: &App, call: Call, limit: usize) -> HyperResult<Value> {
    json_body(app, call, limit).await?.ok_or_else(|| HyperError::bad_request("the request needs a JSON body"))
}

fn not_allowed(call: &Call, service: Service) -> HyperError {
    HyperError::new(405, format!("{} is not a {} operation at this path", call.method, service.as_str()))
}

/// `X-HYPER-LEGACY-GET: false` asks for `{ok, doc}`; without it the raw value is answered.
fn legacy_get(headers: &HeaderMap) -> bool {
    !headers
        .get("x-hyper-legacy-get")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

async fn data(app: &App, scope: &Scope, store: &StoreName, call: Call) -> HyperResult<Response> {
    let svc = app.hyper.data.clone();
    let limits = app.hyper.limits;
    let body_limit = app.limits.body_bytes;
    let action = if call.segments.len() == 2 { Some(call.segments[1].as_str()) } else { None };
    match (call.method.clone(), call.segments.len(), action) {
        (Method::PUT, 1, _) => {
            svc.create(scope, store).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, 1, _) => {
            svc.destroy(scope, store).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::POST, 1, _) => {
            let doc = required_body(app, call, body_limit).await?;
            let id = svc.add(scope, store, doc).await?;
            Ok(ok(StatusCode::CREATED, json!({ "id": id })))
        }
        (Method::GET, 1, _) => {
            let q = ListQuery::from_params(&call.query, limits.page)?;
            let docs = svc.list(scope, store, &q).await?;
            Ok(ok(StatusCode::OK, json!({ "docs": docs })))
        }
        (Method::POST, 2, Some("_query")) => {
            let body = json_body(app, call, body_limit).await?.unwrap_or_else(|| json!({}));
            let q = FindQuery::from_json(&body, &limits)?;
            let docs = svc.query(scope, store, &q).await?;
            Ok(ok(StatusCode::OK, json!({ "docs": docs })))
        }
        (Method::POST, 2, Some("_index")) => {
            let body = required_body(app, call, body_limit).await?;
            svc.index(scope, store, &IndexSpec::from_json(&body)?).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::POST, 2, Some("_bulk")) => {
            let body = required_body(app, call, app.limits.hyper_bulk_bytes).await?;
            let Value::Array(items) = body else {
                return Err(HyperError::invalid("a bulk body is an array of documents"));
            };
            let mut ops = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(m) = &item else {
                    return Err(HyperError::invalid(format!("bulk item {i} is not a JSON object")));
                };
                let id = named_id(m)?;
                if m.get("_deleted") == Some(&Value::Bool(true)) {
                    let id =
                        id.ok_or_else(|| HyperError::invalid(format!("bulk item {i} deletes but names no _id")))?;
                    ops.push(BulkOp::Delete { id });
                } else {
                    ops.push(BulkOp::Put { id: id.unwrap_or_else(|| ulid::Ulid::new().to_string()), doc: item });
                }
            }
            let results = svc.bulk(scope, store, ops).await?;
            let results: Vec<Value> = results
                .into_iter()
                .map(|r| {
                    let mut o = json!({ "ok": r.ok, "id": r.id });
                    if let Some(msg) = r.msg {
                        o["msg"] = Value::String(msg);
                    }
                    o
                })
                .collect();
            Ok(ok(StatusCode::CREATED, json!({ "results": results })))
        }
        (Method::POST, 2, Some(a)) if a.starts_with('_') => {
            Err(HyperError::not_found(format!("no data action '{a}' (use _query, _index or _bulk)")))
        }
        (Method::GET, _, _) => {
            let id = call.rest();
            let legacy = legacy_get(&call.headers);
            let doc = svc.get(scope, store, &id).await?;
            Ok(if legacy { reply(StatusCode::OK, doc) } else { ok(StatusCode::OK, json!({ "doc": doc })) })
        }
        (Method::PUT, _, _) => {
            let id = call.rest();
            let doc = required_body(app, call, body_limit).await?;
            svc.update(scope, store, &id, doc).await?;
            Ok(ok(StatusCode::OK, json!({ "id": id })))
        }
        (Method::DELETE, _, _) => {
            let id = call.rest();
            svc.remove(scope, store, &id).await?;
            Ok(ok(StatusCode::OK, json!({ "id": id })))
        }
        _ => Err(not_allowed(&call, Service::Data)),
    }
}

/// The TTL of a cache write: the body's `ttl` or the `?ttl=` parameter.
fn ttl_of(v: Option<&Value>) -> HyperResult<Option<Duration>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_ttl(s).map(Some),
        Some(Value::Number(n)) => parse_ttl(&n.to_string()).map(Some),
        Some(_) => Err(HyperError::invalid("'ttl' is a duration such as 10s, 2h, 1d or 1w")),
    }
}

async fn cache(app: &App, scope: &Scope, store: &StoreName, call: Call) -> HyperResult<Response> {
    let svc = app.hyper.cache.clone();
    let limits = app.hyper.limits;
    let body_limit = app.limits.body_bytes;
    let is_query = call.segments.len() == 2 && call.segments[1] == "_query";
    match (call.method.clone(), call.segments.len()) {
        (Method::PUT, 1) => {
            svc.create(scope, store).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, 1) => {
            svc.destroy(scope, store).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::POST, 1) => {
            let body = required_body(app, call, body_limit).await?;
            let key = match body.get("key") {
                Some(Value::String(k)) => k.clone(),
                _ => return Err(HyperError::invalid("a cache entry needs a 'key'")),
            };
            let value = body.get("value").cloned().unwrap_or(Value::Null);
            let ttl = ttl_of(body.get("ttl"))?;
            svc.add(scope, store, &key, value, ttl).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::GET | Method::POST, 2) if is_query => {
            let pattern = Pattern::parse(call.param("pattern"))?;
            let limit = match call.param("limit") {
                Some(l) => crate::hyper::data::page_size(&Value::String(l.to_string()), limits.page)?,
                None => limits.page,
            };
            // The body (Python sends `null`, JS nothing) carries nothing; read it off.
            let _ = json_body(app, call, body_limit).await;
            let docs: Vec<Value> = svc
                .query(scope, store, &pattern, limit)
                .await?
                .into_iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect();
            Ok(ok(StatusCode::OK, json!({ "docs": docs })))
        }
        (Method::GET, _) => {
            let key = call.rest();
            let legacy = legacy_get(&call.headers);
            let value = svc.get(scope, store, &key).await?;
            Ok(if legacy { reply(StatusCode::OK, value) } else { ok(StatusCode::OK, json!({ "doc": value })) })
        }
        (Method::PUT, _) => {
            let key = call.rest();
            let ttl = ttl_of(call.param("ttl").map(|t| Value::String(t.to_string())).as_ref())?;
            let value = required_body(app, call, body_limit).await?;
            svc.set(scope, store, &key, value, ttl).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::DELETE, _) => {
            svc.remove(scope, store, &call.rest()).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        _ => Err(not_allowed(&call, Service::Cache)),
    }
}

async fn search(app: &App, scope: &Scope, store: &StoreName, call: Call) -> HyperResult<Response> {
    let svc = app.hyper.search.clone();
    let limits = app.hyper.limits;
    let body_limit = app.limits.body_bytes;
    let action = if call.segments.len() == 2 { Some(call.segments[1].clone()) } else { None };
    match (call.method.clone(), call.segments.len(), action.as_deref()) {
        (Method::PUT, 1, _) => {
            let body = required_body(app, call, body_limit).await?;
            svc.create(scope, store, &IndexConfig::from_json(&body)?).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, 1, _) => {
            svc.destroy(scope, store).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::POST, 1, _) => {
            let body = required_body(app, call, body_limit).await?;
            let key = match body.get("key") {
                Some(Value::String(k)) => k.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(HyperError::invalid("a search document needs a 'key'")),
            };
            let doc = body.get("doc").cloned().ok_or_else(|| HyperError::invalid("a search document needs a 'doc'"))?;
            svc.add(scope, store, &key, doc).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::POST, 2, Some("_query")) => {
            let body = required_body(app, call, body_limit).await?;
            let q = SearchQuery::from_json(&body, &limits)?;
            let matches: Vec<Value> = svc
                .query(scope, store, &q)
                .await?
                .into_iter()
                .map(|m| {
                    let mut o = Map::new();
                    o.insert("id".into(), Value::String(m.key));
                    o.insert("score".into(), serde_json::Number::from_f64(m.score).map_or(Value::Null, Value::Number));
                    if let Value::Object(stored) = m.doc {
                        for (k, v) in stored {
                            o.entry(k).or_insert(v);
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            Ok(ok(StatusCode::OK, json!({ "matches": matches })))
        }
        (Method::POST, 2, Some("_bulk")) => {
            let body = required_body(app, call, app.limits.hyper_bulk_bytes).await?;
            let Value::Array(items) = body else {
                return Err(HyperError::invalid("a bulk body is an array of documents"));
            };
            let docs = items.into_iter().map(|d| Ok((bulk_key(&d)?, d))).collect::<HyperResult<Vec<_>>>()?;
            let keys = svc.load(scope, store, docs).await?;
            let results: Vec<Value> = keys.into_iter().map(|k| json!({ "ok": true, "id": k })).collect();
            Ok(ok(StatusCode::CREATED, json!({ "results": results })))
        }
        (Method::POST, 2, Some(a)) if a.starts_with('_') => {
            Err(HyperError::not_found(format!("no search action '{a}' (use _query or _bulk)")))
        }
        (Method::GET, _, _) => {
            let key = call.rest();
            let doc = svc.get(scope, store, &key).await?;
            Ok(ok(StatusCode::OK, json!({ "key": key, "doc": doc })))
        }
        (Method::PUT, _, _) => {
            let key = call.rest();
            let doc = required_body(app, call, body_limit).await?;
            svc.update(scope, store, &key, doc).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::DELETE, _, _) => {
            svc.remove(scope, store, &call.rest()).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        _ => Err(not_allowed(&call, Service::Search)),
    }
}

/// A body stream that fails when a chunk takes longer than `stall` to arrive.
pub(crate) fn stalling(body: Body, stall: Duration) -> crate::hyper::storage::ByteStream {
    let stream = body.into_data_stream();
    Box::pin(futures_util::stream::unfold(Some(stream), move |s| async move {
        let mut s = s?;
        match tokio::time::timeout(stall, s.next()).await {
            Err(_) => Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no data for too long")), None)),
            Ok(None) => None,
            Ok(Some(Ok(b))) => Some((Ok(b), Some(s))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    }))
}

async fn storage(app: &App, scope: &Scope, store: &StoreName, call: Call) -> HyperResult<Response> {
    let svc = app.hyper.storage.clone();
    let stall = Duration::from_millis(app.limits.body_read_ms);
    let signed_url = call.param("useSignedUrl").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match (call.method.clone(), call.segments.len()) {
        (Method::PUT, 1) => {
            svc.create(scope, store).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, 1) => {
            svc.destroy(scope, store).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        // The Python client: multipart with a `file` part (its filename is the object's
        // name) and optionally a `path` text part before it (a folder for the name).
        (Method::POST, 1) => {
            let ct = call.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let boundary = multer::parse_boundary(ct).map_err(|_| {
                HyperError::invalid(
                    "upload as multipart/form-data with a 'file' part, or POST the bytes to /storage/{bucket}/{name}",
                )
            })?;
            let mut form = multer::Multipart::new(stalling(call.body, stall), boundary);
            let mut folder: Option<String> = None;
            loop {
                let field = form
                    .next_field()
                    .await
                    .map_err(|e| HyperError::bad_request(format!("the multipart body is malformed: {e}")))?
                    .ok_or_else(|| HyperError::invalid("the multipart body has no 'file' part"))?;
                match field.name() {
                    Some("path") => {
                        let text = field.text().await.map_err(|e| HyperError::bad_request(e.to_string()))?;
                        let text = text.trim_matches('/').to_string();
                        folder = (!text.is_empty()).then_some(text);
                    }
                    Some("file") => {
                        let file_name =
                            field.file_name().map(str::to_string).filter(|n| !n.is_empty()).ok_or_else(|| {
                                HyperError::invalid("the 'file' part needs a filename: the object's name")
                            })?;
                        let name = match &folder {
                            Some(f) => format!("{f}/{file_name}"),
                            None => file_name,
                        };
                        let stream = field.map(|c| c.map_err(|e| std::io::Error::other(e.to_string())));
                        svc.put(scope, store, &name, Box::pin(stream)).await?;
                        return Ok(ok(StatusCode::CREATED, json!({})));
                    }
                    _ => {
                        // Skip other parts.
                        let _ = field.bytes().await;
                    }
                }
            }
        }
        (Method::GET | Method::POST, _) if signed_url => {
            let name = call.rest();
            crate::hyper::storage::check_name(&name)?;
            let method = if call.method == Method::GET { "GET" } else { "POST" };
            let expires = unix_now() + 300;
            let sig = crate::hyper::storage::sign(&app.jwt_secret, method, scope, store, &name, expires);
            let host = call.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
            let scheme = call
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .filter(|p| *p == "https")
                .unwrap_or("http");
            let path: String =
                call.segments.iter().map(|s| format!("/{}", crate::hyper::remote::encode_segment(s))).collect();
            let url = format!(
                "{scheme}://{host}/storage{path}?instance={}&expires={expires}&signature={sig}",
                crate::hyper::remote::encode_segment(&scope.instance)
            );
            Ok(ok(StatusCode::OK, json!({ "url": url })))
        }
        (Method::GET, _) => {
            let object = svc.get(scope, store, &call.rest()).await?;
            let mut resp = Response::new(Body::from_stream(object.body));
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&object.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
            Ok(resp)
        }
        // The JS client: the bytes as the body.
        (Method::POST | Method::PUT, _) => {
            let name = call.rest();
            svc.put(scope, store, &name, stalling(call.body, stall)).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, _) => {
            svc.remove(scope, store, &call.rest()).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        _ => Err(not_allowed(&call, Service::Storage)),
    }
}

async fn queue(app: &App, scope: &Scope, store: &StoreName, call: Call) -> HyperResult<Response> {
    let svc = app.hyper.queue.clone();
    let limits = app.hyper.limits;
    let body_limit = app.limits.body_bytes;
    match (call.method.clone(), call.segments.len()) {
        (Method::PUT, 1) => {
            let body = required_body(app, call, body_limit).await?;
            svc.create(scope, store, &QueueConfig::from_json(&body)?).await?;
            Ok(ok(StatusCode::CREATED, json!({})))
        }
        (Method::DELETE, 1) => {
            svc.destroy(scope, store).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::POST, 1) => {
            let job = required_body(app, call, body_limit).await?;
            let id = svc.enqueue(scope, store, job).await?;
            Ok(ok(StatusCode::CREATED, json!({ "id": id })))
        }
        (Method::GET, 1) => {
            let status = JobStatus::parse(call.param("status").unwrap_or("READY"))?;
            let limit = match call.param("limit") {
                Some(l) => crate::hyper::data::page_size(&Value::String(l.to_string()), limits.page)?,
                None => limits.page,
            };
            let jobs: Vec<Value> = svc
                .list(scope, store, status, limit)
                .await?
                .into_iter()
                .map(|j| {
                    json!({ "id": j.id, "status": j.status.as_str(), "job": j.job, "attempts": j.attempts,
                            "error": j.error, "createdAt": j.created_at })
                })
                .collect();
            Ok(ok(StatusCode::OK, json!({ "jobs": jobs })))
        }
        (Method::DELETE, 2) => {
            svc.cancel(scope, store, &call.segments[1]).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        (Method::POST, 3) if call.segments[2] == "_retry" => {
            svc.retry(scope, store, &call.segments[1]).await?;
            Ok(ok(StatusCode::OK, json!({})))
        }
        _ => Err(not_allowed(&call, Service::Queue)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_per_segment() {
        assert_eq!(segments("/data/app/a%20b/c", Service::Data).unwrap(), ["app", "a b", "c"]);
        assert_eq!(segments("/data/app/%C3%A9+x", Service::Data).unwrap(), ["app", "é+x"]);
        assert!(segments("/data/app/%FF", Service::Data).is_err());
        assert!(segments("/data/app/%4", Service::Data).is_err());
        assert!(segments("/data", Service::Data).unwrap().is_empty());
    }

    #[test]
    fn html_only_when_preferred() {
        let h = |accept: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            prefers_html(&m)
        };
        assert!(h("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(!h("*/*"));
        assert!(!h("application/json, text/html;q=0.5"));
        assert!(!h("text/html;q=0.5, application/json"));
        assert!(!prefers_html(&HeaderMap::new()));
    }
}
