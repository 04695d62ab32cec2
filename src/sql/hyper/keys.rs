//! Statements of hyper app keys.

use crate::sql::{Dialect, Sql};

/// Record a key.
pub fn insert(dialect: Dialect, key: &str, instance: &str, salt: &str, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_keys (key, instance_id, salt, created_at) VALUES (").bind(key);
    sql.push(", ").bind(instance).push(", ").bind(salt).push(", ").bind(now).push(")");
    sql
}

/// One key: `instance_id, salt, revoked_at`.
pub fn get(dialect: Dialect, key: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT instance_id, salt, revoked_at FROM hyper_keys WHERE key = ").bind(key);
    sql
}

/// Every key: `key, instance_id, created_at, revoked_at`.
pub fn list(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "SELECT key, instance_id, created_at, revoked_at FROM hyper_keys ORDER BY created_at, key")
}

/// Revoke a key (rows changed: 0 or 1).
pub fn revoke(dialect: Dialect, key: &str, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE hyper_keys SET revoked_at = ").bind(now).push(" WHERE key = ").bind(key);
    sql.push(" AND revoked_at IS NULL");
    sql
}
