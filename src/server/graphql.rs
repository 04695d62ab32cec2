//! GraphQL over HTTP (the GraphQL-over-HTTP spec): `POST /graphql` with a JSON body (one
//! request or a batch array) and `GET /graphql?query=...` (queries only); the playground on a
//! GET without a query.
//!
//! The response's media type follows `Accept`: `application/graphql-response+json` when the
//! client asks for it, then with the spec's status codes (a request that cannot be executed,
//! because its JSON, document, validation or variables fail, is a 400 without `data`);
//! otherwise `application/json`, answered 200 as GraphQL clients before the spec expect. A
//! body or query string that is not a GraphQL request at all (not JSON, `query` missing or not
//! a string, over a limit of the batch) is a 400 in both. Both:
//! 401 when credentials are needed, 405 (`Allow: POST`) for a mutation over GET, 415 for a
//! body that is not JSON (and for the content types a browser may send cross-site without a
//! preflight: CSRF).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::Value as Json;

use super::{error_response, playground, read_body, resolve, unauthorized, App, ClientAddr, FreshCompile, RequestId};
use crate::error::{ApiError, ErrorCode};
use crate::graphql::guard;
use crate::graphql::persisted::{self, Persisted};
use crate::graphql::response::{GqlError, Outcome, Response as GqlResponse};
use crate::graphql::{execute, Request};

/// The media type of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `application/graphql-response+json`: the spec's status codes.
    GraphqlResponse,
    /// `application/json`: 200 for everything GraphQL answered.
    Json,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }

    /// The status of a GraphQL answer.
    fn status(self, outcome: Outcome) -> StatusCode {
        match (outcome, self) {
            (Outcome::Executed, _) | (Outcome::RequestError, Media::Json) => StatusCode::OK,
            (Outcome::RequestError, Media::GraphqlResponse) => StatusCode::BAD_REQUEST,
            (Outcome::Unauthenticated, _) => StatusCode::UNAUTHORIZED,
            (Outcome::MutationNotAllowed, _) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// The client's preferred media type by `Accept` (absent: `application/json`); `None` when it
/// accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    let mut best: Option<(f32, Media)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0);
        let media = match essence.as_str() {
            GRAPHQL_RESPONSE => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        // An explicit graphql-response+json wins a tie (it is the spec's type).
        let better = match best {
            None => true,
            Some((bq, bm)) => q > bq || (q == bq && media == Media::GraphqlResponse && bm != media),
        };
        if q > 0.0 && better {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        ApiError::validation(format!("GraphQL answers {GRAPHQL_RESPONSE} or application/json; Accept allows neither")),
    )
}

/// One error as a whole answer (no `data`) to a request that is not a well-formed
/// GraphQL-over-HTTP request (its body or parameters): 400 in both media types, or `status`.
fn refused(media: Media, status: Option<StatusCode>, e: ApiError, request_id: &str) -> Response {
    let body = GqlResponse::request_error(vec![GqlError::from_api(e, Vec::new(), None)]).with_request_id(request_id);
    answer(media, status.unwrap_or(StatusCode::BAD_REQUEST), body.to_json())
}

/// An answer: one response ([`GqlResponse::to_json`]) or a batch's
/// ([`GqlResponse::batch_json`]).
fn answer(media: Media, status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, media.content_type())], text).into_response()
}

/// A server that is too busy (OVERLOADED) answers 503, a caller that must slow down
/// (RATE_LIMITED) 429, both with `Retry-After`, whatever else the answer holds: clients and
/// proxies retry on these statuses, not on a code inside a 200.
fn busy_status(answers: &[GqlResponse]) -> Option<(StatusCode, u64)> {
    let codes = || answers.iter().flat_map(|a| a.errors.iter()).map(|e| e.extensions.code);
    if codes().any(|c| c == ErrorCode::Overloaded.as_str()) {
        return Some((StatusCode::SERVICE_UNAVAILABLE, 1));
    }
    let wait = answers
        .iter()
        .flat_map(|a| a.errors.iter())
        .filter(|e| e.extensions.code == ErrorCode::RateLimited.as_str())
        .map(|e| e.extensions.extra.get("retryAfter").and_then(Json::as_u64).unwrap_or(1))
        .max();
    wait.map(|w| (StatusCode::TOO_MANY_REQUESTS, w.max(1)))
}

