//! Statements of the queue service. Times are Unix milliseconds. A node takes due jobs by
//! setting `locked_until` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so nodes never take the
//! same job); that value is its lease: the outcome is written only while it still holds it.

use super::{page, store_id_of, store_is};
use crate::hyper::queue::JobStatus;
use crate::hyper::Service;
use crate::sql::{Dialect, Sql};

/// Add a READY job to the caller's queue (0 rows changed when the queue is missing).
pub fn insert(dialect: Dialect, instance: &str, queue: &str, id: &str, job: &str, now_ms: i64, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_jobs (id, store_id, job, status, attempts, next_at, created_at) SELECT ").bind(id);
    sql.push(", s.id, ").bind(job).push(", 'READY', 0, ").bind(now_ms).push(", ").bind(now);
    sql.push(" FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, Service::Queue, queue);
    sql
}

/// Jobs of queue `store_id` in a state, oldest first: `id, status, job, attempts, error,
/// created_at`.
pub fn list(dialect: Dialect, store_id: i64, status: JobStatus, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT id, status, job, attempts, error, created_at FROM hyper_jobs WHERE store_id = ").bind(store_id);
    sql.push(" AND status = ").bind(status.as_str()).push(" ORDER BY id");
    page(&mut sql, limit, 0);
    sql
}

/// Remove a job of the caller's queue (rows changed: 0 or 1).
pub fn delete(dialect: Dialect, instance: &str, queue: &str, id: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_jobs WHERE store_id = ");
    store_id_of(&mut sql, instance, Service::Queue, queue);
    sql.push(" AND id = ").bind(id);
    sql
}

/// Make an ERROR job of the caller's queue READY again (rows changed: 0 or 1).
pub fn retry(dialect: Dialect, instance: &str, queue: &str, id: &str, now_ms: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE hyper_jobs SET status = 'READY', attempts = 0, error = NULL, locked_until = NULL, next_at = ");
    sql.bind(now_ms).push(" WHERE store_id = ");
    store_id_of(&mut sql, instance, Service::Queue, queue);
    sql.push(" AND id = ").bind(id).push(" AND status = 'ERROR'");
    sql
}

/// Take up to `batch` due READY jobs of queues that have a target, holding each until
/// `lease_until`: `id, store_id, job, attempts`.
pub fn claim(dialect: Dialect, now_ms: i64, lease_until: i64, batch: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE hyper_jobs SET locked_until = ").bind(lease_until);
    sql.push(" WHERE id IN (SELECT j.id FROM hyper_jobs j JOIN hyper_stores s ON s.id = j.store_id WHERE s.target IS NOT NULL AND j.status = 'READY' AND j.next_at <= ");
    sql.bind(now_ms).push(" AND (j.locked_until IS NULL OR j.locked_until <= ").bind(now_ms).push(")");
    sql.push(" ORDER BY j.next_at, j.id LIMIT ").bind(i64::from(batch));
    if dialect == Dialect::Postgres {
        sql.push(" FOR UPDATE OF j SKIP LOCKED");
    }
    sql.push(") RETURNING id, store_id, job, attempts");
    sql
}

/// The targets and configurations of queues: `id, target, config`.
pub fn targets(dialect: Dialect, store_ids: &[i64]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT id, target, config FROM hyper_stores WHERE id IN (");
    for (i, id) in store_ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(*id);
    }
    if store_ids.is_empty() {
        sql.push("NULL");
    }
    sql.push(")");
    sql
}

/// A delivered job is gone (if this node still holds it).
pub fn delivered(dialect: Dialect, id: &str, lease: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_jobs WHERE id = ").bind(id).push(" AND locked_until = ").bind(lease);
    sql
}

/// A failed attempt: READY again at `next_at`, or ERROR once `max_attempts` are used (if this
/// node still holds it).
pub fn failed(dialect: Dialect, id: &str, lease: i64, error: &str, next_at: i64, max_attempts: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE hyper_jobs SET attempts = attempts + 1, locked_until = NULL, error = ").bind(error);
    sql.push(", next_at = ").bind(next_at).push(", status = CASE WHEN attempts + 1 >= ").bind(i64::from(max_attempts));
    sql.push(" THEN 'ERROR' ELSE 'READY' END WHERE id = ").bind(id).push(" AND locked_until = ").bind(lease);
    sql
}
