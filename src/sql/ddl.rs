//! DDL for an app model: a table per object type, a link table per list reference, a value
//! table per scalar list, and the indexes `@unique` / `@indices` ask for.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so applying a model twice is harmless and
//! a model that only adds types or fields is applied by creating what is missing plus
//! [`add_column`] for the new columns of existing tables.

use super::names::*;
use super::{quote, Dialect};
use crate::model::{Field, Model, Scalar, Storage};

/// The column type of a single value of `scalar`.
pub fn column_type(dialect: Dialect, scalar: Scalar) -> &'static str {
    match (dialect, scalar) {
        (Dialect::Sqlite, Scalar::Int | Scalar::Long | Scalar::Boolean) => "INTEGER",
        (Dialect::Sqlite, Scalar::Float) => "REAL",
        (Dialect::Sqlite, _) => "TEXT",
        (Dialect::Postgres, Scalar::Int | Scalar::Long) => "BIGINT",
        (Dialect::Postgres, Scalar::Boolean) => "BOOLEAN",
        (Dialect::Postgres, Scalar::Float) => "DOUBLE PRECISION",
        (Dialect::Postgres, _) => "TEXT COLLATE \"C\"",
    }
}

fn field_column_type(dialect: Dialect, field: &Field) -> &'static str {
    match field.value_scalar() {
        Some(s) => column_type(dialect, s),
        None => column_type(dialect, Scalar::Id),
    }
}

/// The column definition of a single-valued field (a scalar, an enum or a reference id).
pub fn column_def(dialect: Dialect, field: &Field) -> String {
    format!("{} {}", quote(column(field)), field_column_type(dialect, field))
}

/// `ALTER TABLE ... ADD COLUMN` for a field a newer model added to an existing table.
pub fn add_column(dialect: Dialect, table: &str, field: &Field) -> String {
    format!("ALTER TABLE {} ADD COLUMN {}", quote(table), column_def(dialect, field))
}

