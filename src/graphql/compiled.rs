//! The operation cache: what the text of a request comes to under one release, whatever its
//! variables, computed once per (release, query text, operation name) and shared by every
//! request that sends the same text. Real clients (Apollo, Relay, urql) send a few texts over
//! and over, with only the variables changing.
//!
//! A [`Compiled`] entry holds the guard's verdict on the text, the parsed document, the
//! operation it names and its kind, what authorization asks of it (does it use only the open
//! root fields; how many credential checks it makes), the validation verdict, and the read
//! plans of its root fields once a request has made them, with (`get`) their statements as
//! requests render them, once per kind of request, to be bound to each one's values
//! ([`Plans`], `ops::read::GetStatements`). A request
//! then checks only what depends on it: its variables (size and nesting, then their values
//! against the declared types), the transport's rule (GET: queries only) and the caller
//! (anonymous callers: open fields only; credential checks per request), in the same order as
//! when nothing is cached, so a cached answer is the uncached answer byte for byte
//! (`tests/common` runs every query of the behaviour suites both ways and compares).
//!
//! Refusing verdicts are cached too: a client repeating a broken document gets the same error
//! without the parser and validator running again.
//!
//! Bounded by entries and by (estimated) bytes, least recently used evicted first
//! ([`crate::bounded`]); a text over [`MAX_KEPT_TEXT`] (64 KiB) is compiled per request and
//! never kept, so that no one document can push the others out; entries of
//! releases no instance runs any more are dropped when the registry changes
//! ([`OperationCache::retain_releases`]). A key is [`Bounded::hash`] of the release, name and
//! text; an entry also keeps its text and name and is used only when they match, so a
//! collision is a miss, never a wrong document. Two requests missing on the
//! same new text at once both compile it (no single flight: compiling is bounded by the guard
//! and takes microseconds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};

use super::exec::Refused;
use crate::bounded::Bounded;
use crate::ops::read::GetStatements;
use crate::plan::read::ObjectSelection;

/// Longest text kept: a longer one is compiled per request, so that no one document (a text may
/// be as long as the request body allows) can push the others out.
pub const MAX_KEPT_TEXT: usize = 64 << 10;

/// The bytes an entry is charged: its text and name, plus an estimate of the parsed document
/// (a document's nodes cost about ten times the text they were parsed from) and the entry.
fn cost(text: &str, name: Option<&str>) -> usize {
    cost_of(text.len(), name.map_or(0, str::len))
}

fn cost_of(text_len: usize, name_len: usize) -> usize {
    11 * text_len + name_len + 1024
}

/// What a request's text comes to under one release.
pub(crate) struct Compiled {
    release: u64,
    text: Box<str>,
    operation_name: Option<Box<str>>,
    /// The guard's scan of the text (before anything parses it).
    pub(crate) scan: Result<(), Refused>,
    /// The parse, the guard's checks of the document and the choice of operation.
    pub(crate) parsed: Result<Arc<Parsed>, Refused>,
}

/// A document that parsed, passed the guard and names one operation.
pub(crate) struct Parsed {
    pub doc: ExecutableDocument,
    pub operation_name: Option<Box<str>>,
    pub ty: OperationType,
    /// Only root fields an anonymous caller may always use.
    pub open_only: bool,
    /// Root fields that check credentials (each costs a password hash).
    pub credential_checks: usize,
    /// The validation verdict against the release's schema.
    pub validation: Result<(), Refused>,
    /// The read plans of its root fields, when no variable can change them ([`Plans`]).
    pub plans: Option<Plans>,
}

/// The read plans of an operation's root fields, each made the first time a request runs it
/// and shared by every later one. Kept only for documents where no variable can change a plan:
/// no variable in a directive (`@skip(if: $v)`) or in an argument of a field below the root
/// (`friends(first: $n)`); the root fields' own arguments (the id, the ArcQL, the cursor) are
/// read per request and never reach a plan. A plan is keyed by the root field's response key
/// and the type it reads (the `type` argument may itself be a variable). Bounded by the
/// document: the guard bounds its root fields, the model its types.
#[derive(Default)]
pub(crate) struct Plans(std::sync::Mutex<Vec<Plan>>);

