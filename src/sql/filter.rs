//! Typed filters and sort keys → SQL conditions, joins and ORDER BY, per dialect.
//!
//! One-to-one paths become `LEFT JOIN`s of the scope they start in (one join per distinct
//! path, shared by filter and sort); list paths become `EXISTS` subqueries with a scope of
//! their own. `NOT` is two-valued: `NOT COALESCE(c, FALSE)`, so an object whose field is
//! missing matches `NOT a = 'x'`. Every value is bound.

use super::names::*;
use super::{quote, Dialect, Sql, SqlValue, Viewer};
use crate::model::Model;
use crate::plan::filter::{is_separator, Col, Cond, Hop, Leaf, SortPlan, Target, Test};

/// Earth's mean radius in km (IUGG), for `geo`.
const EARTH_KM: f64 = 6371.0088;

/// The `FROM` item a condition is evaluated against, and the joins it needed.
pub struct Scope {
    pub alias: String,
    pub type_idx: usize,
    joins: Vec<(Vec<Hop>, String)>,
    join_sql: Option<Sql>,
}

impl Scope {
    pub fn new(alias: &str, type_idx: usize) -> Self {
        Scope { alias: alias.to_string(), type_idx, joins: Vec::new(), join_sql: None }
    }

    /// The `LEFT JOIN ...` this scope needs after its `FROM` item (with the viewer's bound
    /// values): append it before the scope's `WHERE`.
    pub fn joins(&self) -> Sql {
        self.join_sql.clone().unwrap_or_else(|| Sql::new(Dialect::Sqlite))
    }
}

pub struct FilterRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
    /// Prefix of every alias this renderer makes, unique per renderer within a statement.
    tag: String,
    next: usize,
    /// Objects reached through references and lists are limited to what this viewer may read.
    viewer: Viewer,
}

impl<'a> FilterRenderer<'a> {
    pub fn new(model: &'a Model, app: &'a str, dialect: Dialect) -> Self {
        Self::tagged(model, app, dialect, "f")
    }

    /// A renderer whose aliases start with `tag` (for several filters in one statement).
    pub fn tagged(model: &'a Model, app: &'a str, dialect: Dialect, tag: &str) -> Self {
        FilterRenderer { model, app, dialect, tag: tag.to_string(), next: 0, viewer: Viewer::Admin }
    }

    /// Limit referenced objects to what `viewer` may read.
    pub fn with_viewer(mut self, viewer: &Viewer) -> Self {
        self.viewer = viewer.clone();
        self
    }

    /// ` AND <row visible to the viewer>` for `alias` of type `type_idx`.
    pub fn restrict(&self, sql: &mut Sql, type_idx: usize, alias: &str, write: bool) {
        self.viewer.restrict(sql, self.model, type_idx, alias, write);
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{}{prefix}{}", self.tag, self.next)
    }

    /// The alias of the object reached from `scope` through one-to-one `hops`, adding joins.
    fn join_path(&mut self, scope: &mut Scope, hops: &[Hop]) -> String {
        let mut alias = scope.alias.clone();
        for i in 0..hops.len() {
            let key = hops[..=i].to_vec();
            if let Some((_, a)) = scope.joins.iter().find(|(k, _)| *k == key) {
                alias = a.clone();
                continue;
            }
            let Hop::Ref { from, field, to } = hops[i] else { continue };
            let j = self.fresh("j");
            let col = quote(column(&self.model.types[from].fields[field]));
            let dialect = self.dialect;
            let js = scope.join_sql.get_or_insert_with(|| Sql::new(dialect));
            js.push(&format!(
                " LEFT JOIN {} {j} ON {j}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {j}.{COL_ID} = {alias}.{col} AND {j}.{COL_TRASHED} IS NULL",
                quote(&object_table(self.app, &self.model.types[to]))
            ));
            self.viewer.restrict(js, self.model, to, &j, false);
            scope.joins.push((key, j.clone()));
            alias = j;
        }
        alias
    }

    fn col_expr(&self, alias: &str, col: Col) -> String {
        match col {
            Col::Field { type_idx, field } => {
                format!("{alias}.{}", quote(column(&self.model.types[type_idx].fields[field])))
            }
            Col::System(name) => format!("{alias}.{name}"),
        }
    }

