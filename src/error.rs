//! The one public error type: a code that becomes `extensions.code` and a message for the user.
//!
//! Module-level errors (`store::StoreError`, ...) convert into [`ApiError`]. Internal failures
//! are logged (with the request's id, from its span) and answered with only "internal error"
//! and that id in `extensions.requestId`: no SQL, no driver text reaches a client.

use std::fmt;

/// `extensions.code` of every error arcbase returns (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ArcqlSyntax,
    UnknownField,
    Validation,
    NotFound,
    LimitExceeded,
    Unauthenticated,
    Forbidden,
    UniqueViolation,
    Conflict,
    UnknownInstance,
    GraphqlValidation,
    /// The request ran out of its time budget and was stopped.
    Timeout,
    /// The server is too busy to take the request now: retry shortly (HTTP 503).
    Overloaded,
    /// The caller sent too many requests of a kind (failed logins): retry later (HTTP 429).
    RateLimited,
    /// A hyper service in ATOMIC mode could not take the write, which was rolled back.
    HyperUnavailable,
    /// A subscription's cursor is older than the retained change feed.
    CursorExpired,
    /// A persisted query's hash names no text this node knows: send the text with it.
    PersistedQueryNotFound,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ArcqlSyntax => "ARCQL_SYNTAX",
            ErrorCode::UnknownField => "UNKNOWN_FIELD",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::UniqueViolation => "UNIQUE_VIOLATION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::UnknownInstance => "UNKNOWN_INSTANCE",
            ErrorCode::GraphqlValidation => "GRAPHQL_VALIDATION",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::HyperUnavailable => "HYPER_UNAVAILABLE",
            ErrorCode::CursorExpired => "CURSOR_EXPIRED",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// The message of a write the database rolled back to end a deadlock with another one.
pub const CONTENTION: &str = "the write ran into another one writing the same objects at the same time and was \
                              rolled back; nothing was written: send it again";

/// An error meant for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// When the request may be tried again, in seconds (RATE_LIMITED, OVERLOADED).
    pub retry_after: Option<u64>,
    /// Set only from `StoreError::Contention`: the database rolled the write back to end a
    /// deadlock, so nothing was written and the whole write may run again (`ops::retrying`).
    /// A mark, not the message, so a location prefix (`at`) or another error that happens to
    /// say the same words cannot change what is retried.
    pub(crate) contended: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), retry_after: None, contended: false }
    }

    /// Say when to try again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The database rolled the write back to end a deadlock (`StoreError::Contention`):
    /// nothing was written, and it may run again.
    pub fn is_contention(&self) -> bool {
        self.contended
    }

    /// The error of a write the database rolled back to end a deadlock.
    pub(crate) fn contention() -> Self {
        ApiError { contended: true, ..Self::new(ErrorCode::Conflict, CONTENTION).retry_after(1) }
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }

    /// Log `detail` (on the current request's span, which carries its request id) and return
    /// an error that says only "internal error"; the transport adds the request id to every
    /// error it answers.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// Prefix the message with where the problem is (`values.Author[2]`).
    pub fn at(mut self, location: &str) -> Self {
        self.message = format!("{location}: {}", self.message);
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;
