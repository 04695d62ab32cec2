//! GraphQL subscriptions as server-sent events, for clients that cannot open a WebSocket:
//! `GET /graphql/stream?query=...&variables=...&operationName=...`, or `POST /graphql/stream`
//! with the usual JSON body, decoded by the functions `POST`/`GET /graphql` use (automatic
//! persisted queries included: `extensions.persistedQuery` may stand for the text). One
//! subscription per stream:
//!
//! ```text
//! id: 42
//! event: next
//! data: {"data":{"changes":{...}}}
//!
//! event: error
//! data: {"errors":[...]}          (the subscription ended; the stream closes)
//! ```
//!
//! Every event's `id:` is its cursor, so a client that reconnects with `Last-Event-ID` (as
//! `EventSource` does by itself) continues after it, with no gap and no duplicate. A comment
//! line every 15 s keeps proxies from closing an idle stream. A request that cannot start is
//! answered with a JSON error body and its HTTP status (400, 401, 404).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::graphql::{params_persisted, params_variables, parse_body, GetParams, Incoming};
use super::{error_response, resolve, App, ClientAddr};
use crate::error::ApiError;
use crate::graphql::exec::Request;
use crate::graphql::response::Outcome;
use crate::realtime::Outgoing;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn get(
    State(app): State<Arc<App>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error_response(StatusCode::BAD_REQUEST, ApiError::validation("invalid query string"));
    };
    let persisted = match params_persisted(p.extensions.as_deref()) {
        Ok(persisted) => persisted,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    if p.query.is_none() && persisted.is_none() {
        return error_response(
            StatusCode::BAD_REQUEST,
            ApiError::validation("a subscription needs a 'query' parameter"),
        );
    }
    let variables = match params_variables(p.variables.as_deref(), &app.limits) {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    let incoming = Incoming { query: p.query, operation_name: p.operation_name, variables, persisted };
    start(app, headers, client.map(|c| c.0 .0.ip()), incoming).await
}

pub(super) async fn post(
    State(app): State<Arc<App>>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The body of `POST /graphql`, decoded by the same function, but one request, not a batch.
    let incoming = match parse_body(&body, &app.limits) {
        Ok((items, false)) => items.into_iter().next(),
        Ok((_, true)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ApiError::validation("a stream serves one subscription: send one request object, not a batch"),
            )
        }
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    let Some(incoming) = incoming else {
        return error_response(StatusCode::BAD_REQUEST, ApiError::validation("the body holds no request"));
    };
    start(app, headers, client.map(|c| c.0 .0.ip()), incoming).await
}

/// Resolve a persisted query's hash to its text (an unknown hash is answered 400 with
/// `PERSISTED_QUERY_NOT_FOUND`, so the client sends the text with it), then open the stream.
async fn start(app: Arc<App>, headers: HeaderMap, client: Option<IpAddr>, incoming: Incoming) -> Response {
    match incoming.resolve(&app) {
        Ok(req) => stream(app, headers, client, req).await,
        Err(e) => error_response(StatusCode::BAD_REQUEST, e),
    }
}

/// Aborts the subscription's driver when the stream is dropped (the client went away).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn stream(app: Arc<App>, headers: HeaderMap, client: Option<IpAddr>, req: Request) -> Response {
    let resolved = match resolve(&app, &headers, client).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let credentials = std::sync::atomic::AtomicUsize::new(0);
    let ctx = resolved.context(false, &credentials);
    let mut sub = match crate::graphql::exec::subscription(resolved.served.clone(), &ctx, req).await {
        Ok(s) => s,
        Err((outcome, errors)) => {
            let status =
                if outcome == Outcome::Unauthenticated { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
            let body = crate::graphql::response::Response::request_error(errors).to_json();
            return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
    };
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty()) {
        sub.args.after = Some(last.trim().to_string());
        sub.args.previous = None;
        sub.args.include_current = false;
    }
    let (tx, rx) = crate::realtime::channel(&app.limits);
    let driver = tokio::spawn(crate::realtime::drive(app.hub.clone(), sub, resolved.caller.clone(), tx));
    let guard = AbortOnDrop(driver);
    let shutdown = app.tasks.signal();
    // The state keeps the permit of the event last handed to the body until the body asks for
    // the next one (it has taken the last): the subscriber's queue frees as the client reads.
    let events = futures_util::stream::unfold(
        (rx, shutdown, guard, false, None),
        |(mut rx, mut shutdown, guard, ended, held): (_, _, _, bool, Option<tokio::sync::OwnedSemaphorePermit>)| async move {
            drop(held);
            if ended {
                return None;
            }
            let mut permit = None;
            let (text, end) = tokio::select! {
                m = rx.recv() => match m {
                    Some(Outgoing::Next { cursor, payload, permit: p }) => {
                        permit = Some(p);
                        (format!("id: {cursor}\nevent: next\ndata: {payload}\n\n"), false)
                    }
                    Some(Outgoing::Error(errors)) => (format!("event: error\ndata: {{\"errors\":{errors}}}\n\n"), true),
                    None => return None,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => (": keep-alive\n\n".to_string(), false),
                () = shutdown.wait() => ("event: complete\ndata: {}\n\n".to_string(), true),
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(text)), (rx, shutdown, guard, end, permit)))
        },
    );
    let mut resp = Response::new(Body::from_stream(events));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
