//! The filter cache: what an ArcQL text comes to for one type under one release, parsed and
//! planned once ([`plan_query_within`](super::filter::plan_query_within)) and shared by every
//! request that sends the same text. The ArcQL of `find`, `aggregate`, `trash` and the other
//! root fields is an argument, usually a variable, so the operation cache
//! ([`crate::graphql::compiled`]) cannot hold its plan; clients still send the same few filters
//! over and over (a UI's list view, a member's page), and parsing and type-checking them was
//! about a twentieth of the server's side of a PostgreSQL `count + sum`.
//!
//! A plan is a pure function of the release's model, the type, the text and the release's
//! limits, so an entry holds whether it planned: a refused text answers the same error again
//! without the parser running. What depends on the caller (the viewer, read or write access)
//! is set on a copy per request ([`crate::ops::read::filter_for`]) and reaches the SQL there.
//!
//! Keyed by [`Bounded::hash`] of the release, the type and the text; an entry also keeps all
//! three and is used only when they match, so a collision is a miss.
//! Bounded by entries and by estimated bytes (`ARCBASE_LIMIT_FILTER_CACHE_ENTRIES` /
//! `_BYTES`), least recently used evicted first ([`crate::bounded`]); a text over
//! [`MAX_KEPT_TEXT`] bytes is planned per request and never kept; entries of releases no
//! instance runs any more are dropped when the registry changes
//! ([`FilterCache::retain_releases`]). `GET /admin/caches` shows its figures as `filters`.

use std::sync::Arc;

use super::filter::FilterPlan;
use crate::bounded::{Bounded, Figures};
use crate::error::ApiResult;

/// Longest text kept (through [`Bounded::with_largest`]): a longer one is planned per request,
/// so that no one text (a filter may be as long as the request body allows) can push the
/// others out. Real filters are a few dozen bytes.
pub const MAX_KEPT_TEXT: usize = 4096;

/// The bytes an entry is charged: the text twice (kept, and the literals the plan holds), an
/// allowance per byte of text for the plan's nodes, and the entry itself.
fn cost(text_len: usize) -> usize {
    16 * text_len + 512
}

struct Entry {
    release: u64,
    type_idx: usize,
    text: Box<str>,
    plan: ApiResult<FilterPlan>,
}

/// Planned filters of every release this node serves (one cache per node).
pub struct FilterCache {
    entries: Bounded<u64, Arc<Entry>>,
}

impl FilterCache {
    /// At most `max_entries` plans and `max_bytes` (estimated); either 0: nothing is kept
    /// (every request plans its filter).
    pub fn new(max_entries: usize, max_bytes: usize) -> FilterCache {
        FilterCache { entries: Bounded::with_largest(max_entries, max_bytes, cost(MAX_KEPT_TEXT)) }
    }

    /// The plan of `text` for `type_idx` under `release`: the kept one, or `plan`'s, which is
    /// then kept (refusals too). `fresh`: `plan`'s whatever is kept (and kept in its place).
    /// Two requests missing on one new text at once both plan it.
    pub fn plan(
        &self,
        release: u64,
        type_idx: usize,
        text: &str,
        fresh: bool,
        plan: impl FnOnce() -> ApiResult<FilterPlan>,
    ) -> ApiResult<FilterPlan> {
        if !self.entries.enabled() {
            return plan();
        }
        let key = self.entries.hash((release, type_idx, text));
        let is = |e: &Arc<Entry>| e.release == release && e.type_idx == type_idx && &*e.text == text;
        if !fresh {
            if let Some(e) = self.entries.get(&key, is) {
                return e.plan.clone();
            }
        }
        let planned = plan();
        let entry = Entry { release, type_idx, text: text.into(), plan: planned.clone() };
        self.entries.put(key, Arc::new(entry), cost(text.len()));
        planned
    }

    /// Drop the entries of every release not in `live` (releases no instance runs any more).
    pub fn retain_releases(&self, live: &std::collections::HashSet<u64>) {
        self.entries.retain(|e| live.contains(&e.release));
    }

