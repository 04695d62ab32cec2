//! hyper's five services (data, cache, search, storage, queue), as ports and adapters: one
//! trait per service ([`data::DataService`], [`cache::CacheService`],
//! [`search::SearchService`], [`storage::StorageService`], [`queue::QueueService`]), the
//! built-in implementation of each over arcbase's own database ([`builtin`]), and the rules
//! every implementation shares (names, keys, TTLs, selectors, signatures) in the service
//! modules themselves. The HTTP routes (`server::hyper`) decode a request into these types,
//! call the port and encode its answer; nothing about HTTP is known here.
//!
//! Every call is made in a [`Scope`]: the arcbase instance whose services they are. One
//! instance never sees another's stores: each store row carries its instance, and every
//! statement reaches documents, keys, objects and jobs only through the store row of the
//! caller's instance.
//!
//! Stores (data stores, caches, search indexes, buckets, queues) come into being on first
//! write, as the hyper clients' examples assume; the explicit create calls work too.

pub mod atomic;
pub mod bridge;
pub mod builtin;
pub mod cache;
pub mod data;
pub mod keys;
pub mod queue;
pub mod remote;
pub mod search;
pub mod storage;

use std::sync::Arc;

use serde_json::Value;

/// An error as hyper answers it: `{"ok": false, "status": N, "msg": "..."}` with that HTTP
/// status. Client mistakes are 4xx; 5xx only for the server's own trouble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperError {
    pub status: u16,
    pub msg: String,
    /// Seconds after which the request may be tried again (503).
    pub retry_after: Option<u64>,
    /// Set only from `StoreError::Contention` (see `ApiError`'s field of the same name).
    pub(crate) contended: bool,
}

impl HyperError {
    pub fn new(status: u16, msg: impl Into<String>) -> Self {
        HyperError { status, msg: msg.into(), retry_after: None, contended: false }
    }
    /// 400: a request that has nothing to work on (an empty document, no body).
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, msg)
    }
    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(404, msg)
    }
    /// 409: the store, document, key or index exists.
    /// Every 409's message starts `conflict: ` (hyper's clients and their users look for the
    /// word, as hyper's own `document conflict` has it).
    pub fn conflict(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        if msg.starts_with("conflict") || msg.starts_with("document conflict") {
            return Self::new(409, msg);
        }
        Self::new(409, format!("conflict: {msg}"))
    }
    /// 413: a body or object over its size limit.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(413, msg)
    }
    /// 422: a value that is not valid (a name, a key, a TTL, a selector, an option).
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(422, msg)
    }
    /// 500: the server's own failure (logged; the client learns nothing more).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("hyper service: {e}");
        Self::new(500, "internal error")
    }
}

/// The message of a write the database rolled back to end a deadlock (503, `Retry-After`).
const CONTENDED: &str =
    "the write ran into another one at the same time and was rolled back; nothing was written: try again";

impl HyperError {
    /// The database rolled the write back to end a deadlock: nothing was written.
    pub(crate) fn is_contention(&self) -> bool {
        self.contended
    }
}

impl From<crate::store::StoreError> for HyperError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Timeout(ms) => {
                HyperError::new(503, format!("the request ran longer than {ms} ms and was stopped"))
            }
            StoreError::Overloaded => {
                HyperError { retry_after: Some(1), ..HyperError::new(503, "the server is busy: try again shortly") }
            }
            StoreError::Contention => {
                HyperError { retry_after: Some(1), contended: true, ..HyperError::new(503, CONTENDED) }
            }
            StoreError::TooLarge(n) => HyperError::too_large(format!("the answer is larger than {n} bytes")),
            StoreError::CommitUnknown => HyperError::new(
                503,
                "the database did not answer the commit in time: the write may or may not have been saved",
            ),
            other => HyperError::internal(other),
        }
    }
}

pub type HyperResult<T> = Result<T, HyperError>;