/// Every statement that creates the storage of `model` for app `app`, in an order that
/// satisfies foreign keys: object tables, then list tables, then indexes.
pub fn create_statements(dialect: Dialect, app: &str, model: &Model) -> Vec<String> {
    let text = column_type(dialect, Scalar::Id);
    let int = column_type(dialect, Scalar::Long);
    let without_rowid = if dialect == Dialect::Sqlite { " WITHOUT ROWID" } else { "" };
    let mut tables = Vec::new();
    let mut lists = Vec::new();
    let mut indexes = Vec::new();
    for ty in &model.types {
        let table = object_table(app, ty);
        let mut cols = vec![
            format!("{COL_INSTANCE} {text} NOT NULL"),
            format!("{COL_ID} {text} NOT NULL"),
            format!("{COL_CREATED} {text} NOT NULL"),
            format!("{COL_UPDATED} {text} NOT NULL"),
            format!("{COL_TRASHED} {text}"),
            format!("{COL_CREATED_BY} {text}"),
            format!("{COL_VERSION} {int} NOT NULL DEFAULT 1"),
        ];
        if ty.builtin {
            // The account's argon2 password hash: never selected by a generated read.
            cols.push(format!("{COL_PASSWORD} {text}"));
        }
        for (fi, field) in ty.fields.iter().enumerate() {
            match field.storage() {
                Storage::Column | Storage::RefColumn(_) => cols.push(column_def(dialect, field)),
                Storage::LinkTable(target) => {
                    let lt = list_table(app, ty, field);
                    let target_table = object_table(app, &model.types[target]);
                    lists.push(format!(
                        "CREATE TABLE IF NOT EXISTS {lq} ({COL_INSTANCE} {text} NOT NULL, {LINK_SRC} {text} NOT NULL, \
                         {LINK_DST} {text} NOT NULL, {POS} {int} NOT NULL, \
                         PRIMARY KEY ({COL_INSTANCE}, {LINK_SRC}, {LINK_DST}), \
                         FOREIGN KEY ({COL_INSTANCE}, {LINK_SRC}) REFERENCES {pq} ({COL_INSTANCE}, {COL_ID}) ON DELETE CASCADE, \
                         FOREIGN KEY ({COL_INSTANCE}, {LINK_DST}) REFERENCES {tq} ({COL_INSTANCE}, {COL_ID}) ON DELETE CASCADE){without_rowid}",
                        lq = quote(&lt),
                        pq = quote(&table),
                        tq = quote(&target_table),
                    ));
                    indexes.push(format!(
                        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({COL_INSTANCE}, {LINK_SRC}, {POS})",
                        quote(&list_index_name(&lt, "pos")),
                        quote(&lt)
                    ));
                    indexes.push(format!(
                        "CREATE INDEX IF NOT EXISTS {} ON {} ({COL_INSTANCE}, {LINK_DST})",
                        quote(&list_index_name(&lt, "dst")),
                        quote(&lt)
                    ));
                }
                Storage::ValueTable => {
                    let vt = list_table(app, ty, field);
                    lists.push(format!(
                        "CREATE TABLE IF NOT EXISTS {vq} ({COL_INSTANCE} {text} NOT NULL, {VALUE_OWNER} {text} NOT NULL, \
                         {POS} {int} NOT NULL, {VALUE} {vt_type}, \
                         PRIMARY KEY ({COL_INSTANCE}, {VALUE_OWNER}, {POS}), \
                         FOREIGN KEY ({COL_INSTANCE}, {VALUE_OWNER}) REFERENCES {pq} ({COL_INSTANCE}, {COL_ID}) ON DELETE CASCADE){without_rowid}",
                        vq = quote(&vt),
                        vt_type = field_column_type(dialect, field),
                        pq = quote(&table),
                    ));
                    // A unique scalar list: an element belongs to one object of the instance.
                    let unique = if field.unique { "UNIQUE " } else { "" };
                    indexes.push(format!(
                        "CREATE {unique}INDEX IF NOT EXISTS {} ON {} ({COL_INSTANCE}, {VALUE})",
                        quote(&list_index_name(&vt, if field.unique { "unique_value" } else { "value" })),
                        quote(&vt)
                    ));
                }
            }
            if field.unique && field.storage() == Storage::Column {
                indexes.push(format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({COL_INSTANCE}, {})",
                    quote(&index_name(&table, &format!("unique__{}", field.name))),
                    quote(&table),
                    quote(column(field))
                ));
            }
            if let Storage::RefColumn(_) = field.storage() {
                // Deleting a target clears the references to it; this index makes that cheap.
                // An `@indices` set that starts with the reference already is such an index
                // (with the id after it), and a second one would only cost every write: none
                // is made then, and one an earlier release made is dropped when the model is applied.
                let name = ref_index_name(&table, field);
                if ref_index_redundant(ty, fi) {
                    indexes.push(drop_index(&name));
                } else {
                    let name = quote(&name);
                    indexes.push(format!(
                        "CREATE INDEX IF NOT EXISTS {name} ON {} ({COL_INSTANCE}, {})",
                        quote(&table),
                        quote(column(field))
                    ));
                }
            }
        }
        cols.push(format!("PRIMARY KEY ({COL_INSTANCE}, {COL_ID})"));
        tables.push(format!("CREATE TABLE IF NOT EXISTS {} ({}){without_rowid}", quote(&table), cols.join(", ")));
        for set in &ty.indices {
            let names: Vec<&str> = set.iter().map(|&i| ty.fields[i].name.as_str()).collect();
            let cols: Vec<String> = names.iter().map(|n| quote(n)).collect();
            // hypi_id last: rows equal on the indexed fields come out in id order, so the
            // default order and cursor seeks are served by the index without a sort.
            indexes.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({COL_INSTANCE}, {}, {COL_ID})",
                quote(&index_name(&table, &format!("idx__{}", names.join("__")))),
                quote(&table),
                cols.join(", ")
            ));
        }
    }
    tables.extend(lists);
    tables.extend(indexes);
    tables
}

/// Does reference field `fi` of `ty` start an `@indices` set, whose index then serves the
/// clearing of references to a deleted target (so that an index of the reference alone would
/// only cost every write)?
fn ref_index_redundant(ty: &crate::model::ObjectType, fi: usize) -> bool {
    ty.indices.iter().any(|set| set.first() == Some(&fi))
}

/// The index of reference field `field` of `table` alone.
fn ref_index_name(table: &str, field: &Field) -> String {
    index_name(table, &format!("ref__{}", field.name))
}

/// The names of the indexes that an earlier arcbase made on `app`'s tables and `model` no
/// longer has (today: the reference indexes [`ref_index_redundant`] names), whether or not a
/// database has them. A server drops those it finds when it first serves a release
/// (`Store::drop_redundant_indexes`), so a database made before the change sheds them without
/// waiting for a new release.
pub fn redundant_indexes(app: &str, model: &Model) -> Vec<String> {
    let mut names = Vec::new();
    for ty in &model.types {
        let table = object_table(app, ty);
        for (fi, field) in ty.fields.iter().enumerate() {
            if matches!(field.storage(), Storage::RefColumn(_)) && ref_index_redundant(ty, fi) {
                names.push(ref_index_name(&table, field));
            }
        }
    }
    names
}

/// `DROP INDEX IF EXISTS <name>`.
pub fn drop_index(name: &str) -> String {
    format!("DROP INDEX IF EXISTS {}", quote(name))
}
