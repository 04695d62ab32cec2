//! Read plans → one statement returning one JSON document per object.
//!
//! References and lists are correlated subqueries inside the document expression, so a read of
//! an object with its lists and their references is a single statement however many rows it
//! touches: no query per row.

use super::filter::{FilterRenderer, Scope};
use super::names::*;
use super::{quote, Dialect, Sql, SqlValue, Viewer};
use crate::model::{Model, Scalar, Storage};
use crate::plan::read::{HypiField, Item, ListPage, ObjectSelection};

/// SQLite allows 127 function arguments and PostgreSQL 100: documents with more keys are built
/// from several objects merged together.
const KEYS_PER_OBJECT: usize = 45;

/// Renders reads for one app's tables.
pub struct ReadRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
    /// Every object read, nested ones included, is limited to what this viewer may read.
    pub viewer: &'a Viewer,
}

impl ReadRenderer<'_> {
    /// A document this renderer's SQL produced, as JSON in the model's types: the one place
    /// where storage forms are undone. SQLite stores Booleans as 0/1; a Float that holds an
    /// integral value may be printed without a fraction (PostgreSQL's jsonb prints 3.0 as 3);
    /// here both become what the field's type says, so every front door gets the same values
    /// and both databases answer byte for byte alike.
    pub fn decode(&self, sel: &ObjectSelection, text: &str) -> Result<serde_json::Value, crate::error::ApiError> {
        decode(self.model, sel, text)
    }

    /// `SELECT <doc> FROM <table> t0 WHERE instance = ? AND id = ? [AND not trashed]`.
    pub fn get_by_id(&self, sel: &ObjectSelection, instance: &str, id: &str, include_trashed: bool) -> Sql {
        let ty = &self.model.types[sel.type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ");
        let mut n = 0;
        self.document(&mut sql, sel, "t0", &mut n);
        sql.push(" FROM ").ident(&object_table(self.app, ty)).push(" t0 WHERE t0.");
        sql.push(COL_INSTANCE).push(" = ").bind(instance);
        sql.push(" AND t0.").push(COL_ID).push(" = ").bind(id);
        if !include_trashed {
            sql.push(" AND t0.").push(COL_TRASHED).push(" IS NULL");
        }
        self.viewer.restrict(&mut sql, self.model, sel.type_idx, "t0", false);
        sql
    }

    /// [`ReadRenderer::get_by_id`]'s statement for `sel` and `include_trashed` under this
    /// renderer's kind of viewer, rendered once with stand-ins for the request's values.
    pub fn get_template(&self, sel: &ObjectSelection, include_trashed: bool) -> GetTemplate {
        let stand_in = match self.viewer {
            Viewer::Account(_) => Viewer::Account(STAND_IN_ACCOUNT.to_string()),
            v => v.clone(),
        };
        let r = ReadRenderer { viewer: &stand_in, ..*self };
        let sql = r.get_by_id(sel, STAND_IN_INSTANCE, STAND_IN_ID, include_trashed);
        let slots = sql
            .binds
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                SqlValue::Text(t) if t == STAND_IN_INSTANCE => Some((i, Slot::Instance)),
                SqlValue::Text(t) if t == STAND_IN_ID => Some((i, Slot::Id)),
                SqlValue::Text(t) if t == STAND_IN_ACCOUNT => Some((i, Slot::Account)),
                _ => None,
            })
            .collect();
        GetTemplate { sql, slots }
    }

    /// The objects among `ids` (at most one statement's worth: the caller batches), one
    /// document per row, in no particular order; trashed ones with `include_trashed` only.
    pub fn get_by_ids(&self, sel: &ObjectSelection, instance: &str, ids: &[String], include_trashed: bool) -> Sql {
        let ty = &self.model.types[sel.type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ");
        let mut n = 0;
        self.document(&mut sql, sel, "t0", &mut n);
        sql.push(" FROM ").ident(&object_table(self.app, ty)).push(" t0 WHERE t0.");
        sql.push(COL_INSTANCE).push(" = ").bind(instance);
        sql.push(" AND t0.").push(COL_ID).push(" IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(id.as_str());
        }
        if ids.is_empty() {
            sql.push("NULL");
        }
        sql.push(")");
        if !include_trashed {
            sql.push(" AND t0.").push(COL_TRASHED).push(" IS NULL");
        }
        self.viewer.restrict(&mut sql, self.model, sel.type_idx, "t0", false);
        sql
    }

    /// The JSON document expression of `sel` for the row aliased `alias`. `n` numbers aliases.
    ///
    /// SQLite: `json_object` of the first chunk, the further chunks added with `json_insert`
    /// (`json_patch` would drop every null member, also inside Json values, and takes only
    /// two documents). PostgreSQL: `jsonb_build_object(...) || ...`.
    pub fn document(&self, sql: &mut Sql, sel: &ObjectSelection, alias: &str, n: &mut usize) {
        let chunks: Vec<&[Item]> =
            if sel.items.is_empty() { vec![&[]] } else { sel.items.chunks(KEYS_PER_OBJECT).collect() };
        match self.dialect {
            Dialect::Sqlite => {
                for _ in 1..chunks.len() {
                    sql.push("json_insert(");
                }
                for (i, chunk) in chunks.iter().enumerate() {
                    if i == 0 {
                        sql.push("json_object(");
                        self.pairs(sql, sel.type_idx, chunk, alias, n, false);
                    } else {
                        sql.push(", ");
                        self.pairs(sql, sel.type_idx, chunk, alias, n, true);
                    }
                    sql.push(")");
                }
            }
            Dialect::Postgres => {
                sql.push("(");
                for (i, chunk) in chunks.iter().enumerate() {
                    if i > 0 {
                        sql.push(" || ");
                    }
                    sql.push("jsonb_build_object(");
                    self.pairs(sql, sel.type_idx, chunk, alias, n, false);
                    sql.push(")");
                }
                sql.push(")");
            }
        }
    }

    /// The key of one member: the key itself, or for `json_insert` its path `$."key"` (keys
    /// are GraphQL names, possibly after `&`: never a quote).
    fn key(sql: &mut Sql, key: &str, as_path: bool) {
        if as_path {
            sql.bind(format!("$.\"{key}\""));
        } else {
            sql.bind(key);
        }
    }

    /// `key, value, key, value, ...` of `items` for the row aliased `alias`.
    fn pairs(&self, sql: &mut Sql, type_idx: usize, items: &[Item], alias: &str, n: &mut usize, as_path: bool) {
        let ty = &self.model.types[type_idx];
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match item {
                Item::Column(f) => {
                    let field = &ty.fields[*f];
                    Self::key(sql, &field.name, as_path);
                    sql.push(", ");
                    let col = format!("{alias}.{}", quote(column(field)));
                    self.value_expr(sql, &col, field.value_scalar());
                }
                Item::Hypi(fields) => {
                    Self::key(sql, "hypi", as_path);
                    sql.push(", ");
                    self.hypi(sql, type_idx, fields, alias);
                }
                Item::Ref { field, key, sub } => {
                    let f = &ty.fields[*field];
                    let Storage::RefColumn(target) = f.storage() else { continue };
                    *n += 1;
                    let t = format!("t{n}");
                    Self::key(sql, &crate::plan::read::ref_key(key), as_path);
                    sql.push(", ");
                    sql.push(self.json_wrap_open()).push("(SELECT ");
                    self.document(sql, sub, &t, n);
                    sql.push(" FROM ").ident(&object_table(self.app, &self.model.types[target]));
                    sql.push(" ").push(&t).push(" WHERE ");
                    sql.push(&format!(
                        "{t}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {t}.{COL_ID} = {alias}.{} AND {t}.{COL_TRASHED} IS NULL",
                        quote(column(f))
                    ));
                    self.viewer.restrict(sql, self.model, target, &t, false);
                    sql.push("))");
                }
                Item::RefList { field, key, page, sub } => {
                    let f = &ty.fields[*field];
                    let Storage::LinkTable(target) = f.storage() else { continue };
                    *n += 1;
                    let t = format!("t{n}");
                    let l = format!("l{n}");
                    let link = list_table(self.app, ty, f);
                    Self::key(sql, &crate::plan::read::ref_key(key), as_path);
                    sql.push(", ");
                    self.list_open(sql, true);
                    // Elements as (j = document, p = position in the list's order, id, m = the
                    // list's arcql matches); the position is the link order, or the row number
                    // under the list's SORT, over every visible element, so a cursor is found
                    // by id even when it does not match the filter: `p > p(after) AND m = 1`.
                    let mut fr = FilterRenderer::tagged(self.model, self.app, self.dialect, &format!("f{n}_"))
                        .with_viewer(self.viewer);
                    let mut scope = Scope::new(&t, target);
                    let mut matches = Sql::new(self.dialect);
                    if let Some(c) = &page.filter.cond {
                        matches.push(", CASE WHEN ");
                        fr.cond(&mut matches, &mut scope, c);
                        matches.push(" THEN 1 ELSE 0 END AS m");
                    } else {
                        matches.push(", 1 AS m");
                    }
                    let pexpr = if page.filter.sort.is_empty() {
                        format!("{l}.{POS}")
                    } else {
                        format!("ROW_NUMBER() OVER (ORDER BY {})", fr.order_by(&mut scope, &page.filter.sort, false))
                    };
                    sql.push("(SELECT j, p FROM (SELECT j, p, m");
                    for (name, cursor) in [("ca", &page.after), ("cb", &page.before)] {
                        if let Some(id) = cursor {
                            sql.push(", MAX(CASE WHEN id = ")
                                .bind(id.as_str())
                                .push(&format!(" THEN p END) OVER () AS {name}"));
                        }
                    }
                    sql.push(" FROM (SELECT ");
                    self.document(sql, sub, &t, n);
                    sql.push(&format!(" AS j, {pexpr} AS p, {t}.{COL_ID} AS id")).append(matches);
                    sql.push(" FROM ").ident(&link).push(" ").push(&l);
                    sql.push(" JOIN ").ident(&object_table(self.app, &self.model.types[target]));
                    sql.push(&format!(
                        " {t} ON {t}.{COL_INSTANCE} = {l}.{COL_INSTANCE} AND {t}.{COL_ID} = {l}.{LINK_DST}"
                    ));
                    sql.append(scope.joins());
                    sql.push(&format!(
                        " WHERE {l}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {l}.{LINK_SRC} = {alias}.{COL_ID} \
                         AND {t}.{COL_TRASHED} IS NULL"
                    ));
                    self.viewer.restrict(sql, self.model, target, &t, false);
                    sql.push(") w0) w1 WHERE m = 1");
                    if page.after.is_some() {
                        sql.push(" AND p > ca");
                    }
                    if page.before.is_some() {
                        sql.push(" AND p < cb");
                    }
                    self.list_close(sql, page);
                }
                Item::Attachments => {
                    Self::key(sql, "attachments", as_path);
                    sql.push(", ");
                    self.list_open(sql, true);
                    sql.push(match self.dialect {
                        Dialect::Sqlite => "(SELECT json_object(",
                        Dialect::Postgres => "(SELECT jsonb_build_object(",
                    });
                    sql.push("'name', a.name, 'size', a.size, 'contentType', a.content_type, 'url', a.url) AS j, a.name AS p");
                    sql.push(&format!(" FROM arcbase_attachments a WHERE a.instance_id = {alias}.{COL_INSTANCE}"));
                    sql.push(" AND a.type_name = ").bind(ty.name.as_str());
                    sql.push(&format!(" AND a.object_id = {alias}.{COL_ID} AND a.gone = 0"));
                    sql.push(" ORDER BY p LIMIT ").bind(i64::from(crate::ops::attachments::MAX_LISTED));
                    sql.push(") s ORDER BY p) q))");
                }
                Item::ValueList { field, key, page } => {
                    let f = &ty.fields[*field];
                    *n += 1;
                    let v = format!("v{n}");
                    let table = list_table(self.app, ty, f);
                    Self::key(sql, &crate::plan::read::ref_key(key), as_path);
                    sql.push(", ");
                    self.list_open(sql, matches!(f.value_scalar(), Some(Scalar::Float)));
                    sql.push("(SELECT ");
                    self.value_expr(sql, &format!("{v}.{VALUE}"), f.value_scalar());
                    sql.push(&format!(" AS j, {v}.{POS} AS p FROM ")).ident(&table).push(" ").push(&v);
                    sql.push(&format!(
                        " WHERE {v}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {v}.{VALUE_OWNER} = {alias}.{COL_ID}"
                    ));
                    self.list_close(sql, page);
                }
            }
        }
    }

    /// `hypi { ... }` as a nested object keyed by field name.
    fn hypi(&self, sql: &mut Sql, type_idx: usize, fields: &[HypiField], alias: &str) {
        sql.push(match self.dialect {
            Dialect::Sqlite => "json_object(",
            Dialect::Postgres => "jsonb_build_object(",
        });
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(f.name()).push(", ");
            let col = match f {
                HypiField::Id => COL_ID,
                HypiField::Created => COL_CREATED,
                HypiField::Updated => COL_UPDATED,
                HypiField::Trashed => COL_TRASHED,
                HypiField::CreatedBy => COL_CREATED_BY,
                HypiField::InstanceId => COL_INSTANCE,
                HypiField::Version => COL_VERSION,
                HypiField::Impl => {
                    sql.bind(self.model.types[type_idx].name.as_str());
                    continue;
                }
            };
            sql.push(alias).push(".").push(col);
        }
        sql.push(")");
    }

    /// A stored value as a JSON value. Json columns hold JSON text and travel as that text (a
    /// JSON string the decode parses): embedding them as JSON would let PostgreSQL's jsonb
    /// reorder object keys and rewrite numbers. SQLite Floats are printed exactly
    /// ([`super::sqlite_exact_float`]).
    fn value_expr(&self, sql: &mut Sql, col: &str, scalar: Option<Scalar>) {
        match (self.dialect, scalar) {
            (Dialect::Sqlite, Some(Scalar::Float)) => sql.push(&super::sqlite_exact_float(col)),
            _ => sql.push(col),
        };
    }

    fn json_wrap_open(&self) -> &'static str {
        match self.dialect {
            // A document coming out of a subquery is text again; json() restores it.
            Dialect::Sqlite => "json(",
            Dialect::Postgres => "(",
        }
    }

    /// Start of `[elements...]` over the rows `(j, p)` of the subquery that follows.
    fn list_open(&self, sql: &mut Sql, elements_are_json: bool) {
        match self.dialect {
            Dialect::Sqlite if elements_are_json => {
                sql.push("json((SELECT json_group_array(json(q.j)) FROM (SELECT j, p FROM ")
            }
            Dialect::Sqlite => sql.push("json((SELECT json_group_array(q.j) FROM (SELECT j, p FROM "),
            Dialect::Postgres => {
                sql.push("((SELECT coalesce(jsonb_agg(q.j ORDER BY q.p), '[]'::jsonb) FROM (SELECT j, p FROM ")
            }
        };
    }

    /// Close the subquery opened by [`Self::list_open`]: order, limit and put back in list order.
    fn list_close(&self, sql: &mut Sql, page: &ListPage) {
        if page.from_end {
            sql.push(" ORDER BY p DESC LIMIT ").bind(i64::from(page.limit));
        } else {
            sql.push(" ORDER BY p LIMIT ").bind(i64::from(page.limit));
        }
        sql.push(") s ORDER BY p) q))");
    }
}

