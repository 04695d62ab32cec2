//! The typed ArcQL syntax tree. Nodes that can be wrong carry a [`Span`] for error messages.

/// A byte range in the query text. Spans do not take part in equality, so a query printed
/// and parsed again compares equal to the original.
#[derive(Debug, Clone, Copy, Default, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A parsed query: an optional condition (absent means "everything") and sort keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub filter: Option<Expr>,
    pub sort: Vec<SortKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub path: Path,
    /// A key without a direction sorts descending (Hypi's documented default).
    pub desc: bool,
}

/// A dotted field path such as `bestbook.title` or `hypi.created`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub segments: Vec<String>,
    pub span: Span,
}

impl Path {
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: word match.
    Words,
    /// `^`: prefix.
    Prefix,
    /// `*`: wildcard pattern.
    Wildcard,
}

impl Op {
    pub fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Words => "~",
            Op::Prefix => "^",
            Op::Wildcard => "*",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub lit: Literal,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare { path: Path, op: Op, value: Value },
    Range { path: Path, lo: Value, lo_inclusive: bool, hi: Value, hi_inclusive: bool },
    In { path: Path, values: Vec<Value> },
    Exist { path: Path },
    Geo { lat: f64, lon: f64, radius_km: f64, lat_field: String, lon_field: String, span: Span },
}