/// One root field's plan: its response key, the type it reads, the plan and (for `get`) its
/// statements as they are rendered.
type Plan = (Box<str>, usize, Kept);

/// A plan and the statements rendered for it.
pub(crate) type Kept = (Arc<ObjectSelection>, Arc<GetStatements>);

impl Plans {
    /// The plan of root field `key` reading `type_idx`, made by `make` when there is none yet;
    /// `true` when it was found.
    pub(crate) fn get_or_make<E>(
        &self,
        key: &str,
        type_idx: usize,
        make: impl FnOnce() -> Result<ObjectSelection, E>,
    ) -> Result<(Kept, bool), E> {
        let found =
            |plans: &[Plan]| plans.iter().find(|(k, t, _)| &**k == key && *t == type_idx).map(|(_, _, p)| p.clone());
        if let Some(p) = found(&self.0.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok((p, true));
        }
        let made = (Arc::new(make()?), Arc::new(GetStatements::default()));
        let mut plans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match found(&plans) {
            Some(p) => Ok((p, true)),
            None => {
                plans.push((key.into(), type_idx, made.clone()));
                Ok((made, false))
            }
        }
    }
}

impl Compiled {
    pub(crate) fn new(
        release: u64,
        text: &str,
        operation_name: Option<&str>,
        scan: Result<(), Refused>,
        parsed: Result<Arc<Parsed>, Refused>,
    ) -> Compiled {
        Compiled { release, text: text.into(), operation_name: operation_name.map(Into::into), scan, parsed }
    }

    fn is(&self, release: u64, text: &str, name: Option<&str>) -> bool {
        self.release == release && &*self.text == text && self.operation_name.as_deref() == name
    }
}

pub use crate::bounded::Figures;

/// Compiled operations of every release this node serves (one cache per node).
pub struct OperationCache {
    entries: Bounded<u64, Arc<Compiled>>,
    /// Root-field read plans made for cached operations, and how often one was used again.
    plans_made: AtomicU64,
    plans_reused: AtomicU64,
}

/// How often root fields found their read plan in the operation cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanFigures {
    pub made: u64,
    pub reused: u64,
}

/// The operation cache in `GET /admin/caches` → `operations`: the map's figures and `plans`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub cache: Figures,
    pub plans: PlanFigures,
}

impl OperationCache {
    /// At most `max_entries` operations and `max_bytes` (estimated); either 0: nothing is kept
    /// (every request compiles its text).
    pub fn new(max_entries: usize, max_bytes: usize) -> OperationCache {
        OperationCache {
            entries: Bounded::with_largest(max_entries, max_bytes, cost_of(MAX_KEPT_TEXT, 0)),
            plans_made: AtomicU64::new(0),
            plans_reused: AtomicU64::new(0),
        }
    }

