//! Statements of the built-in hyper services: the store rows every service shares, JSON
//! paths and selectors over stored documents (SQLite's JSON functions, PostgreSQL's jsonb),
//! and one module per service.
//!
//! A store's rows are reached either through its row (`store_id = (SELECT id FROM
//! hyper_stores WHERE instance_id = ? AND service = ? AND name = ?)`, so no statement can
//! reach another instance's rows) or, once that row was read in the same request, by its id
//! written as a number (an id from the database, never from a client), so that the
//! per-store partial indexes of `_index` match the query.
//!
//! Field paths whose segments are plain names are written as literals (an index over the
//! same path then serves the query); any other path is bound.

pub mod attachments;
pub mod cache;
pub mod counts;
pub mod data;
pub mod keys;
pub mod queue;
pub mod search;
pub mod storage;
pub mod sync;

use serde_json::Value;

use super::{Dialect, Sql, SqlValue};
use crate::hyper::data::{Cond, FieldPath, Selector, SortKey};
use crate::hyper::Service;

/// Append `(SELECT id FROM hyper_stores WHERE ...)`: the id of the caller's store.
pub(crate) fn store_id_of(sql: &mut Sql, instance: &str, service: Service, name: &str) {
    sql.push("(SELECT id FROM hyper_stores WHERE instance_id = ").bind(instance);
    sql.push(" AND service = ").bind(service.as_str()).push(" AND name = ").bind(name).push(")");
}

/// Append ` s.instance_id = ? AND s.service = ? AND s.name = ?` for a store row aliased `s`.
pub(crate) fn store_is(sql: &mut Sql, instance: &str, service: Service, name: &str) {
    sql.push("s.instance_id = ").bind(instance).push(" AND s.service = ").bind(service.as_str());
    sql.push(" AND s.name = ").bind(name);
}

/// A store row: `id, config, target`.
pub fn store_row(dialect: Dialect, instance: &str, service: Service, name: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT s.id, s.config, s.target FROM hyper_stores s WHERE ");
    store_is(&mut sql, instance, service, name);
    sql
}

/// Create a store unless it exists; returns its id when it was created.
pub fn insert_store(dialect: Dialect, instance: &str, service: Service, name: &str, config: &Value, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO hyper_stores (instance_id, service, name, config, created_at) VALUES (").bind(instance);
    sql.push(", ").bind(service.as_str()).push(", ").bind(name).push(", ").bind(config.to_string());
    sql.push(", ").bind(now).push(") ON CONFLICT (instance_id, service, name) DO NOTHING RETURNING id");
    sql
}

/// Remove a store (and, by cascade, everything in it).
pub fn delete_store(dialect: Dialect, id: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM hyper_stores WHERE id = ").bind(id);
    sql
}

/// Set a store's configuration (and a queue's target).
pub fn set_store_config(dialect: Dialect, id: i64, config: &Value, target: Option<&str>) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE hyper_stores SET config = ").bind(config.to_string());
    sql.push(", target = ").value(target.map(str::to_string).into()).push(" WHERE id = ").bind(id);
    sql
}

/// The document column a selector reads: `alias.body` (SQLite, JSON text) or `alias.doc`
/// (PostgreSQL, jsonb).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Docs {
    pub dialect: Dialect,
    pub alias: &'static str,
}

impl Docs {
    /// The column `name` of the documents (unqualified for index definitions).
    fn col(&self, sql: &mut Sql, name: &str) {
        if !self.alias.is_empty() {
            sql.push(self.alias).push(".");
        }
        sql.push(name);
    }

    /// SQLite: the JSON path of `p`: a literal for plain names, else bound.
    fn sqlite_path(&self, sql: &mut Sql, p: &FieldPath) {
        let mut text = String::from("$");
        for seg in &p.0 {
            if p.is_plain() {
                text.push('.');
                text.push_str(seg);
            } else {
                text.push_str(".\"");
                text.push_str(seg);
                text.push('"');
            }
        }
        if p.is_plain() {
            sql.push("'").push(&text).push("'");
        } else {
            sql.bind(text);
        }
    }

