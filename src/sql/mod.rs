//! Plans → SQL text with bound values. The only module that writes SQL.
//!
//! Every value goes into [`Sql::binds`] and appears in the text only as a placeholder; every
//! identifier comes from the validated [`crate::model::Model`] (or is a fixed system name) and
//! is quoted by [`quote`]. Dialect differences are kept in [`Dialect`] methods so the
//! renderers read the same for SQLite and PostgreSQL.
//!
//! Invariants: no I/O, not async.

pub mod account;
pub mod aggregate;
pub mod changes;
pub mod ddl;
pub mod filter;
pub mod find;
pub mod hyper;
pub mod names;
pub mod read;
pub mod registry;
pub mod system;
pub mod write;

pub use crate::access::Viewer;
pub use crate::value::SqlValue;

/// The access rules of `@access`, rendered: every generated statement limits the rows it
/// reads or changes to those the viewer may see or change, so an object the caller may not see
/// behaves exactly like a missing one.
impl Viewer {
    /// Append ` AND <condition>` limiting `alias` (a row of type `type_idx`) to what the
    /// viewer may read (`write = false`) or change; nothing when everything is allowed.
    pub fn restrict(&self, sql: &mut Sql, model: &crate::model::Model, type_idx: usize, alias: &str, write: bool) {
        use crate::access::Allowed;
        match self.allowed(model, type_idx, write) {
            Allowed::All => {}
            Allowed::Nothing => {
                sql.push(" AND FALSE");
            }
            Allowed::CreatedBy(id) => {
                sql.push(" AND ").push(alias).push(".").push(names::COL_CREATED_BY).push(" = ").bind(id);
            }
        }
    }
}

/// The SQL dialect a statement is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A rendered statement: text with placeholders and the values bound to them, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<SqlValue>,
    dialect: Dialect,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Sql { text: String::with_capacity(256), binds: Vec::new(), dialect }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A statement from text with `?` placeholders and their values (tests, maintenance).
    pub fn with_binds(dialect: Dialect, text: &str, binds: Vec<SqlValue>) -> Self {
        Sql { text: text.to_string(), binds, dialect }
    }

    /// Append SQL text. Only for fixed text and identifiers quoted with [`quote`].
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append a placeholder bound to `value`. Placeholders are written `?` while rendering
    /// so fragments can be rendered apart and joined with [`Sql::append`];
    /// [`Sql::driver_text`] numbers them for PostgreSQL. Rendered SQL contains no string
    /// literals that could hold a `?`.
    pub fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.binds.push(value.into());
        self.text.push('?');
        self
    }

    /// Append a value: `NULL` as the keyword (so PostgreSQL never has to guess the type of
    /// an untyped null parameter), anything else bound.
    pub fn value(&mut self, value: SqlValue) -> &mut Self {
        if value == SqlValue::Null {
            self.text.push_str("NULL");
            self
        } else {
            self.bind(value)
        }
    }

    /// Append another fragment: its text and then its values.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self
    }

    /// The text as the driver wants it: `?` for SQLite, `$1, $2, ...` for PostgreSQL.
    pub fn driver_text(&self) -> std::borrow::Cow<'_, str> {
        match self.dialect {
            Dialect::Sqlite => std::borrow::Cow::Borrowed(&self.text),
            Dialect::Postgres => {
                let mut out = String::with_capacity(self.text.len() + 16);
                let mut n = 0;
                for c in self.text.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// Append a quoted identifier.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        quote_into(&mut self.text, name);
        self
    }
}

/// A SQLite expression printing the REAL `e` as a JSON number that reads back as the same
/// double. SQLite prints a REAL in JSON with only 15 significant digits, which loses
/// precision (`1.2345678901234567` comes back as `1.23456789012346`) and turns the largest
/// doubles into numbers out of range; 17 significant digits always identify a double, and the
/// decode (`read::scalar`) prints it again in its shortest form. (Choosing fewer digits by
/// reading them back in SQL is wrong: SQLite's text-to-double conversion is not correctly
/// rounded.)
pub fn sqlite_exact_float(e: &str) -> String {
    format!("CASE WHEN {e} IS NULL THEN NULL ELSE json(printf('%!.17g', {e})) END")
}

/// Quote an identifier: `"name"`, with embedded quotes doubled (names from the model never
/// contain any, but quoting is total so no identifier can change the statement's shape).
pub fn quote(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    quote_into(&mut s, name);
    s
}

fn quote_into(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}
