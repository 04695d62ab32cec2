//! Statements of the cache service. Expiry is Unix milliseconds; `now` is bound, so an
//! expired entry is never read, whether or not the sweeper has removed it yet.

use super::{page, store_id_of, store_is};
use crate::hyper::cache::Pattern;
use crate::hyper::Service;
use crate::sql::{Dialect, Sql, SqlValue};

fn unexpired(sql: &mut Sql, alias: &str, now: i64) {
    sql.push(" AND (").push(alias).push("expires_at IS NULL OR ").push(alias).push("expires_at > ").bind(now).push(")");
}

/// Add a key unless it holds an unexpired value (1 row changed when added; 0 when it holds
/// one or the cache is missing).
pub fn add(
    dialect: Dialect,
    instance: &str,
    cache: &str,
    key: &str,
    value: &str,
    expires: Option<i64>,
    now: i64,
) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_cache (store_id, key, value, expires_at) SELECT s.id, ").bind(key);
    sql.push(", ").bind(value).push(", ").value(expires.map_or(SqlValue::Null, SqlValue::Int));
    sql.push(" FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, Service::Cache, cache);
    sql.push(" ON CONFLICT (store_id, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at");
    sql.push(" WHERE hyper_cache.expires_at IS NOT NULL AND hyper_cache.expires_at <= ").bind(now);
    sql
}

/// Set a key (0 rows changed when the cache is missing).
pub fn set(dialect: Dialect, instance: &str, cache: &str, key: &str, value: &str, expires: Option<i64>) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_cache (store_id, key, value, expires_at) SELECT s.id, ").bind(key);
    sql.push(", ").bind(value).push(", ").value(expires.map_or(SqlValue::Null, SqlValue::Int));
    sql.push(" FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, Service::Cache, cache);
    sql.push(" ON CONFLICT (store_id, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at");
    sql
}

/// The unexpired value of a key: `value`.
pub fn get(dialect: Dialect, instance: &str, cache: &str, key: &str, now: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT c.value FROM hyper_cache c WHERE c.store_id = ");
    store_id_of(&mut sql, instance, Service::Cache, cache);
    sql.push(" AND c.key = ").bind(key);
    unexpired(&mut sql, "c.", now);
    sql
}

/// Remove a key: `expires_at` of the removed row (none when there was none).
pub fn delete(dialect: Dialect, instance: &str, cache: &str, key: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_cache WHERE store_id = ");
    store_id_of(&mut sql, instance, Service::Cache, cache);
    sql.push(" AND key = ").bind(key).push(" RETURNING expires_at");
    sql
}

/// Unexpired keys of cache `store_id` matching a pattern, in key order: `key, value`.
pub fn query(dialect: Dialect, store_id: i64, pattern: &Pattern, limit: u32, now: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT c.key, c.value FROM hyper_cache c WHERE c.store_id = ").bind(store_id);
    let pieces = pattern.pieces();
    if pieces.len() == 1 {
        sql.push(" AND c.key = ").bind(pattern.0.as_str());
    } else if pieces.iter().any(|p| !p.is_empty()) {
        match dialect {
            // GLOB: case-sensitive, `*` any characters; `?`, `[` and `]` of the pattern are
            // matched literally by bracketing them.
            Dialect::Sqlite => {
                let glob: Vec<String> = pieces
                    .iter()
                    .map(|p| {
                        p.chars()
                            .map(|c| match c {
                                '?' | '[' | ']' => format!("[{c}]"),
                                c => c.to_string(),
                            })
                            .collect()
                    })
                    .collect();
                sql.push(" AND ");
                crate::sql::prefix_range(&mut sql, "c.key", pieces[0]);
                sql.push("c.key GLOB ").bind(glob.join("*"));
            }
            Dialect::Postgres => {
                let like: Vec<String> = pieces
                    .iter()
                    .map(|p| {
                        p.chars()
                            .map(|c| match c {
                                '%' | '_' | '\\' => format!("\\{c}"),
                                c => c.to_string(),
                            })
                            .collect()
                    })
                    .collect();
                sql.push(" AND c.key LIKE ").bind(like.join("%")).push(" ESCAPE '\\'");
            }
        }
    }
    unexpired(&mut sql, "c.", now);
    sql.push(" ORDER BY c.key");
    page(&mut sql, limit, 0);
    sql
}

/// Remove up to `batch` expired entries of every cache; rows changed.
pub fn sweep(dialect: Dialect, now: i64, batch: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_cache WHERE (store_id, key) IN (SELECT store_id, key FROM hyper_cache WHERE expires_at IS NOT NULL AND expires_at <= ");
    sql.bind(now).push(" LIMIT ").bind(i64::from(batch)).push(")");
    sql
}
