//! Property tests of ArcQL (contract §4):
//!
//! - the printer round trip: random syntax trees → `print` → `parse` gives the same tree;
//! - the parser (and the planner and renderer behind it) never panic, on arbitrary text and on
//!   soups of ArcQL tokens; whatever parses also survives the round trip;
//! - a differential test: a random dataset is stored through the HTTP API, random queries run
//!   through `find` (paged forwards or backwards) and must return exactly the ids, in exactly
//!   the order, that a plain in-memory evaluator written from the contract's definitions
//!   gives. Each query is also rendered with a random sentinel in every literal, and the SQL
//!   text must never contain one (the bound values must);
//! - the fuzz seed corpus (`fuzz/corpus/arcql_parse/`) parses without panicking.
#![allow(clippy::unwrap_used)]

mod common;

use std::cmp::Ordering;
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use arcbase::arcql::ast::{Expr, Literal, Op, Path, Query, SortKey, Span, Value as AstValue};
use arcbase::arcql::{parse, print};
use arcbase::model::parse_sdl;
use arcbase::plan::filter::plan_query;
use arcbase::sql::find::{FindRenderer, Output, Select, Trashed};
use arcbase::sql::{Dialect, SqlValue};

// =============================================================================================
// (a) printer round trip
// =============================================================================================

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,5}",
        // Field names that are also keywords must still parse back as field names.
        1 => prop::sample::select(vec![
            "and", "OR", "not", "Not", "exist", "exists", "in", "IN", "sort", "asc", "DESC", "true",
            "false", "null", "geo", "e", "E1", "hypi", "_",
        ])
        .prop_map(str::to_string),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(ident(), 1..4).prop_map(|segments| Path { segments, span: Span::default() })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        3 => any::<String>().prop_map(Literal::Str),
        2 => "[ -~]{0,8}".prop_map(Literal::Str),
        1 => prop::sample::select(vec!["'", "\"", "\\", "\\'", "\n\t\r", "it's", "a\\\"b", "(", ")", "[", "]", ",", " SORT x"])
            .prop_map(|s| Literal::Str(s.to_string())),
        2 => any::<i64>().prop_map(Literal::Int),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Literal::Float),
        1 => prop::sample::select(vec![0.5, -0.0, 1e300, -2.5e-300, 1e16, 123456789.125]).prop_map(Literal::Float),
        1 => any::<bool>().prop_map(Literal::Bool),
        1 => Just(Literal::Null),
    ]
}

fn value() -> impl Strategy<Value = AstValue> {
    literal().prop_map(|lit| AstValue { lit, span: Span::default() })
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Words, Op::Prefix, Op::Wildcard])
}

fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite())
}

fn leaf_expr() -> impl Strategy<Value = Expr> {
    prop_oneof![
        4 => (path(), op(), value()).prop_map(|(path, op, value)| Expr::Compare { path, op, value }),
        1 => (path(), value(), any::<bool>(), value(), any::<bool>())
            .prop_map(|(path, lo, lo_inclusive, hi, hi_inclusive)| Expr::Range { path, lo, lo_inclusive, hi, hi_inclusive }),
        1 => (path(), prop::collection::vec(value(), 1..5)).prop_map(|(path, values)| Expr::In { path, values }),
        1 => path().prop_map(|path| Expr::Exist { path }),
        1 => (finite(), finite(), finite(), "[ -~]{0,6}", any::<String>()).prop_map(|(lat, lon, radius_km, lat_field, lon_field)| {
            Expr::Geo { lat, lon, radius_km, lat_field, lon_field, span: Span::default() }
        }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf_expr().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop::option::weighted(0.9, expr()),
        prop::collection::vec((path(), any::<bool>()).prop_map(|(path, desc)| SortKey { path, desc }), 0..4),
    )
        .prop_map(|(filter, sort)| Query { filter, sort })
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn printed_queries_parse_back_to_the_same_tree(q in query()) {
        let text = print(&q);
        let again = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(&again, &q, "printed as {}", text);
        // Printing is deterministic and idempotent.
        prop_assert_eq!(print(&again), text);
    }
}

// =============================================================================================
// (b) the parser never panics
// =============================================================================================

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    "'",
    "\"",
    "\\",
    "'x'",
    "\"y\"",
    "'it\\'s'",
    "AND",
    "and",
    "OR",
    "or",
    "NOT",
    "not",
    "EXIST",
    "exists",
    "IN",
    "in",
    "SORT",
    "sort",
    "ASC",
    "DESC",
    "geo",
    "geo(",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "^",
    "*",
    "?",
    "!",
    "1",
    "-2",
    "3.5",
    "-2.5e3",
    "1e",
    "1.",
    ".5",
    "99999999999999999999",
    "1e999",
    "true",
    "FALSE",
    "null",
    "s",
    "n",
    "f",
    "b",
    "d",
    "e",
    "tags",
    "ref",
    "list",
    "ref.s",
    "list.n",
    "hypi.id",
    "hypi.created",
    "hypi",
    "hypi.",
    "a..b",
    ".",
    "_",
    "é",
    "\n",
    "\t",
    "  ",
    "",
    "-",
    "--",
    ";",
    "'; DROP TABLE x; --",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), prop::sample::select(vec!["", " ", "  ", "\n"])), 0..24)
        .prop_map(|parts| parts.into_iter().map(|(t, sep)| format!("{t}{sep}")).collect())
}

