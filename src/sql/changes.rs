//! Statements of the change feed: the rows a write appends, and reading them back.

use super::{Dialect, Sql};
use crate::feed::NewChange;
use crate::model::Model;

/// One statement appending a change row per object, in the writer's transaction.
pub fn insert(dialect: Dialect, model: &Model, instance: &str, changes: &[NewChange<'_>], now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_changes (instance_id, type_name, object_id, operation, version, changed_at) VALUES ");
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").bind(instance).push(", ").bind(model.types[c.type_idx].name.as_str()).push(", ");
        sql.bind(c.id).push(", ").bind(c.op.as_str()).push(", ").bind(c.version).push(", ").bind(now).push(")");
    }
    sql
}

/// The columns [`after`] selects, in order.
pub const COLUMNS: &str = "seq, instance_id, type_name, object_id, operation, version, changed_at";

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
