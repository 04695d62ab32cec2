//! ArcQL, Hypi's one-line filter language: grammar (`arcql.pest`), typed AST with spans,
//! parser, printer.
//!
//! `parse` never panics: bad input is an [`ArcqlError`] with `line:column` and what was
//! expected. Text longer than [`MAX_QUERY_BYTES`] or nested deeper than [`MAX_NESTING`] is
//! refused before the grammar runs, so deep parentheses are an error, not a stack overflow.
//! Meaning (types, fields, SQL) is not checked here: see `plan::filter`.
//!
//! Invariants: no I/O, not async; `parse(&print(&q)) == q` for every parsed `q`.

pub mod ast;
mod parser;
mod printer;

pub use parser::parse;
pub use printer::print;

/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Deepest nesting of parentheses and brackets.
pub const MAX_NESTING: usize = 32;

/// A syntax error: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcqlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The text is longer than [`MAX_QUERY_BYTES`]: a limit (`LIMIT_EXCEEDED`), not a syntax
    /// error.
    pub too_long: bool,
}

impl std::fmt::Display for ArcqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.too_long {
            write!(f, "ArcQL query rejected: {}", self.message)
        } else {
            write!(f, "ArcQL syntax error at {}:{}: {}", self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ArcqlError {}

impl From<ArcqlError> for crate::error::ApiError {
    fn from(e: ArcqlError) -> Self {
        let code =
            if e.too_long { crate::error::ErrorCode::LimitExceeded } else { crate::error::ErrorCode::ArcqlSyntax };
        crate::error::ApiError::new(code, e.to_string())
    }
}

/// 1-based line and column of byte offset `pos` in `text`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= pos {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::ast::*;
    use super::*;

    fn roundtrip(text: &str) -> Query {
        let q = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let printed = print(&q);
        let again = parse(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(q, again, "{text} → {printed}");
        q
    }

    #[test]
    fn forms_parse_and_round_trip() {
        for text in [
            "*",
            "",
            "a = 'x'",
            "a != \"y\" AND b < 3 OR c >= -2.5",
            "title ~ 'blue moon'",
            "name ^ 'Jo' and name * 'J?h*'",
            "price IN [1, 10)",
            "price IN (1, 10]",
            "price in (1, 10)",
            "rating IN ('GOOD', 'BAD',)",
            "rating IN ('GOOD')",
            "n IN (1, 2, 3)",
            "EXIST tags AND NOT EXIST bestbook",
            "NOT (a = 1 OR b = 2)",
            "not not a = 1",
            "geo(0.5, -1.2, 10, 'lat', 'lon')",
            "bestbook.title = 'x' SORT hypi.created",
            "SORT a ASC, b.c, d desc",
            "* SORT a",
            "a = 'it\\'s' AND b = \"say \\\"hi\\\"\" AND c = 'back\\\\slash'",
            "a = true AND b = FALSE AND c = null",
            "((a = 1))",
            "a = 1e3 AND b = 12345678901",
        ] {
            roundtrip(text);
        }
    }

    #[test]
    fn precedence_and_defaults() {
        let q = roundtrip("a = 1 OR b = 2 AND c = 3 SORT x, y ASC");
        let Some(Expr::Or(parts)) = q.filter else { panic!("OR at the top") };
        assert!(matches!(parts[1], Expr::And(_)), "AND binds tighter than OR");
        assert!(q.sort[0].desc, "a key without direction sorts DESC");
        assert!(!q.sort[1].desc);
        let q = roundtrip("a IN (1, 10)");
        assert!(matches!(q.filter, Some(Expr::Range { lo_inclusive: false, hi_inclusive: false, .. })));
        let q = roundtrip("a = 'it\\'s'");
        let Some(Expr::Compare { value, .. }) = q.filter else { panic!() };
        assert_eq!(value.lit, Literal::Str("it's".into()));
    }

    #[test]
    fn errors_have_positions_and_expectations() {
        let e = parse("title = 'x' AND price =").unwrap_err();
        assert_eq!((e.line, e.column), (1, 24), "{e}");
        assert!(e.to_string().starts_with("ArcQL syntax error at 1:24: expected a value after '='"), "{e}");
        let e = parse("a = 1\n AND b ?? 2").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(parse("a = 'unterminated").is_err());
        assert!(parse("a = 99999999999999999999").unwrap_err().message.contains("64-bit"));
        let deep = format!("{}a = 1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().message.contains("nest"));
        let deeper = format!("{}a = 1{}", "(".repeat(50_000), ")".repeat(50_000));
        assert!(parse(&deeper).is_err());
        let long = parse(&"a = 1 AND ".repeat(2000)).unwrap_err();
        assert!(long.too_long && long.message.contains("longer"), "{long}");
        let nots = parse(&format!("{}a = 1", "NOT ".repeat(33))).unwrap_err();
        assert!(nots.message.contains("nest") && !nots.too_long, "{nots}");
        parse(&format!("{}a = 1", "NOT ".repeat(32))).unwrap();
        // Many NOTs side by side do not nest.
        parse(&["NOT a = 1"; 100].join(" AND ")).unwrap();
        parse(&["NOT (NOT a = 1 OR NOT b = 2)"; 50].join(" OR ")).unwrap();
        // A field may be called like a keyword.
        let q = parse("exist IN ('a',) AND NOT exist IN ('b', 'c',) OR NOT EXIST in").unwrap();
        assert_eq!(print(&q), "(exist IN ('a') AND NOT exist IN ('b', 'c',)) OR NOT EXIST in");
    }
}
