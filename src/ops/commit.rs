//! How a write ends. Every write operation records its changes through
//! [`WriteCtx::record`] (the change-feed rows, one per object) and ends with [`commit`],
//! which writes those rows (all of them in one statement, up to [`FEED_ROWS`] a statement,
//! rather than one per object as it goes: an `upsert` of 25 objects was 77 statements, 25 of
//! them these inserts) and adds what the `@hyper` types of the changed objects ask for
//! inside the same transaction before committing it:
//!
//! - `count: true`: the per-type counters move by the objects inserted, trashed, untrashed
//!   and deleted (one statement per counted type per call);
//! - services in ATOMIC mode: see [`crate::hyper::atomic`];
//! - `cache: true`: once committed, the changed objects' documents leave
//!   [`super::read_cache`] before the write answers.
//!
//! An operation that returns early (nothing matched, an error) drops its transaction, which
//! rolls everything back, counters included.

use std::collections::BTreeMap;

use super::upsert::WriteCtx;
use super::{Caller, Engine};
use crate::error::ApiResult;
use crate::feed::NewChange;
use crate::model::{HyperMode, HyperService, Model};
use crate::store::{tx_execute, Store, StoreError, Tx};

/// Change-feed rows written by one statement at most (7 bound values each: far below both
/// databases' limits on bound values).
pub(crate) const FEED_ROWS: usize = 1_000;

/// What a write did, gathered for [`commit`]: its change-feed rows, and what it did to
/// objects of `@hyper` types.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    /// The change-feed rows, in the order the changes were made.
    pub changes: Vec<NewChange>,
    /// Count deltas per counted type.
    pub counts: BTreeMap<usize, i64>,
    /// The changes to objects of types with a service in ATOMIC mode, in order.
    pub atomic: Vec<AtomicChange>,
    /// The `@hyper` types whose objects changed.
    pub types: std::collections::BTreeSet<usize>,
    /// The changed objects of `@hyper(cache: true)` types, whose cached documents the commit
    /// drops.
    pub cached: Vec<(usize, String)>,
}

/// A change [`crate::hyper::atomic::commit`] sends before the commit.
#[derive(Debug, Clone)]
pub(crate) struct AtomicChange {
    pub type_idx: usize,
    pub id: String,
    pub op: crate::feed::ChangeOp,
    pub version: i64,
}

impl WriteCtx<'_> {
    /// Add the change-feed rows of `changes` to the write's transaction (written, in this
    /// order, by [`commit`]).
    pub(crate) fn record(&self, tx: &mut Tx, changes: impl IntoIterator<Item = NewChange>) {
        let mut touched = self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = touched.changes.len();
        for c in changes {
            if let Some(h) = &self.model.types[c.type_idx].hyper {
                touched.types.insert(c.type_idx);
                if h.cache {
                    touched.cached.push((c.type_idx, c.id.to_string()));
                }
            }
            if self.model.types[c.type_idx].hyper.as_ref().is_some_and(|h| h.any_atomic()) {
                touched.atomic.push(AtomicChange {
                    type_idx: c.type_idx,
                    id: c.id.to_string(),
                    op: c.op,
                    version: c.version,
                });
            }
            touched.changes.push(c);
        }
        tx.note_changes(touched.changes.len() - before);
    }

    /// `delta` more (or fewer) live objects of `type_idx`, if that type counts them.
    pub(crate) fn count(&self, type_idx: usize, delta: i64) {
        if delta != 0 && self.model.types[type_idx].hyper.as_ref().is_some_and(|h| h.count) {
            let mut touched = self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *touched.counts.entry(type_idx).or_default() += delta;
        }
    }
}

/// Finish a write: the change-feed rows, the counters, the ATOMIC services, then the commit.
pub(crate) async fn commit(engine: &Engine, caller: &Caller, ctx: &WriteCtx<'_>, mut tx: Tx) -> ApiResult<()> {
    let touched = std::mem::take(&mut *ctx.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    for rows in touched.changes.chunks(FEED_ROWS) {
        tx_execute(&mut tx, &crate::sql::changes::insert(ctx.dialect, ctx.model, ctx.instance, rows, &ctx.now)).await?;
    }
    for (&type_idx, &delta) in &touched.counts {
        if delta != 0 {
            let name = &ctx.model.types[type_idx].name;
            tx_execute(&mut tx, &crate::sql::hyper::counts::add(ctx.dialect, ctx.instance, name, delta)).await?;
        }
    }
    // The cached documents of the changed objects go before the commit, none is kept while it
    // runs, and they go again once it is done, before the write answers (`read_cache`).
    let model = ctx.model;
    let writing = (!touched.cached.is_empty()).then(|| {
        engine.read_cache.writing(
            &engine.app,
            ctx.instance,
            touched.cached.iter().map(|(t, id)| (model.types[*t].name.as_str(), id.as_str())),
        )
    });
    if touched.atomic.is_empty() {
        tx.commit().await?;
    } else {
        crate::hyper::atomic::commit(engine, caller, tx, &touched.atomic, &ctx.now).await?;
    }
    drop(writing);
    for &t in &touched.types {
        let ty = &ctx.model.types[t];
        let Some(spec) = &ty.hyper else { continue };
        let later: Vec<&'static str> = spec
            .services()
            .into_iter()
            .filter(|s| !matches!(s, HyperService::Count | HyperService::Attachments))
            .filter(|s| spec.mode_of(*s) == HyperMode::NonAtomic)
            .map(HyperService::as_str)
            .collect();
        if !later.is_empty() {
            caller.pending.add(&ty.name, later);
        }
    }
    Ok(())
}

/// Count the objects of every `@hyper(count: true)` type of `model` in `instance`, unless they
/// were counted under `release` already, and forget the counts of types that no longer count.
/// The registry calls this before it serves a release to an instance, so the writes under that
/// release start from an exact number.
pub async fn recount(store: &Store, app: &str, instance: &str, release: &str, model: &Model) -> Result<(), StoreError> {
    let d = store.dialect();
    let counted: Vec<_> = model.types.iter().filter(|t| t.hyper.as_ref().is_some_and(|h| h.count)).collect();
    let keep: Vec<String> = counted.iter().map(|t| t.name.clone()).collect();
    let mut tx = store.begin_write().await?;
    tx_execute(&mut tx, &crate::sql::hyper::counts::forget_others(d, instance, &keep)).await?;
    for ty in counted {
        let table = crate::sql::names::object_table(app, ty);
        tx_execute(&mut tx, &crate::sql::hyper::counts::recount(d, instance, &ty.name, &table, release)).await?;
    }
    tx.commit().await
}