/// Stand-ins for the values a request brings, in a statement rendered once ([`GetTemplate`]),
/// found again among its values by equality. The other values of a `get` statement are JSON
/// keys (GraphQL names and `&` + an alias), type names and numbers, none of which holds a NUL,
/// so none is taken for a stand-in.
const STAND_IN_INSTANCE: &str = "\0instance";
const STAND_IN_ID: &str = "\0id";
const STAND_IN_ACCOUNT: &str = "\0account";

/// `get_by_id`'s statement for one selection, `include_trashed` and kind of viewer (admin,
/// anonymous, an account: what the access rules' SQL depends on), rendered once: its text, the
/// values that do not depend on the request, and where the request's values go.
#[derive(Debug)]
pub struct GetTemplate {
    sql: Sql,
    slots: Vec<(usize, Slot)>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Instance,
    Id,
    Account,
}

impl GetTemplate {
    /// The statement for `instance`, `id` and `viewer` (of the kind the template was rendered
    /// for): what `get_by_id` renders for them, value for value.
    pub fn bind(&self, instance: &str, id: &str, viewer: &Viewer) -> Sql {
        let mut sql = self.sql.clone();
        for (i, slot) in &self.slots {
            let value = match slot {
                Slot::Instance => instance,
                Slot::Id => id,
                Slot::Account => viewer.account().unwrap_or_default(),
            };
            sql.binds[*i] = SqlValue::Text(value.to_string());
        }
        sql
    }
}