fn with_retry(mut r: Response, after: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The POST body → requests. Checked in this order, each step bounded by the one before:
/// JSON nesting (a linear scan, so no parser recurses deeper than the limit), JSON syntax, the
/// batch size, then the shape of each request. `Err` holds the error; the bool says whether
/// it was a batch.
pub(super) fn parse_body(body: &[u8], limits: &crate::config::Limits) -> Result<(Vec<Incoming>, bool), ApiError> {
    // A batch array and the request object sit above the variables, whose own nesting is
    // judged against `limits.nesting`.
    if guard::json_nesting(body) > limits.nesting + 2 {
        return Err(ApiError::limit(format!("the JSON body nests deeper than {} levels", limits.nesting + 2)));
    }
    let value: Json = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("the body is not a GraphQL request in JSON: {e}")))?;
    match value {
        Json::Array(items) => {
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
            Ok((items.into_iter().map(one_request).collect::<Result<_, _>>()?, true))
        }
        v @ Json::Object(_) => Ok((vec![one_request(v)?], false)),
        _ => Err(ApiError::validation("the body must be a GraphQL request object or a batch array of them")),
    }
}

/// A request as the body or the query string gave it: its text may be persisted.
pub(super) struct Incoming {
    /// The text (absent when a persisted query's hash stands for it).
    pub(super) query: Option<String>,
    pub(super) operation_name: Option<String>,
    pub(super) variables: Json,
    pub(super) persisted: Option<Persisted>,
}

impl Incoming {
    /// The request to execute: with its own text, or the one persisted under its hash.
    pub(super) fn resolve(self, app: &App) -> Result<Request, ApiError> {
        let query = match &self.persisted {
            Some(p) => app.persisted.resolve(self.query, p)?,
            None => self.query.ok_or_else(|| ApiError::validation("a GraphQL request needs a 'query' string"))?,
        };
        Ok(Request { query, operation_name: self.operation_name, variables: self.variables })
    }
}

/// `{query, operationName?, variables?, extensions?}` (`query` may be left out when
/// `extensions.persistedQuery` names it).
fn one_request(v: Json) -> Result<Incoming, ApiError> {
    let Json::Object(mut o) = v else {
        return Err(ApiError::validation("a GraphQL request must be an object"));
    };
    let query = match o.remove("query") {
        Some(Json::String(q)) => Some(q),
        None | Some(Json::Null) => None,
        Some(_) => return Err(ApiError::validation("'query' must be a string")),
    };
    let operation_name = match o.remove("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(n)) => Some(n),
        Some(_) => return Err(ApiError::validation("'operationName' must be a string")),
    };
    let variables = match o.remove("variables") {
        None | Some(Json::Null) => Json::Null,
        Some(v @ Json::Object(_)) => v,
        Some(_) => return Err(ApiError::validation("'variables' must be an object")),
    };
    let persisted = match o.remove("extensions") {
        None | Some(Json::Null) => None,
        Some(e @ Json::Object(_)) => persisted::from_extensions(Some(&e))?,
        Some(_) => return Err(ApiError::validation("'extensions' must be an object")),
    };
    if query.is_none() && persisted.is_none() {
        return Err(ApiError::validation("a GraphQL request needs a 'query' string"));
    }
    Ok(Incoming { query, operation_name, variables, persisted })
}

/// Run one request of a body: a persisted query whose text is unknown (or whose hash does not
/// fit its text) is answered as a request error without running.
async fn run_one(
    app: &App,
    served: &crate::graphql::Served,
    ctx: &crate::graphql::Context<'_>,
    incoming: Incoming,
) -> (GqlResponse, Outcome) {
    match incoming.resolve(app) {
        Ok(req) => execute(served, ctx, req).await,
        Err(e) => (GqlResponse::request_error(vec![GqlError::from_api(e, Vec::new(), None)]), Outcome::RequestError),
    }
}

pub(super) async fn post(
    State(app): State<Arc<App>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    client: Option<Extension<ClientAddr>>,
    fresh: Option<Extension<FreshCompile>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let mut resolved = match resolve(&app, &headers, client.map(|c| c.0 .0.ip())).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    resolved.caller.fresh = fresh.is_some();
    if let Err(e) = super::check_content_type(&headers) {
        return refused(media, Some(StatusCode::UNSUPPORTED_MEDIA_TYPE), e, &request_id);
    }
    let body = match read_body(&app, body, &headers, app.limits.body_bytes).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (requests, batch) = match parse_body(&body, &app.limits) {
        Ok(r) => r,
        Err(e) => return refused(media, None, e, &request_id),
    };
    let credentials = std::sync::atomic::AtomicUsize::new(0);
    let ctx = resolved.context(false, &credentials);
    let mut answers = Vec::with_capacity(requests.len());
    let mut outcomes = Vec::with_capacity(requests.len());
    for req in requests {
        let (resp, outcome) = run_one(&app, &resolved.served, &ctx, req).await;
        answers.push(resp.with_request_id(&request_id));
        outcomes.push(outcome);
    }
    if outcomes.contains(&Outcome::Unauthenticated) {
        return unauthorized("authentication required: send Authorization: Bearer <token or admin key>");
    }
    if let Some((status, after)) = busy_status(&answers) {
        return if batch {
            with_retry(answer(media, status, GqlResponse::batch_json(&answers)), after)
        } else {
            with_retry(answer(media, status, answers[0].to_json()), after)
        };
    }
    if batch {
        return answer(media, StatusCode::OK, GqlResponse::batch_json(&answers));
    }
    let outcome = outcomes.pop().unwrap_or(Outcome::Executed);
    answers.pop().map_or_else(
        || error_response(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal("a request without an answer")),
        |a| answer(media, media.status(outcome), a.to_json()),
    )
}