    /// Render `cond` for `scope` into `sql`.
    pub fn cond(&mut self, sql: &mut Sql, scope: &mut Scope, cond: &Cond) {
        match cond {
            Cond::And(xs) | Cond::Or(xs) => {
                let sep = if matches!(cond, Cond::And(_)) { " AND " } else { " OR " };
                sql.push("(");
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        sql.push(sep);
                    }
                    self.cond(sql, scope, x);
                }
                sql.push(")");
            }
            Cond::Not(x) => {
                sql.push("NOT COALESCE(");
                self.cond(sql, scope, x);
                sql.push(", FALSE)");
            }
            Cond::Leaf(leaf) => self.leaf(sql, scope, leaf, 0),
            Cond::Geo { lat, lon, radius_km, lat_col, lon_col } => {
                let la = self.col_expr(&scope.alias, *lat_col);
                let lo = self.col_expr(&scope.alias, *lon_col);
                // dot of the two unit vectors >= cos(central angle); trig by polynomials so
                // both dialects compute exactly the same thing without math extensions.
                let dlon = {
                    let mut s = Sql::new(self.dialect);
                    s.push(&format!("abs({lo} - ")).bind(SqlValue::Real(*lon)).push(")");
                    s
                };
                let reduced = {
                    let mut s = Sql::new(self.dialect);
                    s.push("(CASE WHEN ").append(dlon.clone()).push(" > ").bind(SqlValue::Real(std::f64::consts::PI));
                    s.push(" THEN ").bind(SqlValue::Real(2.0 * std::f64::consts::PI)).push(" - ").append(dlon.clone());
                    s.push(" ELSE ").append(dlon).push(" END)");
                    s
                };
                sql.push("(").push(&format!("{la} IS NOT NULL AND {lo} IS NOT NULL AND "));
                sql.bind(SqlValue::Real(lat.sin())).push(" * ");
                sin_poly(sql, &Sql::raw(self.dialect, &la));
                sql.push(" + ").bind(SqlValue::Real(lat.cos())).push(" * ");
                cos_poly(sql, &Sql::raw(self.dialect, &la));
                sql.push(" * ");
                cos_poly(sql, &reduced);
                sql.push(" >= ").bind(SqlValue::Real((radius_km / EARTH_KM).min(std::f64::consts::PI).cos()));
                sql.push(")");
            }
        }
    }

    fn leaf(&mut self, sql: &mut Sql, scope: &mut Scope, leaf: &Leaf, from: usize) {
        let hops = &leaf.hops[from..];
        let refs = hops.iter().take_while(|h| matches!(h, Hop::Ref { .. })).count();
        let alias = self.join_path(scope, &leaf.hops[from..from + refs]);
        if let Some(Hop::List { from: ft, field, to }) = hops.get(refs).copied() {
            // Some element of the list matches the rest of the path.
            let l = self.fresh("l");
            let x = self.fresh("x");
            let mut inner = Scope::new(&x, to);
            let mut rest = Sql::new(self.dialect);
            self.leaf(&mut rest, &mut inner, leaf, from + refs + 1);
            sql.push(&format!(
                "EXISTS (SELECT 1 FROM {} {l} JOIN {} {x} ON {x}.{COL_INSTANCE} = {l}.{COL_INSTANCE} AND {x}.{COL_ID} = {l}.{LINK_DST}",
                quote(&list_table(self.app, &self.model.types[ft], &self.model.types[ft].fields[field])),
                quote(&object_table(self.app, &self.model.types[to])),
            ));
            sql.append(inner.joins());
            sql.push(&format!(
                " WHERE {l}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {l}.{LINK_SRC} = {alias}.{COL_ID} AND {x}.{COL_TRASHED} IS NULL"
            ));
            self.restrict(sql, to, &x, false);
            sql.push(" AND ").append(rest).push(")");
            return;
        }
        match leaf.target {
            Target::Column { column: col, .. } => {
                let e = self.col_expr(&alias, col);
                self.test(sql, &e, &leaf.test);
            }
            Target::Values { type_idx, field, .. } => {
                let v = self.fresh("v");
                let ty = &self.model.types[type_idx];
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM {} {v} WHERE {v}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {v}.{VALUE_OWNER} = {alias}.{COL_ID}",
                    quote(&list_table(self.app, ty, &ty.fields[field]))
                ));
                if leaf.test != Test::NotNull {
                    sql.push(" AND ");
                    self.test(sql, &format!("{v}.{VALUE}"), &leaf.test);
                }
                sql.push(")");
            }
            Target::List { from: ft, field, to } => {
                let l = self.fresh("l");
                let x = self.fresh("x");
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM {} {l} JOIN {} {x} ON {x}.{COL_INSTANCE} = {l}.{COL_INSTANCE} AND {x}.{COL_ID} = {l}.{LINK_DST} \
                     WHERE {l}.{COL_INSTANCE} = {alias}.{COL_INSTANCE} AND {l}.{LINK_SRC} = {alias}.{COL_ID} AND {x}.{COL_TRASHED} IS NULL",
                    quote(&list_table(self.app, &self.model.types[ft], &self.model.types[ft].fields[field])),
                    quote(&object_table(self.app, &self.model.types[to])),
                ));
                self.restrict(sql, to, &x, false);
                sql.push(")");
            }
        }
    }

    fn test(&self, sql: &mut Sql, e: &str, test: &Test) {
        let sqlite = self.dialect == Dialect::Sqlite;
        match test {
            Test::Cmp(op, v) => {
                sql.push(e).push(" ").push(op.sql()).push(" ").bind(v.clone());
            }
            Test::IsNull => {
                sql.push(e).push(" IS NULL");
            }
            Test::NotNull => {
                sql.push(e).push(" IS NOT NULL");
            }
            Test::Words(words) => {
                sql.push("(");
                for (i, w) in words.iter().enumerate() {
                    if i > 0 {
                        sql.push(" AND ");
                    }
                    if sqlite {
                        sql.push(&format!("(' ' || lower({e}) || ' ') GLOB "))
                            .bind(format!("*{SEP_GLOB}{w}{SEP_GLOB}*"));
                    } else {
                        sql.push(&format!("(' ' || translate({e}, ")).bind(ASCII_UPPER).push(", ").bind(ASCII_LOWER);
                        sql.push(") || ' ') ~ ").bind(format!("{SEP_REGEX}{}{SEP_REGEX}", regex_escape(w)));
                    }
                }
                sql.push(")");
            }
            Test::Prefix { prefix, as_text } => {
                let e = text_expr(e, *as_text, self.dialect);
                if sqlite {
                    sql.push("(");
                    super::prefix_range(sql, &e, prefix);
                    sql.push(&e).push(" GLOB ").bind(format!("{}*", glob_escape(prefix))).push(")");
                } else {
                    sql.push(&e).push(" LIKE ").bind(format!("{}%", like_escape(prefix))).push(" ESCAPE '\\'");
                }
            }
            Test::Wildcard { pattern, as_text } => {
                let e = text_expr(e, *as_text, self.dialect);
                if sqlite {
                    let literal: String = pattern.chars().take_while(|c| !matches!(c, '*' | '?')).collect();
                    sql.push("(");
                    super::prefix_range(sql, &e, &literal);
                    sql.push(&e).push(" GLOB ").bind(wildcard_glob(pattern)).push(")");
                } else {
                    sql.push(&e).push(" LIKE ").bind(wildcard_like(pattern)).push(" ESCAPE '\\'");
                }
            }
            Test::In(values) => {
                sql.push(e).push(" IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(v.clone());
                }
                sql.push(")");
            }
            Test::Range { lo, lo_inclusive, hi, hi_inclusive } => {
                sql.push("(").push(e).push(if *lo_inclusive { " >= " } else { " > " }).bind(lo.clone());
                sql.push(" AND ").push(e).push(if *hi_inclusive { " <= " } else { " < " }).bind(hi.clone()).push(")");
            }
        }
    }

    /// `ORDER BY` items for `keys` then the `hypi.id` tie-breaker; `reverse` flips every
    /// direction (for `last`/`before`). Missing values sort as the smallest.
    pub fn order_by(&mut self, scope: &mut Scope, keys: &[SortPlan], reverse: bool) -> String {
        let exprs = self.sort_exprs(scope, keys);
        order_items(self.dialect, &exprs, &format!("{}.{COL_ID}", scope.alias), reverse)
    }

    /// The expression and direction of each sort key, joins added to `scope`.
    pub fn sort_exprs(&mut self, scope: &mut Scope, keys: &[SortPlan]) -> Vec<(String, bool)> {
        keys.iter()
            .map(|k| {
                let alias = self.join_path(scope, &k.hops);
                (self.col_expr(&alias, k.column), k.desc)
            })
            .collect()
    }

    /// Keyset seek: rows strictly after (or, with `backward`, strictly before) the cursor row
    /// whose sort-key values are `values` and id `id`, in the order of `keys` + id ASC.
    pub fn seek(
        &mut self,
        sql: &mut Sql,
        scope: &mut Scope,
        keys: &[SortPlan],
        values: &[SqlValue],
        id: &str,
        backward: bool,
    ) {
        let exprs = self.sort_exprs(scope, keys);
        let id_col = format!("{}.{COL_ID}", scope.alias);
        // Where the first key moves to larger values from a value, `k1 >= c1` first: implied
        // by what follows, but a range the planner can seek in an index on k1, where the OR
        // below alone makes it walk the index from its start to the cursor. (Towards smaller
        // values the rows beyond include the NULLs, which are no range.)
        if let (Some((e, desc)), Some(v)) = (exprs.first(), values.first()) {
            if *desc == backward && *v != SqlValue::Null {
                sql.push(&format!("{e} >= ")).bind(v.clone()).push(" AND ");
            }
        }
        // (k1 beyond c1) OR (k1 = c1 AND ((k2 beyond c2) OR (k2 = c2 AND id beyond cid)))
        let mut closing = 0;
        for ((e, desc), v) in exprs.iter().zip(values) {
            // Moving forward in a DESC key means smaller values; backward flips it.
            let smaller = *desc != backward;
            sql.push("(");
            match (v, smaller) {
                (SqlValue::Null, false) => sql.push(&format!("{e} IS NOT NULL")),
                (SqlValue::Null, true) => sql.push("FALSE"),
                (v, false) => sql.push(&format!("{e} > ")).bind(v.clone()),
                (v, true) => sql.push(&format!("({e} < ")).bind(v.clone()).push(&format!(" OR {e} IS NULL)")),
            };
            sql.push(" OR (");
            match v {
                SqlValue::Null => sql.push(&format!("{e} IS NULL")),
                v => sql.push(&format!("{e} = ")).bind(v.clone()),
            };
            sql.push(" AND ");
            closing += 2;
        }
        sql.push(&format!("{id_col} {} ", if backward { "<" } else { ">" })).bind(id);
        for _ in 0..closing {
            sql.push(")");
        }
    }
}