/// Parse; on success the round trip must hold, and planning against the property schema and
/// rendering for both dialects must not panic either.
fn parse_plan_render(text: &str) -> Result<(), TestCaseError> {
    let Ok(q) = parse(text) else { return Ok(()) };
    let printed = print(&q);
    let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{text:?} printed as {printed:?}: {e}")))?;
    prop_assert_eq!(&again, &q, "{:?} printed as {:?}", text, printed);
    let model = parse_sdl(ITEM_SDL).unwrap();
    let ti = model.type_by_name("Item").unwrap().0;
    if let Ok(filter) = plan_query(&model, ti, text) {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let r = FindRenderer { model: &model, app: "app", dialect };
            let sel = Select {
                type_idx: ti,
                filter: &filter,
                instance: "i",
                trashed: Trashed::Hide,
                seeks: Vec::new(),
                reverse: false,
                limit: Some(10),
                offset: 0,
            };
            let sql = r.select(&sel, Output::Ids);
            prop_assert_eq!(sql.text.matches('?').count(), sql.binds.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        parse_plan_render(&text)?;
    }

    #[test]
    fn the_parser_never_panics_on_token_soups(text in token_soup()) {
        parse_plan_render(&text)?;
    }

    #[test]
    fn the_parser_never_panics_on_deep_or_long_input(open in 0usize..200, close in 0usize..200, body in token_soup()) {
        let text = format!("{}{body}{}", "(".repeat(open), ")".repeat(close));
        parse_plan_render(&text)?;
        let text = format!("{}a = 1{}", "NOT ".repeat(open * 10), " AND b = 2".repeat(close));
        parse_plan_render(&text)?;
    }
}

/// The fuzz target's seed corpus is usable without nightly: every seed parses or fails
/// cleanly, and what parses round-trips.
#[test]
fn fuzz_seed_corpus_parses_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/arcql_parse");
    let mut seen = 0;
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        seen += 1;
        if let Ok(q) = parse(&text) {
            parsed += 1;
            let printed = print(&q);
            assert_eq!(parse(&printed).as_ref(), Ok(&q), "{}: printed as {printed}", path.display());
        }
    }
    assert!(seen >= 25, "the seed corpus has {seen} files");
    assert!(parsed >= 20, "only {parsed} of {seen} seeds parse");
}

// =============================================================================================
// (c) differential test against an in-memory evaluator
// =============================================================================================

const ITEM_SDL: &str = "type Item { s: String  n: Int  f: Float  b: Boolean  d: DateTime  e: Color  tags: [String]  ref: Item  list: [Item!] }\nenum Color { RED GREEN }";

/// SplitMix64: a tiny deterministic generator driven by proptest's seeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// Pieces of stored strings: case variants, LIKE/GLOB metacharacters, quotes, backslashes,
/// non-ASCII text (code point order: 'Z' < 'a' < 'é' < '日' < '😀').
const WORDS: &[&str] = &[
    "blue",
    "Blue",
    "BLUE",
    "bluebird",
    "moon",
    "Moon",
    "a",
    "A",
    "b",
    "ab",
    "x%y",
    "a_b",
    "100%",
    "_",
    "%",
    "\\",
    "\\\\",
    "'",
    "it's",
    "\"q\"",
    "*",
    "?",
    "[x]",
    "]",
    "[",
    "é",
    "日本",
    "😀",
    "Zebra",
    "zebra",
    "O'Neil",
    "'; DROP TABLE x; --",
    "12",
    "-3",
    "ÉCOLE",
    "école",
];
const SEPS: &[&str] = &[" ", "", ".", "-", ", ", "  ", "/", "\t"];
const INTS: &[i64] = &[-300, -12, -1, 0, 1, 2, 3, 10, 12, 100, 123, 1234, 2_147_483_647, -2_147_483_648];
const FLOATS: &[f64] = &[-1.5, 0.0, 0.25, 1.0, 2.0, 2.5, 1e10, -0.001, 3.25, 12.0];
/// DateTimes as written and as stored (UTC, milliseconds, `Z`).
const DATES: &[(&str, &str)] = &[
    ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000Z"),
    ("2020-01-01T01:00:00+01:00", "2020-01-01T00:00:00.000Z"),
    ("2020-01-01T00:00:00.5+01:00", "2019-12-31T23:00:00.500Z"),
    ("1999-12-31T23:59:59.999Z", "1999-12-31T23:59:59.999Z"),
    ("2021-06-15T12:30:00Z", "2021-06-15T12:30:00.000Z"),
    ("2030-05-05T05:05:05.123Z", "2030-05-05T05:05:05.123Z"),
    ("2021-06-15T12:30:00.001Z", "2021-06-15T12:30:00.001Z"),
];
const TAGS: &[&str] = &["red", "Red", "x", "y z", "%", "", "a_b", "it's", "blue moon", "12"];

#[derive(Debug, Clone)]
struct Obj {
    id: String,
    s: Option<String>,
    n: Option<i64>,
    f: Option<f64>,
    b: Option<bool>,
    /// Index into `DATES`.
    d: Option<usize>,
    e: Option<&'static str>,
    tags: Vec<Option<String>>,
    r: Option<usize>,
    list: Vec<usize>,
    trashed: bool,
    created: String,
}

fn gen_string(r: &mut Rng) -> String {
    if r.chance(5) {
        return String::new();
    }
    let mut s = String::new();
    for i in 0..1 + r.below(3) {
        if i > 0 {
            s.push_str(r.pick(SEPS));
        }
        s.push_str(r.pick(WORDS));
    }
    if r.chance(10) {
        s = format!(" {s}.");
    }
    s
}

fn gen_dataset(seed: u64) -> Vec<Obj> {
    let mut r = Rng(seed);
    let count = 30 + r.below(31);
    (0..count)
        .map(|i| Obj {
            id: format!("i{i:02}"),
            s: (!r.chance(25)).then(|| gen_string(&mut r)),
            n: (!r.chance(30)).then(|| if r.chance(70) { r.pick(INTS) } else { r.below(601) as i64 - 300 }),
            f: (!r.chance(30)).then(|| r.pick(FLOATS)),
            b: (!r.chance(35)).then(|| r.chance(50)),
            d: (!r.chance(30)).then(|| r.below(DATES.len())),
            e: (!r.chance(35)).then(|| if r.chance(50) { "RED" } else { "GREEN" }),
            tags: (0..r.below(4)).map(|_| (!r.chance(10)).then(|| r.pick(TAGS).to_string())).collect(),
            r: (!r.chance(40)).then(|| r.below(count)),
            list: {
                let mut l: Vec<usize> = Vec::new();
                for _ in 0..r.below(4) {
                    let x = r.below(count);
                    if !l.contains(&x) {
                        l.push(x);
                    }
                }
                l
            },
            trashed: r.chance(12),
            created: String::new(),
        })
        .collect()
}

