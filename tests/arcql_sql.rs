//! ArcQL → SQL: one golden snapshot per dialect listing every form of contract §4 rendered by
//! `FindRenderer::select` (text as the driver sees it, then the bound values), plus checks
//! that hold whatever the snapshot says: placeholders match the binds, and no literal value
//! of a query ever appears in the SQL text.
#![allow(clippy::unwrap_used)]

use arcbase::model::{parse_sdl, Model};
use arcbase::plan::filter::{plan_query, FilterPlan};
use arcbase::sql::find::{FindRenderer, Output, Seek, Select, Trashed};
use arcbase::sql::{Dialect, Sql, SqlValue};

const EXAMPLE: &str = include_str!("../schema/example.graphql");
/// A type with coordinates for `geo(...)`.
const PLACES: &str = "type Place { name: String  lat: Float  lon: Float  altitude: Int }";

/// Every form of contract §4, as `(type, arcql)`.
const FORMS: &[(&str, &str)] = &[
    // Everything.
    ("Book", "*"),
    ("Book", ""),
    // Comparisons, one per operator and per value kind.
    ("Book", "title = 'Dune'"),
    ("Book", "title != \"Dune\""),
    ("Book", "pages < 100"),
    ("Book", "pages <= 100"),
    ("Book", "price > 9.5"),
    ("Book", "price >= 10"),
    ("Book", "pages = '42'"),
    ("Book", "published > '2020-01-01'"),
    ("Book", "published = '2020-07-09T06:14:00+02:00'"),
    ("Book", "available = true"),
    ("Book", "available != false"),
    ("Book", "rating = 'GOOD'"),
    ("Book", "rating != 'BAD'"),
    // Word match, prefix, wildcard.
    ("Book", "title ~ 'Blue moon'"),
    ("Book", "title ~ 'a-b c.d'"),
    ("Book", "title ^ 'Dun'"),
    ("Book", "title ^ '50%_off*[x]?\\\\'"),
    ("Book", "pages ^ 12"),
    ("Book", "pages ^ '-1'"),
    ("Book", "rating ^ 'GO'"),
    ("Book", "title * 'D*n?'"),
    ("Book", "title * '100%_[a]\\\\*'"),
    ("Book", "pages * '1?3*'"),
    // Ranges, every bracket combination.
    ("Book", "price IN [1, 10]"),
    ("Book", "price IN [1, 10)"),
    ("Book", "price IN (1, 10]"),
    ("Book", "price IN (1, 10)"),
    ("Book", "title IN ['a', 'm')"),
    ("Book", "published IN ['2020-01-01', '2021-01-01T00:00:00+02:00')"),
    // Sets.
    ("Book", "rating IN ('GOOD', 'BAD',)"),
    ("Book", "pages IN (1, 2, 3)"),
    ("Book", "title IN ('x')"),
    // EXIST / NOT EXIST on a column, a one-to-one reference, a list reference, a scalar list.
    ("Book", "EXIST price"),
    ("Book", "NOT EXIST price"),
    ("Book", "EXIST author"),
    ("Book", "NOT EXIST author"),
    ("Author", "EXIST booklist"),
    ("Author", "NOT EXIST booklist"),
    ("Author", "EXIST tags"),
    ("Author", "NOT EXIST tags"),
    // NOT, precedence, parentheses, keywords in any case.
    ("Book", "NOT title = 'x'"),
    ("Book", "NOT (title = 'x' OR pages > 3)"),
    ("Book", "NOT NOT title = 'x'"),
    ("Book", "title = 'a' OR title = 'b' AND pages > 1"),
    ("Book", "(title = 'a' OR title = 'b') AND pages > 1"),
    ("Book", "title = 'a' AND (pages = 1 OR NOT price < 2)"),
    ("Book", "title = 'a' and pages > 1 or not exist price sort pages asc"),
    // Paths through one-to-one references.
    ("Book", "author.name = 'Ann'"),
    ("Book", "author.bestbook.title ^ 'D'"),
    ("Book", "author.name = 'Ann' AND author.age > 30 SORT author.name"),
    ("Book", "author.hypi.id = 'x'"),
    // Paths through lists.
    ("Author", "booklist.price > 10"),
    ("Author", "NOT booklist.price > 10"),
    ("Author", "booklist.author.name = 'Ann'"),
    ("Author", "bestbook.author.booklist.title = 'x'"),
    ("Author", "booklist.author.booklist.pages = 1"),
    ("Author", "booklist.hypi.id = 'x'"),
    // Scalar lists.
    ("Author", "tags = 'x'"),
    ("Author", "tags ~ 'red'"),
    ("Author", "tags IN ('a', 'b', 'c')"),
    ("Author", "NOT tags = 'x'"),
    ("Author", "bestbook.author.tags ^ 'a'"),
    // hypi.* paths.
    ("Book", "hypi.id = '01ABC'"),
    ("Book", "hypi.created >= '2024-01-01T00:00:00Z'"),
    ("Book", "hypi.updated < '2024-01-01'"),
    ("Book", "hypi.createdBy = 'acc1'"),
    ("Book", "EXIST hypi.trashed"),
    ("Book", "hypi.instanceId = 'default'"),
    ("Book", "hypi_id IN ('a', 'b',)"),
    // SORT.
    ("Book", "* SORT pages"),
    ("Book", "SORT pages, title ASC, published DESC"),
    ("Book", "price > 1 SORT author.name ASC, hypi.created"),
    ("Book", "SORT hypi.id DESC"),
    // null.
    ("Book", "price = null"),
    ("Book", "price != null"),
    ("Book", "author = null"),
    ("Book", "author != null"),
    ("Book", "author.name = null"),
    ("Author", "booklist = null"),
    ("Author", "tags != null"),
    // Hostile strings are values like any other.
    ("Book", "title = 'it\\'s\\' OR 1=1; DROP TABLE x; --'"),
    ("Book", "title = \"$1 ? :a @b \\\"q\\\"\""),
    // geo.
    ("Place", "geo(0.5, -1.2, 10, 'lat', 'lon')"),
    ("Place", "geo(0.5, -1.2, 10.5, 'lat', 'altitude') AND name ^ 'a'"),
];