/// `ORDER BY` items: each key `(expression, descending)` with missing values the smallest (SQLite's
/// own rule; spelled out for PostgreSQL), then `id` ascending; `reverse` flips every direction.
pub fn order_items(dialect: Dialect, keys: &[(String, bool)], id: &str, reverse: bool) -> String {
    let mut items = Vec::with_capacity(keys.len() + 1);
    for (e, desc) in keys {
        items.push(match (dialect, *desc != reverse) {
            (Dialect::Sqlite, false) => format!("{e} ASC"),
            (Dialect::Sqlite, true) => format!("{e} DESC"),
            (Dialect::Postgres, false) => format!("{e} ASC NULLS FIRST"),
            (Dialect::Postgres, true) => format!("{e} DESC NULLS LAST"),
        });
    }
    items.push(format!("{id} {}", if reverse { "DESC" } else { "ASC" }));
    items.join(", ")
}

impl Sql {
    /// A fragment of fixed text (an expression built from identifiers only).
    pub fn raw(dialect: Dialect, text: &str) -> Sql {
        let mut s = Sql::new(dialect);
        s.push(text);
        s
    }
}

/// `sin(x)` for |x| <= pi by its Taylor polynomial to x^19 (truncation error below pi^21/21! ~ 6e-10), Horner form.
fn sin_poly(sql: &mut Sql, x: &Sql) {
    let dens = [6.0, 20.0, 42.0, 72.0, 110.0, 156.0, 210.0, 272.0, 342.0];
    poly(sql, x, &dens, true);
}

