//! The GraphQL response: `data` and `errors`, with every error classified once
//! ([`GqlError::from_api`]): `message`, `locations`, `path` and `extensions.code`, and the
//! request id in `extensions.requestId`.

use serde::Serialize;
use serde_json::Value as Json;

use crate::error::{ApiError, ErrorCode};

/// A step of an error's `path`: a response key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl From<async_graphql::Pos> for Location {
    fn from(p: async_graphql::Pos) -> Self {
        Location { line: p.line, column: p.column }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extensions {
    pub code: &'static str,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Extra members some errors carry (e.g. the incompatible changes of a release).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Json>,
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GqlError {
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathSegment>,
    pub extensions: Extensions,
}

impl GqlError {
    /// The one classification of every error: its code from the [`ApiError`]; an internal
    /// failure says only "internal error" (its detail went to the log with the request id).
    pub fn from_api(e: ApiError, path: Vec<PathSegment>, location: Option<Location>) -> Self {
        let message = if e.code == ErrorCode::Internal { "internal error".to_string() } else { e.message };
        let mut extra = serde_json::Map::new();
        if let Some(s) = e.retry_after {
            extra.insert("retryAfter".into(), Json::from(s));
        }
        GqlError {
            message,
            locations: location.into_iter().collect(),
            path,
            extensions: Extensions { code: e.code.as_str(), request_id: None, extra },
        }
    }

    /// An internal failure at `path`, logged now.
    pub fn internal_at(detail: String, path: Vec<PathSegment>) -> Self {
        Self::from_api(ApiError::internal(detail), path, None)
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from_api(ApiError::new(code, message), Vec::new(), None)
    }
}

/// What a GraphQL request produced. Its JSON is [`Response::to_json`] (`data`, `errors`,
/// `extensions`, each left out when absent or empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Absent for a request error (the request was not executed); `null` when a non-null root
    /// field failed.
    pub data: Option<Data>,
    pub errors: Vec<GqlError>,
    /// `{"hyper": {"pending": {Type: [services]}}}` after writes the bridge catches up.
    pub extensions: Option<Json>,
}

/// The response's `data` as the JSON text the encoder wrote (`super::encode`): it goes into
/// the response as it is, never parsed or serialized again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data(String);

impl Data {
    /// `null`: a non-null root field failed.
    pub fn null() -> Data {
        Data("null".to_string())
    }

    /// The text written by the encoder (serde_json's own output, so valid JSON).
    pub(crate) fn written(bytes: Vec<u8>) -> Data {
        // The encoder writes only through serde_json and ASCII punctuation: always UTF-8.
        Data(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a request ended, which decides the HTTP status a transport answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was executed (the response may still hold field errors).
    Executed,
    /// It could not be executed: unparsable, invalid, a limit, a variable that does not fit.
    RequestError,
    /// It needs credentials the caller did not send.
    Unauthenticated,
    /// A mutation sent where only queries are allowed (GET).
    MutationNotAllowed,
}

impl Response {
    /// A request error: no `data`.
    pub fn request_error(errors: Vec<GqlError>) -> Self {
        Response { data: None, errors, extensions: None }
    }

    /// The response as JSON text: the bytes `serde_json` would write for
    /// `{"data": ..., "errors": [...], "extensions": {...}}` (members absent or empty left out),
    /// with `data` as the encoder wrote it.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.data.as_ref().map_or(0, |d| d.0.len()) + 16);
        self.write_json(&mut out);
        out
    }

    /// A batch's responses as one JSON array.
    pub fn batch_json(answers: &[Response]) -> String {
        let mut out = String::from("[");
        for (i, a) in answers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            a.write_json(&mut out);
        }
        out.push(']');
        out
    }

    fn write_json(&self, out: &mut String) {
        let mut first = true;
        let mut member = |out: &mut String, name: &str| {
            out.push_str(if first { "{\"" } else { ",\"" });
            first = false;
            out.push_str(name);
            out.push_str("\":");
        };
        if let Some(d) = &self.data {
            member(out, "data");
            out.push_str(&d.0);
        }
        // Errors and extensions are plain values: serializing them cannot fail.
        if !self.errors.is_empty() {
            member(out, "errors");
            out.push_str(&serde_json::to_string(&self.errors).unwrap_or_else(|_| "[]".into()));
        }
        if let Some(x) = &self.extensions {
            member(out, "extensions");
            out.push_str(&x.to_string());
        }
        out.push_str(if first { "{}" } else { "}" });
    }

    /// Put the request id into every error.
    pub fn with_request_id(mut self, id: &str) -> Self {
        for e in &mut self.errors {
            e.extensions.request_id = Some(id.to_string());
        }
        self
    }
}