/// Store the dataset through the API: scalars first, then references and lists (every target
/// exists by then), then trash some objects; read back `hypi.created`.
async fn load(t: &common::TestApp, data: &mut [Obj]) {
    for chunk in data.chunks(25) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|o| {
                let mut v = json!({ "hypi": { "id": o.id } });
                if let Some(s) = &o.s {
                    v["s"] = json!(s);
                }
                if let Some(n) = o.n {
                    v["n"] = json!(n);
                }
                if let Some(f) = o.f {
                    v["f"] = json!(f);
                }
                if let Some(b) = o.b {
                    v["b"] = json!(b);
                }
                if let Some(d) = o.d {
                    v["d"] = json!(DATES[d].0);
                }
                if let Some(e) = o.e {
                    v["e"] = json!(e);
                }
                if !o.tags.is_empty() {
                    v["tags"] = json!(o.tags);
                }
                v
            })
            .collect();
        t.upsert(json!({ "Item": items })).await;
    }
    let links: Vec<Value> = data
        .iter()
        .filter(|o| o.r.is_some() || !o.list.is_empty())
        .map(|o| {
            let mut v = json!({ "hypi": { "id": o.id } });
            if let Some(r) = o.r {
                v["ref"] = json!({ "hypi": { "id": data[r].id } });
            }
            if !o.list.is_empty() {
                v["list"] = json!(o.list.iter().map(|&x| json!({ "hypi": { "id": data[x].id } })).collect::<Vec<_>>());
            }
            v
        })
        .collect();
    for chunk in links.chunks(25) {
        t.upsert(json!({ "Item": chunk })).await;
    }
    for o in data.iter().filter(|o| o.trashed) {
        let n = t
            .ok(
                "mutation($q: String!) { trash(type: Item, arcql: $q) }",
                json!({ "q": format!("hypi.id = '{}'", o.id) }),
            )
            .await;
        assert_eq!(n["trash"], 1);
    }
    let all = t
        .ok(
            "{ find(type: Item, arcql: \"*\", first: 100, includeTrashed: true) { edges { node { ... on Item { hypi { id created } } } } } }",
            json!({}),
        )
        .await;
    let edges = all["find"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), data.len());
    for (o, e) in data.iter_mut().zip(edges) {
        assert_eq!(e["node"]["hypi"]["id"], o.id.as_str());
        o.created = e["node"]["hypi"]["created"].as_str().unwrap().to_string();
    }
}

// --- generated queries -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Hop {
    Ref,
    List,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fld {
    S,
    N,
    F,
    B,
    D,
    E,
    Tags,
    Id,
    Created,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Field(Fld),
    Ref,
    List,
}

#[derive(Debug, Clone)]
struct QPath {
    hops: Vec<Hop>,
    end: End,
}