/// The five services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Data,
    Cache,
    Search,
    Storage,
    Queue,
}

impl Service {
    pub const ALL: [Service; 5] = [Service::Data, Service::Cache, Service::Search, Service::Storage, Service::Queue];

    /// The name in routes and in the `hyper_stores.service` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Data => "data",
            Service::Cache => "cache",
            Service::Search => "search",
            Service::Storage => "storage",
            Service::Queue => "queue",
        }
    }

    /// What a store of this service is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Service::Data => "data store",
            Service::Cache => "cache",
            Service::Search => "search index",
            Service::Storage => "bucket",
            Service::Queue => "queue",
        }
    }
}

/// Whose services a call uses: an arcbase instance (by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub instance: String,
}

/// A store's name as the clients send it (the path of the connection string): 1 to 64
/// ASCII letters, digits, `-`, `_`, `.` or `~`, not starting with `_` or `.` (names starting
/// with `_` are the actions: `_query`, `_bulk`, `_index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName(String);

impl StoreName {
    pub fn parse(name: &str) -> HyperResult<StoreName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(['_', '.'])
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
        if ok {
            Ok(StoreName(name.to_string()))
        } else {
            Err(HyperError::invalid(format!(
                "invalid name '{}': use 1 to 64 letters, digits, '-', '_', '.' or '~', not starting with '_' or '.'",
                name.chars().take(80).collect::<String>()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far a JSON value nests (a scalar is 1), counted without recursion.
pub fn json_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(xs) => stack.extend(xs.iter().map(|x| (x, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// The limits the services enforce (from [`crate::config::Limits`]).
#[derive(Debug, Clone, Copy)]
pub struct HyperLimits {
    /// Documents, keys, matches or jobs in one answer (and the default page).
    pub page: u32,
    /// Nesting of a JSON body.
    pub json_depth: usize,
    /// Documents in one bulk call.
    pub bulk: usize,
    /// Conditions in one selector.
    pub conditions: usize,
    /// Bytes of one stored object.
    pub object_bytes: u64,
    /// Delivery attempts of a queue job before it is ERROR.
    pub queue_attempts: u32,
    /// How long a node holds a job it is delivering before another may take it, ms.
    pub queue_lease_ms: u64,
    /// Time one delivery may take, ms.
    pub queue_timeout_ms: u64,
    /// Bytes of the documents one answer reads.
    pub response_bytes: usize,
}

impl HyperLimits {
    pub fn from_limits(l: &crate::config::Limits) -> Self {
        HyperLimits {
            page: l.hyper_page,
            json_depth: l.json_depth,
            bulk: l.hyper_bulk,
            conditions: l.conditions,
            object_bytes: l.object_bytes,
            queue_attempts: l.queue_attempts,
            queue_lease_ms: l.queue_lease_ms,
            queue_timeout_ms: l.queue_timeout_ms,
            response_bytes: l.response_bytes,
        }
    }
}

/// The five services of a server, each behind its port.
#[derive(Clone)]
pub struct Services {
    pub data: Arc<dyn data::DataService>,
    pub cache: Arc<dyn cache::CacheService>,
    pub search: Arc<dyn search::SearchService>,
    pub storage: Arc<dyn storage::StorageService>,
    pub queue: Arc<dyn queue::QueueService>,
    pub limits: HyperLimits,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        for ok in ["app", "express-quickstart", "a.b~c_d", "A1", &"x".repeat(64)] {
            assert!(StoreName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "_query", ".x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert_eq!(StoreName::parse(bad).unwrap_err().status, 422, "{bad}");
        }
    }

    #[test]
    fn depth_is_counted_without_recursion() {
        let mut v = Value::Null;
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(json_depth(&v), 100_001);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": 2}]})), 4);
        // Dropping such a value recurses in serde_json; take it apart by hand.
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            if let Value::Array(xs) = v {
                stack.extend(xs);
            }
        }
    }
}
