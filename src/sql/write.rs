//! Statements of the write path: insert, partial update, link/unlink, scalar-list append and
//! the change-feed row. Each is small and fully parameterized; `store::write` sequences them
//! inside one transaction.

use super::names::*;
use super::{quote, Dialect, Sql, SqlValue};
use crate::model::{Model, Storage};

/// Columns every insert/update returns, in this order.
pub const RETURNING: &str = " RETURNING hypi_created, hypi_updated, hypi_trashed, hypi_created_by, hypi_version";

/// What [`WriteRenderer::set_ref`] does to a one-to-one reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefChange<'a> {
    /// Point it at this object.
    Set(&'a str),
    /// Clear it if it points at this object.
    ClearIf(&'a str),
}

/// Renders writes for one app's tables.
pub struct WriteRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
    /// Existing objects are found and changed only where this viewer may.
    pub viewer: &'a super::Viewer,
}

impl WriteRenderer<'_> {
    fn table(&self, type_idx: usize) -> String {
        object_table(self.app, &self.model.types[type_idx])
    }

    /// Does the object exist in this instance? Its `hypi_trashed` tells whether it is trashed.
    /// Only objects the viewer may read (or, with `write`, change) are found.
    pub fn exists(&self, type_idx: usize, instance: &str, id: &str, write: bool) -> Sql {
        let mut sql = Sql::new(self.dialect);
        let table = self.table(type_idx);
        sql.push("SELECT hypi_trashed FROM ").ident(&table);
        sql.push(" WHERE hypi_instance = ").bind(instance).push(" AND hypi_id = ").bind(id);
        self.viewer.restrict(&mut sql, self.model, type_idx, &quote(&table), write);
        sql
    }

    /// [`Self::exists`] for several objects at once: a row (`hypi_id`, `hypi_trashed`) for
    /// each of `ids` that exists and that the viewer may read (`write = false`) or change
    /// (`write = true`, which on PostgreSQL also locks those rows, `FOR NO KEY UPDATE`, until the
    /// transaction ends).
    /// The list is padded to a power of two with its last id (a repeat changes nothing), so
    /// that calls of every size share a few texts, and so a few prepared statements.
    pub fn exists_many(&self, type_idx: usize, instance: &str, ids: &[&str], write: bool) -> Sql {
        let mut sql = Sql::new(self.dialect);
        let table = self.table(type_idx);
        sql.push("SELECT hypi_id, hypi_trashed FROM ").ident(&table);
        sql.push(" WHERE hypi_instance = ").bind(instance).push(" AND hypi_id IN (");
        let last = ids.last().copied().unwrap_or_default();
        for i in 0..ids.len().next_power_of_two() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(ids.get(i).copied().unwrap_or(last));
        }
        sql.push(")");
        self.viewer.restrict(&mut sql, self.model, type_idx, &quote(&table), write);
        // PostgreSQL: the rows about to be written are locked now, in id order. Every upsert
        // asks in the same order (by type, then id), so two upserts of overlapping objects wait
        // for each other instead of deadlocking, as they did when each locked its objects in
        // the order it wrote them. `NO KEY`: the lock an UPDATE takes anyway, which leaves the
        // key-share lock a link row's foreign key takes on its target free (`FOR UPDATE`
        // deadlocked two upserts linking their objects to each other).
        if write && self.dialect == crate::sql::Dialect::Postgres {
            sql.push(" ORDER BY hypi_id FOR NO KEY UPDATE");
        }
        sql
    }

    /// [`Self::exists`] for writing, holding the row (PostgreSQL: `FOR SHARE`) until the
    /// transaction ends, so a concurrent delete of the object waits for it.
    pub fn exists_held(&self, type_idx: usize, instance: &str, id: &str) -> Sql {
        let mut sql = self.exists(type_idx, instance, id, true);
        if self.dialect == crate::sql::Dialect::Postgres {
            sql.push(" FOR SHARE");
        }
        sql
    }

    /// Insert a new object with `columns` (field index → value; reference columns included).
    /// Should another writer create the same id first (PostgreSQL, several nodes), the insert
    /// becomes a partial update of `columns` instead of failing: creating one id concurrently
    /// leaves exactly one object. The returned version is 1 exactly when a row was inserted.
    pub fn insert(
        &self,
        type_idx: usize,
        instance: &str,
        id: &str,
        now: &str,
        created_by: Option<&str>,
        columns: &[(usize, SqlValue)],
    ) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("INSERT INTO ").ident(&self.table(type_idx));
        sql.push(" (hypi_instance, hypi_id, hypi_created, hypi_updated, hypi_created_by, hypi_version");
        for (f, _) in columns {
            sql.push(", ").ident(column(&ty.fields[*f]));
        }
        sql.push(") VALUES (").bind(instance).push(", ").bind(id).push(", ").bind(now).push(", ").bind(now);
        sql.push(", ").value(created_by.map(str::to_string).into()).push(", 1");
        for (_, v) in columns {
            sql.push(", ").value(v.clone());
        }
        let table = quote(&self.table(type_idx));
        sql.push(&format!(
            ") ON CONFLICT (hypi_instance, hypi_id) DO UPDATE SET hypi_updated = excluded.hypi_updated, \
             hypi_version = {table}.hypi_version + 1"
        ));
        for (f, _) in columns {
            let c = quote(column(&ty.fields[*f]));
            sql.push(&format!(", {c} = excluded.{c}"));
        }
        // An object with this id that the viewer may not change stays as it is: no row comes
        // back, and the caller reports the id as unavailable.
        sql.push(" WHERE TRUE");
        self.viewer.restrict(&mut sql, self.model, type_idx, &table, true);
        sql.push(RETURNING);
        sql
    }

    /// Partial update: only `columns` change; `updated` and the version always move.
    pub fn update(&self, type_idx: usize, instance: &str, id: &str, now: &str, columns: &[(usize, SqlValue)]) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&self.table(type_idx)).push(" SET hypi_updated = ").bind(now);
        sql.push(", hypi_version = hypi_version + 1");
        for (f, v) in columns {
            sql.push(", ").ident(column(&ty.fields[*f])).push(" = ").value(v.clone());
        }
        sql.push(" WHERE hypi_instance = ").bind(instance).push(" AND hypi_id = ").bind(id);
        self.viewer.restrict(&mut sql, self.model, type_idx, &quote(&self.table(type_idx)), true);
        sql.push(RETURNING);
        sql
    }

    /// Bump `updated` and the version of an object whose links or lists changed.
    pub fn touch(&self, type_idx: usize, instance: &str, id: &str, now: &str) -> Sql {
        self.update(type_idx, instance, id, now, &[])
    }

    /// Append `dst` to the list reference `field` of `src` unless it is already there.
    pub fn link_append(&self, type_idx: usize, field: usize, instance: &str, src: &str, dst: &str) -> Sql {
        let ty = &self.model.types[type_idx];
        let table = quote(&list_table(self.app, ty, &ty.fields[field]));
        let mut sql = Sql::new(self.dialect);
        sql.push(&format!("INSERT INTO {table} (hypi_instance, {LINK_SRC}, {LINK_DST}, {POS}) SELECT "));
        sql.bind(instance).push(", ").bind(src).push(", ").bind(dst);
        sql.push(&format!(", COALESCE(MAX({POS}), 0) + 1 FROM {table} WHERE hypi_instance = "));
        sql.bind(instance).push(&format!(" AND {LINK_SRC} = ")).bind(src);
        sql.push(" ON CONFLICT DO NOTHING");
        sql
    }

    /// Remove `dst` from the list reference `field` of `src`.
    pub fn link_remove(&self, type_idx: usize, field: usize, instance: &str, src: &str, dst: &str) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("DELETE FROM ").ident(&list_table(self.app, ty, &ty.fields[field]));
        sql.push(" WHERE hypi_instance = ").bind(instance);
        sql.push(&format!(" AND {LINK_SRC} = ")).bind(src);
        sql.push(&format!(" AND {LINK_DST} = ")).bind(dst);
        sql
    }

    /// Change the one-to-one reference `field` of `src`: set it (`link`), or clear it only
    /// when it currently points at the given object (`unlink`).
    pub fn set_ref(
        &self,
        type_idx: usize,
        field: usize,
        instance: &str,
        src: &str,
        change: RefChange<'_>,
        now: &str,
    ) -> Sql {
        let ty = &self.model.types[type_idx];
        debug_assert!(matches!(ty.fields[field].storage(), Storage::RefColumn(_)));
        let col = column(&ty.fields[field]);
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&self.table(type_idx)).push(" SET ").ident(col);
        match change {
            RefChange::Set(dst) => sql.push(" = ").bind(dst),
            RefChange::ClearIf(_) => sql.push(" = NULL"),
        };
        sql.push(", hypi_updated = ").bind(now).push(", hypi_version = hypi_version + 1");
        sql.push(" WHERE hypi_instance = ").bind(instance).push(" AND hypi_id = ").bind(src);
        if let RefChange::ClearIf(expected) = change {
            sql.push(" AND ").ident(col).push(" = ").bind(expected);
        }
        sql.push(" RETURNING hypi_version");
        sql
    }

    /// Append one value to the scalar list `field` of `owner`.
    pub fn value_append(&self, type_idx: usize, field: usize, instance: &str, owner: &str, value: SqlValue) -> Sql {
        let ty = &self.model.types[type_idx];
        let table = quote(&list_table(self.app, ty, &ty.fields[field]));
        let mut sql = Sql::new(self.dialect);
        sql.push(&format!("INSERT INTO {table} (hypi_instance, {VALUE_OWNER}, {POS}, {VALUE}) SELECT "));
        sql.bind(instance).push(", ").bind(owner);
        sql.push(&format!(", COALESCE(MAX({POS}), 0) + 1, "));
        if value == SqlValue::Null {
            // Typed, so PostgreSQL does not read an untyped NULL in a SELECT list as text.
            let scalar = ty.fields[field].value_scalar().unwrap_or(crate::model::Scalar::String);
            let ty_name = super::ddl::column_type(self.dialect, scalar).split(" COLLATE").next().unwrap_or("TEXT");
            sql.push(&format!("CAST(NULL AS {ty_name})"));
        } else {
            sql.bind(value);
        }
        sql.push(&format!(" FROM {table} WHERE hypi_instance = ")).bind(instance);
        sql.push(&format!(" AND {VALUE_OWNER} = ")).bind(owner);
        sql
    }

    /// Empty the list `field` (a list reference or a scalar list) of `owner`.
    pub fn list_clear(&self, type_idx: usize, field: usize, instance: &str, owner: &str) -> Sql {
        let ty = &self.model.types[type_idx];
        let f = &ty.fields[field];
        let owner_col = if matches!(f.storage(), Storage::LinkTable(_)) { LINK_SRC } else { VALUE_OWNER };
        let mut sql = Sql::new(self.dialect);
        sql.push("DELETE FROM ").ident(&list_table(self.app, ty, f));
        sql.push(" WHERE hypi_instance = ").bind(instance);
        sql.push(&format!(" AND {owner_col} = ")).bind(owner);
        sql
    }
}