impl QPath {
    fn text(&self) -> String {
        let mut parts: Vec<&str> = self.hops.iter().map(|h| if *h == Hop::Ref { "ref" } else { "list" }).collect();
        parts.push(match self.end {
            End::Ref => "ref",
            End::List => "list",
            End::Field(f) => match f {
                Fld::S => "s",
                Fld::N => "n",
                Fld::F => "f",
                Fld::B => "b",
                Fld::D => "d",
                Fld::E => "e",
                Fld::Tags => "tags",
                Fld::Id => "hypi.id",
                Fld::Created => "hypi.created",
            },
        });
        parts.join(".")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    S(String),
    I(i64),
    F(f64),
    B(bool),
    Null,
    /// A DateTime as written and as stored.
    Dt(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Test {
    Cmp(CmpOp, Lit),
    Range(Lit, bool, Lit, bool),
    In(Vec<Lit>),
    Exist,
    Words(String),
    Prefix(Lit),
    Wild(String),
}

#[derive(Debug, Clone)]
enum C {
    And(Vec<C>),
    Or(Vec<C>),
    Not(Box<C>),
    Leaf(QPath, Test),
}

#[derive(Debug, Clone)]
struct Sort {
    hops: usize,
    fld: Fld,
    /// `None`: no direction written (sorts DESC).
    asc: Option<bool>,
}

#[derive(Debug, Clone)]
struct Case {
    cond: Option<C>,
    sort: Vec<Sort>,
    page: usize,
    backward: bool,
    /// Seed for the spelling of the text (keyword case, quotes, escapes, spaces).
    style: u64,
    sentinel: u32,
}

/// Literal pools drawn from the dataset so that comparisons hit real values.
#[derive(Debug, Clone)]
struct Pools {
    strings: Vec<String>,
    words: Vec<String>,
    ids: Vec<String>,
}

fn pools(data: &[Obj]) -> Pools {
    let mut strings: Vec<String> = data.iter().filter_map(|o| o.s.clone()).collect();
    strings.extend(data.iter().flat_map(|o| o.tags.iter().flatten().cloned()));
    strings.extend(WORDS.iter().map(|w| w.to_string()));
    strings.extend(["", " ", "zzz", "B", "bl", "blue moon"].map(String::from));
    let mut words: Vec<String> = strings.iter().flat_map(|s| split_words(s)).collect();
    words.extend(WORDS.iter().map(|w| w.to_string()));
    words.sort();
    words.dedup();
    words.retain(|w| !split_words(w).is_empty());
    let mut ids: Vec<String> = data.iter().map(|o| o.id.clone()).collect();
    ids.extend(["i", "i0", "i1", "i5", "j", "", "i99"].map(String::from));
    Pools { strings, words, ids }
}

fn str_lit(r: &mut Rng, p: &Pools) -> Lit {
    let s = r.pick(&p.strings);
    Lit::S(if r.chance(20) && !s.is_empty() {
        // A prefix, cut at a character boundary.
        let cut = s.char_indices().nth(r.below(s.chars().count())).map_or(0, |(i, _)| i);
        s[..cut].to_string()
    } else {
        s
    })
}

fn lit_for(r: &mut Rng, fld: Fld, p: &Pools) -> Lit {
    match fld {
        Fld::S | Fld::Tags => str_lit(r, p),
        Fld::N => match r.below(10) {
            0 => Lit::F(r.pick(FLOATS)),
            1 => Lit::S(r.pick(INTS).to_string()),
            2 => Lit::I(r.pick(INTS) + 1),
            _ => Lit::I(r.pick(INTS)),
        },
        Fld::F => {
            if r.chance(30) {
                Lit::I(r.pick(INTS) % 20)
            } else {
                Lit::F(r.pick(FLOATS))
            }
        }
        Fld::B => Lit::B(r.chance(50)),
        Fld::D | Fld::Created => {
            let (w, s) = r.pick(DATES);
            Lit::Dt(w.to_string(), s.to_string())
        }
        Fld::E => Lit::S(r.pick(&["RED", "GREEN"]).to_string()),
        Fld::Id => Lit::S(r.pick(&p.ids)),
    }
}

/// A wildcard pattern that often matches: a stored string with some characters replaced by
/// `?` and some runs by `*`.
fn wildcard(r: &mut Rng, base: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = base.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match r.below(8) {
            0 => {
                out.push('?');
                i += 1;
            }
            1 => {
                out.push('*');
                i += r.below(3);
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    if r.chance(20) {
        out.push('*');
    }
    if r.chance(10) {
        out.insert(0, '*');
    }
    out
}

fn gen_leaf(seed: u64, p: &Pools) -> C {
    let mut r = Rng(seed);
    let hops = r.pick(&[
        vec![],
        vec![],
        vec![],
        vec![],
        vec![Hop::Ref],
        vec![Hop::List],
        vec![Hop::Ref, Hop::Ref],
        vec![Hop::Ref, Hop::List],
        vec![Hop::List, Hop::Ref],
    ]);
    if r.chance(8) {
        let end = if r.chance(50) { End::Ref } else { End::List };
        let test = match r.below(3) {
            0 => Test::Exist,
            1 => Test::Cmp(CmpOp::Eq, Lit::Null),
            _ => Test::Cmp(CmpOp::Ne, Lit::Null),
        };
        return C::Leaf(QPath { hops, end }, test);
    }
    let fld = r.pick(&[
        Fld::S,
        Fld::S,
        Fld::S,
        Fld::N,
        Fld::N,
        Fld::F,
        Fld::B,
        Fld::D,
        Fld::E,
        Fld::Tags,
        Fld::Tags,
        Fld::Id,
    ]);
    let path = QPath { hops, end: End::Field(fld) };
    let ordered = !matches!(fld, Fld::B | Fld::E);
    let all_ops = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];
    let test = loop {
        let t = match r.below(12) {
            0..=3 => {
                let op = if ordered { r.pick(&all_ops) } else { r.pick(&[CmpOp::Eq, CmpOp::Ne]) };
                Test::Cmp(op, lit_for(&mut r, fld, p))
            }
            4 if ordered => {
                let (mut lo, mut hi) = (lit_for(&mut r, fld, p), lit_for(&mut r, fld, p));
                // An empty range is refused (it could match nothing), so the bounds go low to
                // high; `(a, b)` means a set on ID fields and is refused as ambiguous on String
                // fields (tests/find.rs covers both), so those get a bracket.
                let order = lit_order(&lo, &hi);
                if order == Some(Ordering::Greater) {
                    std::mem::swap(&mut lo, &mut hi);
                }
                let (mut lo_inc, mut hi_inc) = (r.chance(50), r.chance(50));
                if order == Some(Ordering::Equal) {
                    (lo_inc, hi_inc) = (true, true);
                }
                if !lo_inc && !hi_inc && matches!(fld, Fld::S | Fld::Id | Fld::Tags) {
                    lo_inc = true;
                }
                // On an Int field the bounds are rounded to integers first: `[2.5, 3)` holds no
                // integer, an empty range the server refuses. Draw again.
                if fld == Fld::N {
                    let num = |l: &Lit| match l {
                        Lit::I(i) => Some(*i as f64),
                        Lit::F(f) => Some(*f),
                        _ => None,
                    };
                    if let (Some(a), Some(b)) = (num(&lo), num(&hi)) {
                        let low = if lo_inc { a.ceil() } else { a.floor() + 1.0 };
                        let high = if hi_inc { b.floor() } else { b.ceil() - 1.0 };
                        if low > high {
                            continue;
                        }
                    }
                }
                Test::Range(lo, lo_inc, hi, hi_inc)
            }
            5 => Test::In((0..1 + r.below(4)).map(|_| lit_for(&mut r, fld, p)).collect()),
            6 => Test::Exist,
            7 => Test::Cmp(if r.chance(50) { CmpOp::Eq } else { CmpOp::Ne }, Lit::Null),
            8 if matches!(fld, Fld::S | Fld::Tags | Fld::Id | Fld::E) => {
                let mut q = String::new();
                for i in 0..1 + r.below(2) {
                    if i > 0 {
                        q.push_str(r.pick(&[" ", ", ", "-", "."]));
                    }
                    let w = if fld == Fld::E { r.pick(&["red", "Green", "RED"]).to_string() } else { r.pick(&p.words) };
                    // Case does not matter to `~`: flip the case of some ASCII letters.
                    q.extend(w.chars().map(|c| if r.chance(30) { flip_ascii_case(c) } else { c }));
                }
                Test::Words(q)
            }
            9 if matches!(fld, Fld::S | Fld::Tags | Fld::Id | Fld::E | Fld::N) => {
                let lit = match fld {
                    Fld::N if r.chance(50) => Lit::I(r.pick(&[1, 12, -1, 0, 2, 123, 21])),
                    Fld::N => Lit::S(r.pick(&["1", "-", "12", "21", "0", "-3"]).to_string()),
                    Fld::E => Lit::S(r.pick(&["R", "GR", "", "G", "r"]).to_string()),
                    _ => str_lit(&mut r, p),
                };
                Test::Prefix(lit)
            }
            10 | 11 if matches!(fld, Fld::S | Fld::Tags | Fld::Id | Fld::E | Fld::N) => {
                let base = match fld {
                    Fld::N => r.pick(INTS).to_string(),
                    Fld::E => r.pick(&["RED", "GREEN"]).to_string(),
                    Fld::Id => r.pick(&p.ids),
                    _ => r.pick(&p.strings),
                };
                let w = wildcard(&mut r, &base);
                if w.chars().count() > 100 {
                    continue;
                }
                Test::Wild(w)
            }
            _ => continue,
        };
        break t;
    };
    C::Leaf(path, test)
}

fn flip_ascii_case(c: char) -> char {
    if c.is_ascii_uppercase() {
        c.to_ascii_lowercase()
    } else {
        c.to_ascii_uppercase()
    }
}

fn gen_sort(seed: u64) -> Sort {
    let mut r = Rng(seed);
    Sort {
        hops: r.pick(&[0, 0, 0, 1, 1, 2]),
        fld: r.pick(&[Fld::S, Fld::S, Fld::N, Fld::F, Fld::B, Fld::D, Fld::E, Fld::Id, Fld::Created]),
        asc: r.pick(&[None, Some(true), Some(false)]),
    }
}

fn cond_strategy(p: Pools) -> impl Strategy<Value = C> {
    let leaf = any::<u64>().prop_map(move |seed| gen_leaf(seed, &p));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(C::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(C::Or),
            inner.prop_map(|c| C::Not(Box::new(c))),
        ]
    })
}

fn case_strategy(p: Pools) -> impl Strategy<Value = Case> {
    (
        prop::option::weighted(0.92, cond_strategy(p)),
        prop::collection::vec(any::<u64>().prop_map(gen_sort), 0..4),
        prop::sample::select(vec![100usize, 100, 100, 13, 8, 5, 3, 1]),
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(cond, sort, page, backward, style, sentinel)| Case {
            cond,
            sort,
            page,
            backward,
            style,
            sentinel,
        })
}

// --- query text --------------------------------------------------------------------------------

/// Writes a case as ArcQL, spelling keywords, quotes, escapes and spaces at random.
struct Writer {
    r: Rng,
    out: String,
}

impl Writer {
    fn kw(&mut self, k: &str) {
        let spelled = match self.r.below(3) {
            0 => k.to_ascii_lowercase(),
            1 => k.to_string(),
            _ => k.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_lowercase() } else { c }).collect(),
        };
        self.out.push_str(&spelled);
    }
    fn sp(&mut self) {
        self.out.push_str(self.r.pick(&[" ", " ", " ", "  ", "\n", "\t "]));
    }
    fn string(&mut self, s: &str) {
        let q = if self.r.chance(50) { '\'' } else { '"' };
        self.out.push(q);
        for c in s.chars() {
            if c == q || c == '\\' {
                self.out.push('\\');
                self.out.push(c);
            } else if c == '\n' {
                self.out.push_str("\\n");
            } else if !matches!(c, 'n' | 't' | 'r') && self.r.chance(5) {
                // Any other escaped character stands for itself.
                self.out.push('\\');
                self.out.push(c);
            } else {
                self.out.push(c);
            }
        }
        self.out.push(q);
    }
    fn lit(&mut self, l: &Lit) {
        match l {
            Lit::S(s) | Lit::Dt(s, _) => self.string(s),
            Lit::I(i) => self.out.push_str(&i.to_string()),
            Lit::F(f) => self.out.push_str(&format!("{f:?}")),
            Lit::B(b) => self.kw(if *b { "TRUE" } else { "FALSE" }),
            Lit::Null => self.kw("NULL"),
        }
    }
    fn cond(&mut self, c: &C) {
        match c {
            C::And(xs) | C::Or(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        self.sp();
                        self.kw(if matches!(c, C::And(_)) { "AND" } else { "OR" });
                        self.sp();
                    }
                    // AND binds tighter than OR: parentheses only where needed (and sometimes
                    // where not).
                    let needed =
                        matches!((c, x), (C::And(_), C::Or(_)) | (C::And(_), C::And(_)) | (C::Or(_), C::Or(_)));
                    let paren = needed || (matches!(x, C::Not(_) | C::Leaf(..)) && self.r.chance(10));
                    self.group(x, paren);
                }
            }
            C::Not(x) => {
                self.kw("NOT");
                self.sp();
                let paren = matches!(**x, C::And(_) | C::Or(_)) || self.r.chance(20);
                self.group(x, paren);
            }
            C::Leaf(path, test) => self.leaf(path, test),
        }
    }
    fn group(&mut self, c: &C, paren: bool) {
        if paren {
            self.out.push('(');
            self.cond(c);
            self.out.push(')');
        } else {
            self.cond(c);
        }
    }
    fn leaf(&mut self, path: &QPath, test: &Test) {
        let p = path.text();
        if let Test::Exist = test {
            let k = if self.r.chance(50) { "EXIST" } else { "EXISTS" };
            self.kw(k);
            self.sp();
            self.out.push_str(&p);
            return;
        }
        self.out.push_str(&p);
        self.sp();
        match test {
            Test::Cmp(op, l) => {
                self.out.push_str(match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                });
                self.sp();
                self.lit(l);
            }
            Test::Range(lo, lo_inc, hi, hi_inc) => {
                self.kw("IN");
                self.sp();
                self.out.push(if *lo_inc { '[' } else { '(' });
                self.lit(lo);
                self.out.push_str(", ");
                self.lit(hi);
                self.out.push(if *hi_inc { ']' } else { ')' });
            }
            Test::In(values) => {
                self.kw("IN");
                self.sp();
                self.out.push('(');
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.lit(v);
                }
                // Two values without a trailing comma would be an exclusive range.
                if values.len() == 2 || self.r.chance(30) {
                    self.out.push(',');
                }
                self.out.push(')');
            }
            Test::Words(w) => {
                self.out.push('~');
                self.sp();
                self.string(w);
            }
            Test::Prefix(l) => {
                self.out.push('^');
                self.sp();
                self.lit(l);
            }
            Test::Wild(w) => {
                self.out.push('*');
                self.sp();
                self.string(w);
            }
            Test::Exist => {}
        }
    }
}