    /// The JSON value at `p` (SQLite: `json_extract`, a SQL value; PostgreSQL: jsonb).
    fn json(&self, sql: &mut Sql, p: &FieldPath) {
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("json_extract(");
                self.col(sql, "body");
                sql.push(", ");
                self.sqlite_path(sql, p);
                sql.push(")");
            }
            Dialect::Postgres => {
                sql.push("(");
                self.col(sql, "doc");
                for seg in &p.0 {
                    sql.push(" -> ");
                    if p.is_plain() {
                        sql.push("'").push(seg).push("'");
                    } else {
                        sql.bind(seg.as_str());
                    }
                }
                sql.push(")");
            }
        }
    }

    /// The JSON type at `p`: SQLite's `json_type` names (`null true false integer real text
    /// array object`, SQL NULL when missing); PostgreSQL's `jsonb_typeof` (`null boolean
    /// number string array object`).
    fn typ(&self, sql: &mut Sql, p: &FieldPath) {
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("json_type(");
                self.col(sql, "body");
                sql.push(", ");
                self.sqlite_path(sql, p);
                sql.push(")");
            }
            Dialect::Postgres => {
                sql.push("jsonb_typeof(");
                self.json(sql, p);
                sql.push(")");
            }
        }
    }

    /// PostgreSQL: the string at `p` (NULL for other types), in code-point order.
    fn pg_string(&self, sql: &mut Sql, p: &FieldPath) {
        sql.push("(CASE WHEN ");
        self.typ(sql, p);
        sql.push(" = 'string' THEN ");
        self.json(sql, p);
        sql.push(" #>> '{}' END) COLLATE \"C\"");
    }

    /// PostgreSQL: the number at `p` as numeric (NULL for other types).
    fn pg_number(&self, sql: &mut Sql, p: &FieldPath) {
        sql.push("(CASE WHEN ");
        self.typ(sql, p);
        sql.push(" = 'number' THEN (");
        self.json(sql, p);
        sql.push(" #>> '{}')::numeric END)");
    }

    /// The expressions an index over `p` is built on, as the queries write them.
    pub fn index_exprs(&self, p: &FieldPath) -> Vec<String> {
        let mut out = Vec::new();
        match self.dialect {
            Dialect::Sqlite => {
                let mut s = Sql::new(self.dialect);
                self.json(&mut s, p);
                out.push(s.text);
            }
            Dialect::Postgres => {
                let mut s = Sql::new(self.dialect);
                self.pg_string(&mut s, p);
                out.push(s.text);
                let mut n = Sql::new(self.dialect);
                self.pg_number(&mut n, p);
                out.push(n.text);
            }
        }
        out
    }

    /// Append the condition of `sel`.
    pub fn selector(&self, sql: &mut Sql, sel: &Selector) {
        match sel {
            Selector::All => {
                sql.push("TRUE");
            }
            Selector::And(xs) | Selector::Or(xs) => {
                let sep = if matches!(sel, Selector::And(_)) { " AND " } else { " OR " };
                sql.push("(");
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        sql.push(sep);
                    }
                    self.selector(sql, x);
                }
                sql.push(")");
            }
            Selector::Nor(xs) => {
                sql.push("NOT COALESCE(");
                self.selector(sql, &Selector::Or(xs.clone()));
                sql.push(", FALSE)");
            }
            Selector::Not(x) => {
                sql.push("NOT COALESCE(");
                self.selector(sql, x);
                sql.push(", FALSE)");
            }
            Selector::Field(p, cond) => self.cond(sql, p, cond),
        }
    }

    fn cond(&self, sql: &mut Sql, p: &FieldPath, cond: &Cond) {
        match cond {
            Cond::Eq(v) => self.eq(sql, p, v),
            Cond::Ne(v) => {
                sql.push("NOT COALESCE(");
                self.eq(sql, p, v);
                sql.push(", FALSE)");
            }
            Cond::In(xs) => self.any_of(sql, p, xs),
            Cond::Nin(xs) => {
                sql.push("NOT COALESCE(");
                self.any_of(sql, p, xs);
                sql.push(", FALSE)");
            }
            Cond::Exists(b) => {
                match self.dialect {
                    Dialect::Sqlite => self.typ(sql, p),
                    Dialect::Postgres => self.json(sql, p),
                }
                sql.push(if *b { " IS NOT NULL" } else { " IS NULL" });
            }
            Cond::Gt(v) => self.range(sql, p, ">", v),
            Cond::Gte(v) => self.range(sql, p, ">=", v),
            Cond::Lt(v) => self.range(sql, p, "<", v),
            Cond::Lte(v) => self.range(sql, p, "<=", v),
        }
    }

    /// Append `typ IN ('a', 'b')` for fixed type names.
    fn type_in(&self, sql: &mut Sql, p: &FieldPath, names: &[&str]) {
        self.typ(sql, p);
        sql.push(" IN (");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("'").push(n).push("'");
        }
        sql.push(")");
    }

    /// A comparison of the string or number at `p` with `op` and bound values.
    fn compare_scalar(&self, sql: &mut Sql, p: &FieldPath, v: &Value, op: &str) {
        match (self.dialect, v) {
            (Dialect::Sqlite, Value::String(_) | Value::Number(_)) => {
                sql.push("(");
                match v {
                    Value::String(_) => self.type_in(sql, p, &["text"]),
                    _ => self.type_in(sql, p, &["integer", "real"]),
                }
                sql.push(" AND ");
                self.json(sql, p);
                sql.push(" ").push(op).push(" ").bind(scalar(v)).push(")");
            }
            (Dialect::Postgres, Value::String(s)) => {
                self.pg_string(sql, p);
                sql.push(" ").push(op).push(" ").bind(s.as_str());
            }
            (Dialect::Postgres, Value::Number(n)) => {
                self.pg_number(sql, p);
                sql.push(" ").push(op).push(" CAST(").bind(n.to_string()).push(" AS numeric)");
            }
            _ => unreachable!("only strings and numbers are compared with bound values"),
        }
    }

    fn eq(&self, sql: &mut Sql, p: &FieldPath, v: &Value) {
        match v {
            Value::String(_) | Value::Number(_) => self.compare_scalar(sql, p, v, "="),
            Value::Bool(b) => self.bools(sql, p, &[*b]),
            Value::Null => self.type_in(sql, p, &["null"]),
            Value::Array(_) | Value::Object(_) => {
                let kind = if v.is_array() { "array" } else { "object" };
                sql.push("(");
                self.type_in(sql, p, &[kind]);
                sql.push(" AND ");
                self.json(sql, p);
                match self.dialect {
                    Dialect::Sqlite => sql.push(" = json(").bind(v.to_string()).push("))"),
                    Dialect::Postgres => sql.push(" = CAST(").bind(v.to_string()).push(" AS jsonb))"),
                };
            }
        }
    }

    /// The boolean at `p` is one of `values`.
    fn bools(&self, sql: &mut Sql, p: &FieldPath, values: &[bool]) {
        if values.is_empty() {
            sql.push("FALSE");
            return;
        }
        match self.dialect {
            Dialect::Sqlite => {
                let names: Vec<&str> = values.iter().map(|b| if *b { "true" } else { "false" }).collect();
                self.type_in(sql, p, &names);
            }
            Dialect::Postgres => {
                sql.push("(");
                self.type_in(sql, p, &["boolean"]);
                sql.push(" AND ");
                self.json(sql, p);
                sql.push(" #>> '{}' IN (");
                for (i, b) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push(if *b { "'true'" } else { "'false'" });
                }
                sql.push("))");
            }
        }
    }

    /// `$in`: strings together, numbers together, the rest one by one.
    fn any_of(&self, sql: &mut Sql, p: &FieldPath, xs: &[Value]) {
        let strings: Vec<&Value> = xs.iter().filter(|v| v.is_string()).collect();
        let numbers: Vec<&Value> = xs.iter().filter(|v| v.is_number()).collect();
        let others: Vec<&Value> = xs.iter().filter(|v| !v.is_string() && !v.is_number()).collect();
        let mut parts = 0;
        sql.push("(");
        for group in [&strings, &numbers] {
            if group.is_empty() {
                continue;
            }
            if parts > 0 {
                sql.push(" OR ");
            }
            parts += 1;
            match self.dialect {
                Dialect::Sqlite => {
                    sql.push("(");
                    if group[0].is_string() {
                        self.type_in(sql, p, &["text"]);
                    } else {
                        self.type_in(sql, p, &["integer", "real"]);
                    }
                    sql.push(" AND ");
                    self.json(sql, p);
                    sql.push(" IN (");
                    for (i, v) in group.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        sql.bind(scalar(v));
                    }
                    sql.push("))");
                }
                Dialect::Postgres => {
                    if group[0].is_string() {
                        self.pg_string(sql, p);
                        sql.push(" IN (");
                        for (i, v) in group.iter().enumerate() {
                            if i > 0 {
                                sql.push(", ");
                            }
                            sql.bind(v.as_str().unwrap_or_default());
                        }
                    } else {
                        self.pg_number(sql, p);
                        sql.push(" IN (");
                        for (i, v) in group.iter().enumerate() {
                            if i > 0 {
                                sql.push(", ");
                            }
                            sql.push("CAST(").bind(v.to_string()).push(" AS numeric)");
                        }
                    }
                    sql.push(")");
                }
            }
        }
        for v in others {
            if parts > 0 {
                sql.push(" OR ");
            }
            parts += 1;
            self.eq(sql, p, v);
        }
        if parts == 0 {
            sql.push("FALSE");
        }
        sql.push(")");
    }

    /// `$gt $gte $lt $lte`: within the operand's type.
    fn range(&self, sql: &mut Sql, p: &FieldPath, op: &str, v: &Value) {
        match v {
            Value::String(_) | Value::Number(_) => self.compare_scalar(sql, p, v, op),
            Value::Bool(b) => {
                let keep: Vec<bool> = [false, true]
                    .into_iter()
                    .filter(|x| match op {
                        ">" => x > b,
                        ">=" => x >= b,
                        "<" => x < b,
                        _ => x <= b,
                    })
                    .collect();
                self.bools(sql, p, &keep);
            }
            Value::Null if op.ends_with('=') => self.type_in(sql, p, &["null"]),
            _ => {
                sql.push("FALSE");
            }
        }
    }

    /// Append the ORDER BY keys of `sort` (CouchDB's order of types, then values), then the
    /// id column `id_col`, in the direction of the first key.
    pub fn order_by(&self, sql: &mut Sql, sort: &[SortKey], id_col: &str) {
        sql.push(" ORDER BY ");
        for k in sort {
            let dir = if k.descending { " DESC, " } else { " ASC, " };
            sql.push("CASE ");
            self.typ(sql, &k.path);
            match self.dialect {
                Dialect::Sqlite => sql.push(
                    " WHEN 'null' THEN 1 WHEN 'false' THEN 2 WHEN 'true' THEN 3 WHEN 'integer' THEN 4 WHEN 'real' THEN 4 WHEN 'text' THEN 5 WHEN 'array' THEN 6 WHEN 'object' THEN 7 ELSE 0 END",
                ),
                Dialect::Postgres => {
                    sql.push(" WHEN 'null' THEN 1 WHEN 'boolean' THEN CASE WHEN ");
                    self.json(sql, &k.path);
                    sql.push(" #>> '{}' = 'true' THEN 3 ELSE 2 END WHEN 'number' THEN 4 WHEN 'string' THEN 5 WHEN 'array' THEN 6 WHEN 'object' THEN 7 ELSE 0 END")
                }
            };
            sql.push(dir);
            match self.dialect {
                Dialect::Sqlite => {
                    self.json(sql, &k.path);
                    sql.push(dir);
                }
                Dialect::Postgres => {
                    self.pg_number(sql, &k.path);
                    sql.push(dir);
                    self.pg_string(sql, &k.path);
                    sql.push(dir);
                    // Arrays and objects by their text; numbers only by value (1 = 1.0).
                    sql.push("CASE WHEN ");
                    self.typ(sql, &k.path);
                    sql.push(" IN ('array', 'object') THEN (");
                    self.json(sql, &k.path);
                    sql.push(")::text END COLLATE \"C\"");
                    sql.push(dir);
                }
            }
        }
        let last = if sort.first().is_some_and(|k| k.descending) { " DESC" } else { " ASC" };
        sql.push(id_col).push(last);
    }
}

/// A JSON string or number as a bound value (SQLite compares them with its typed values).
fn scalar(v: &Value) -> SqlValue {
    match v {
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Int(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        _ => SqlValue::Null,
    }
}

/// Append ` LIMIT ? OFFSET ?`.
pub(crate) fn page(sql: &mut Sql, limit: u32, offset: u64) {
    sql.push(" LIMIT ").bind(i64::from(limit));
    if offset > 0 {
        sql.push(" OFFSET ").bind(offset.min(i64::MAX as u64) as i64);
    }
}
