//! Statements of the hyper bridge: each target's position in the change feed, held by one
//! node at a time under a lease, and the objects a target refused.

use crate::sql::{Dialect, Sql};

/// Make the sync row of `target` (starting at feed position `position`) unless it exists.
pub fn ensure(dialect: Dialect, target: &str, position: i64, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_hyper_sync (target, position, updated_at) VALUES (").bind(target);
    sql.push(", ").bind(position).push(", ").bind(now).push(") ON CONFLICT (target) DO NOTHING");
    sql
}

/// Take (or keep) the lease of `target` for `node` until `until_ms`, unless another node holds
/// it or the sync is paused: `position` when taken, no row otherwise.
pub fn claim(dialect: Dialect, target: &str, node: &str, now_ms: i64, until_ms: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_sync SET locked_by = ").bind(node).push(", locked_until = ").bind(until_ms);
    sql.push(" WHERE target = ").bind(target).push(" AND (locked_until < ").bind(now_ms);
    sql.push(" OR locked_by = ").bind(node).push(") AND paused_until < ").bind(now_ms);
    sql.push(" RETURNING position");
    sql
}

/// Move the position of `target` forward to `position` (only while `node` holds the lease),
/// counting `sent` deliveries; clears the last error and a pause.
pub fn advance(dialect: Dialect, target: &str, node: &str, position: i64, sent: i64, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_sync SET position = ").bind(position).push(", sent = sent + ").bind(sent);
    sql.push(", last_error = NULL, paused = NULL, updated_at = ").bind(now);
    sql.push(" WHERE target = ").bind(target).push(" AND locked_by = ").bind(node);
    sql.push(" AND position <= ").bind(position);
    sql
}

/// Record a failed attempt (the position stays); with `pause_until_ms`, pause the sync.
pub fn failed(dialect: Dialect, target: &str, error: &str, pause_until_ms: Option<i64>, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_sync SET last_error = ").bind(error).push(", updated_at = ").bind(now);
    if let Some(until) = pause_until_ms {
        sql.push(", paused = ").bind(error).push(", paused_until = ").bind(until);
    }
    sql.push(" WHERE target = ").bind(target);
    sql
}

/// Give up the lease.
pub fn release(dialect: Dialect, target: &str, node: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_sync SET locked_by = NULL, locked_until = 0 WHERE target = ").bind(target);
    sql.push(" AND locked_by = ").bind(node);
    sql
}

/// Record an object `target` refused.
#[allow(clippy::too_many_arguments)]
pub fn dead(
    dialect: Dialect,
    target: &str,
    instance: &str,
    type_name: &str,
    id: &str,
    service: &str,
    status: u16,
    reason: &str,
    now: &str,
) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_hyper_dead (target, instance_id, type_name, object_id, service, status, reason, retry, at) VALUES (");
    for (i, v) in [target, instance, type_name, id, service].into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(v);
    }
    sql.push(", ").bind(i64::from(status)).push(", ").bind(reason).push(", 0, ").bind(now);
    sql.push(") ON CONFLICT (target, instance_id, type_name, object_id, service) DO UPDATE SET status = excluded.status, reason = excluded.reason, retry = 0, at = excluded.at");
    sql
}

/// Forget refused objects (delivered since): one statement for a batch.
pub fn undead(dialect: Dialect, target: &str, instance: &str, type_name: &str, ids: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_hyper_dead WHERE target = ").bind(target).push(" AND instance_id = ").bind(instance);
    sql.push(" AND type_name = ").bind(type_name);
    sql.push(" AND object_id IN (");
    sql.bind_list(ids);
    sql.push(")");
    sql
}

/// Mark every refused object of `target` (all targets when `None`) to be sent again; clears
/// pauses too. Rows changed: the objects marked.
pub fn retry_all(dialect: Dialect, target: Option<&str>) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_dead SET retry = 1");
    if let Some(t) = target {
        sql.push(" WHERE target = ").bind(t);
    }
    sql
}

/// Lift the pause of every target.
pub fn unpause(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "UPDATE arcbase_hyper_sync SET paused = NULL, paused_until = 0")
}

/// Refused objects marked for another try: `instance_id, type_name, object_id`.
pub fn retries(dialect: Dialect, target: &str, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT DISTINCT instance_id, type_name, object_id FROM arcbase_hyper_dead WHERE target = ").bind(target);
    sql.push(" AND retry = 1 ORDER BY instance_id, type_name, object_id LIMIT ").bind(i64::from(limit));
    sql
}

