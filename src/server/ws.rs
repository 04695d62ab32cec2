//! GraphQL over WebSocket at `/graphql`, both sub-protocols:
//!
//! - `graphql-transport-ws` (the `graphql-ws` library's): `connection_init` → `connection_ack`,
//!   `ping`/`pong`, `subscribe` → `next`… / `error` / `complete`, client `complete` to stop.
//!   Protocol violations close the socket with the protocol's codes: 4400 (a malformed
//!   message), 4401 (`subscribe` before the acknowledgement), 4403 (refused credentials), 4408
//!   (no `connection_init` within `ws_init_ms`), 4409 (an id already running), 4429 (a second
//!   `connection_init`, or more than `ws_messages_per_sec` messages a second).
//! - `graphql-ws` (subscriptions-transport-ws, which Hypi's clients speak): `connection_init`
//!   → `connection_ack` and `ka` every 15 s, `start` → `data`… / `error` / `complete`, `stop`,
//!   `connection_terminate`; a refused init is `connection_error`, then the close.
//!
//! The instance and the caller come from `connection_init`'s payload (`Authorization` or
//! `authorization`, `hypi-domain`, also under `headers`), else from the upgrade request's
//! headers, checked as every request is (`server::resolve`). Queries and mutations sent as a
//! subscription run once (`next`, then `complete`). Every subscription is driven by
//! `realtime::drive` with its own bounded queue; at most `subscriptions_per_connection` at a
//! time. On shutdown every socket is closed with 1001 (going away).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;

use super::graphql::GetParams;
use super::{resolve, App, ClientAddr, RequestId, Resolved};
use crate::graphql::exec::{Context, Request};
use crate::realtime::Outgoing;

const TRANSPORT: &str = "graphql-transport-ws";
const LEGACY: &str = "graphql-ws";
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Transport,
    Legacy,
}

/// `GET /graphql`: a WebSocket upgrade, else a GraphQL GET request (or the playground).
pub(super) async fn get_or_upgrade(
    State(app): State<Arc<App>>,
    request_id: Extension<RequestId>,
    client: Option<Extension<ClientAddr>>,
    fresh: Option<Extension<super::FreshCompile>>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => {
            let ip = client.map(|c| c.0 .0.ip());
            // Small buffers (the defaults are 128 KiB for reading): an idle subscriber costs
            // little; a large message still goes through (the buffers grow as needed).
            let ws = ws
                .protocols([TRANSPORT, LEGACY])
                .max_message_size(app.limits.ws_message_bytes)
                .read_buffer_size(4 << 10)
                .write_buffer_size(0);
            let proto = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
                Some(LEGACY) => Proto::Legacy,
                _ => Proto::Transport,
            };
            ws.on_upgrade(move |socket| connection(app, socket, proto, headers, ip))
        }
        Err(_) => super::graphql::get(State(app), request_id, client, fresh, headers, params).await,
    }
}

/// What the connection writes for its subscriptions.
enum ToClient {
    /// The permit is the event's place in its subscriber's queue, freed once written.
    Next {
        id: String,
        payload: Arc<str>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// The subscription ended with these errors (a JSON array).
    Error {
        id: String,
        errors: String,
    },
    Complete {
        id: String,
    },
}

fn id_text(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.chars().take(120).collect::<String>().into() }))
}

/// The headers a connection authenticates with: the upgrade's, overridden by what
/// `connection_init` carries.
fn init_headers(upgrade: &HeaderMap, payload: &Json) -> HeaderMap {
    let mut h = upgrade.clone();
    let mut take = |obj: &serde_json::Map<String, Json>| {
        for (k, v) in obj {
            let lower = k.to_ascii_lowercase();
            if lower != "authorization" && lower != "hypi-domain" {
                continue;
            }
            let (Ok(name), Some(Ok(value))) =
                (HeaderName::from_bytes(lower.as_bytes()), v.as_str().map(HeaderValue::from_str))
            else {
                continue;
            };
            h.insert(name, value);
        }
    };
    if let Some(obj) = payload.as_object() {
        if let Some(inner) = obj.get("headers").and_then(Json::as_object) {
            take(inner);
        }
        take(obj);
    }
    h
}

