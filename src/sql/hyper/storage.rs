//! Statements of the storage service: object metadata (the bytes are files).

use super::store_id_of;
use crate::hyper::Service;
use crate::sql::{Dialect, Sql};

/// An object of the caller's bucket: `file, size`.
pub fn get(dialect: Dialect, instance: &str, bucket: &str, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT o.file, o.size FROM hyper_objects o WHERE o.store_id = ");
    store_id_of(&mut sql, instance, Service::Storage, bucket);
    sql.push(" AND o.name = ").bind(name);
    sql
}

/// The file of an object of bucket `store_id`: `file`.
pub fn file_of(dialect: Dialect, store_id: i64, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT file FROM hyper_objects WHERE store_id = ").bind(store_id).push(" AND name = ").bind(name);
    sql
}

/// Record an object of bucket `store_id`, replacing one of the same name.
pub fn upsert(dialect: Dialect, store_id: i64, name: &str, file: &str, size: u64, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_objects (store_id, name, file, size, created_at) VALUES (").bind(store_id);
    sql.push(", ").bind(name).push(", ").bind(file).push(", ").bind(size.min(i64::MAX as u64) as i64);
    sql.push(", ").bind(now);
    sql.push(") ON CONFLICT (store_id, name) DO UPDATE SET file = excluded.file, size = excluded.size, created_at = excluded.created_at");
    sql
}

/// Remove an object of the caller's bucket: `file` of the removed row.
pub fn delete(dialect: Dialect, instance: &str, bucket: &str, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_objects WHERE store_id = ");
    store_id_of(&mut sql, instance, Service::Storage, bucket);
    sql.push(" AND name = ").bind(name).push(" RETURNING file");
    sql
}

/// The files of every object of bucket `store_id`.
pub fn files(dialect: Dialect, store_id: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT file FROM hyper_objects WHERE store_id = ").bind(store_id);
    sql
}

/// Which of `files` some object uses.
pub fn used(dialect: Dialect, files: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT file FROM hyper_objects WHERE file IN (");
    sql.bind_list(files);
    sql.push(")");
    sql
}