fn sort_path(s: &Sort) -> String {
    let mut p = "ref.".repeat(s.hops);
    p.push_str(&QPath { hops: Vec::new(), end: End::Field(s.fld) }.text());
    p
}

fn arcql(case: &Case, cond: Option<&C>) -> String {
    let mut w = Writer { r: Rng(case.style), out: String::new() };
    match cond {
        Some(c) => w.cond(c),
        None => w.out.push_str(w.r.pick(&["*", "", "* "])),
    }
    if !case.sort.is_empty() {
        w.sp();
        w.kw("SORT");
        w.sp();
        for (i, s) in case.sort.iter().enumerate() {
            if i > 0 {
                w.out.push_str(", ");
            }
            w.out.push_str(&sort_path(s));
            if let Some(asc) = s.asc {
                w.sp();
                w.kw(if asc { "ASC" } else { "DESC" });
            }
        }
    }
    w.out
}

// --- the evaluator -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum V {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

/// Words: runs of characters that are neither ASCII punctuation nor ASCII whitespace,
/// compared without ASCII case.
fn split_words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_ascii_punctuation() || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `*` any run of characters, `?` exactly one; everything else literal.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

struct Eval<'a> {
    data: &'a [Obj],
}

impl Eval<'_> {
    fn visible(&self, i: usize) -> bool {
        !self.data[i].trashed
    }

    /// The objects reached from `o` through `hops` (trashed ones are not reached).
    fn reach(&self, o: usize, hops: &[Hop]) -> Vec<usize> {
        let mut cur = vec![o];
        for h in hops {
            cur = cur
                .iter()
                .flat_map(|&x| match h {
                    Hop::Ref => self.data[x].r.into_iter().collect::<Vec<_>>(),
                    Hop::List => self.data[x].list.clone(),
                })
                .filter(|&x| self.visible(x))
                .collect();
        }
        cur
    }

    fn value(&self, i: usize, f: Fld) -> Option<V> {
        let o = &self.data[i];
        match f {
            Fld::S => o.s.clone().map(V::S),
            Fld::N => o.n.map(V::I),
            Fld::F => o.f.map(V::F),
            Fld::B => o.b.map(V::B),
            Fld::D => o.d.map(|d| V::S(DATES[d].1.to_string())),
            Fld::E => o.e.map(|e| V::S(e.to_string())),
            Fld::Id => Some(V::S(o.id.clone())),
            Fld::Created => Some(V::S(o.created.clone())),
            Fld::Tags => None,
        }
    }

    /// Every value at the end of the path (a scalar list gives all its non-null elements).
    fn values(&self, o: usize, path: &QPath) -> Vec<V> {
        let objs = self.reach(o, &path.hops);
        match path.end {
            End::Field(Fld::Tags) => {
                objs.iter().flat_map(|&x| self.data[x].tags.iter().flatten().map(|s| V::S(s.clone()))).collect()
            }
            End::Field(f) => objs.iter().filter_map(|&x| self.value(x, f)).collect(),
            End::Ref | End::List => Vec::new(),
        }
    }

    fn exists(&self, o: usize, path: &QPath) -> bool {
        let objs = self.reach(o, &path.hops);
        objs.iter().any(|&x| {
            let obj = &self.data[x];
            match path.end {
                End::Field(Fld::Tags) => !obj.tags.is_empty(),
                End::Field(f) => self.value(x, f).is_some(),
                End::Ref => obj.r.is_some_and(|t| self.visible(t)),
                End::List => obj.list.iter().any(|&t| self.visible(t)),
            }
        })
    }

    fn holds(&self, o: usize, c: &C) -> bool {
        match c {
            C::And(xs) => xs.iter().all(|x| self.holds(o, x)),
            C::Or(xs) => xs.iter().any(|x| self.holds(o, x)),
            C::Not(x) => !self.holds(o, x),
            C::Leaf(path, test) => match test {
                Test::Exist | Test::Cmp(CmpOp::Ne, Lit::Null) => self.exists(o, path),
                Test::Cmp(CmpOp::Eq, Lit::Null) => !self.exists(o, path),
                _ => self.values(o, path).iter().any(|v| test_value(v, test)),
            },
        }
    }
}

