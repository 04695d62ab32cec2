//! `find`, `trash`, `untrash`, `delete`, `deleteScalars` statements over a filter.
//!
//! Paging is keyset: `after`/`before` become a seek condition on the sort keys plus
//! `hypi_id`, never an OFFSET, so page 1,000 costs what page 1 costs. (`page: n` is the one
//! place an OFFSET appears: it asks for "the n-th page from here" by definition.) In the order
//! by id the seek is a range of the primary key; with a `SORT` whose first key moves towards
//! larger values (ASC forward, DESC backward) the seek starts with `k1 >= cursor's k1`, a range
//! of an index on that key. Towards smaller values the rows beyond a cursor are the smaller
//! values and then every NULL (NULLs sort first), which is no single range: the planner walks
//! the index from its end to the cursor, so a `SORT k DESC` page deep into a large result costs
//! more than the first.

use super::filter::{order_items, FilterRenderer, Scope};
use super::names::*;
use super::read::ReadRenderer;
use super::{quote, Dialect, Sql, SqlValue};
use crate::model::Model;
use crate::plan::filter::FilterPlan;
use crate::plan::read::ObjectSelection;

/// A seek position: the cursor row's sort-key values and id.
#[derive(Debug, Clone)]
pub struct Seek<'a> {
    pub values: &'a [SqlValue],
    pub id: &'a str,
    /// Rows before the cursor instead of after it.
    pub backward: bool,
    /// Invert: rows at or before (at or after, when backward) the cursor.
    pub negate: bool,
}

/// What to select over the filtered rows.
pub enum Output<'a> {
    /// `(document, id)` per row.
    Documents(&'a ObjectSelection),
    /// `(document, id, <each sort key's value>)` per row: what an enclosing statement needs to
    /// keep the page's order.
    DocumentsAndKeys(&'a ObjectSelection),
    /// `id` per row.
    Ids,
    /// `1` if any row exists.
    Exists,
}

/// Which rows trashing hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trashed {
    /// Only rows that are not trashed (the default everywhere).
    Hide,
    /// Trashed rows too (`includeTrashed: true`, `delete`).
    Include,
    /// Only trashed rows (`untrash`).
    Only,
}

pub struct Select<'a> {
    pub type_idx: usize,
    pub filter: &'a FilterPlan,
    pub instance: &'a str,
    pub trashed: Trashed,
    /// Bounds from cursors (`after`, `before`).
    pub seeks: Vec<Seek<'a>>,
    /// Walk the order backwards (for `last`/`before`); rows come out reversed.
    pub reverse: bool,
    pub limit: Option<u64>,
    pub offset: u64,
}

impl<'a> Select<'a> {
    /// The rows of `filter` in its order from the first: no cursor, no offset.
    pub fn forward(
        type_idx: usize,
        filter: &'a FilterPlan,
        instance: &'a str,
        trashed: Trashed,
        limit: Option<u64>,
    ) -> Select<'a> {
        Select { type_idx, filter, instance, trashed, seeks: Vec::new(), reverse: false, limit, offset: 0 }
    }
}

pub struct FindRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
}