/// `cos(x)` for |x| <= pi by its Taylor polynomial to x^18.
fn cos_poly(sql: &mut Sql, x: &Sql) {
    let dens = [2.0, 12.0, 30.0, 56.0, 90.0, 132.0, 182.0, 240.0, 306.0];
    poly(sql, x, &dens, false);
}

/// `[x *] (1 - x²/d1 * (1 - x²/d2 * (...)))`
fn poly(sql: &mut Sql, x: &Sql, dens: &[f64], odd: bool) {
    sql.push("(");
    if odd {
        sql.append(x.clone()).push(" * ");
    }
    for d in dens {
        sql.push("(1.0 - ").append(x.clone()).push(" * ").append(x.clone()).push(&format!(" / {d:.1} * "));
    }
    sql.push("1.0");
    for _ in dens {
        sql.push(")");
    }
    sql.push(")");
}

/// GLOB class of word separators: ASCII characters other than letters and digits.
const SEP_GLOB: &str = "[\u{1}-/:-@[-`{-\u{7f}]";
/// The same class as a PostgreSQL regular expression.
const SEP_REGEX: &str = "[\\x01-/:-@\\[-`{-\\x7f]";
const ASCII_UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ASCII_LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

fn text_expr(e: &str, as_text: bool, dialect: Dialect) -> String {
    match (as_text, dialect) {
        (false, _) => e.to_string(),
        (true, _) => format!("CAST({e} AS TEXT)"),
    }
}

/// Make every character of `s` literal in a GLOB pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// An ArcQL wildcard (`*` any run, `?` one character, everything else literal) as GLOB.
fn wildcard_glob(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            '*' | '?' => out.push(c),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn wildcard_like(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn regex_escape(w: &str) -> String {
    w.chars().map(|c| if is_separator(c) { format!("\\{c}") } else { c.to_string() }).collect()
}
