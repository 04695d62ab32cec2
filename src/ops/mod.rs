//! The operations: one module per root operation, the same for every front door.
//!
//! A front door (GraphQL over HTTP or WebSocket, REST, HARP, the hyper API) decodes its input
//! into an operation's argument struct, calls the operation with the [`Caller`], and encodes
//! the typed result. Every rule of an operation lives here once: paging and its checks, value
//! validation, limits, required fields, who may create or register; the access rules of
//! existing objects are part of the SQL that `sql` renders for the caller's viewer.
//!
//! | module | operations |
//! |---|---|
//! | [`read`] | `get`, `find` (keyset paging and exact page info) |
//! | [`read_cache`] | `get` of `@hyper(cache: true)` types from memory, dropped by every write |
//! | [`aggregate`] | `aggregate` over all matching objects, or grouped and paged |
//! | [`upsert`] | `upsert` (nested objects included) |
//! | [`link`] | `link`, `unlink` |
//! | [`bulk`] | `trash`, `untrash`, `delete`, `deleteScalars` |
//! | [`account`] | `login`, `loginByEmail`, `createAccount` |
//! | [`changes`] | the change feed, read in commit order |
//!
//! Invariants: no transport types (no async-graphql, no axum) appear here; statements come
//! from `sql` and run through `store`; one read operation is one statement (plus the bounded
//! extras `find` documents).

pub mod account;
pub mod aggregate;
pub mod attachments;
pub mod bulk;
pub mod changes;
pub mod commit;
pub mod link;
pub mod read;
pub mod read_cache;
pub mod search;
pub mod stream;
pub mod throttle;
pub mod upsert;

use std::sync::Arc;

use crate::access::Viewer;
use crate::config::Limits;
use crate::error::{ApiError, ApiResult};
use crate::model::Model;
use crate::store::Store;

/// Everything an operation needs that lives as long as a release: built once per release and
/// shared by every request of every instance that runs it.
pub struct Engine {
    pub model: Arc<Model>,
    pub store: Store,
    /// The app whose tables this release reads and writes.
    pub app: String,
    pub limits: Limits,
    /// The object cache of the database (shared by every release served from it).
    pub read_cache: Arc<read_cache::ReadCache>,
    /// This release's mark in [`read_cache`](Self::read_cache): documents read under another
    /// release's plans are not this one's.
    pub release_tag: u64,
    /// The node's planned ArcQL filters (shared by every release, keyed by
    /// [`release_tag`](Self::release_tag)).
    pub filters: Arc<crate::plan::filter_cache::FilterCache>,
}

/// Who calls an operation, on which instance: decided by the front door's authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The instance (tenant) the request is for; every statement is bound to it.
    pub instance: String,
    /// Who is asking: decides what the generated SQL lets them see and change.
    pub viewer: Viewer,
    /// The instance lets callers without an account register (`createAccount`).
    pub anonymous_registrations: bool,
    /// The key that signs session tokens (`login`).
    pub jwt_secret: Arc<[u8]>,
    /// The client's network address, when the transport knows it (failed-login throttling).
    pub client: Option<std::net::IpAddr>,
    /// The server's hashing slots and failed-login records.
    pub guards: Arc<throttle::Guards>,
    /// Where the `@hyper` types' services are (the `search` field reads it; ATOMIC writes
    /// write it), if anywhere.
    pub hyper: Option<Arc<crate::hyper::bridge::Target>>,
    /// What the writes of this request left for the bridge: per `@hyper` type, its NON_ATOMIC
    /// services (a GraphQL response reports them as `extensions.hyper.pending`).
    pub pending: Arc<Pending>,
    /// Compile and plan afresh: read neither the operation cache nor the filter cache, fill
    /// only the filter cache (the shadow path of the differential test, which runs first so
    /// that the request compared with it finds its filters planned; every front door leaves
    /// it `false`).
    pub fresh: bool,
}

/// See [`Caller::pending`].
#[derive(Debug, Default)]
pub struct Pending(std::sync::Mutex<std::collections::BTreeMap<String, Vec<&'static str>>>);

impl Pending {
    /// Note the services of `type_name` the bridge will catch up.
    pub fn add(&self, type_name: &str, services: Vec<&'static str>) {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = m.entry(type_name.to_string()).or_default();
        for s in services {
            if !entry.contains(&s) {
                entry.push(s);
            }
        }
    }

    /// What was noted since the last take.
    pub fn take(&self) -> std::collections::BTreeMap<String, Vec<&'static str>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Engine {
    /// The index of the object type `name` (front doors name types; operations take indexes).
    pub fn type_index(&self, name: &str) -> ApiResult<usize> {
        self.model
            .type_by_name(name)
            .map(|(i, _)| i)
            .ok_or_else(|| ApiError::validation(format!("unknown type '{name}'")))
    }
}

/// The paging arguments of a connection (`find`, grouped aggregates), as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
    /// The n-th page of size `first` (1-based), counted from `after` or the start.
    pub page: Option<i64>,
}

