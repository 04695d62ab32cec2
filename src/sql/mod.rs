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

    /// Append `items` as a comma-separated list of placeholders (the inside of `IN (...)`), or
    /// `NULL` when there are none: `x IN (NULL)` matches nothing, where `IN ()` is no SQL.
    pub fn bind_list(&mut self, items: &[String]) -> &mut Self {
        if items.is_empty() {
            self.text.push_str("NULL");
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(item.as_str());
        }
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
                let mut out = String::with_capacity(self.text.len() + 3 * self.binds.len());
                let mut n = 0u64;
                let mut rest = self.text.as_str();
                while let Some(at) = rest.find('?') {
                    out.push_str(&rest[..at]);
                    n += 1;
                    out.push('$');
                    push_decimal(&mut out, n);
                    rest = &rest[at + 1..];
                }
                out.push_str(rest);
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

/// Append `n` in decimal (a placeholder's number: no formatter, no allocation).
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
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

/// The least string above every string that starts with `prefix`, in SQLite's text order
/// (binary: UTF-8 bytes, which is code point order): the prefix with its last character moved
/// one up, characters at the top of the range dropped first. `None` when there is none (an
/// empty prefix, or one of such characters only).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        // One up, over the surrogates (no `char` lies among them).
        let up = match u32::from(c) + 1 {
            0xD800 => 0xE000,
            n => n,
        };
        if let Some(next) = char::from_u32(up) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// SQLite: `e >= prefix AND e < prefix_end(prefix) AND ` (the second part when there is an
/// end), the range of an index on `e` that holds every text starting with `prefix`, to go
/// before the `GLOB` that tests it. SQLite would make that range itself out of a `GLOB`
/// pattern, but not out of a bound one under the query planner stability guarantee that the
/// read connections keep (`store/inline.rs`), so it is written out. Exact for text; the `GLOB`
/// still decides.
pub fn prefix_range(sql: &mut Sql, e: &str, prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    sql.push(e).push(" >= ").bind(prefix).push(" AND ");
    if let Some(end) = prefix_end(prefix) {
        sql.push(e).push(" < ").bind(end).push(" AND ");
    }
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

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        use super::{Dialect, Sql};
        let mut sql = Sql::new(Dialect::Postgres);
        sql.push("SELECT ");
        for i in 0..12 {
            sql.push(if i > 0 { ", " } else { "" }).bind(i);
        }
        sql.push(" FROM t");
        let want: Vec<String> = (1..=12).map(|n| format!("${n}")).collect();
        assert_eq!(sql.driver_text(), format!("SELECT {} FROM t", want.join(", ")));
        assert_eq!(Sql::with_binds(Dialect::Postgres, "x", Vec::new()).driver_text(), "x");
        assert_eq!(Sql::with_binds(Dialect::Postgres, "?", Vec::new()).driver_text(), "$1");
        let mut s = String::new();
        for n in [0, 9, 10, 99, 100, 12345, u64::MAX] {
            s.clear();
            super::push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn the_end_of_a_prefix_is_the_least_text_above_all_it_starts() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        // Every text that starts with the prefix sorts below the end, in byte order as SQLite
        // compares text, and the first texts that do not start with it do not.
        for prefix in ["title 7777", "z\u{7F}", "é", "a\u{FFFF}"] {
            let end = prefix_end(prefix).unwrap();
            for tail in ["", "\u{0}", "zzz", "\u{10FFFF}\u{10FFFF}", "é"] {
                let t = format!("{prefix}{tail}");
                assert!(prefix.as_bytes() <= t.as_bytes() && t.as_bytes() < end.as_bytes(), "{t:?} {end:?}");
            }
            assert!(!end.starts_with(prefix));
        }
    }
}
