//! Statements of `@hyper(count: true)`: a row per instance and type holding how many live
//! (untrashed) objects it has, changed by every write in its own transaction.

use crate::sql::names::{COL_INSTANCE, COL_TRASHED};
use crate::sql::{Dialect, Sql};

/// Add `delta` to the count of `type_name` in `instance` (a missing row is left missing: the
/// registry counts it when it serves the release).
pub fn add(dialect: Dialect, instance: &str, type_name: &str, delta: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE arcbase_hyper_counts SET n = n + ").bind(delta);
    sql.push(" WHERE instance_id = ").bind(instance).push(" AND type_name = ").bind(type_name);
    sql
}

/// Count the live objects of `table` in `instance` under `release`, unless they were already
/// counted under it (`table` comes from the validated model).
pub fn recount(dialect: Dialect, instance: &str, type_name: &str, table: &str, release: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_hyper_counts (instance_id, type_name, n, release) SELECT ").bind(instance);
    sql.push(", ").bind(type_name).push(", count(*), ").bind(release).push(" FROM ").ident(table);
    sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {COL_TRASHED} IS NULL"));
    sql.push(" ON CONFLICT (instance_id, type_name) DO UPDATE SET n = excluded.n, release = excluded.release");
    sql.push(" WHERE arcbase_hyper_counts.release <> excluded.release");
    sql
}

/// Forget the counts of `instance` except those of `keep` (types that no longer count would
/// otherwise hold a number that stopped following the writes).
pub fn forget_others(dialect: Dialect, instance: &str, keep: &[String]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM arcbase_hyper_counts WHERE instance_id = ").bind(instance);
    if !keep.is_empty() {
        sql.push(" AND type_name NOT IN (");
        for (i, t) in keep.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(t.as_str());
        }
        sql.push(")");
    }
    sql
}

/// The count of `type_name` in `instance` (no row when it is not counted).
pub fn read(dialect: Dialect, instance: &str, type_name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT n FROM arcbase_hyper_counts WHERE instance_id = ").bind(instance);
    sql.push(" AND type_name = ").bind(type_name);
    sql
}