/// One running subscription (or single-result operation) of a connection.
fn start(
    app: &Arc<App>,
    resolved: &Resolved,
    id: String,
    req: Request,
    to_client: mpsc::Sender<ToClient>,
) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    let served = resolved.served.clone();
    let caller = crate::ops::Caller { pending: Default::default(), ..resolved.caller.clone() };
    let anonymous_requests = resolved.anonymous_requests;
    tokio::spawn(async move {
        let credentials = std::sync::atomic::AtomicUsize::new(0);
        let ctx = Context { caller: &caller, anonymous_requests, only_queries: false, credentials: &credentials };
        if !crate::graphql::exec::is_subscription(&served, &req.query, req.operation_name.as_deref()).await {
            let (resp, _) = crate::graphql::exec::execute(&served, &ctx, req).await;
            let payload: Arc<str> = Arc::from(resp.to_json());
            let _ = to_client.send(ToClient::Next { id: id.clone(), payload, permit: None }).await;
            let _ = to_client.send(ToClient::Complete { id }).await;
            return;
        }
        let sub = match crate::graphql::exec::subscription(served, &ctx, req).await {
            Ok(s) => s,
            Err((_, errors)) => {
                let errors = serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into());
                let _ = to_client.send(ToClient::Error { id, errors }).await;
                return;
            }
        };
        let (tx, mut rx) = crate::realtime::channel(&app.limits);
        let driver = crate::realtime::drive(app.hub.clone(), sub, caller.clone(), tx);
        tokio::pin!(driver);
        let mut driving = true;
        loop {
            tokio::select! {
                () = &mut driver, if driving => driving = false,
                m = rx.recv() => match m {
                    Some(Outgoing::Next { payload, permit, .. }) => {
                        if to_client.send(ToClient::Next { id: id.clone(), payload, permit: Some(permit) }).await.is_err() {
                            return;
                        }
                    }
                    Some(Outgoing::Error(errors)) => {
                        let _ = to_client.send(ToClient::Error { id, errors }).await;
                        return;
                    }
                    None => return,
                },
            }
        }
    })
}

