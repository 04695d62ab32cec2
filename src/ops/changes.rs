//! Reading the change feed in commit order, so that a consumer (subscriptions, the sync
//! worker) never skips a change that commits late.
//!
//! Positions come from a sequence, and on PostgreSQL a sequence value is taken when the row
//! is written, not when its transaction commits: position 10 may become visible after 11. A
//! reader that moved past 11 would never see 10. So [`FeedReader`] delivers positions only
//! without gaps: at a gap it stops, noting the snapshot's `xmax` (every transaction that
//! could own the missing position had an id below it, because it took its position before
//! the later row's transaction committed and every writer writes its object row, which gives
//! it an id, before its change row). Once a later read finds the oldest running transaction
//! at or past that `xmax`, every possible owner has committed or rolled back: a position still
//! missing then was rolled back (or skipped by the sequence) and is passed. A gap is also waited
//! for at least a second and never passed on the read that first sees it: under concurrent
//! writers a statement's snapshot bounds were seen to claim no running transaction while the
//! rows it returned still lacked a position committed just after (`bench/realtime.sh`, four
//! writers on two nodes, caught positions skipped that way; one explanation is a position taken
//! before its transaction had an id). A rolled-back write thus delays the readers behind it by
//! a second. This is a safeguard measured by that benchmark, not a proof: see
//! docs/testing.md. SQLite has one writer, so
//! positions become visible in order and a gap is never filled later.

use crate::error::{ApiError, ApiResult};
use crate::feed::{Change, ChangeOp};
use crate::sql::{changes, Dialect};
use crate::store::Store;
use crate::value::SqlValue;

/// How long a gap is waited for at least, however the snapshots look (see the module
/// documentation).
const GAP_GRACE: std::time::Duration = std::time::Duration::from_millis(1_000);

/// Where a reader is: the last position delivered, and a gap it waits on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedReader {
    /// Every change at or before this position has been delivered.
    pub position: i64,
    /// The snapshot `xmax` under which the gap after `position` was first seen, and when
    /// (PostgreSQL).
    waiting: Option<(i64, std::time::Instant)>,
    /// Rows its reads returned, delivered or not (those past a gap come back on the next read).
    pub fetched: u64,
}

fn change(row: &[SqlValue]) -> ApiResult<Change> {
    let text = |i: usize| row.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let int = |i: usize| row.get(i).and_then(SqlValue::as_i64);
    let bad = || ApiError::internal("malformed change-feed row");
    Ok(Change {
        seq: int(0).ok_or_else(bad)?,
        instance: text(1).ok_or_else(bad)?,
        type_name: text(2).ok_or_else(bad)?,
        id: text(3).ok_or_else(bad)?,
        op: text(4).as_deref().and_then(ChangeOp::parse).ok_or_else(bad)?,
        version: int(5).ok_or_else(bad)?,
        at: text(6).ok_or_else(bad)?,
        owner: text(7),
    })
}

impl FeedReader {
    /// Is it waiting for a gap after its position to be filled (PostgreSQL)?
    pub fn waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// A reader that delivers the changes after `position`.
    pub fn after(position: i64) -> Self {
        FeedReader { position, waiting: None, fetched: 0 }
    }

    /// The next changes (of every instance, at most `limit`) in position order, without a
    /// gap that a late commit could still fill. Empty when there is nothing new yet.
    pub async fn next(&mut self, store: &Store, limit: u64) -> ApiResult<Vec<Change>> {
        let rows = store.fetch_rows(&changes::after(store.dialect(), None, self.position, None, limit)).await?;
        self.fetched += rows.len() as u64;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let c = change(row)?;
            if c.seq != self.position + 1 && store.dialect() == Dialect::Postgres {
                let xmin = row.get(8).and_then(SqlValue::as_i64).unwrap_or(0);
                let xmax = row.get(9).and_then(SqlValue::as_i64).unwrap_or(i64::MAX);
                // Never on the read that first sees the gap: the snapshot bounds a statement
                // reports may be newer than the snapshot its rows come from (seen under
                // concurrent writers), so only a later statement, whose rows are read after
                // those bounds were taken, may judge the gap.
                let Some((since, seen)) = self.waiting else {
                    self.waiting = Some((xmax, std::time::Instant::now()));
                    break;
                };
                if xmin < since || seen.elapsed() < GAP_GRACE {
                    // A transaction that may own the missing position is still running (or
                    // just finished committing).
                    break;
                }
            }
            self.waiting = None;
            self.position = c.seq;
            out.push(c);
        }
        Ok(out)
    }
}

/// The changes of `instance` after `after` up to `upto` (a position a [`FeedReader`] has
/// reached, so nothing before it can still appear), at most `limit`, in position order.
pub async fn history(store: &Store, instance: &str, after: i64, upto: i64, limit: u64) -> ApiResult<Vec<Change>> {
    let rows = store.fetch_rows(&changes::after(store.dialect(), Some(instance), after, Some(upto), limit)).await?;
    rows.iter().map(|r| change(r)).collect()
}

/// The newest visible position of the feed (0 when it is empty): where a reader that wants
/// only changes from now on may start. (On PostgreSQL a transaction that took an earlier
/// position and commits after this call is not delivered to such a reader; a consumer that
/// must see everything continues from a [`FeedReader`]'s position instead.)
pub async fn head(store: &Store) -> ApiResult<i64> {
    let rows = store.fetch_rows(&changes::head(store.dialect())).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(0))
}