/// [`ReadRenderer::decode`]: what a document needs of the renderer is its model.
pub fn decode(model: &Model, sel: &ObjectSelection, text: &str) -> Result<serde_json::Value, crate::error::ApiError> {
    let mut doc: serde_json::Value = serde_json::from_str(text).map_err(crate::error::ApiError::internal)?;
    normalize(model, sel, &mut doc);
    Ok(doc)
}

/// Put the members of `doc` that `sel` selected into their model types (see
/// [`ReadRenderer::decode`]).
pub fn normalize(model: &Model, sel: &ObjectSelection, doc: &mut serde_json::Value) {
    let ty = &model.types[sel.type_idx];
    let Some(obj) = doc.as_object_mut() else { return };
    for item in &sel.items {
        match item {
            Item::Column(f) => {
                let field = &ty.fields[*f];
                if let Some(v) = obj.get_mut(field.name.as_str()) {
                    scalar(field.value_scalar(), v);
                }
            }
            Item::Hypi(_) | Item::Attachments => {}
            Item::Ref { key, sub, .. } => {
                if let Some(v) = obj.get_mut(crate::plan::read::ref_key(key).as_str()) {
                    normalize(model, sub, v);
                }
            }
            Item::RefList { key, sub, .. } => {
                if let Some(serde_json::Value::Array(items)) = obj.get_mut(crate::plan::read::ref_key(key).as_str()) {
                    for v in items {
                        normalize(model, sub, v);
                    }
                }
            }
            Item::ValueList { field, key, .. } => {
                let scalar_kind = ty.fields[*field].value_scalar();
                if let Some(serde_json::Value::Array(items)) = obj.get_mut(crate::plan::read::ref_key(key).as_str()) {
                    for v in items {
                        scalar(scalar_kind, v);
                    }
                }
            }
        }
    }
}