/// Every target: `target, position, locked_by, locked_until, paused, last_error, sent,
/// updated_at, dead, resync`.
pub fn status(dialect: Dialect) -> Sql {
    Sql::raw(
        dialect,
        "SELECT s.target, s.position, s.locked_by, s.locked_until, s.paused, s.last_error, s.sent, s.updated_at, \
         (SELECT COUNT(*) FROM arcbase_hyper_dead d WHERE d.target = s.target), \
         (SELECT COUNT(*) FROM arcbase_hyper_resync r WHERE r.target = s.target) \
         FROM arcbase_hyper_sync s ORDER BY s.target",
    )
}

/// The targets the bridge has synced to.
pub fn targets(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "SELECT target FROM arcbase_hyper_sync ORDER BY target")
}

/// Up to `limit` object ids of table `table` (a name from the validated model) of
/// `instance` after `after`, in id order: the walk of a resync. Trashed objects too (the
/// bridge removes them from the target).
pub fn ids_after(dialect: Dialect, table: &str, instance: &str, after: &str, limit: u32) -> Sql {
    use crate::sql::names::{COL_ID, COL_INSTANCE};
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ").push(COL_ID).push(" FROM ").ident(table).push(" WHERE ").push(COL_INSTANCE);
    sql.push(" = ").bind(instance).push(" AND ").push(COL_ID).push(" > ").bind(after);
    sql.push(" ORDER BY ").push(COL_ID).push(" LIMIT ").bind(i64::from(limit));
    sql
}

/// Queue objects of one type to be sent again to `target`.
pub fn resync_add(dialect: Dialect, target: &str, instance: &str, type_name: &str, ids: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_hyper_resync (target, instance_id, type_name, object_id) VALUES ");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").bind(target).push(", ").bind(instance).push(", ").bind(type_name);
        sql.push(", ").bind(id.as_str()).push(")");
    }
    sql.push(" ON CONFLICT (target, instance_id, type_name, object_id) DO NOTHING");
    sql
}

/// Where the walk of one type stands: `last_id`.
pub fn checkpoint(dialect: Dialect, target: &str, instance: &str, type_name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT last_id FROM arcbase_hyper_resync_from WHERE target = ").bind(target);
    sql.push(" AND instance_id = ").bind(instance).push(" AND type_name = ").bind(type_name);
    sql
}

/// Record where the walk of one type stands.
pub fn set_checkpoint(dialect: Dialect, target: &str, instance: &str, type_name: &str, last_id: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_hyper_resync_from (target, instance_id, type_name, last_id) VALUES (").bind(target);
    sql.push(", ").bind(instance).push(", ").bind(type_name).push(", ").bind(last_id);
    sql.push(") ON CONFLICT (target, instance_id, type_name) DO UPDATE SET last_id = excluded.last_id");
    sql
}

/// The walk of one type is complete.
pub fn clear_checkpoint(dialect: Dialect, target: &str, instance: &str, type_name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_hyper_resync_from WHERE target = ").bind(target);
    sql.push(" AND instance_id = ").bind(instance).push(" AND type_name = ").bind(type_name);
    sql
}

/// Objects queued by a resync: `instance_id, type_name, object_id`.
pub fn resync_take(dialect: Dialect, target: &str, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT instance_id, type_name, object_id FROM arcbase_hyper_resync WHERE target = ").bind(target);
    sql.push(" ORDER BY instance_id, type_name, object_id LIMIT ").bind(i64::from(limit));
    sql
}

/// Objects of a resync have been sent: one statement for a batch.
pub fn resync_done(dialect: Dialect, target: &str, instance: &str, type_name: &str, ids: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_hyper_resync WHERE target = ")
        .bind(target)
        .push(" AND instance_id = ")
        .bind(instance);
    sql.push(" AND type_name = ").bind(type_name);
    sql.push(" AND object_id IN (");
    sql.bind_list(ids);
    sql.push(")");
    sql
}

/// The refused objects: `target, instance_id, type_name, object_id, service, status, reason, at`.
pub fn dead_list(dialect: Dialect, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT target, instance_id, type_name, object_id, service, status, reason, at FROM arcbase_hyper_dead ORDER BY at DESC LIMIT ");
    sql.bind(i64::from(limit));
    sql
}