    pub fn figures(&self) -> Figures {
        self.entries.figures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use std::cell::Cell;

    fn planner(calls: &Cell<usize>, ok: bool) -> impl FnOnce() -> ApiResult<FilterPlan> + '_ {
        move || {
            calls.set(calls.get() + 1);
            if ok {
                Ok(FilterPlan::default())
            } else {
                Err(ApiError::validation("no such field"))
            }
        }
    }

    #[test]
    fn plans_once_per_release_type_and_text_refusals_included() {
        let c = FilterCache::new(10, 1 << 20);
        let calls = Cell::new(0);
        for _ in 0..3 {
            assert!(c.plan(1, 0, "a = 1", false, planner(&calls, true)).is_ok());
        }
        assert_eq!(calls.get(), 1, "planned once");
        assert!(c.plan(2, 0, "a = 1", false, planner(&calls, true)).is_ok());
        assert!(c.plan(1, 1, "a = 1", false, planner(&calls, true)).is_ok());
        assert!(c.plan(1, 0, "a = 2", false, planner(&calls, true)).is_ok());
        assert_eq!(calls.get(), 4, "another release, type or text plans again");
        for _ in 0..2 {
            let e = c.plan(1, 0, "b = 1", false, planner(&calls, false)).unwrap_err();
            assert_eq!(e.message, "no such field");
        }
        assert_eq!(calls.get(), 5, "a refusal is kept too");
        let f = c.figures();
        assert_eq!((f.entries, f.hits, f.misses, f.bytes), (5, 3, 5, 5 * cost("a = 1".len())));
        // Fresh: planned whatever is kept, and kept in its place (one entry still).
        assert!(c.plan(1, 0, "b = 1", true, planner(&calls, true)).is_ok());
        assert!(c.plan(1, 0, "b = 1", false, planner(&calls, false)).is_ok(), "the fresh plan replaced the refusal");
        assert_eq!((calls.get(), c.figures().entries), (6, 5));
    }

    #[test]
    fn bounded_and_dropped_with_their_release() {
        let c = FilterCache::new(2, 1 << 20);
        let calls = Cell::new(0);
        for t in ["a = 1", "a = 2", "a = 1", "a = 3", "a = 2"] {
            c.plan(1, 0, t, false, planner(&calls, true)).unwrap();
        }
        // a = 2 was the least recently used when a = 3 came, so it was planned again.
        assert_eq!(calls.get(), 4);
        assert_eq!((c.figures().entries, c.figures().evictions), (2, 2));
        let c = FilterCache::new(100, cost("a = 1".len()) + 1);
        c.plan(1, 0, "a = 1", false, planner(&calls, true)).unwrap();
        c.plan(1, 0, "a = 2", false, planner(&calls, true)).unwrap();
        assert_eq!(c.figures().entries, 1, "the byte bound");
        c.plan(7, 0, "a = 7", false, planner(&calls, true)).unwrap();
        c.retain_releases(&[1].into_iter().collect());
        assert_eq!(c.figures().entries, 0, "release 7 is gone, and a = 7 had evicted a = 2");
        let off = FilterCache::new(0, 1 << 20);
        let before = calls.get();
        off.plan(1, 0, "a = 1", false, planner(&calls, true)).unwrap();
        off.plan(1, 0, "a = 1", false, planner(&calls, true)).unwrap();
        assert_eq!(calls.get(), before + 2, "0 entries: nothing is kept");
        let c = FilterCache::new(100, 1 << 30);
        let long = format!("a = '{}'", "x".repeat(MAX_KEPT_TEXT));
        c.plan(1, 0, &long, false, planner(&calls, true)).unwrap();
        c.plan(1, 0, &long, false, planner(&calls, true)).unwrap();
        assert_eq!((calls.get(), c.figures().entries), (before + 4, 0), "a text over MAX_KEPT_TEXT is not kept");
    }
}