fn models() -> (Model, Model) {
    (parse_sdl(EXAMPLE).unwrap(), parse_sdl(PLACES).unwrap())
}

fn model_for<'a>(example: &'a Model, places: &'a Model, type_name: &str) -> (&'a Model, usize) {
    let m = if type_name == "Place" { places } else { example };
    (m, m.type_by_name(type_name).unwrap().0)
}

fn plan(model: &Model, type_idx: usize, arcql: &str) -> FilterPlan {
    plan_query(model, type_idx, arcql).unwrap_or_else(|e| panic!("{arcql}: {e:?}"))
}

fn select<'a>(type_idx: usize, filter: &'a FilterPlan) -> Select<'a> {
    Select::forward(type_idx, filter, "inst", Trashed::Hide, Some(26))
}

fn render(model: &Model, s: &Select<'_>, dialect: Dialect) -> Sql {
    FindRenderer { model, app: "app", dialect }.select(s, Output::Ids)
}

fn entry(out: &mut String, title: &str, sql: &Sql) {
    check_placeholders(title, sql);
    out.push_str(&format!("{title}\n    {}\n    {:?}\n\n", sql.driver_text(), sql.binds));
}

/// SQLite text has one `?` per bound value; PostgreSQL text has `$1..$n` in order and no `?`.
/// Parentheses balance outside quotes.
fn check_placeholders(title: &str, sql: &Sql) {
    let text = sql.driver_text();
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                assert!(depth >= 0, "{title}: unbalanced ')' in {text}");
            }
            _ => {}
        }
    }
    assert_eq!((depth, quote), (0, None), "{title}: unbalanced parentheses or quotes in {text}");
    match sql.dialect() {
        Dialect::Sqlite => {
            assert_eq!(text.matches('?').count(), sql.binds.len(), "{title}: {text}");
            assert!(!text.contains('$'), "{title}: {text}");
        }
        Dialect::Postgres => {
            assert!(!text.contains('?'), "{title}: {text}");
            let mut numbers = Vec::new();
            let bytes = text.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'$' {
                    let digits: String = text[i + 1..].chars().take_while(char::is_ascii_digit).collect();
                    numbers.push(digits.parse::<usize>().unwrap());
                }
            }
            assert_eq!(numbers, (1..=sql.binds.len()).collect::<Vec<_>>(), "{title}: {text}");
        }
    }
}

