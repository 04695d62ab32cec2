//! Statements of `@hyper(attachments: true)`: the metadata of each object's files (the bytes
//! are in the storage service). A deleted object's rows are marked `gone` in its delete's
//! transaction; the bridge removes their bytes and then the rows.

use crate::sql::{Dialect, Sql};

/// Record (or replace) the file `name` of an object.
#[allow(clippy::too_many_arguments)]
pub fn put(
    dialect: Dialect,
    instance: &str,
    type_name: &str,
    object_id: &str,
    name: &str,
    size: i64,
    content_type: &str,
    url: &str,
    now: &str,
) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_attachments (instance_id, type_name, object_id, name, size, content_type, url, created_at, gone) VALUES (");
    sql.bind(instance).push(", ").bind(type_name).push(", ").bind(object_id).push(", ").bind(name);
    sql.push(", ").bind(size).push(", ").bind(content_type).push(", ").bind(url).push(", ").bind(now);
    sql.push(", 0) ON CONFLICT (instance_id, type_name, object_id, name) DO UPDATE SET size = excluded.size,");
    sql.push(" content_type = excluded.content_type, url = excluded.url, created_at = excluded.created_at, gone = 0");
    sql
}

fn object_is(sql: &mut Sql, instance: &str, type_name: &str, object_id: &str) {
    sql.push(" WHERE instance_id = ").bind(instance).push(" AND type_name = ").bind(type_name);
    sql.push(" AND object_id = ").bind(object_id);
}

/// The files of an object: `name, size, content_type, url, created_at`, by name.
pub fn list(dialect: Dialect, instance: &str, type_name: &str, object_id: &str, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT name, size, content_type, url, created_at FROM arcbase_attachments");
    object_is(&mut sql, instance, type_name, object_id);
    sql.push(" AND gone = 0 ORDER BY name LIMIT ").bind(i64::from(limit));
    sql
}

/// One file's metadata (`size, content_type`), unless gone.
pub fn get(dialect: Dialect, instance: &str, type_name: &str, object_id: &str, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT size, content_type FROM arcbase_attachments");
    object_is(&mut sql, instance, type_name, object_id);
    sql.push(" AND name = ").bind(name).push(" AND gone = 0");
    sql
}

/// Mark one file gone (its bytes to be removed); rows changed.
pub fn mark_gone(dialect: Dialect, instance: &str, type_name: &str, object_id: &str, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_attachments SET gone = 1");
    object_is(&mut sql, instance, type_name, object_id);
    sql.push(" AND name = ").bind(name).push(" AND gone = 0");
    sql
}

/// Mark every file of these objects gone (in their delete's transaction).
pub fn mark_objects_gone(dialect: Dialect, instance: &str, type_name: &str, ids: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_attachments SET gone = 1 WHERE instance_id = ").bind(instance);
    sql.push(" AND type_name = ").bind(type_name).push(" AND object_id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(id.as_str());
    }
    sql.push(")");
    sql
}

/// Files whose bytes wait to be removed: `instance_id, type_name, object_id, name`.
pub fn gone(dialect: Dialect, limit: u32) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT instance_id, type_name, object_id, name FROM arcbase_attachments WHERE gone = 1 LIMIT ");
    sql.bind(i64::from(limit));
    sql
}

/// Forget a gone file whose bytes were removed.
pub fn forget(dialect: Dialect, instance: &str, type_name: &str, object_id: &str, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_attachments");
    object_is(&mut sql, instance, type_name, object_id);
    sql.push(" AND name = ").bind(name).push(" AND gone = 1");
    sql
}
