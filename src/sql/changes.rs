//! Statements of the change feed: the rows a write appends, and reading them back.

use super::{Dialect, Sql};
use crate::feed::NewChange;
use crate::model::Model;

/// One statement appending a change row per object, in the writer's transaction.
pub fn insert(dialect: Dialect, model: &Model, instance: &str, changes: &[NewChange], now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_changes (instance_id, type_name, object_id, operation, version, changed_at, owner) VALUES ");
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").bind(instance).push(", ").bind(model.types[c.type_idx].name.as_str()).push(", ");
        sql.bind(c.id.as_str()).push(", ").bind(c.op.as_str()).push(", ");
        sql.bind(c.version).push(", ").bind(now).push(", ");
        sql.value(c.owner.clone().map_or(crate::value::SqlValue::Null, crate::value::SqlValue::Text)).push(")");
    }
    sql
}

/// The columns [`after`] selects, in order.
pub const COLUMNS: &str = "seq, instance_id, type_name, object_id, operation, version, changed_at, owner";

/// Up to `limit` rows after position `after` (and up to `upto`, when given), of one instance
/// or of all, in position order. On PostgreSQL each row also carries the statement's snapshot
/// bounds (`xmin`, `xmax`: the oldest transaction still running and the next to start), which
/// tell a reader when a gap in the positions can no longer be filled by a late commit.
pub fn after(dialect: Dialect, instance: Option<&str>, after: i64, upto: Option<i64>, limit: u64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ").push(COLUMNS);
    if dialect == Dialect::Postgres {
        sql.push(
            ", pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
        );
    }
    sql.push(" FROM arcbase_changes WHERE seq > ").bind(after);
    if let Some(upto) = upto {
        sql.push(" AND seq <= ").bind(upto);
    }
    if let Some(instance) = instance {
        sql.push(" AND instance_id = ").bind(instance);
    }
    sql.push(" ORDER BY seq LIMIT ").bind(i64::try_from(limit).unwrap_or(i64::MAX));
    sql
}

/// The largest position in the feed (0 when it is empty).
pub fn head(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM arcbase_changes")
}

/// How far the feed has been pruned: a position at or before it is gone.
pub fn pruned(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "SELECT upto FROM arcbase_feed_pruned WHERE id = 1")
}

/// The oldest position and its time, if the feed holds any.
pub fn oldest(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "SELECT seq, changed_at FROM arcbase_changes ORDER BY seq LIMIT 1")
}

/// The slowest hyper bridge position among targets active since `since` (the feed is not
/// pruned past it).
pub fn slowest_sync(dialect: Dialect, since: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT MIN(position) FROM arcbase_hyper_sync WHERE updated_at >= ").bind(since);
    sql
}

/// Remove up to `batch` of the oldest rows at or before `upto` that are older than `before`
/// (`None`: whatever their time); returns the positions removed.
pub fn prune(dialect: Dialect, upto: i64, before: Option<&str>, batch: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_changes WHERE seq IN (SELECT seq FROM arcbase_changes WHERE seq <= ").bind(upto);
    if let Some(b) = before {
        sql.push(" AND changed_at < ").bind(b);
    }
    sql.push(" ORDER BY seq LIMIT ").bind(i64::from(batch)).push(") RETURNING seq");
    sql
}

/// Record that the feed was pruned up to `upto`.
pub fn set_pruned(dialect: Dialect, upto: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_feed_pruned SET upto = ").bind(upto).push(" WHERE id = 1 AND upto < ").bind(upto);
    sql
}

/// The position just before the `n`-th newest change of `type_name` in `instance` (0 when
/// it has fewer): where `previous: n` starts.
pub fn before_nth_newest(dialect: Dialect, instance: &str, type_name: Option<&str>, n: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT seq - 1 FROM arcbase_changes WHERE instance_id = ").bind(instance);
    if let Some(t) = type_name {
        sql.push(" AND type_name = ").bind(t);
    }
    sql.push(" ORDER BY seq DESC LIMIT 1 OFFSET ").bind(i64::from(n.saturating_sub(1)));
    sql
}

/// The DELETE changes of objects `ids` (of `type_name` in `instance`) after `after`:
/// `object_id, owner`.
pub fn deletes_of(dialect: Dialect, instance: &str, type_name: &str, ids: &[String], after: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT object_id, owner FROM arcbase_changes WHERE instance_id = ").bind(instance);
    sql.push(" AND type_name = ").bind(type_name).push(" AND object_id IN (");
    sql.bind_list(ids);
    sql.push(") AND operation = 'delete' AND seq > ").bind(after);
    sql
}