/// The snapshot text of every form (and the paging statements) for `dialect`.
fn snapshot_text(dialect: Dialect) -> String {
    let (example, places) = models();
    let mut out = String::new();
    for (type_name, arcql) in FORMS {
        let (model, ti) = model_for(&example, &places, type_name);
        let filter = plan(model, ti, arcql);
        let sql = render(model, &select(ti, &filter), dialect);
        entry(&mut out, &format!("{type_name}: {arcql}"), &sql);
    }

    // Keyset paging: the seek after/before a cursor row, under a SORT with mixed directions,
    // for a non-null and a null cursor value; the negated seek that decides has...Page; the
    // OFFSET of `page: n`; untrash's "only trashed" and includeTrashed.
    let ti = example.type_by_name("Book").unwrap().0;
    let filter = plan(&example, ti, "price > 1 SORT pages, title ASC");
    let values = [SqlValue::Int(7), SqlValue::Text("t".into())];
    let null_values = [SqlValue::Null, SqlValue::Null];
    let cases: Vec<(&str, Select<'_>)> = vec![
        (
            "after (7, 't', 'c1')",
            Select {
                seeks: vec![Seek { values: &values, id: "c1", backward: false, negate: false }],
                ..select(ti, &filter)
            },
        ),
        (
            "last before (7, 't', 'c1')",
            Select {
                seeks: vec![Seek { values: &values, id: "c1", backward: true, negate: false }],
                reverse: true,
                ..select(ti, &filter)
            },
        ),
        (
            "after (null, null, 'c1')",
            Select {
                seeks: vec![Seek { values: &null_values, id: "c1", backward: false, negate: false }],
                ..select(ti, &filter)
            },
        ),
        (
            "before (null, null, 'c1')",
            Select {
                seeks: vec![Seek { values: &null_values, id: "c1", backward: true, negate: false }],
                ..select(ti, &filter)
            },
        ),
        (
            "at or before (7, 't', 'c1')",
            Select {
                seeks: vec![Seek { values: &values, id: "c1", backward: false, negate: true }],
                ..select(ti, &filter)
            },
        ),
        (
            "after c1 and before c2",
            Select {
                seeks: vec![
                    Seek { values: &values, id: "c1", backward: false, negate: false },
                    Seek { values: &null_values, id: "c2", backward: true, negate: false },
                ],
                ..select(ti, &filter)
            },
        ),
        ("page 3 of 25", Select { offset: 50, ..select(ti, &filter) }),
        ("only trashed", Select { trashed: Trashed::Only, limit: None, ..select(ti, &filter) }),
        ("including trashed", Select { trashed: Trashed::Include, ..select(ti, &filter) }),
    ];
    for (title, s) in &cases {
        entry(
            &mut out,
            &format!("paging, Book: price > 1 SORT pages, title ASC; {title}"),
            &render(&example, s, dialect),
        );
    }
    let cursor = FindRenderer { model: &example, app: "app", dialect }.cursor(ti, &filter, "inst", "c1", false);
    entry(&mut out, "cursor row of 'c1', Book: price > 1 SORT pages, title ASC", &cursor);
    out
}

#[test]
fn snapshot_sqlite() {
    insta::assert_snapshot!("sqlite", snapshot_text(Dialect::Sqlite));
}

#[test]
fn snapshot_postgres() {
    insta::assert_snapshot!("postgres", snapshot_text(Dialect::Postgres));
}

/// No literal of a query reaches the SQL text: strings and numbers are only ever bound.
#[test]
fn literal_values_are_bound_never_inlined() {
    let (example, places) = models();
    let cases: &[(&str, &str, &[&str])] = &[
        ("Book", "title = 'zq1x'", &["zq1x"]),
        ("Book", "title != 'zq1x\\' OR 1=1 --'", &["zq1x' OR 1=1 --"]),
        ("Book", "title ~ 'zqa zqb'", &["zqa", "zqb"]),
        ("Book", "title ^ 'zqp'", &["zqp"]),
        ("Book", "title * 'zq*w?'", &["zq"]),
        ("Book", "pages IN [987654, 987659)", &["987654", "987659"]),
        ("Book", "pages IN (987654, 987655, 987656)", &["987654", "987655", "987656"]),
        ("Book", "price >= 98765.25", &["98765"]),
        ("Book", "pages ^ 987654", &["987654"]),
        ("Author", "tags = 'zqtag'", &["zqtag"]),
        ("Author", "booklist.title = 'zqbook'", &["zqbook"]),
        ("Book", "author.name = 'zqname' SORT author.name", &["zqname"]),
        ("Book", "published IN ['2031-01-01', '2032-01-01']", &["2031", "2032"]),
        ("Place", "geo(0.123456, 0.654321, 98765, 'lat', 'lon')", &["123456", "654321", "98765"]),
    ];
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        for (type_name, arcql, literals) in cases {
            let (model, ti) = model_for(&example, &places, type_name);
            let filter = plan(model, ti, arcql);
            let sql = render(model, &select(ti, &filter), dialect);
            let text = sql.driver_text();
            for lit in *literals {
                assert!(!text.contains(lit), "{dialect:?} {arcql}: {lit} is in the SQL text: {text}");
            }
        }
    }
}

/// Placeholders and binds agree for every form in both dialects, whatever the snapshot holds.
#[test]
fn placeholders_match_binds() {
    // `snapshot_text` checks every statement it renders.
    let sqlite = snapshot_text(Dialect::Sqlite);
    let postgres = snapshot_text(Dialect::Postgres);
    assert_eq!(sqlite.matches("\n\n").count(), postgres.matches("\n\n").count());
    // PostgreSQL places missing values the way SQLite does by default: first ascending, last
    // descending.
    assert!(postgres.contains("ASC NULLS FIRST") && postgres.contains("DESC NULLS LAST"));
    assert!(!sqlite.contains("NULLS"));
}