impl FindRenderer<'_> {
    /// `SELECT <output> FROM T t0 <joins> WHERE <instance, trashed, filter, seek> ORDER BY ... LIMIT`.
    pub fn select(&self, s: &Select<'_>, output: Output<'_>) -> Sql {
        let ty = &self.model.types[s.type_idx];
        let vis = &s.filter.visibility;
        let mut f = FilterRenderer::new(self.model, self.app, self.dialect).with_viewer(&vis.viewer);
        let mut scope = Scope::new("t0", s.type_idx);

        let mut head = Sql::new(self.dialect);
        head.push("SELECT ");
        match output {
            Output::Documents(sel) | Output::DocumentsAndKeys(sel) => {
                let r = ReadRenderer { model: self.model, app: self.app, dialect: self.dialect, viewer: &vis.viewer };
                let mut n = 0;
                r.document(&mut head, sel, "t0", &mut n);
                head.push(", t0.").push(COL_ID);
                if matches!(output, Output::DocumentsAndKeys(_)) {
                    for (e, _) in f.sort_exprs(&mut scope, &s.filter.sort) {
                        head.push(", ").push(&e);
                    }
                }
            }
            Output::Ids => {
                head.push("t0.").push(COL_ID);
            }
            Output::Exists => {
                head.push("1");
            }
        }
        let mut wh = Sql::new(self.dialect);
        wh.push(" WHERE t0.").push(COL_INSTANCE).push(" = ").bind(s.instance);
        match s.trashed {
            Trashed::Hide => wh.push(" AND t0.").push(COL_TRASHED).push(" IS NULL"),
            Trashed::Only => wh.push(" AND t0.").push(COL_TRASHED).push(" IS NOT NULL"),
            Trashed::Include => &mut wh,
        };
        f.restrict(&mut wh, s.type_idx, "t0", vis.write);
        if let Some(c) = &s.filter.cond {
            wh.push(" AND ");
            f.cond(&mut wh, &mut scope, c);
        }
        for seek in &s.seeks {
            if seek.negate && s.filter.sort.is_empty() {
                // By id alone (never NULL), "at or before the cursor" is a range an index on
                // the filter's columns and the id can seek, where a negated expression is a
                // walk over every row of the filter before the cursor.
                wh.push(&format!(" AND t0.{COL_ID} {} ", if seek.backward { ">=" } else { "<=" })).bind(seek.id);
                continue;
            }
            wh.push(if seek.negate { " AND NOT COALESCE(" } else { " AND (" });
            f.seek(&mut wh, &mut scope, &s.filter.sort, seek.values, seek.id, seek.backward);
            wh.push(if seek.negate { ", FALSE)" } else { ")" });
        }
        let order = if matches!(output, Output::Exists) {
            String::new()
        } else {
            f.order_by(&mut scope, &s.filter.sort, s.reverse)
        };

        let mut sql = head;
        sql.push(" FROM ").ident(&object_table(self.app, ty)).push(" t0").append(scope.joins());
        sql.append(wh);
        if !order.is_empty() {
            sql.push(" ORDER BY ").push(&order);
        }
        if let Some(limit) = s.limit {
            sql.push(" LIMIT ").bind(i64::try_from(limit).unwrap_or(i64::MAX));
            if s.offset > 0 {
                // Past i64::MAX there is no row anyway; a cast would wrap to a negative
                // OFFSET (the first page on SQLite, an error on PostgreSQL).
                sql.push(" OFFSET ").bind(i64::try_from(s.offset).unwrap_or(i64::MAX));
            }
        }
        sql
    }

    /// A page beyond one cursor and what lies on the cursor's far side, in one statement: first
    /// the row `(0, NULL, NULL, <the cursor row exists>, <probe finds a row>)`, then the page's
    /// rows `(1, document, id, NULL, NULL)` in the page's order. The union inside carries each
    /// row's sort keys too, for the outer `ORDER BY` (a subquery's order is not the union's),
    /// and the outer select leaves them out (they are not the response's bytes). `cursor` is
    /// [`Self::cursor`]'s statement, for the order by id alone (where the cursor's position is
    /// its id, so the page needs nothing read from the cursor row); `None` when the cursor row
    /// was already read (its existence column is then `1`). `probe` selects the rows on the
    /// cursor's far side (a negated seek); `None` when nobody asked what lies there (its column
    /// is then `0`, and the statement reads nothing on that side).
    pub fn page_beyond_cursor(
        &self,
        page: &Select<'_>,
        selection: &ObjectSelection,
        cursor: Option<Sql>,
        probe: Option<&Select<'_>>,
    ) -> Sql {
        let keys = &page.filter.sort;
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT tag, doc, id, present, beyond FROM (SELECT 0 AS tag, NULL AS doc, NULL AS id");
        for k in 0..keys.len() {
            sql.push(&format!(", NULL AS k{k}"));
        }
        match cursor {
            Some(cursor) => sql.push(", EXISTS (").append(cursor).push(") AS present"),
            None => sql.push(", 1 AS present"),
        };
        match probe {
            Some(probe) => sql.push(", EXISTS (").append(self.select(probe, Output::Exists)).push(") AS beyond"),
            None => sql.push(", 0 AS beyond"),
        };
        sql.push(" UNION ALL SELECT 1, p.*, NULL, NULL FROM (");
        sql.append(self.select(page, Output::DocumentsAndKeys(selection)));
        // The page's order over the union's columns: key k is `k{k}`.
        let keys: Vec<(String, bool)> = keys.iter().enumerate().map(|(k, key)| (format!("k{k}"), key.desc)).collect();
        sql.push(") p) u ORDER BY tag, ").push(&order_items(self.dialect, &keys, "id", page.reverse));
        sql
    }

    /// The sort-key values and id of the cursor row `id`, if it exists and is visible.
    pub fn cursor(&self, type_idx: usize, filter: &FilterPlan, instance: &str, id: &str, include_trashed: bool) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut f = FilterRenderer::new(self.model, self.app, self.dialect).with_viewer(&filter.visibility.viewer);
        let mut scope = Scope::new("t0", type_idx);
        let exprs = f.sort_exprs(&mut scope, &filter.sort);
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ");
        for (e, _) in &exprs {
            sql.push(e).push(", ");
        }
        sql.push("t0.")
            .push(COL_ID)
            .push(" FROM ")
            .ident(&object_table(self.app, ty))
            .push(" t0")
            .append(scope.joins());
        sql.push(" WHERE t0.").push(COL_INSTANCE).push(" = ").bind(instance);
        sql.push(" AND t0.").push(COL_ID).push(" = ").bind(id);
        if !include_trashed {
            sql.push(" AND t0.").push(COL_TRASHED).push(" IS NULL");
        }
        f.restrict(&mut sql, type_idx, "t0", filter.visibility.write);
        sql
    }

    /// `UPDATE T SET hypi_trashed = ... WHERE id IN (<ids>) AND <not yet so> RETURNING id, version`.
    pub fn set_trashed(
        &self,
        type_idx: usize,
        instance: &str,
        ids: &[String],
        trashed: Option<&str>,
        now: &str,
    ) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&object_table(self.app, ty)).push(" SET ").push(COL_TRASHED).push(" = ");
        sql.value(trashed.map(str::to_string).into()).push(", ").push(COL_UPDATED).push(" = ").bind(now);
        sql.push(&format!(", {COL_VERSION} = {COL_VERSION} + 1 WHERE {COL_INSTANCE} = ")).bind(instance);
        sql.push(&format!(" AND {COL_ID} IN ("));
        sql.bind_list(ids);
        // Only rows still in the state the change leaves: the ids were read before, and a
        // concurrent trash of the same object (PostgreSQL) may have come first. Its row is
        // then checked again when its lock is released, and left alone, so the object is
        // trashed (and counted, and fed) once, not twice.
        let state = if trashed.is_some() { "IS NULL" } else { "IS NOT NULL" };
        sql.push(&format!(") AND {COL_TRASHED} {state} RETURNING {COL_ID}, {COL_VERSION}"));
        sql
    }

    /// Sources of list field (`from`, `field`) that link to any of `ids`.
    pub fn linked_from(&self, from: usize, field: usize, instance: &str, ids: &[String]) -> Sql {
        let ty = &self.model.types[from];
        let mut sql = Sql::new(self.dialect);
        sql.push(&format!("SELECT DISTINCT {LINK_SRC} FROM ")).ident(&list_table(self.app, ty, &ty.fields[field]));
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {LINK_DST} IN ("));
        sql.bind_list(ids);
        sql.push(")");
        sql
    }

    /// Remove the links of list field (`from`, `field`) to any of `ids`.
    pub fn unlink_targets(&self, from: usize, field: usize, instance: &str, ids: &[String]) -> Sql {
        let ty = &self.model.types[from];
        let mut sql = Sql::new(self.dialect);
        sql.push("DELETE FROM ").ident(&list_table(self.app, ty, &ty.fields[field]));
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {LINK_DST} IN ("));
        sql.bind_list(ids);
        sql.push(")");
        sql
    }

    /// Clear the one-to-one reference (`from`, `field`) where it points at any of `ids`.
    pub fn clear_refs(&self, from: usize, field: usize, instance: &str, ids: &[String], now: &str) -> Sql {
        let ty = &self.model.types[from];
        let col = quote(column(&ty.fields[field]));
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&object_table(self.app, ty)).push(&format!(" SET {col} = NULL, {COL_UPDATED} = "));
        sql.bind(now).push(&format!(", {COL_VERSION} = {COL_VERSION} + 1 WHERE {COL_INSTANCE} = ")).bind(instance);
        sql.push(&format!(" AND {col} IN ("));
        sql.bind_list(ids);
        sql.push(&format!(") RETURNING {COL_ID}, {COL_VERSION}"));
        sql
    }

    /// Bump `updated` and the version of `ids`, returning `(id, version)`.
    pub fn touch(&self, type_idx: usize, instance: &str, ids: &[String], now: &str) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").ident(&object_table(self.app, ty)).push(&format!(" SET {COL_UPDATED} = ")).bind(now);
        sql.push(&format!(", {COL_VERSION} = {COL_VERSION} + 1 WHERE {COL_INSTANCE} = ")).bind(instance);
        sql.push(&format!(" AND {COL_ID} IN ("));
        sql.bind_list(ids);
        sql.push(&format!(") RETURNING {COL_ID}, {COL_VERSION}"));
        sql
    }

    /// Delete objects `ids` (their link rows and scalar lists go by cascade), returning
    /// `(id, version)`.
    pub fn delete(&self, type_idx: usize, instance: &str, ids: &[String]) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("DELETE FROM ")
            .ident(&object_table(self.app, ty))
            .push(&format!(" WHERE {COL_INSTANCE} = "))
            .bind(instance);
        sql.push(&format!(" AND {COL_ID} IN ("));
        sql.bind_list(ids);
        sql.push(&format!(") RETURNING {COL_ID}, {COL_VERSION}, {COL_TRASHED}, {COL_CREATED_BY}"));
        sql
    }

    /// Remove `values` from scalar list `field` of `ids`, returning the owners changed.
    pub fn delete_values(
        &self,
        type_idx: usize,
        field: usize,
        instance: &str,
        ids: &[String],
        values: &[SqlValue],
    ) -> Sql {
        let ty = &self.model.types[type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("DELETE FROM ").ident(&list_table(self.app, ty, &ty.fields[field]));
        sql.push(&format!(" WHERE {COL_INSTANCE} = ")).bind(instance).push(&format!(" AND {VALUE_OWNER} IN ("));
        sql.bind_list(ids);
        sql.push(&format!(") AND {VALUE} IN ("));
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(v.clone());
        }
        sql.push(&format!(") RETURNING {VALUE_OWNER}"));
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::read::HypiField;

    /// The page beyond a cursor reads the cursor's far side only when given a probe: without
    /// one, the statement holds one seek (the page's) and no `EXISTS` for it, on both dialects.
    #[test]
    fn a_page_beyond_a_cursor_reads_its_far_side_only_with_a_probe() {
        let model = crate::model::parse_sdl("type Row { k: Int }").unwrap();
        let row = model.types.iter().position(|t| t.name == "Row").unwrap();
        let filter = crate::plan::filter::plan_query(&model, row, "k > 5").unwrap();
        let mut selection = ObjectSelection::new(row);
        selection.add_hypi(&[HypiField::Id]);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let r = FindRenderer { model: &model, app: "app", dialect };
            let select = |negate, limit| Select {
                type_idx: row,
                filter: &filter,
                instance: "i",
                trashed: Trashed::Hide,
                seeks: vec![Seek { values: &[], id: "c", backward: false, negate }],
                reverse: false,
                limit: Some(limit),
                offset: 0,
            };
            let (page, probe) = (select(false, 26), select(true, 1));
            let cursor = || Some(r.cursor(row, &filter, "i", "c", false));
            let with = r.page_beyond_cursor(&page, &selection, cursor(), Some(&probe));
            let without = r.page_beyond_cursor(&page, &selection, cursor(), None);
            let count = |s: &Sql, what: &str| s.text.matches(what).count();
            assert_eq!(
                (count(&with, "EXISTS ("), count(&without, "EXISTS (")),
                (2, 1),
                "{dialect:?}: {}",
                without.text
            );
            assert_eq!(count(&with, "hypi_id <= ?"), 1, "{dialect:?}: the probe's seek: {}", with.text);
            assert_eq!(count(&without, "hypi_id <= ?"), 0, "{dialect:?}: {}", without.text);
            assert!(without.text.contains("0 AS beyond"), "{}", without.text);
            assert_eq!(with.binds.len() - without.binds.len(), probe_binds(&r, &probe), "{dialect:?}");
        }
    }

    fn probe_binds(r: &FindRenderer<'_>, probe: &Select<'_>) -> usize {
        r.select(probe, Output::Exists).binds.len()
    }
}