#[derive(Deserialize)]
pub(crate) struct GetParams {
    pub(crate) query: Option<String>,
    #[serde(rename = "operationName")]
    pub(crate) operation_name: Option<String>,
    pub(crate) variables: Option<String>,
    pub(crate) extensions: Option<String>,
}

/// The persisted query the `extensions` parameter of a query string names, if any.
pub(super) fn params_persisted(text: Option<&str>) -> Result<Option<Persisted>, ApiError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<Json>(text) {
            Ok(e @ Json::Object(_)) => persisted::from_extensions(Some(&e)),
            Ok(Json::Null) => Ok(None),
            _ => Err(ApiError::validation("'extensions' must be a JSON object")),
        },
    }
}

/// The `variables` parameter of a query string: a JSON object (or nothing), nested no deeper
/// than the limit.
pub(super) fn params_variables(text: Option<&str>, limits: &crate::config::Limits) -> Result<Json, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(Json::Null) };
    if guard::json_nesting(text.as_bytes()) > limits.nesting {
        return Err(ApiError::limit(format!("the variables nest deeper than {} levels", limits.nesting)));
    }
    match serde_json::from_str::<Json>(text) {
        Ok(v @ (Json::Object(_) | Json::Null)) => Ok(v),
        Ok(_) => Err(ApiError::validation("'variables' must be an object")),
        Err(e) => Err(ApiError::validation(format!("variables are not JSON: {e}"))),
    }
}

/// Does the client prefer a web page (a browser opening the URL)?
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

pub(super) async fn get(
    State(app): State<Arc<App>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    client: Option<Extension<ClientAddr>>,
    fresh: Option<Extension<FreshCompile>>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(_) => {
            let media = negotiate(&headers).unwrap_or(Media::Json);
            return refused(media, None, ApiError::validation("invalid query string"), &request_id);
        }
    };
    let persisted = match params_persisted(params.extensions.as_deref()) {
        Ok(p) => p,
        Err(e) => return refused(negotiate(&headers).unwrap_or(Media::Json), None, e, &request_id),
    };
    if params.query.is_none() && persisted.is_none() {
        if wants_html(&headers) || headers.get(header::ACCEPT).is_none() {
            return Html(playground::page("/graphql")).into_response();
        }
        let Some(media) = negotiate(&headers) else { return not_acceptable() };
        return refused(media, None, ApiError::validation("a GraphQL request needs a 'query' parameter"), &request_id);
    }
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let mut resolved = match resolve(&app, &headers, client.map(|c| c.0 .0.ip())).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    resolved.caller.fresh = fresh.is_some();
    let variables = match params_variables(params.variables.as_deref(), &app.limits) {
        Ok(v) => v,
        Err(e) => return refused(media, None, e, &request_id),
    };
    let incoming = Incoming { query: params.query, operation_name: params.operation_name, variables, persisted };
    let credentials = std::sync::atomic::AtomicUsize::new(0);
    let ctx = resolved.context(true, &credentials);
    let (resp, outcome) = run_one(&app, &resolved.served, &ctx, incoming).await;
    let resp = resp.with_request_id(&request_id);
    if let Some((status, after)) = busy_status(std::slice::from_ref(&resp)) {
        return with_retry(answer(media, status, resp.to_json()), after);
    }
    match outcome {
        Outcome::Unauthenticated => {
            unauthorized("authentication required: send Authorization: Bearer <token or admin key>")
        }
        Outcome::MutationNotAllowed => {
            let mut r = answer(media, StatusCode::METHOD_NOT_ALLOWED, resp.to_json());
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            r
        }
        o => {
            // An HTTP cache in front may keep a GET answer (a persisted query's URL is short
            // and stable), but only apart for each caller, instance and media type.
            let mut r = answer(media, media.status(o), resp.to_json());
            r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Authorization, hypi-domain"));
            r
        }
    }
}