/// Whether [`scalar`] leaves every string of `kind` as it is (it reads a string only as a
/// Json field's stored text).
pub fn keeps_strings(kind: Option<Scalar>) -> bool {
    kind != Some(Scalar::Json)
}

/// One stored scalar in its model type: Booleans from 0/1, Floats as floats (integral ones
/// too, and -0.0 as 0.0: the databases disagree on its sign), Json from its stored text.
pub fn scalar(kind: Option<Scalar>, v: &mut serde_json::Value) {
    match (kind, &*v) {
        (Some(Scalar::Boolean), serde_json::Value::Number(n)) => *v = serde_json::Value::Bool(n.as_i64() != Some(0)),
        (Some(Scalar::Float), serde_json::Value::Number(n)) => {
            if let Some(f) = n.as_f64().map(canonical_float).and_then(serde_json::Number::from_f64) {
                *v = serde_json::Value::Number(f);
            }
        }
        (Some(Scalar::Json), serde_json::Value::String(text)) => {
            if let Ok(parsed) = serde_json::from_str(text) {
                *v = parsed;
            }
        }
        _ => {}
    }
}

/// A double as both databases answer it: -0.0 is 0.0.
pub fn canonical_float(f: f64) -> f64 {
    if f == 0.0 {
        0.0
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_template_bound_is_the_statement_rendered_for_the_request() {
        let model = crate::model::parse_sdl(
            "type Note { text: String score: Float flag: Boolean }\ntype Open @access(read: PUBLIC) { name: String }",
        )
        .unwrap();
        for ty in ["Note", "Open"] {
            let (t, _) = model.type_by_name(ty).unwrap();
            let mut sel = ObjectSelection::new(t);
            sel.add_column(0);
            if ty == "Note" {
                sel.add_column(2);
            }
            sel.add_hypi(&[HypiField::Id, HypiField::Created]);
            let viewers =
                [Viewer::Admin, Viewer::Anonymous, Viewer::Account("acc1".into()), Viewer::Account("acc2".into())];
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                for viewer in &viewers {
                    for trashed in [false, true] {
                        let r = ReadRenderer { model: &model, app: "app", dialect, viewer };
                        let kept = r.get_template(&sel, trashed);
                        // A template made for another account of the same kind serves this one.
                        let other = Viewer::Account("someone".into());
                        let theirs = match viewer {
                            Viewer::Account(_) => ReadRenderer { viewer: &other, ..r }.get_template(&sel, trashed),
                            _ => r.get_template(&sel, trashed),
                        };
                        for (instance, id) in [("default", "o1"), ("tenant-2", "01HZX")] {
                            let direct = r.get_by_id(&sel, instance, id, trashed);
                            assert_eq!(kept.bind(instance, id, viewer), direct, "{ty} {dialect:?} {viewer:?}");
                            assert_eq!(theirs.bind(instance, id, viewer), direct, "{ty} {dialect:?} {viewer:?}");
                        }
                    }
                }
            }
        }
    }
}