async fn connection(app: Arc<App>, socket: WebSocket, proto: Proto, upgrade: HeaderMap, client: Option<IpAddr>) {
    let limits = app.limits.clone();
    let (mut sink, mut incoming) = socket.split();
    let (to_client, mut outgoing) = mpsc::channel::<ToClient>(256);
    let mut shutdown = app.tasks.signal();
    let mut resolved: Option<Resolved> = None;
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let init_deadline = tokio::time::sleep(Duration::from_millis(limits.ws_init_ms));
    tokio::pin!(init_deadline);
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    let (mut window, mut in_window) = (tokio::time::Instant::now(), 0u32);
    let mut initialised = false;
    let closing: Option<Message> = loop {
        tokio::select! {
            m = incoming.next() => {
                let text = match m {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => break Some(close(4400, "messages are JSON text")),
                };
                if window.elapsed() >= Duration::from_secs(1) {
                    (window, in_window) = (tokio::time::Instant::now(), 0);
                }
                in_window += 1;
                if in_window > limits.ws_messages_per_sec {
                    break Some(close(4429, "too many messages a second"));
                }
                let Ok(msg) = serde_json::from_str::<Json>(text.as_str()) else {
                    break Some(close(4400, "a message is a JSON object with a type"));
                };
                let kind = msg["type"].as_str().unwrap_or_default().to_string();
                let id = msg["id"].as_str().map(str::to_string);
                match kind.as_str() {
                    "connection_init" => {
                        if initialised {
                            if proto == Proto::Transport {
                                break Some(close(4429, "Too many initialisation requests"));
                            }
                            continue;
                        }
                        initialised = true;
                        let headers = init_headers(&upgrade, &msg["payload"]);
                        match resolve(&app, &headers, client).await {
                            Ok(r) => {
                                resolved = Some(r);
                                let ack = Message::Text(r#"{"type":"connection_ack"}"#.into());
                                if sink.send(ack).await.is_err() {
                                    break None;
                                }
                                if proto == Proto::Legacy && sink.send(Message::Text(r#"{"type":"ka"}"#.into())).await.is_err() {
                                    break None;
                                }
                            }
                            Err(resp) => {
                                let why = if resp.status() == axum::http::StatusCode::NOT_FOUND { "unknown instance" } else { "invalid credentials" };
                                if proto == Proto::Legacy {
                                    let m = json!({ "type": "connection_error", "payload": { "message": why } });
                                    let _ = sink.send(Message::Text(m.to_string().into())).await;
                                }
                                break Some(close(4403, &format!("Forbidden: {why}")));
                            }
                        }
                    }
                    "ping" if proto == Proto::Transport => {
                        let mut pong = json!({ "type": "pong" });
                        if !msg["payload"].is_null() {
                            pong["payload"] = msg["payload"].clone();
                        }
                        if sink.send(Message::Text(pong.to_string().into())).await.is_err() {
                            break None;
                        }
                    }
                    "pong" | "ka" => {}
                    "subscribe" | "start" => {
                        let Some(r) = &resolved else {
                            break Some(close(4401, "Unauthorized: send connection_init first"));
                        };
                        let Some(id) = id.filter(|i| !i.is_empty() && i.len() <= 256) else {
                            break Some(close(4400, "a subscribe message needs an id"));
                        };
                        subs.retain(|_, h| !h.is_finished());
                        if subs.contains_key(&id) {
                            if proto == Proto::Transport {
                                break Some(close(4409, &format!("Subscriber for {id} already exists")));
                            }
                            continue;
                        }
                        let p = &msg["payload"];
                        let Some(query) = p["query"].as_str() else {
                            break Some(close(4400, "a subscribe payload needs a query"));
                        };
                        if subs.len() >= limits.subscriptions_per_connection {
                            let e = crate::error::ApiError::limit(format!(
                                "a connection runs at most {} subscriptions at once",
                                limits.subscriptions_per_connection
                            ));
                            let errors = serde_json::to_string(&[crate::graphql::response::GqlError::from_api(e, Vec::new(), None)])
                                .unwrap_or_else(|_| "[]".into());
                            let _ = to_client.send(ToClient::Error { id, errors }).await;
                            continue;
                        }
                        let req = Request {
                            query: query.to_string(),
                            operation_name: p["operationName"].as_str().map(str::to_string),
                            variables: p.get("variables").cloned().unwrap_or(Json::Null),
                        };
                        let handle = start(&app, r, id.clone(), req, to_client.clone());
                        subs.insert(id, handle);
                    }
                    "complete" | "stop" => {
                        if let Some(id) = id {
                            if let Some(h) = subs.remove(&id) {
                                h.abort();
                                if proto == Proto::Legacy {
                                    let m = format!(r#"{{"id":{},"type":"complete"}}"#, id_text(&id));
                                    if sink.send(Message::Text(m.into())).await.is_err() {
                                        break None;
                                    }
                                }
                            }
                        }
                    }
                    "connection_terminate" => break Some(close(1000, "terminated")),
                    other => {
                        if proto == Proto::Transport {
                            break Some(close(4400, &format!("unknown message type '{other}'")));
                        }
                    }
                }
            }
            Some(out) = outgoing.recv() => {
                let id = match &out {
                    ToClient::Next { id, .. } | ToClient::Error { id, .. } | ToClient::Complete { id } => id.clone(),
                };
                // A subscription the client stopped sends nothing more.
                if !subs.contains_key(&id) {
                    continue;
                }
                let mut held = None;
                let (text, ended) = match (proto, out) {
                    (p, ToClient::Next { payload, permit, .. }) => {
                        held = permit;
                        let kind = if p == Proto::Transport { "next" } else { "data" };
                        (format!(r#"{{"id":{},"type":"{kind}","payload":{payload}}}"#, id_text(&id)), false)
                    }
                    (_, ToClient::Error { errors, .. }) => (format!(r#"{{"id":{},"type":"error","payload":{errors}}}"#, id_text(&id)), true),
                    (_, ToClient::Complete { .. }) => (format!(r#"{{"id":{},"type":"complete"}}"#, id_text(&id)), true),
                };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break None;
                }
                drop(held);
                if ended {
                    subs.remove(&id);
                }
            }
            () = &mut init_deadline, if resolved.is_none() && !initialised => {
                break Some(close(4408, "Connection initialisation timeout"));
            }
            _ = keep_alive.tick(), if proto == Proto::Legacy && resolved.is_some() => {
                if sink.send(Message::Text(r#"{"type":"ka"}"#.into())).await.is_err() {
                    break None;
                }
            }
            () = shutdown.wait() => break Some(close(1001, "the server is shutting down")),
        }
    };
    for (_, h) in subs.drain() {
        h.abort();
    }
    if let Some(m) = closing {
        let _ = sink.send(m).await;
    }
    let _ = sink.close().await;
}