/// A checked [`Paging`]: the page size used and the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Page size: `first` or `last`, the default when neither is given, clamped to the cap.
    pub size: u64,
    /// `last` pages backward from the end (or from `before`).
    pub backward: bool,
    /// The 1-based page number.
    pub page: u64,
}

impl Paging {
    /// The rules of contract §3: `first` with `last` is an error, so is `page` with `last`;
    /// sizes are not negative, pages count from 1; sizes above the cap are clamped.
    pub fn window(&self, limits: &Limits) -> ApiResult<Window> {
        if self.first.is_some() && self.last.is_some() {
            return Err(ApiError::validation("'first' and 'last' cannot be used together"));
        }
        if self.page.is_some() && self.last.is_some() {
            return Err(ApiError::validation("'page' cannot be used with 'last'"));
        }
        for (name, v) in [("first", self.first), ("last", self.last)] {
            if v.is_some_and(|v| v < 0) {
                return Err(ApiError::validation(format!("'{name}' cannot be negative")));
            }
        }
        let page = self.page.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::validation("'page' counts from 1"));
        }
        let size =
            self.first.or(self.last).unwrap_or(i64::from(limits.page_default)).clamp(0, i64::from(limits.page_max))
                as u64;
        Ok(Window { size, backward: self.last.is_some(), page: page as u64 })
    }
}

/// How many times in all a write runs when PostgreSQL keeps rolling it back to end deadlocks.
const CONTENDED_ATTEMPTS: u32 = 3;

/// Run the write `attempt` again when the database rolled it back to end a deadlock with
/// another write (nothing of it was written: `StoreError::Contention`), at most
/// [`CONTENDED_ATTEMPTS`] times in all, after a short random pause so the two do not meet
/// again. Writes lock the objects they change in one order (`sql::write`'s `exists_many`), so
/// this is the exception: a write that locks rows in a statement's own order (by filter).
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_contention() && tries < CONTENDED_ATTEMPTS => {
                tries += 1;
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let pause = std::time::Duration::from_millis(2 + u64::from(nanos.subsec_nanos() % 20));
                tracing::debug!("a write was rolled back to end a deadlock; running it again ({tries})");
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Now, in the stored form (one timestamp per call).
pub(crate) fn now() -> String {
    crate::plan::write::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// A write rolled back to end a deadlock runs again, at most three times in all; any other
    /// error (a conflict of another kind too) is answered at once.
    #[tokio::test]
    async fn a_contended_write_runs_again_and_no_other() {
        let contended = || ApiError::from(crate::store::StoreError::Contention);
        for (fails, want_runs, want_ok) in [(0, 1, true), (1, 2, true), (2, 3, true), (5, 3, false)] {
            let runs = std::cell::Cell::new(0);
            let r = retrying(|| {
                runs.set(runs.get() + 1);
                let n = runs.get();
                async move {
                    if n <= fails {
                        Err(contended())
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
            assert_eq!((runs.get(), r.is_ok()), (want_runs, want_ok), "{fails} failures");
            if let Err(e) = r {
                assert!(e.is_contention() && e.retry_after == Some(1), "{e:?}");
            }
        }
        let runs = std::cell::Cell::new(0);
        let other = retrying(|| {
            runs.set(runs.get() + 1);
            async { Err::<(), _>(ApiError::new(ErrorCode::Conflict, "a different conflict")) }
        })
        .await;
        assert_eq!(runs.get(), 1);
        assert!(!other.unwrap_err().is_contention());
        // The mark, not the words: the same message from elsewhere is not contention, and a
        // location prefix keeps it.
        assert!(!ApiError::new(ErrorCode::Conflict, crate::error::CONTENTION).is_contention());
        assert!(contended().at("values.Author[2]").is_contention());
        // Through the built-in hyper services of an ATOMIC write too (which then answer it as
        // contention, not as the services being unavailable).
        use crate::hyper::HyperError;
        assert!(HyperError::from(crate::store::StoreError::Contention).is_contention());
        assert!(!HyperError::from(crate::store::StoreError::Overloaded).is_contention());
    }

    #[test]
    fn paging_rules() {
        let limits = Limits::default();
        let w = |p: Paging| p.window(&limits);
        assert_eq!(w(Paging::default()).unwrap(), Window { size: 25, backward: false, page: 1 });
        assert_eq!(w(Paging { first: Some(1000), ..Default::default() }).unwrap().size, 100);
        assert_eq!(
            w(Paging { last: Some(3), ..Default::default() }).unwrap(),
            Window { size: 3, backward: true, page: 1 }
        );
        assert_eq!(
            w(Paging { first: Some(0), page: Some(i64::MAX), ..Default::default() }).unwrap().page,
            i64::MAX as u64
        );
        for bad in [
            Paging { first: Some(1), last: Some(1), ..Default::default() },
            Paging { last: Some(1), page: Some(2), ..Default::default() },
            Paging { first: Some(-1), ..Default::default() },
            Paging { last: Some(-1), ..Default::default() },
            Paging { page: Some(0), ..Default::default() },
        ] {
            let e = w(bad.clone()).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::Validation, "{bad:?}");
        }
    }
}
