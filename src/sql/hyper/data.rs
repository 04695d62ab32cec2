//! Statements of the data service: documents, lists, queries, indexes.

use super::{page, store_id_of, store_is, Docs};
use crate::hyper::data::{FieldPath, FindQuery, ListQuery};
use crate::hyper::Service;
use crate::sql::{Dialect, Sql};

/// Insert a document into the caller's store unless its id is taken (no row when the store
/// is missing or the id taken: 0 rows changed either way).
pub fn insert(dialect: Dialect, instance: &str, store: &str, id: &str, body: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_docs (store_id, id, body) SELECT s.id, ").bind(id).push(", ").bind(body);
    sql.push(" FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, Service::Data, store);
    sql.push(" ON CONFLICT (store_id, id) DO NOTHING");
    sql
}

/// Write a document into the caller's store, replacing one with its id (0 rows changed when
/// the store is missing).
pub fn upsert(dialect: Dialect, instance: &str, store: &str, id: &str, body: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_docs (store_id, id, body) SELECT s.id, ").bind(id).push(", ").bind(body);
    sql.push(" FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, Service::Data, store);
    sql.push(" ON CONFLICT (store_id, id) DO UPDATE SET body = excluded.body");
    sql
}

/// One document: `body`.
pub fn get(dialect: Dialect, instance: &str, store: &str, id: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT d.body FROM hyper_docs d WHERE d.store_id = ");
    store_id_of(&mut sql, instance, Service::Data, store);
    sql.push(" AND d.id = ").bind(id);
    sql
}

/// Remove one document (rows changed: 0 or 1).
pub fn delete(dialect: Dialect, instance: &str, store: &str, id: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_docs WHERE store_id = ");
    store_id_of(&mut sql, instance, Service::Data, store);
    sql.push(" AND id = ").bind(id);
    sql
}

/// Documents of store `store_id` by id range or ids: `body` (ids in order; `keys` in any
/// order: the caller puts them in the order asked).
pub fn list(dialect: Dialect, store_id: i64, q: &ListQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT d.body FROM hyper_docs d WHERE d.store_id = ").push(&store_id.to_string());
    match &q.keys {
        Some(keys) => {
            sql.push(" AND d.id IN (");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(k.as_str());
            }
            sql.push(")");
        }
        None => {
            let (low, high) = q.range();
            if let Some(low) = low {
                sql.push(" AND d.id >= ").bind(low);
            }
            if let Some(high) = high {
                sql.push(" AND d.id <= ").bind(high);
            }
        }
    }
    sql.push(" ORDER BY d.id").push(if q.descending { " DESC" } else { " ASC" });
    page(&mut sql, q.limit, 0);
    sql
}

/// Documents of store `store_id` matching a query: `body`.
///
/// `prefer_index`: the selector constrains the leading field of an index; on SQLite the id
/// order is then written `+d.id`, so that the planner uses that index and sorts what it finds
/// rather than walking the store's primary key for its order.
pub fn find(dialect: Dialect, store_id: i64, q: &FindQuery, prefer_index: bool) -> Sql {
    let docs = Docs { dialect, alias: "d" };
    let mut sql = Sql::new(dialect);
    sql.push("SELECT d.body FROM hyper_docs d WHERE d.store_id = ").push(&store_id.to_string()).push(" AND ");
    docs.selector(&mut sql, &q.selector);
    let id = if prefer_index && dialect == Dialect::Sqlite { "+d.id" } else { "d.id" };
    docs.order_by(&mut sql, &q.sort, id);
    page(&mut sql, q.limit, q.skip);
    sql
}

/// The indexes of a store: `name, fields`.
pub fn indexes(dialect: Dialect, store_id: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT name, fields, seq FROM hyper_indexes WHERE store_id = ").bind(store_id).push(" ORDER BY seq");
    sql
}

/// Record an index (`fields` as JSON); its sequence number is one past the store's last.
pub fn insert_index(dialect: Dialect, store_id: i64, name: &str, fields: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_indexes (store_id, name, fields, seq) SELECT ").bind(store_id);
    sql.push(", ").bind(name).push(", ").bind(fields);
    sql.push(", COALESCE(MAX(seq), 0) + 1 FROM hyper_indexes WHERE store_id = ").bind(store_id);
    sql.push(" RETURNING seq");
    sql
}

/// The names of the database indexes behind `_index` number `seq` of store `store_id`.
pub fn index_names(dialect: Dialect, store_id: i64, seq: i64) -> Vec<String> {
    match dialect {
        Dialect::Sqlite => vec![format!("hyper_ix_{store_id}_{seq}")],
        Dialect::Postgres => vec![format!("hyper_ix_{store_id}_{seq}_s"), format!("hyper_ix_{store_id}_{seq}_n")],
    }
}

/// Create the database indexes behind an `_index` (partial: this store's documents only),
/// over the expressions the queries write. PostgreSQL gets two: strings and numbers.
pub fn create_indexes(dialect: Dialect, store_id: i64, seq: i64, fields: &[FieldPath]) -> Vec<Sql> {
    let docs = Docs { dialect, alias: "" };
    let names = index_names(dialect, store_id, seq);
    let per_field: Vec<Vec<String>> = fields.iter().map(|f| docs.index_exprs(f)).collect();
    names
        .iter()
        .enumerate()
        .map(|(variant, name)| {
            // On SQLite the store id leads as well: then the index has one more equality than
            // the primary key (store_id, id), and the planner takes it without statistics.
            let lead = if dialect == Dialect::Sqlite { vec!["store_id".to_string()] } else { Vec::new() };
            let exprs: Vec<String> =
                lead.into_iter().chain(per_field.iter().map(|e| format!("({})", e[variant]))).collect();
            Sql::raw(
                dialect,
                &format!(
                    "CREATE INDEX IF NOT EXISTS {name} ON hyper_docs ({}) WHERE store_id = {store_id}",
                    exprs.join(", ")
                ),
            )
        })
        .collect()
}

/// Refresh the planner's statistics of the documents (SQLite; `None` on PostgreSQL, whose
/// autovacuum does it).
pub fn analyze(dialect: Dialect) -> Option<Sql> {
    (dialect == Dialect::Sqlite).then(|| Sql::raw(dialect, "ANALYZE hyper_docs"))
}

/// Drop a database index made by [`create_indexes`].
pub fn drop_index(dialect: Dialect, name: &str) -> Sql {
    Sql::raw(dialect, &format!("DROP INDEX IF EXISTS {name}"))
}