/// The order of two literals of one field, as the database orders the stored values.
fn lit_order(a: &Lit, b: &Lit) -> Option<Ordering> {
    let num = |l: &Lit| match l {
        Lit::I(i) => Some(*i as f64),
        Lit::F(f) => Some(*f),
        Lit::S(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (a, b) {
        (Lit::S(x), Lit::S(y)) => Some(x.as_str().cmp(y.as_str())),
        (Lit::Dt(_, x), Lit::Dt(_, y)) => Some(x.cmp(y)),
        (Lit::I(x), Lit::I(y)) => Some(x.cmp(y)),
        (Lit::B(x), Lit::B(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

fn cmp_lit(v: &V, l: &Lit) -> Option<Ordering> {
    match (v, l) {
        (V::S(a), Lit::S(b)) => Some(a.as_str().cmp(b.as_str())),
        (V::S(a), Lit::Dt(_, b)) => Some(a.as_str().cmp(b.as_str())),
        (V::I(a), Lit::I(b)) => Some(a.cmp(b)),
        (V::I(a), Lit::F(b)) => (*a as f64).partial_cmp(b),
        (V::I(a), Lit::S(b)) => b.trim().parse::<i64>().ok().map(|b| a.cmp(&b)),
        (V::F(a), Lit::F(b)) => a.partial_cmp(b),
        (V::F(a), Lit::I(b)) => a.partial_cmp(&(*b as f64)),
        (V::B(a), Lit::B(b)) => Some(a.cmp(b)),
        _ => panic!("the generator compared {v:?} with {l:?}"),
    }
}

fn as_text(v: &V) -> String {
    match v {
        V::S(s) => s.clone(),
        V::I(i) => i.to_string(),
        other => panic!("no text form for {other:?}"),
    }
}

fn test_value(v: &V, t: &Test) -> bool {
    match t {
        Test::Cmp(op, l) => {
            let Some(o) = cmp_lit(v, l) else { return false };
            match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
            }
        }
        Test::Range(lo, lo_inc, hi, hi_inc) => {
            let above = cmp_lit(v, lo).is_some_and(|o| o == Ordering::Greater || (*lo_inc && o == Ordering::Equal));
            let below = cmp_lit(v, hi).is_some_and(|o| o == Ordering::Less || (*hi_inc && o == Ordering::Equal));
            above && below
        }
        Test::In(ls) => ls.iter().any(|l| cmp_lit(v, l) == Some(Ordering::Equal)),
        Test::Exist => true,
        Test::Words(q) => {
            let have = split_words(&as_text(v));
            split_words(q).iter().all(|w| have.contains(w))
        }
        Test::Prefix(l) => {
            let p = match l {
                Lit::S(s) => s.clone(),
                Lit::I(i) => i.to_string(),
                other => panic!("prefix {other:?}"),
            };
            as_text(v).starts_with(&p)
        }
        Test::Wild(p) => {
            let p: Vec<char> = p.chars().collect();
            let t: Vec<char> = as_text(v).chars().collect();
            glob(&p, &t)
        }
    }
}

/// Missing values are the smallest.
fn cmp_sort(a: &Option<V>, b: &Option<V>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(V::S(x)), Some(V::S(y))) => x.as_str().cmp(y.as_str()),
        (Some(V::I(x)), Some(V::I(y))) => x.cmp(y),
        (Some(V::F(x)), Some(V::F(y))) => x.partial_cmp(y).unwrap(),
        (Some(V::B(x)), Some(V::B(y))) => x.cmp(y),
        (x, y) => panic!("mixed sort values {x:?} {y:?}"),
    }
}

/// The ids `find` must return for a case, in order.
fn expected(data: &[Obj], case: &Case) -> Vec<String> {
    let ev = Eval { data };
    let mut hits: Vec<usize> = (0..data.len())
        .filter(|&i| ev.visible(i))
        .filter(|&i| case.cond.as_ref().is_none_or(|c| ev.holds(i, c)))
        .collect();
    let key = |i: usize, s: &Sort| -> Option<V> {
        let hops = vec![Hop::Ref; s.hops];
        ev.reach(i, &hops).first().and_then(|&x| ev.value(x, s.fld))
    };
    hits.sort_by(|&a, &b| {
        for s in &case.sort {
            let o = cmp_sort(&key(a, s), &key(b, s));
            // A key without a direction sorts DESC.
            let o = if s.asc.unwrap_or(false) { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        data[a].id.cmp(&data[b].id)
    });
    hits.into_iter().map(|i| data[i].id.clone()).collect()
}

// --- sentinels ---------------------------------------------------------------------------------

/// The case with a sentinel in every string and number literal whose field takes any value
/// (strings, ids, ints, floats; enums and DateTimes must stay valid), and the sentinels.
fn with_sentinels(c: &C, next: &mut u32, out: &mut Vec<String>) -> C {
    match c {
        C::And(xs) => C::And(xs.iter().map(|x| with_sentinels(x, next, out)).collect()),
        C::Or(xs) => C::Or(xs.iter().map(|x| with_sentinels(x, next, out)).collect()),
        C::Not(x) => C::Not(Box::new(with_sentinels(x, next, out))),
        C::Leaf(path, test) => {
            let End::Field(fld) = path.end else { return c.clone() };
            let test = match test {
                Test::Cmp(op, l) => Test::Cmp(*op, mark(l, fld, next, out)),
                Test::Range(lo, a, hi, b) => {
                    // Marking changes the bounds' order; an empty range would be refused.
                    let (mut lo, mut hi) = (mark(lo, fld, next, out), mark(hi, fld, next, out));
                    if lit_order(&lo, &hi) == Some(Ordering::Greater) {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let same = lit_order(&lo, &hi) == Some(Ordering::Equal);
                    Test::Range(lo, *a || same, hi, *b || same)
                }
                Test::In(ls) => Test::In(ls.iter().map(|l| mark(l, fld, next, out)).collect()),
                Test::Words(w) if fld != Fld::E => Test::Words(format!("{w} {}", sentinel(next, out))),
                Test::Prefix(Lit::S(s)) if fld != Fld::E => Test::Prefix(Lit::S(format!("{s}{}", sentinel(next, out)))),
                Test::Wild(w) if fld != Fld::E => {
                    Test::Wild(format!("{}{}", sentinel(next, out), w.chars().take(80).collect::<String>()))
                }
                t => t.clone(),
            };
            C::Leaf(path.clone(), test)
        }
    }
}

/// A fresh text sentinel (lower-case letters and digits, so `~` keeps it whole).
fn sentinel(next: &mut u32, out: &mut Vec<String>) -> String {
    *next = next.wrapping_add(1);
    let s = format!("zqs{:09}", *next % 1_000_000_000);
    out.push(s.clone());
    s
}

/// A fresh number sentinel, far from every stored value.
fn number_sentinel(next: &mut u32, out: &mut Vec<String>) -> i64 {
    *next = next.wrapping_add(1);
    let n = 7_000_000_000 + i64::from(*next % 1_000_000_000);
    out.push(n.to_string());
    n
}

fn mark(l: &Lit, fld: Fld, next: &mut u32, out: &mut Vec<String>) -> Lit {
    match (l, fld) {
        (Lit::S(s), Fld::S | Fld::Tags | Fld::Id) => Lit::S(format!("{s}{}", sentinel(next, out))),
        (Lit::I(_), Fld::N | Fld::F) => Lit::I(number_sentinel(next, out)),
        // A fraction compared with an Int field becomes an exact integer bound (the planner
        // rewrites it), so an Int field's sentinel is an integer.
        (Lit::F(_), Fld::N) => Lit::I(number_sentinel(next, out)),
        (Lit::F(_), Fld::F) => Lit::F(number_sentinel(next, out) as f64 + 0.5),
        (l, _) => l.clone(),
    }
}

fn check_sentinels(case: &Case) -> Result<(), TestCaseError> {
    let Some(cond) = &case.cond else { return Ok(()) };
    let mut sentinels = Vec::new();
    let mut next = case.sentinel;
    let marked = with_sentinels(cond, &mut next, &mut sentinels);
    let text = arcql(case, Some(&marked));
    let model = parse_sdl(ITEM_SDL).unwrap();
    let ti = model.type_by_name("Item").unwrap().0;
    let filter = plan_query(&model, ti, &text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let r = FindRenderer { model: &model, app: "app", dialect };
        let sel = Select {
            type_idx: ti,
            filter: &filter,
            instance: "i",
            trashed: Trashed::Hide,
            seeks: Vec::new(),
            reverse: false,
            limit: Some(10),
            offset: 0,
        };
        let sql = r.select(&sel, Output::Ids);
        let driver = sql.driver_text();
        for s in &sentinels {
            prop_assert!(
                !driver.contains(s.as_str()),
                "{dialect:?}: sentinel {s} of `{text}` is in the SQL text: {driver}"
            );
            let bound = sql.binds.iter().any(|b| match b {
                SqlValue::Text(t) => t.contains(s.as_str()),
                SqlValue::Int(i) => i.to_string() == *s,
                SqlValue::Real(f) => format!("{f}").contains(s.as_str()),
                _ => false,
            });
            prop_assert!(bound, "{dialect:?}: sentinel {s} of `{text}` is not among the binds {:?}", sql.binds);
        }
    }
    Ok(())
}

// --- running a case ----------------------------------------------------------------------------

const FIND: &str = "query($q: String!, $first: Int, $after: String, $last: Int, $before: String) {
  find(type: Item, arcql: $q, first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { ... on Item { hypi { id } } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor pageLimit }
  }
}";

struct Page {
    ids: Vec<String>,
    has_next: bool,
    has_previous: bool,
    start: String,
    end: String,
}

async fn page(t: &common::TestApp, q: &str, vars: Value) -> Result<Page, TestCaseError> {
    let mut vars = vars;
    vars["q"] = json!(q);
    let body = t.gql(FIND, vars).await;
    if let Some(e) = body.get("errors") {
        return Err(TestCaseError::fail(format!("`{q}` failed: {e}")));
    }
    let f = &body["data"]["find"];
    let mut ids = Vec::new();
    for e in f["edges"].as_array().unwrap() {
        prop_assert_eq!(&e["cursor"], &e["node"]["hypi"]["id"]);
        ids.push(e["cursor"].as_str().unwrap().to_string());
    }
    let info = &f["pageInfo"];
    Ok(Page {
        ids,
        has_next: info["hasNextPage"].as_bool().unwrap(),
        has_previous: info["hasPreviousPage"].as_bool().unwrap(),
        start: info["startCursor"].as_str().unwrap().to_string(),
        end: info["endCursor"].as_str().unwrap().to_string(),
    })
}

fn cursors_ok(p: &Page) -> Result<(), TestCaseError> {
    let start = p.ids.first().map_or("FIRST", String::as_str);
    let end = p.ids.last().map_or("LAST", String::as_str);
    prop_assert_eq!(p.start.as_str(), start);
    prop_assert_eq!(p.end.as_str(), end);
    Ok(())
}

/// How many cases matched nothing, some objects, every visible object; how many pages ran.
#[derive(Debug, Default)]
struct Stats {
    none: usize,
    some: usize,
    all: usize,
    pages: usize,
}

async fn run_case(
    t: &common::TestApp,
    data: &[Obj],
    case: &Case,
    stats: &std::cell::RefCell<Stats>,
) -> Result<(), TestCaseError> {
    check_sentinels(case)?;
    let q = arcql(case, case.cond.as_ref());
    let want = expected(data, case);
    {
        let visible = data.iter().filter(|o| !o.trashed).count();
        let mut st = stats.borrow_mut();
        match want.len() {
            0 => st.none += 1,
            n if n == visible => st.all += 1,
            _ => st.some += 1,
        }
    }
    if std::env::var_os("ARCQL_PROPS_SHOW").is_some() {
        eprintln!("{q}\n  -> {want:?}");
    }
    let k = case.page;
    let mut got: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..=want.len() + 1 {
        if !case.backward {
            let p = page(t, &q, json!({ "first": k, "after": cursor })).await?;
            stats.borrow_mut().pages += 1;
            let done = got.len();
            let n = k.min(want.len() - done);
            prop_assert_eq!(
                &p.ids[..],
                &want[done..done + n],
                "`{}` forward page after {:?}; all expected: {:?}",
                q,
                cursor,
                want
            );
            prop_assert_eq!(p.has_next, want.len() > done + k, "`{}` hasNextPage after {:?}", q, cursor);
            prop_assert_eq!(p.has_previous, done > 0, "`{}` hasPreviousPage after {:?}", q, cursor);
            cursors_ok(&p)?;
            got.extend(p.ids);
            if !p.has_next {
                break;
            }
            cursor = Some(p.end);
        } else {
            let p = page(t, &q, json!({ "last": k, "before": cursor })).await?;
            stats.borrow_mut().pages += 1;
            let left = want.len() - got.len();
            let n = k.min(left);
            prop_assert_eq!(
                &p.ids[..],
                &want[left - n..left],
                "`{}` backward page before {:?}; all expected: {:?}",
                q,
                cursor,
                want
            );
            prop_assert_eq!(p.has_previous, left > k, "`{}` hasPreviousPage before {:?}", q, cursor);
            prop_assert_eq!(p.has_next, !got.is_empty(), "`{}` hasNextPage before {:?}", q, cursor);
            cursors_ok(&p)?;
            let mut ids = p.ids;
            ids.extend(got);
            got = ids;
            if !p.has_previous {
                break;
            }
            cursor = Some(p.start);
        }
    }
    prop_assert_eq!(got, want, "`{}`", q);
    Ok(())
}

#[test]
fn find_agrees_with_an_in_memory_evaluator() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = Config { cases: 128, failure_persistence: None, max_shrink_iters: 300, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let seed = any::<u64>().new_tree(&mut runner).unwrap().current();
    let mut data = gen_dataset(seed);
    let app = rt.block_on(async {
        let app = common::TestApp::new(ITEM_SDL).await;
        load(&app, &mut data).await;
        app
    });
    let mut listing = String::new();
    for o in &data {
        let _ = writeln!(listing, "{o:?}");
    }
    let stats = std::cell::RefCell::new(Stats::default());
    let result = runner.run(&case_strategy(pools(&data)), |case| rt.block_on(run_case(&app, &data, &case, &stats)));
    if let Err(e) = result {
        panic!("{e}\n\ndataset (seed {seed}):\n{listing}");
    }
    // The generator must exercise the interesting middle: queries that select some objects.
    let st = stats.into_inner();
    eprintln!("{st:?}");
    assert!(st.some >= 128 / 4 && st.none >= 2 && st.pages >= 200, "the generated queries are too trivial: {st:?}");
}