    /// Count a root field's plan: made now (`false`) or found (`true`).
    pub(crate) fn count_plan(&self, reused: bool) {
        let c = if reused { &self.plans_reused } else { &self.plans_made };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything `GET /admin/caches` shows of this cache.
    pub fn report(&self) -> Report {
        let plans = PlanFigures {
            made: self.plans_made.load(Ordering::Relaxed),
            reused: self.plans_reused.load(Ordering::Relaxed),
        };
        Report { cache: self.figures(), plans }
    }

    pub fn enabled(&self) -> bool {
        self.entries.enabled()
    }

    fn key(&self, release: u64, text: &str, name: Option<&str>) -> u64 {
        self.entries.hash((release, name, text))
    }

    /// The compiled operation of `text` under `release`, if it is kept (a hit moves it to the
    /// most recently used end).
    pub(crate) fn get(&self, release: u64, text: &str, name: Option<&str>) -> Option<Arc<Compiled>> {
        if !self.enabled() {
            return None;
        }
        self.entries.get(&self.key(release, text, name), |c| c.is(release, text, name))
    }

    /// Keep `compiled`, evicting the least recently used entries past the bounds. An entry
    /// larger than the whole byte budget is not kept.
    pub(crate) fn put(&self, compiled: Arc<Compiled>) {
        let key = self.key(compiled.release, &compiled.text, compiled.operation_name.as_deref());
        let size = cost(&compiled.text, compiled.operation_name.as_deref());
        self.entries.put(key, compiled, size);
    }

    /// Drop the entries of every release not in `live` (releases no instance runs any more).
    pub fn retain_releases(&self, live: &std::collections::HashSet<u64>) {
        self.entries.retain(|c| live.contains(&c.release));
    }

    pub fn figures(&self) -> Figures {
        self.entries.figures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(release: u64, text: &str) -> Arc<Compiled> {
        Arc::new(Compiled::new(release, text, None, Ok(()), Err(Refused::test("x"))))
    }

    #[test]
    fn keeps_by_release_text_and_name_and_counts() {
        let c = OperationCache::new(10, 1 << 20);
        assert!(c.get(1, "{ a }", None).is_none());
        c.put(entry(1, "{ a }"));
        assert!(c.get(1, "{ a }", None).is_some());
        assert!(c.get(2, "{ a }", None).is_none(), "another release");
        assert!(c.get(1, "{ a }", Some("A")).is_none(), "another operation name");
        assert!(c.get(1, "{ b }", None).is_none(), "another text");
        let f = c.figures();
        assert_eq!((f.entries, f.hits, f.misses), (1, 1, 4));
        assert_eq!(f.bytes, cost("{ a }", None));
    }

    #[test]
    fn evicts_the_least_recently_used_within_entries_and_bytes() {
        let c = OperationCache::new(2, 1 << 20);
        c.put(entry(1, "{ a }"));
        c.put(entry(1, "{ b }"));
        assert!(c.get(1, "{ a }", None).is_some());
        c.put(entry(1, "{ c }"));
        assert!(c.get(1, "{ b }", None).is_none(), "b was the least recently used");
        assert!(c.get(1, "{ a }", None).is_some() && c.get(1, "{ c }", None).is_some());
        assert_eq!(c.figures().evictions, 1);

        let one = cost("{ a }", None);
        let c = OperationCache::new(100, 2 * one + one / 2);
        for t in ["{ a }", "{ b }", "{ c }"] {
            c.put(entry(1, t));
        }
        let f = c.figures();
        assert_eq!((f.entries, f.bytes), (2, 2 * one));
        assert!(c.get(1, "{ a }", None).is_none());

        let c = OperationCache::new(100, 100);
        c.put(entry(1, "{ a }"));
        assert_eq!(c.figures().entries, 0, "an entry over the whole budget is not kept");
    }

    #[test]
    fn disabled_keeps_nothing_and_releases_are_dropped() {
        let c = OperationCache::new(0, 1 << 20);
        c.put(entry(1, "{ a }"));
        assert!(c.get(1, "{ a }", None).is_none());
        assert_eq!(c.figures().hits + c.figures().misses, 0);

        let c = OperationCache::new(10, 1 << 20);
        c.put(entry(1, "{ a }"));
        c.put(entry(2, "{ a }"));
        c.retain_releases(&[2].into_iter().collect());
        assert!(c.get(1, "{ a }", None).is_none());
        assert!(c.get(2, "{ a }", None).is_some());
        assert_eq!(c.figures().bytes, cost("{ a }", None));
    }

    #[test]
    fn a_text_past_the_longest_kept_is_compiled_per_request() {
        let c = OperationCache::new(10, 32 << 20);
        let at = format!("{{ a }}{}", " ".repeat(MAX_KEPT_TEXT - 5));
        let past = format!("{at} ");
        c.put(entry(1, "{ b }"));
        c.put(entry(1, &at));
        c.put(entry(1, &past));
        assert!(c.get(1, &at, None).is_some(), "a text of MAX_KEPT_TEXT bytes is kept");
        assert!(c.get(1, &past, None).is_none(), "a longer one is not");
        assert!(c.get(1, "{ b }", None).is_some(), "and pushed nothing out");
        assert_eq!(c.figures().entries, 2);
    }
}
