//! `find` and the bulk operations over HTTP (contract §3, §4): keyset paging walked end to end
//! in both directions under several orders, exact page info, sentinels, page sizes, `page: n`,
//! offsets, cursor errors, trashed objects, hostile strings, word matching, limits, and the
//! semantics of trash / untrash / delete / deleteScalars; list fields with `arcql:`.
#![allow(clippy::unwrap_used)]

mod common;

use std::cmp::Ordering;

use arcbase::config::Limits;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const ROWS: &str = "type Row { k: Int  s: String  d: DateTime  g: Int  tag: String }";

/// `find` with every paging argument as a variable; `frag` is the node's type.
fn find_query(frag: &str) -> String {
    format!(
        "query($type: HypiMutationType!, $q: String!, $first: Int, $after: String, $last: Int, $before: String, $page: Int, $trashed: Boolean) {{
          find(type: $type, arcql: $q, first: $first, after: $after, last: $last, before: $before, page: $page, includeTrashed: $trashed) {{
            edges {{ cursor node {{ ... on {frag} {{ hypi {{ id }} }} }} }}
            pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor pageLimit nextOffsets previousOffsets }}
          }}
        }}"
    )
}

#[derive(Debug)]
struct Page {
    ids: Vec<String>,
    has_next: bool,
    has_previous: bool,
    start: String,
    end: String,
    limit: i64,
    next_offsets: Vec<String>,
    previous_offsets: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// Run `find` over type `ty` with `args` (paging variables); the page, or panics on errors.
async fn find(t: &TestApp, ty: &str, q: &str, args: Value) -> Page {
    let mut vars = args;
    vars["type"] = json!(ty);
    vars["q"] = json!(q);
    let data = t.ok(&find_query(ty), vars).await;
    let f = &data["find"];
    let ids: Vec<String> = f["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["cursor"], e["node"]["hypi"]["id"], "an edge's cursor is its node's id");
            e["cursor"].as_str().unwrap().to_string()
        })
        .collect();
    let info = &f["pageInfo"];
    Page {
        ids,
        has_next: info["hasNextPage"].as_bool().unwrap(),
        has_previous: info["hasPreviousPage"].as_bool().unwrap(),
        start: info["startCursor"].as_str().unwrap().to_string(),
        end: info["endCursor"].as_str().unwrap().to_string(),
        limit: info["pageLimit"].as_i64().unwrap(),
        next_offsets: strings(&info["nextOffsets"]),
        previous_offsets: strings(&info["previousOffsets"]),
    }
}

/// The first error of a `find`.
async fn find_err(t: &TestApp, ty: &str, q: &str, args: Value) -> Value {
    let mut vars = args;
    vars["type"] = json!(ty);
    vars["q"] = json!(q);
    t.err(&find_query(ty), vars).await
}

/// Ids only, everything in one page of at most 100.
async fn find_ids(t: &TestApp, ty: &str, q: &str) -> Vec<String> {
    find(t, ty, q, json!({ "first": 100 })).await.ids
}

/// An ArcQL string literal for `s`.
fn lit(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `startCursor`/`endCursor`: the first and last edges' cursors (Relay's rule); the sentinels
/// `FIRST`/`LAST` only on an empty page.
fn assert_sentinels(p: &Page, ctx: &str) {
    assert_eq!(p.start, p.ids.first().map_or("FIRST", String::as_str), "{ctx}: startCursor");
    assert_eq!(p.end, p.ids.last().map_or("LAST", String::as_str), "{ctx}: endCursor");
}

// ---------------------------------------------------------------------------------------------
// 1,000 rows, walked in both directions under several orders
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Row {
    id: String,
    k: Option<i64>,
    s: Option<String>,
    d: Option<String>,
    g: i64,
}

const S_VALUES: &[&str] = &["apple", "Banana", "cherry", "apple pie", "Äpfel", "", "banana", "Apple"];

fn row_values(i: usize) -> (Option<i64>, Option<String>, Option<String>, i64) {
    // Unique-ish: 1,000 rows over 997 values, and a few missing.
    let k = (!i.is_multiple_of(100)).then_some(((i * 7919) % 997) as i64);
    let s = (!i.is_multiple_of(7)).then(|| S_VALUES[i % S_VALUES.len()].to_string());
    let d = (!i.is_multiple_of(11)).then(|| {
        let h = (i * 37) % 500;
        format!("2020-01-{:02}T{:02}:00:00.000Z", 1 + h / 24, h % 24)
    });
    (k, s, d, (i % 5) as i64)
}

async fn thousand_rows() -> (TestApp, Vec<Row>) {
    let limits = Limits { objects_per_call: 1000, ..Limits::default() };
    let t = TestApp::with(ROWS, None, limits).await;
    let values: Vec<_> = (0..1000).map(row_values).collect();
    let input: Vec<Value> = values.iter().map(|(k, s, d, g)| json!({ "k": k, "s": s, "d": d, "g": g })).collect();
    let ids = t.upsert(json!({ "Row": input })).await;
    assert_eq!(ids.len(), 1000);
    let rows = ids.into_iter().zip(values).map(|(id, (k, s, d, g))| Row { id, k, s, d, g }).collect();
    (t, rows)
}

/// Missing values are the smallest.
fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

/// The expected order of `rows` for `keys` (`(name, ascending)`), then `hypi.id` ascending.
fn ordered(rows: &[Row], keys: &[(&str, bool)]) -> Vec<String> {
    let mut v: Vec<&Row> = rows.iter().collect();
    v.sort_by(|a, b| {
        for (key, asc) in keys {
            let o = match *key {
                "k" => cmp_opt(&a.k, &b.k),
                "s" => cmp_opt(&a.s, &b.s),
                "d" => cmp_opt(&a.d, &b.d),
                "g" => a.g.cmp(&b.g),
                other => panic!("{other}"),
            };
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    v.into_iter().map(|r| r.id.clone()).collect()
}

/// Page through `q` with `first`/`after` (or `last`/`before`) of `size`, checking every page
/// against `want` and the exact page info; the walk must reassemble `want`.
async fn walk(t: &TestApp, q: &str, want: &[String], size: usize, forward: bool) {
    let mut got: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= want.len() / size + 2, "{q}: too many pages");
        let ctx = format!("{q} size {size} {} {cursor:?}", if forward { "after" } else { "before" });
        if forward {
            let p = find(t, "Row", q, json!({ "first": size, "after": cursor })).await;
            let done = got.len();
            let n = size.min(want.len() - done);
            assert_eq!(p.ids, want[done..done + n], "{ctx}");
            assert_eq!(p.has_next, done + size < want.len(), "{ctx}: hasNextPage");
            assert_eq!(p.has_previous, done > 0, "{ctx}: hasPreviousPage");
            assert_eq!(p.limit, size as i64, "{ctx}: pageLimit");
            assert_sentinels(&p, &ctx);
            got.extend(p.ids);
            if !p.has_next {
                break;
            }
            cursor = Some(p.end);
        } else {
            let p = find(t, "Row", q, json!({ "last": size, "before": cursor })).await;
            let left = want.len() - got.len();
            let n = size.min(left);
            assert_eq!(p.ids, want[left - n..left], "{ctx}");
            assert_eq!(p.has_previous, left > size, "{ctx}: hasPreviousPage");
            assert_eq!(p.has_next, !got.is_empty(), "{ctx}: hasNextPage");
            assert_sentinels(&p, &ctx);
            let mut all = p.ids;
            all.extend(got);
            got = all;
            if !p.has_previous {
                break;
            }
            cursor = Some(p.start);
        }
    }
    assert_eq!(got, want, "{q}: the walk reassembles the whole order");
}

#[tokio::test]
async fn paging_walks_1000_rows_in_both_directions_under_several_orders() {
    let (t, rows) = thousand_rows().await;
    let cases: &[(&str, &[(&str, bool)])] = &[
        ("*", &[]),
        ("* SORT k ASC", &[("k", true)]),
        // A key without a direction sorts DESC; many duplicates and missing values.
        ("SORT s", &[("s", false)]),
        ("SORT d DESC", &[("d", false)]),
        ("SORT g ASC, s DESC", &[("g", true), ("s", false)]),
        ("SORT s ASC, k", &[("s", true), ("k", false)]),
    ];
    for (q, keys) in cases {
        let want = ordered(&rows, keys);
        assert_eq!(want.len(), 1000);
        // 1,000 is not a multiple of 37; it is one of 100 (the last page is exactly full).
        for size in [37, 100] {
            walk(&t, q, &want, size, true).await;
            walk(&t, q, &want, size, false).await;
        }
    }
    // With a filter.
    let filtered: Vec<Row> = rows.iter().filter(|r| r.g == 2).cloned().collect();
    walk(&t, "g = 2 SORT s ASC", &ordered(&filtered, &[("s", true)]), 30, true).await;
    walk(&t, "g = 2 SORT s ASC", &ordered(&filtered, &[("s", true)]), 30, false).await;
}

#[tokio::test]
async fn page_sizes_page_numbers_and_offsets() {
    let (t, rows) = thousand_rows().await;
    let want = ordered(&rows, &[("k", true)]);
    let q = "SORT k ASC";

    // Default 25; the cap is 100 and larger requests are clamped, for first and last.
    let p = find(&t, "Row", q, json!({})).await;
    assert_eq!((p.ids.as_slice(), p.limit), (&want[..25], 25));
    assert!(p.has_next && !p.has_previous);
    let p = find(&t, "Row", q, json!({ "first": 1000 })).await;
    assert_eq!((p.ids.as_slice(), p.limit), (&want[..100], 100));
    let p = find(&t, "Row", q, json!({ "last": 101 })).await;
    assert_eq!((p.ids.as_slice(), p.limit), (&want[900..], 100));
    assert!(p.has_previous && !p.has_next);
    // The last page's endCursor is its last edge (Relay); paging on from it is empty.
    assert_eq!((p.start.as_str(), p.end.as_str()), (want[900].as_str(), want[999].as_str()));
    let after_end = find(&t, "Row", q, json!({ "first": 10, "after": p.end })).await;
    assert!(after_end.ids.is_empty() && after_end.has_previous && !after_end.has_next);
    assert_eq!((after_end.start.as_str(), after_end.end.as_str()), ("FIRST", "LAST"));
    let p = find(&t, "Row", q, json!({ "first": 0 })).await;
    assert!(p.ids.is_empty());
    assert_eq!((p.start.as_str(), p.end.as_str()), ("FIRST", "LAST"));

    // `page: n` is the n-th page of size `first`, from the start or from `after`.
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 3 })).await;
    assert_eq!(p.ids, want[20..30]);
    assert!(p.has_previous && p.has_next);
    assert_eq!((p.start.as_str(), p.end.as_str()), (want[20].as_str(), want[29].as_str()));
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 2, "after": want[4] })).await;
    assert_eq!(p.ids, want[15..25]);
    assert!(p.has_previous && p.has_next);
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 1 })).await;
    assert_eq!(p.ids, want[..10]);
    assert!(!p.has_previous);
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 100 })).await;
    assert_eq!(p.ids, want[990..]);
    assert!(p.has_previous && !p.has_next);
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 101 })).await;
    assert!(p.ids.is_empty() && p.has_previous && !p.has_next);

    // Offsets: the cursors opening each of up to 5 pages either way.
    let p = find(&t, "Row", q, json!({ "first": 10, "after": want[19] })).await;
    assert_eq!(p.ids, want[20..30]);
    assert_eq!(p.next_offsets, [29, 39, 49, 59, 69].map(|i| want[i].clone()));
    assert_eq!(p.next_offsets[0], p.end);
    assert_eq!(p.previous_offsets, [20, 10].map(|i| want[i].clone()));
    assert_eq!(p.previous_offsets[0], p.start);
    // The same page reached with `page: 3`.
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 3 })).await;
    assert_eq!(p.next_offsets, [29, 39, 49, 59, 69].map(|i| want[i].clone()));
    assert_eq!(p.previous_offsets, [20, 10].map(|i| want[i].clone()));
    // Near the end: only the pages that exist.
    let p = find(&t, "Row", q, json!({ "first": 10, "after": want[959] })).await;
    assert_eq!(p.next_offsets, [969, 979, 989].map(|i| want[i].clone()));
    // Backwards.
    let p = find(&t, "Row", q, json!({ "last": 10, "before": want[500] })).await;
    assert_eq!(p.ids, want[490..500]);
    assert_eq!(p.previous_offsets, [490, 480, 470, 460, 450].map(|i| want[i].clone()));
    assert_eq!(p.next_offsets, [499, 509, 519, 529, 539].map(|i| want[i].clone()));
    // hasPreviousPage/hasNextPage are exact whichever cursor bounds the window.
    let p = find(&t, "Row", q, json!({ "last": 5, "after": want[996] })).await;
    assert_eq!(p.ids, want[997..]);
    assert!(p.has_previous, "rows 0..=996 come before the page");
    assert!(!p.has_next);
    assert_sentinels(&p, "last 5 after 996");
    let p = find(&t, "Row", q, json!({ "last": 5, "after": want[990] })).await;
    assert_eq!(p.ids, want[995..]);
    assert!(p.has_previous && !p.has_next);
    let p = find(&t, "Row", q, json!({ "first": 5, "before": want[3] })).await;
    assert_eq!(p.ids, want[..3]);
    assert!(!p.has_previous && p.has_next, "rows 3.. come after the page");
    assert_sentinels(&p, "first 5 before 3");
    let p = find(&t, "Row", q, json!({ "first": 10, "page": 2, "after": want[999] })).await;
    assert!(p.ids.is_empty());
    assert!(p.has_previous && !p.has_next, "everything lies before the cursor");
    let p = find(&t, "Row", q, json!({ "first": 10, "after": want[999] })).await;
    assert!(p.ids.is_empty() && p.has_previous && !p.has_next);
    // No page that way: empty lists.
    let p = find(&t, "Row", q, json!({ "first": 10 })).await;
    assert!(p.previous_offsets.is_empty());
    assert_eq!(p.next_offsets.len(), 5);
    let p = find(&t, "Row", q, json!({ "last": 10 })).await;
    assert!(p.next_offsets.is_empty());
    assert_eq!(p.previous_offsets, [990, 980, 970, 960, 950].map(|i| want[i].clone()));
}

#[tokio::test]
async fn paging_argument_errors_and_cursors() {
    let t = TestApp::new(ROWS).await;
    let ids = t.upsert(json!({ "Row": (0..10).map(|i| json!({ "k": i, "g": i % 2 })).collect::<Vec<_>>() })).await;

    // Errors.
    let e = find_err(&t, "Row", "*", json!({ "after": "01NOSUCHOBJECT00000000000" })).await;
    assert_eq!(code(&e), "NOT_FOUND", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "before": "nope" })).await;
    assert_eq!(code(&e), "NOT_FOUND", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "first": 1, "last": 1 })).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "page": 2, "last": 1 })).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "first": -1 })).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "last": -5 })).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
    let e = find_err(&t, "Row", "*", json!({ "first": 1, "page": 0 })).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");

    // A cursor need not match the filter: the odd rows after row 4 (which is even).
    let p = find(&t, "Row", "g = 1 SORT k ASC", json!({ "first": 10, "after": ids[4] })).await;
    assert_eq!(p.ids, [&ids[5], &ids[7], &ids[9]].map(String::clone));
    // Nothing matching lies at or before row 4 except rows 1 and 3.
    assert!(p.has_previous && !p.has_next);
    let p = find(&t, "Row", "g = 1 SORT k ASC", json!({ "first": 10, "after": ids[0] })).await;
    assert_eq!(p.ids.len(), 5);
    assert!(!p.has_previous, "no odd row lies at or before row 0");
    let p = find(&t, "Row", "g = 1 SORT k ASC", json!({ "last": 10, "before": ids[4] })).await;
    assert_eq!(p.ids, [&ids[1], &ids[3]].map(String::clone));
    assert!(!p.has_previous && p.has_next);
    // Both cursors: the rows between them.
    let p = find(&t, "Row", "SORT k ASC", json!({ "first": 10, "after": ids[2], "before": ids[6] })).await;
    assert_eq!(p.ids, ids[3..6]);
    assert!(p.has_previous && p.has_next);

    // A trashed object is no cursor unless trashed objects are included.
    let n = t.ok("mutation { trash(type: Row, arcql: \"k = 4\") }", json!({})).await;
    assert_eq!(n["trash"], 1);
    let e = find_err(&t, "Row", "SORT k ASC", json!({ "after": ids[4] })).await;
    assert_eq!(code(&e), "NOT_FOUND", "{e}");
    let p = find(&t, "Row", "SORT k ASC", json!({ "after": ids[4], "trashed": true })).await;
    assert_eq!(p.ids, ids[5..]);
    // includeTrashed returns trashed objects too; without it they are gone.
    let p = find(&t, "Row", "SORT k ASC", json!({})).await;
    assert_eq!(p.ids.len(), 9);
    assert!(!p.ids.contains(&ids[4]));
    let p = find(&t, "Row", "SORT k ASC", json!({ "trashed": true })).await;
    assert_eq!(p.ids, ids);
    let p = find(&t, "Row", "EXIST hypi.trashed", json!({ "trashed": true })).await;
    assert_eq!(p.ids, [ids[4].clone()]);
}

// ---------------------------------------------------------------------------------------------
// values: hostile strings, word matching, limits, syntax errors
// ---------------------------------------------------------------------------------------------

const HOSTILE: &[&str] = &[
    "it's",
    "\"quoted\"",
    "50% off",
    "a_b",
    "back\\slash",
    "\\\\",
    "'; DROP TABLE x; --",
    "Robert'); DROP TABLE Students;--",
    "日本語 テキスト",
    "emoji 😀 ok",
    "[bracket]",
    "*star?",
    "%_%",
    "$1 ?",
    "line\nbreak",
    "tab\there",
    "Ünïcödé",
    "",
    " ",
];

/// `*` any run, `?` one character.
fn glob(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_ascii_punctuation() || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

#[tokio::test]
async fn hostile_strings_are_stored_and_found_exactly() {
    let t = TestApp::new(ROWS).await;
    let ids = t.upsert(json!({ "Row": HOSTILE.iter().map(|s| json!({ "s": s })).collect::<Vec<_>>() })).await;
    let by = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        HOSTILE.iter().zip(&ids).filter(|(s, _)| pred(s)).map(|(_, id)| id.clone()).collect()
    };
    for (i, s) in HOSTILE.iter().enumerate() {
        // Stored exactly.
        let data =
            t.ok("query($id: String!) { get(type: Row, id: $id) { ... on Row { s } } }", json!({ "id": ids[i] })).await;
        assert_eq!(data["get"]["s"], *s);
        // `=` finds exactly it (double quotes as well as single).
        assert_eq!(find_ids(&t, "Row", &format!("s = {}", lit(s))).await, [ids[i].clone()], "s = {s:?}");
        let dq = format!("s = \"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        assert_eq!(find_ids(&t, "Row", &dq).await, [ids[i].clone()], "{dq}");
        // `^`: every value with that prefix (case-sensitive, no metacharacters).
        assert_eq!(find_ids(&t, "Row", &format!("s ^ {}", lit(s))).await, by(&|v| v.starts_with(s)), "s ^ {s:?}");
        // `*` with the value as a pattern: `*` and `?` are wildcards, `%` and `_` are not.
        let pat: Vec<char> = s.chars().collect();
        assert_eq!(
            find_ids(&t, "Row", &format!("s * {}", lit(s))).await,
            by(&|v| glob(&pat, &v.chars().collect::<Vec<_>>())),
            "s * {s:?}"
        );
        // `~`: every word of the value.
        let w = words(s);
        if !w.is_empty() {
            let want = by(&|v| {
                let have = words(v);
                w.iter().all(|x| have.contains(x))
            });
            assert!(want.contains(&ids[i]));
            assert_eq!(find_ids(&t, "Row", &format!("s ~ {}", lit(s))).await, want, "s ~ {s:?}");
        }
        // IN, with a neighbour.
        let j = (i + 1) % HOSTILE.len();
        let mut want = vec![ids[i].clone(), ids[j].clone()];
        want.sort();
        assert_eq!(find_ids(&t, "Row", &format!("s IN ({}, {},)", lit(s), lit(HOSTILE[j]))).await, want, "s IN {s:?}");
        // NOT =: everything else (all have a value).
        assert_eq!(find_ids(&t, "Row", &format!("NOT s = {}", lit(s))).await, by(&|v| v != *s), "NOT s = {s:?}");
    }
    // The table is intact.
    assert_eq!(find_ids(&t, "Row", "*").await.len(), HOSTILE.len());
    // `%` and `_` are literal in `*` and `^`, `?` is one character.
    assert_eq!(find_ids(&t, "Row", "s * '%'").await, Vec::<String>::new());
    assert_eq!(find_ids(&t, "Row", "s * '___'").await, Vec::<String>::new());
    assert_eq!(find_ids(&t, "Row", "s * '?_?'").await, by(&|v| v == "a_b" || v == "%_%"));
    assert_eq!(find_ids(&t, "Row", "s ^ '%'").await, by(&|v| v.starts_with('%')));
    assert_eq!(find_ids(&t, "Row", "s * '*\\\\*'").await, by(&|v| v.contains('\\')));
}

#[tokio::test]
async fn word_match_follows_the_contract_examples() {
    let t = TestApp::new(ROWS).await;
    let texts = [
        "Blue Moon",
        "a blue.",
        "bluebird",
        "BLUE",
        "moon blue",
        "true-blue",
        "blue_moon",
        "Navy",
        "blue42",
        "42 blue",
    ];
    let ids = t.upsert(json!({ "Row": texts.iter().map(|s| json!({ "s": s })).collect::<Vec<_>>() })).await;
    let pick = |is: &[usize]| is.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();
    assert_eq!(find_ids(&t, "Row", "s ~ 'blue'").await, pick(&[0, 1, 3, 4, 5, 6, 9]));
    assert_eq!(find_ids(&t, "Row", "s ~ 'BLUE'").await, pick(&[0, 1, 3, 4, 5, 6, 9]));
    // Every word, in any order.
    assert_eq!(find_ids(&t, "Row", "s ~ 'moon blue'").await, pick(&[0, 4, 6]));
    assert_eq!(find_ids(&t, "Row", "s ~ 'blue, moon!'").await, pick(&[0, 4, 6]));
    assert_eq!(find_ids(&t, "Row", "s ~ 'bluebird'").await, pick(&[2]));
    assert_eq!(find_ids(&t, "Row", "s ~ 'blu'").await, Vec::<String>::new());
    assert_eq!(find_ids(&t, "Row", "s ~ '42'").await, pick(&[9]));
    assert_eq!(find_ids(&t, "Row", "NOT s ~ 'blue'").await, pick(&[2, 7, 8]));
    // A query without words is an error, not "everything".
    let e = find_err(&t, "Row", "s ~ ' .,'", json!({})).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
}

#[tokio::test]
async fn limits_and_errors_of_arcql() {
    let t = TestApp::new(EXAMPLE).await;
    t.upsert(json!({ "Book": [{ "title": "x", "pages": 1, "price": 1.5 }] })).await;

    // Wildcard patterns: 100 characters pass, 101 and 10,000 are refused by a length cap.
    let ok = "*?".repeat(50);
    find(&t, "Book", &format!("title * '{ok}'"), json!({})).await;
    for n in [101, 10_000] {
        let pat: String = "*?".repeat(n).chars().take(n).collect();
        let e = find_err(&t, "Book", &format!("title * '{pat}'"), json!({})).await;
        assert_eq!(code(&e), "LIMIT_EXCEEDED", "{n}: {e}");
    }
    // Deep parentheses and NOT chains are errors, never a crash.
    let q = format!("{}title = 'x'{}", "(".repeat(32), ")".repeat(32));
    assert_eq!(find(&t, "Book", &q, json!({})).await.ids.len(), 1);
    for depth in [33, 100, 2000] {
        let q = format!("{}title = 'x'{}", "(".repeat(depth), ")".repeat(depth));
        let e = find_err(&t, "Book", &q, json!({})).await;
        assert_eq!(code(&e), "ARCQL_SYNTAX", "{depth}: {e}");
        let q = format!("{}title = 'x'", "NOT ".repeat(depth));
        let e = find_err(&t, "Book", &q, json!({})).await;
        assert_eq!(code(&e), "ARCQL_SYNTAX", "NOT x {depth}: {e}");
    }
    for depth in [5_000, 50_000] {
        let q = format!("{}title = 'x'{}", "(".repeat(depth), ")".repeat(depth));
        let e = find_err(&t, "Book", &q, json!({})).await;
        assert!(matches!(code(&e), "ARCQL_SYNTAX" | "LIMIT_EXCEEDED"), "{depth}: {e}");
    }
    let e = find_err(&t, "Book", &"title = 'x' OR ".repeat(1000), json!({})).await;
    assert_eq!(code(&e), "LIMIT_EXCEEDED", "{e}");

    // Precise messages (contract §4), never SQL.
    let cases = [
        ("pages >1 AND a =", "ARCQL_SYNTAX", "ArcQL syntax error at 1:17: expected a value after '='"),
        ("titel = 'x'", "UNKNOWN_FIELD", "unknown field 'Book.titel'"),
        ("price ^ '1'", "VALIDATION", "'^' is not defined for Float field 'Book.price'"),
        ("pages = 'abc'", "VALIDATION", "'abc' is not an Int for field 'Book.pages'"),
        ("available < true", "VALIDATION", "Book.available"),
        ("rating = 'MEH'", "VALIDATION", "Book.rating"),
        ("published > 'yesterday'", "VALIDATION", "Book.published"),
        ("author.nam = 'x'", "UNKNOWN_FIELD", "Author.nam"),
        ("* SORT author.booklist.title", "VALIDATION", "author.booklist.title"),
    ];
    for (q, want_code, want) in cases {
        let e = find_err(&t, "Book", q, json!({})).await;
        let msg = e["message"].as_str().unwrap();
        assert_eq!(code(&e), want_code, "{q}: {e}");
        assert!(msg.contains(want), "{q}: {msg}");
        for sql in ["SELECT", "FROM", "hypi_instance", "app__"] {
            assert!(!msg.contains(sql), "{q}: {msg}");
        }
    }
    // `= null` / `!= null` on a reference and a list.
    let t2 = TestApp::new(EXAMPLE).await;
    let a = t2.upsert(json!({ "Author": [{ "name": "a", "bestbook": { "title": "b" } }, { "name": "c", "booklist": [{ "title": "d" }] }] })).await;
    assert_eq!(find_ids(&t2, "Author", "bestbook = null").await, [a[1].clone()]);
    assert_eq!(find_ids(&t2, "Author", "bestbook != null").await, [a[0].clone()]);
    assert_eq!(find_ids(&t2, "Author", "booklist = null").await, [a[0].clone()]);
    assert_eq!(find_ids(&t2, "Author", "booklist != null").await, [a[1].clone()]);
}

// ---------------------------------------------------------------------------------------------
// trash, untrash, delete, deleteScalars
// ---------------------------------------------------------------------------------------------

/// Books `b00`..`b29` with `pages` 0..29, in two upserts (25 objects per call at most).
async fn thirty_books(t: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for range in [0..25, 25..30] {
        ids.extend(t.upsert(json!({ "Book": range.map(|i| json!({ "title": format!("b{i:02}"), "pages": i })).collect::<Vec<_>>() })).await);
    }
    ids
}

async fn get_book(t: &TestApp, id: &str, trashed: bool) -> Value {
    t.ok(
        "query($id: String!, $t: Boolean) { get(type: Book, id: $id, includeTrashed: $t) { ... on Book { title hypi { trashed } } } }",
        json!({ "id": id, "t": trashed }),
    )
    .await["get"]
        .clone()
}

async fn bulk(t: &TestApp, op: &str, ty: &str, q: &str) -> i64 {
    let m = format!("mutation($q: String!) {{ {op}(type: {ty}, arcql: $q) }}");
    t.ok(&m, json!({ "q": q })).await[op].as_i64().unwrap()
}

/// Rows of the change feed for `object` (operation, version), oldest first.
async fn changes(t: &TestApp, object: &str) -> Vec<(String, i64)> {
    t.changes().await.into_iter().filter(|c| c.2 == object).map(|c| (c.3, c.4)).collect()
}

async fn count_changes(t: &TestApp) -> usize {
    t.changes().await.len()
}

#[tokio::test]
async fn trash_and_untrash() {
    let t = TestApp::new(EXAMPLE).await;
    let books = thirty_books(&t).await;

    assert_eq!(bulk(&t, "trash", "Book", "pages < 3").await, 3);
    assert_eq!(get_book(&t, &books[0], false).await, Value::Null);
    let got = get_book(&t, &books[0], true).await;
    assert_eq!(got["title"], "b00");
    assert!(got["hypi"]["trashed"].is_string());
    assert_eq!(find_ids(&t, "Book", "pages < 5").await, books[3..5]);
    assert_eq!(find_ids(&t, "Book", "*").await.len(), 27);
    // Trashing again changes nothing; untrash only restores trashed objects.
    assert_eq!(bulk(&t, "trash", "Book", "pages < 3").await, 0);
    assert_eq!(bulk(&t, "untrash", "Book", "pages < 5").await, 3);
    assert_eq!(bulk(&t, "untrash", "Book", "pages < 5").await, 0);
    assert_eq!(find_ids(&t, "Book", "pages < 5").await, books[..5]);
    assert_eq!(
        changes(&t, &books[0]).await.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["insert", "trash", "untrash"]
    );

    // At most 25 per call, in the query's order.
    assert_eq!(bulk(&t, "trash", "Book", "SORT pages").await, 25);
    assert_eq!(find_ids(&t, "Book", "*").await, books[..5]);
    assert_eq!(bulk(&t, "trash", "Book", "*").await, 5);
    assert_eq!(bulk(&t, "untrash", "Book", "SORT pages ASC").await, 25);
    assert_eq!(find_ids(&t, "Book", "*").await, books[..25]);

    // A trashed object is also gone from references and list paths.
    let a = t.upsert(json!({ "Author": [{ "name": "A", "bestbook": { "hypi": { "id": books[0] } }, "booklist": [{ "hypi": { "id": books[1] } }] }] })).await;
    assert_eq!(find_ids(&t, "Author", "EXIST bestbook AND booklist.pages = 1").await, a);
    bulk(&t, "trash", "Book", "pages < 2").await;
    assert_eq!(find_ids(&t, "Author", "EXIST bestbook OR EXIST booklist").await, Vec::<String>::new());
    let data = t.ok("query($id: String!) { get(type: Author, id: $id) { ... on Author { bestbook { title } booklist { title } } } }", json!({ "id": a[0] })).await;
    assert_eq!(data["get"], json!({ "bestbook": null, "booklist": [] }));
}

#[tokio::test]
async fn delete_semantics() {
    let t = TestApp::new(EXAMPLE).await;
    let books = thirty_books(&t).await;
    let link = |id: &str| json!({ "hypi": { "id": id } });
    let authors = t
        .upsert(json!({ "Author": [
            { "name": "listed", "booklist": [link(&books[0]), link(&books[1])], "tags": ["x", "y"] },
            { "name": "best", "bestbook": link(&books[2]), "booklist": [link(&books[3])] },
        ] }))
        .await;

    // A list still references book 0: the delete fails naming Author.booklist and changes
    // nothing, not even the other matched book.
    let feed = count_changes(&t).await;
    let e = t.err("mutation { delete(type: Book, arcql: \"pages IN [0, 5)\") }", json!({})).await;
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("Author.booklist"), "{msg}");
    assert_ne!(code(&e), "INTERNAL", "{e}");
    assert_eq!(find_ids(&t, "Book", "pages < 5").await, books[..5]);
    assert_eq!(count_changes(&t).await, feed, "a failed delete writes no change rows");
    // Author.bestbook (processed before Author.booklist) still points at book 2.
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) { ... on Author { bestbook { title } } } }",
            json!({ "id": authors[1] }),
        )
        .await;
    assert_eq!(data["get"]["bestbook"]["title"], "b02");

    // One-to-one references become null; the referring object is updated in the feed.
    assert_eq!(bulk(&t, "delete", "Book", "pages = 2").await, 1);
    let data = t.ok("query($id: String!) { get(type: Author, id: $id) { ... on Author { bestbook { title } booklist { title } } } }", json!({ "id": authors[1] })).await;
    assert_eq!(data["get"], json!({ "bestbook": null, "booklist": [{ "title": "b03" }] }));
    assert_eq!(find_ids(&t, "Author", "bestbook = null").await, authors);
    assert_eq!(changes(&t, &books[2]).await.last().unwrap().0, "delete");
    assert_eq!(changes(&t, &authors[1]).await.last().unwrap().0, "update");
    assert_eq!(get_book(&t, &books[2], true).await, Value::Null);

    // clearArrayReferences removes the links first.
    let n = t
        .ok("mutation { delete(type: Book, arcql: \"pages IN [0, 1]\", clearArrayReferences: true) }", json!({}))
        .await;
    assert_eq!(n["delete"], 2);
    let data = t
        .ok(
            "query($id: String!) { get(type: Author, id: $id) { ... on Author { booklist { title } tags } } }",
            json!({ "id": authors[0] }),
        )
        .await;
    assert_eq!(data["get"], json!({ "booklist": [], "tags": ["x", "y"] }));
    assert_eq!(changes(&t, &authors[0]).await.last().unwrap().0, "unlink");

    // Deleting an object removes its scalar lists and outgoing links, not the targets: an
    // object created again with the same id starts empty.
    assert_eq!(bulk(&t, "delete", "Author", "name = 'best'").await, 1);
    assert_eq!(find_ids(&t, "Book", "pages = 3").await, [books[3].clone()], "the linked book survives");
    assert_eq!(bulk(&t, "delete", "Author", "name = 'listed'").await, 1);
    t.upsert(json!({ "Author": [{ "hypi": { "id": authors[0] }, "name": "again" }, { "hypi": { "id": authors[1] }, "name": "again2" }] })).await;
    let data = t.ok("query($id: String!) { get(type: Author, id: $id) { ... on Author { name booklist { title } tags bestbook { title } } } }", json!({ "id": authors[0] })).await;
    assert_eq!(data["get"], json!({ "name": "again", "booklist": [], "tags": [], "bestbook": null }));
    // Book 3 is no longer referenced: it can be deleted without clearArrayReferences.
    assert_eq!(bulk(&t, "delete", "Book", "pages = 3").await, 1);

    // At most 25 per call, in the query's order; trashed objects are deleted too.
    bulk(&t, "trash", "Book", "pages = 29").await;
    assert_eq!(bulk(&t, "delete", "Book", "SORT pages").await, 25);
    let left: Vec<String> = books[4..].iter().take(1).cloned().collect();
    assert_eq!(find_ids(&t, "Book", "*").await, left, "the 25 largest went, book 4 is left");
    assert_eq!(bulk(&t, "delete", "Book", "*").await, 1);
    assert_eq!(bulk(&t, "delete", "Book", "*").await, 0);
}

#[tokio::test]
async fn delete_blocked_by_a_list_of_the_same_type() {
    let t = TestApp::new("type Node { name: String  next: Node  kids: [Node!] }").await;
    t.upsert(json!({ "Node": [{ "name": "root", "kids": [{ "name": "kid" }] }] })).await;
    let kid = find_ids(&t, "Node", "name = 'kid'").await.remove(0);
    let e = t.err("mutation { delete(type: Node, arcql: \"name = 'kid'\") }", json!({})).await;
    assert!(e["message"].as_str().unwrap().contains("Node.kids"), "{e}");
    // Deleting the parent and the child together: the only list that references the child
    // belongs to an object deleted with it, and outgoing links go with their object.
    let n2 = t.ok("mutation { delete(type: Node, arcql: \"*\") }", json!({})).await;
    assert_eq!(n2["delete"], 2);
    assert!(find_ids(&t, "Node", "*").await.is_empty());
    // An object whose own list holds itself.
    let me = t.upsert(json!({ "Node": [{ "hypi": { "id": "self" }, "name": "self" }] })).await;
    t.ok("mutation { link(from: Node, to: Node, via: \"kids\", whereFromID: \"self\", andToID: \"self\") }", json!({}))
        .await;
    assert_eq!(find_ids(&t, "Node", "kids.name = 'self'").await, me);
    let n3 = t.ok("mutation { delete(type: Node, arcql: \"name = 'self'\") }", json!({})).await;
    assert_eq!(n3["delete"], 1);
    // But a surviving referrer still blocks, and clearArrayReferences clears it.
    let n = t.upsert(json!({ "Node": [{ "name": "p", "kids": [{ "name": "k" }] }] })).await;
    let e = t.err("mutation { delete(type: Node, arcql: \"name = 'k'\") }", json!({})).await;
    assert!(e["message"].as_str().unwrap().contains("Node.kids"), "{e}");
    let n4 =
        t.ok("mutation { delete(type: Node, arcql: \"name = 'k'\", clearArrayReferences: true) }", json!({})).await;
    assert_eq!(n4["delete"], 1);
    assert_eq!(find_ids(&t, "Node", "*").await, n);
    let _ = kid;
}

#[tokio::test]
async fn delete_scalars_semantics() {
    let t = TestApp::new("type Bag { name: String  nums: [Int]  tags: [String]  other: Bag  bags: [Bag] }").await;
    let bags = t
        .upsert(json!({ "Bag": [
            { "name": "a", "nums": [1, 2, 3, 2, 10], "tags": ["x", "y", "x"] },
            { "name": "b", "nums": [3, 4], "tags": ["y"] },
            { "name": "c", "nums": [5] },
            { "name": "d" },
        ] }))
        .await;
    let read = |id: String| {
        let t = &t;
        async move {
            t.ok("query($id: String!) { get(type: Bag, id: $id) { ... on Bag { nums tags } } }", json!({ "id": id }))
                .await["get"]
                .clone()
        }
    };
    let ds = "mutation($f: String!, $v: [String!]!, $q: String!) { deleteScalars(type: Bag, field: $f, values: $v, arcql: $q) }";

    // Int values passed as strings; every occurrence goes; only objects that changed count.
    let n = t.ok(ds, json!({ "f": "nums", "v": ["2", "3"], "q": "*" })).await;
    assert_eq!(n["deleteScalars"], 2);
    assert_eq!(read(bags[0].clone()).await, json!({ "nums": [1, 10], "tags": ["x", "y", "x"] }));
    assert_eq!(read(bags[1].clone()).await, json!({ "nums": [4], "tags": ["y"] }));
    assert_eq!(read(bags[2].clone()).await, json!({ "nums": [5], "tags": [] }));
    assert_eq!(changes(&t, &bags[0]).await.last().unwrap().0, "update");
    assert_eq!(changes(&t, &bags[2]).await.len(), 1, "an unchanged object gets no change row");
    // The filter applies.
    let n = t.ok(ds, json!({ "f": "tags", "v": ["x", "y"], "q": "name = 'b'" })).await;
    assert_eq!(n["deleteScalars"], 1);
    assert_eq!(read(bags[0].clone()).await["tags"], json!(["x", "y", "x"]));
    assert_eq!(read(bags[1].clone()).await["tags"], json!([]));
    // Nothing to remove: 0.
    let n = t.ok(ds, json!({ "f": "nums", "v": ["99"], "q": "*" })).await;
    assert_eq!(n["deleteScalars"], 0);

    // Errors: not a scalar list, a bad Int, an unknown field.
    for (f, v, want) in [
        ("name", "a", "VALIDATION"),
        ("other", "a", "VALIDATION"),
        ("bags", "a", "VALIDATION"),
        ("nums", "x", "VALIDATION"),
        ("nope", "1", "UNKNOWN_FIELD"),
    ] {
        let e = t.err(ds, json!({ "f": f, "v": [v], "q": "*" })).await;
        assert_eq!(code(&e), want, "{f}: {e}");
        assert!(e["message"].as_str().unwrap().contains(&format!("Bag.{f}")), "{f}: {e}");
    }
    assert_eq!(read(bags[0].clone()).await["nums"], json!([1, 10]));
}

#[tokio::test]
async fn bulk_operations_cap_at_25_in_query_order_for_delete_scalars() {
    let t = TestApp::new("type Bag { n: Int  tags: [String] }").await;
    let bags = t.upsert(json!({ "Bag": (0..25).map(|i| json!({ "n": i, "tags": ["t"] })).collect::<Vec<_>>() })).await;
    let more = t.upsert(json!({ "Bag": (25..30).map(|i| json!({ "n": i, "tags": ["t"] })).collect::<Vec<_>>() })).await;
    let ds = "mutation($q: String!) { deleteScalars(type: Bag, field: \"tags\", values: [\"t\"], arcql: $q) }";
    assert_eq!(t.ok(ds, json!({ "q": "SORT n" })).await["deleteScalars"], 25);
    // The 25 largest lost their tag.
    let left = find_ids(&t, "Bag", "tags = 't' SORT n ASC").await;
    assert_eq!(left, bags[..5]);
    assert_eq!(t.ok(ds, json!({ "q": "*" })).await["deleteScalars"], 5);
    assert_eq!(t.ok(ds, json!({ "q": "*" })).await["deleteScalars"], 0);
    let _ = more;
}

// ---------------------------------------------------------------------------------------------
// list fields: arcql + SORT + first/last/after/before
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_fields_filter_sort_and_page() {
    let t = TestApp::new(EXAMPLE).await;
    // 30 books in list order b00..b29; pages = (i * 7) % 30 (all distinct), price missing on
    // every third.
    let books: Vec<Value> = (0..30)
        .map(|i| {
            let mut b = json!({ "title": format!("b{i:02}"), "pages": (i * 7) % 30 });
            if i % 3 != 0 {
                b["price"] = json!(i as f64 / 2.0);
            }
            b
        })
        .collect();
    let a = t.upsert(json!({ "Author": [{ "name": "A", "booklist": books }] })).await.remove(0);
    let list = |args: &str| {
        let q = format!("query($id: String!) {{ get(type: Author, id: $id) {{ ... on Author {{ booklist({args}) {{ title pages hypi {{ id }} }} }} }} }}");
        let t = &t;
        let a = a.clone();
        async move {
            let data = t.ok(&q, json!({ "id": a })).await;
            data["get"]["booklist"].as_array().unwrap().clone()
        }
    };
    let titles = |v: &[Value]| v.iter().map(|b| b["title"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    // The expected order: pages > 10, by pages descending.
    let mut want: Vec<(i64, String)> =
        (0..30).map(|i| (((i * 7) % 30) as i64, format!("b{i:02}"))).filter(|(p, _)| *p > 10).collect();
    want.sort_by_key(|x| std::cmp::Reverse(x.0));
    let want: Vec<String> = want.into_iter().map(|x| x.1).collect();
    assert_eq!(want.len(), 19);

    let all = list("arcql: \"pages > 10 SORT pages\", first: 100").await;
    assert_eq!(titles(&all), want);
    let first5 = list("arcql: \"pages > 10 SORT pages\", first: 5").await;
    assert_eq!(titles(&first5), want[..5]);
    let after = first5[4]["hypi"]["id"].as_str().unwrap().to_string();
    let next = list(&format!("arcql: \"pages > 10 SORT pages\", first: 5, after: \"{after}\"")).await;
    assert_eq!(titles(&next), want[5..10]);
    let last3 = list("arcql: \"pages > 10 SORT pages\", last: 3").await;
    assert_eq!(titles(&last3), want[16..]);
    let before = all[10]["hypi"]["id"].as_str().unwrap().to_string();
    let prev = list(&format!("arcql: \"pages > 10 SORT pages\", last: 4, before: \"{before}\"")).await;
    assert_eq!(titles(&prev), want[6..10]);
    // A filter without SORT keeps the list order.
    let unsorted = list("arcql: \"pages > 10\", first: 100").await;
    let mut in_list_order = want.clone();
    in_list_order.sort();
    assert_eq!(titles(&unsorted), in_list_order);
    // Missing values sort as the smallest: first ASC.
    let by_price = list("arcql: \"SORT price ASC\", first: 12").await;
    assert_eq!(titles(&by_price[..10]), (0..10).map(|i| format!("b{:02}", i * 3)).collect::<Vec<_>>());
    assert_eq!(titles(&by_price[10..]), ["b01", "b02"]);
    // NOT and paths inside the list filter.
    let odd = list("arcql: \"NOT EXIST price AND title ^ 'b1'\", first: 100").await;
    assert_eq!(titles(&odd), ["b12", "b15", "b18"]);
}

/// A cursor need not match a list field's filter (as for `find`): it still marks a place in
/// the list's order.
#[tokio::test]
async fn list_field_cursor_outside_the_filter() {
    let t = TestApp::new(EXAMPLE).await;
    let books: Vec<Value> = (0..30).map(|i| json!({ "title": format!("b{i:02}"), "pages": (i * 7) % 30 })).collect();
    let a = t.upsert(json!({ "Author": [{ "name": "A", "booklist": books }] })).await.remove(0);
    let list = |args: String| {
        let q = format!("query($id: String!) {{ get(type: Author, id: $id) {{ ... on Author {{ booklist({args}) {{ title }} }} }} }}");
        let t = &t;
        let a = a.clone();
        async move {
            let data = t.ok(&q, json!({ "id": a })).await;
            data["get"]["booklist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["title"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // b01 has pages 7, which both filters exclude.
    let b01 = all_books(&t, &a).await[1].clone();
    let after = list(format!("arcql: \"pages > 3 AND pages != 7 SORT pages\", first: 3, after: \"{b01}\"")).await;
    assert_eq!(after, ["b18", "b05", "b22"], "pages 6, 5, 4 follow pages 7");
    let before = list(format!("arcql: \"pages < 3 OR pages > 8 SORT pages ASC\", first: 5, before: \"{b01}\"")).await;
    assert_eq!(before, ["b00", "b13", "b26"], "pages 0, 1, 2 precede pages 7");
    // Without SORT the order is the list's: b01 is element 1.
    let after = list(format!("arcql: \"pages != 7\", first: 2, after: \"{b01}\"")).await;
    assert_eq!(after, ["b02", "b03"]);
}

/// The ids of an author's whole booklist, in list order.
async fn all_books(t: &TestApp, author: &str) -> Vec<String> {
    let data = t.ok("query($id: String!) { get(type: Author, id: $id) { ... on Author { booklist(first: 100) { hypi { id } } } } }", json!({ "id": author })).await;
    data["get"]["booklist"].as_array().unwrap().iter().map(|b| b["hypi"]["id"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// geo
// ---------------------------------------------------------------------------------------------

/// Great-circle distance in km between two points given in degrees (haversine).
fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().asin()
}

#[tokio::test]
async fn geo_matches_great_circle_distances() {
    let t = TestApp::new("type Place { name: String  lat: Float  lon: Float }").await;
    let places: &[(&str, f64, f64)] = &[
        ("London", 51.5074, -0.1278),
        ("Paris", 48.8566, 2.3522),
        ("Brussels", 50.8503, 4.3517),
        ("New York", 40.7128, -74.0060),
        ("Tokyo", 35.6762, 139.6503),
        ("Sydney", -33.8688, 151.2093),
        ("Suva", -18.1248, 178.4501),
        ("Apia", -13.8507, -171.7514),
        ("Nuku'alofa", -21.1394, -175.2049),
        ("North", 89.9, 10.0),
        ("North2", 89.9, -170.0),
        ("Quito", -0.1807, -78.4678),
    ];
    // Coordinates are stored in radians (Hypi's convention); one place has none.
    let mut input: Vec<Value> =
        places.iter().map(|(n, la, lo)| json!({ "name": n, "lat": la.to_radians(), "lon": lo.to_radians() })).collect();
    input.push(json!({ "name": "Nowhere" }));
    let ids = t.upsert(json!({ "Place": input })).await;
    let mut checked = 0;
    for (_, cla, clo) in places {
        for radius in [10.0, 300.0, 400.0, 1000.0, 1200.0, 2500.0, 6000.0, 12000.0, 20000.0] {
            let dists: Vec<f64> = places.iter().map(|(_, la, lo)| km((*cla, *clo), (*la, *lo))).collect();
            // Skip radii that fall within 0.5% of a distance: both sides are approximations.
            if dists.iter().any(|d| (d - radius).abs() < radius * 0.005) {
                continue;
            }
            let mut want: Vec<String> =
                dists.iter().zip(&ids).filter(|(d, _)| **d <= radius).map(|(_, id)| id.clone()).collect();
            want.sort();
            let q = format!("geo({:?}, {:?}, {radius:?}, 'lat', 'lon')", cla.to_radians(), clo.to_radians());
            assert_eq!(find_ids(&t, "Place", &q).await, want, "{q}");
            checked += 1;
        }
    }
    assert!(checked > 80, "{checked}");
    // Combined with other conditions, and as a NOT (the place without coordinates matches).
    let london = (51.5074f64.to_radians(), (-0.1278f64).to_radians());
    let q = format!("geo({:?}, {:?}, 400, 'lat', 'lon') AND name ^ 'P'", london.0, london.1);
    assert_eq!(find_ids(&t, "Place", &q).await, [ids[1].clone()]);
    let q = format!("NOT geo({:?}, {:?}, 20100, 'lat', 'lon')", london.0, london.1);
    assert_eq!(find_ids(&t, "Place", &q).await, [ids[places.len()].clone()]);
    // Errors name the field.
    let e = find_err(&t, "Place", "geo(0, 0, 10, 'lat', 'name')", json!({})).await;
    assert!(e["message"].as_str().unwrap().contains("Place.name"), "{e}");
    let e = find_err(&t, "Place", "geo(0, 0, 10, 'lat', 'lng')", json!({})).await;
    assert_eq!(code(&e), "UNKNOWN_FIELD", "{e}");
    let e = find_err(&t, "Place", "geo(0, 0, -1, 'lat', 'lon')", json!({})).await;
    assert_eq!(code(&e), "VALIDATION", "{e}");
}

/// `IN (a, b)` with two values: a set where a range has no meaning (enum, Boolean, ID), Hypi's
/// exclusive range for numbers and DateTimes, ambiguous (an error) for strings; a range that
/// could hold nothing is an error, never a silently empty page (issue: `kind IN ('NOVEL',
/// 'ESSAY')` matched nothing).
#[tokio::test]
async fn two_values_in_parentheses_read_by_the_field_type() {
    let t = TestApp::new(
        "type Volume { title: String!  kind: Kind  pages: Int  ok: Boolean  at: DateTime }  enum Kind { NOVEL POETRY ESSAY }",
    )
    .await;
    let ids = t
        .upsert(json!({ "Volume": [
            { "hypi": { "id": "v1" }, "title": "a", "kind": "NOVEL", "pages": 10, "ok": true, "at": "2020-01-01" },
            { "hypi": { "id": "v2" }, "title": "b", "kind": "POETRY", "pages": 20, "ok": false, "at": "2020-02-01" },
            { "hypi": { "id": "v3" }, "title": "c", "kind": "ESSAY", "pages": 30, "at": "2020-03-01" },
            { "hypi": { "id": "v4" }, "title": "d" },
        ] }))
        .await;
    assert_eq!(ids, ["v1", "v2", "v3", "v4"]);
    // A set on enum, Boolean and ID fields.
    assert_eq!(find_ids(&t, "Volume", "kind IN ('NOVEL', 'ESSAY')").await, ["v1", "v3"]);
    assert_eq!(find_ids(&t, "Volume", "ok IN (true, false)").await, ["v1", "v2"]);
    assert_eq!(find_ids(&t, "Volume", "hypi.id IN ('v4', 'v2')").await, ["v2", "v4"]);
    // The exclusive range on numbers and DateTimes (Hypi's reading).
    assert_eq!(find_ids(&t, "Volume", "pages IN (10, 30)").await, ["v2"]);
    assert_eq!(find_ids(&t, "Volume", "pages IN (10, 30,)").await, ["v1", "v3"]);
    assert_eq!(find_ids(&t, "Volume", "at IN ('2020-01-01', '2020-03-01')").await, ["v2"]);
    assert_eq!(find_ids(&t, "Volume", "pages IN [10, 30)").await, ["v1", "v2"]);
    // Errors that name the field instead of an empty page.
    for (q, wants) in [
        ("pages IN (30, 10)", "the range of 'Volume.pages' is empty"),
        ("pages IN (10, 10)", "the range of 'Volume.pages' is empty"),
        ("pages IN [20, 10]", "the range of 'Volume.pages' is empty"),
        ("title IN ('a', 'c')", "ambiguous for String field 'Volume.title'"),
        ("kind IN ['NOVEL', 'POETRY']", "a range is not defined for enum field 'Volume.kind'"),
        ("ok IN [false, true]", "a range is not defined for Boolean field 'Volume.ok'"),
    ] {
        let e = find_err(&t, "Volume", q, json!({})).await;
        assert_eq!(code(&e), "VALIDATION", "{q}: {e}");
        assert!(e["message"].as_str().unwrap().contains(wants), "{q}: {e}");
    }
    // The spellings the ambiguity error suggests mean what they say.
    assert_eq!(find_ids(&t, "Volume", "title IN ('a', 'c',)").await, ["v1", "v3"]);
    assert_eq!(find_ids(&t, "Volume", "title IN ['a', 'c')").await, ["v1", "v2"]);
}

/// A `page` so large that `(page - 1) * first` passes i64::MAX is an empty page past the end
/// (it used to wrap to a negative OFFSET: the first page on SQLite, an error on PostgreSQL).
#[tokio::test]
async fn a_huge_page_number_is_an_empty_page() {
    let t = TestApp::new(ROWS).await;
    t.upsert(json!({ "Row": (0..3).map(|k| json!({ "k": k })).collect::<Vec<_>>() })).await;
    for page in [4_611_686_018_427_387_904_i64, i64::from(i32::MAX), 1 << 40] {
        let p = find(&t, "Row", "*", json!({ "first": 25, "page": page })).await;
        assert!(p.ids.is_empty(), "page {page}: {p:?}");
        assert!(p.has_previous && !p.has_next, "page {page}: {p:?}");
    }
    let data = t
        .ok(
            "{ aggregate { rowWith(groupBy: [{field: k}], first: 25, page: 4611686018427387904) { k { count } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["aggregate"]["rowWith"], json!([]));
}

/// A page beyond one cursor is one statement in the default order and two with a `SORT` (the
/// cursor row's keys, then the page with the far side); its edges and page info are those of
/// the general path (the same page with `nextOffsets`/`previousOffsets` selected, which reads
/// the cursor row and probes the far side in statements of their own, and which the walks
/// above check against the model), for cursors at the ends and in the middle and cursors whose
/// sort keys are missing, both directions, several sizes, filters and orders, and trashed
/// objects; an unknown cursor is the same error.
#[tokio::test]
async fn a_page_beyond_one_cursor_is_one_statement_and_agrees_with_the_general_path() {
    let (t, rows) = thousand_rows().await;
    t.ok("mutation { trash(type: Row, arcql: \"g = 3\") }", json!({})).await;
    let plain = "query($q: String!, $first: Int, $after: String, $last: Int, $before: String, $trashed: Boolean) {
      find(type: Row, arcql: $q, first: $first, after: $after, last: $last, before: $before, includeTrashed: $trashed) {
        edges { cursor node { ... on Row { hypi { id } } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor pageLimit }
      }
    }";
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    // Rows 0 and 500 miss k, s and d; 7 misses s, 11 misses d (`row_values`).
    let cursors = [ids[0], ids[1], ids[7], ids[11], ids[17], ids[500], ids[998], ids[999]];
    let mut checked = 0;
    let sorted = ["* SORT s ASC", "k > 500 SORT k DESC", "SORT g ASC, s DESC", "g = 1 OR k < 10 SORT d DESC, k"];
    for q in ["*", "k > 500", "g = 3", "g = 1 OR k < 10"].into_iter().chain(sorted) {
        for trashed in [false, true] {
            for &c in &cursors {
                for (size, side) in [(1, "after"), (7, "after"), (25, "before"), (3, "before")] {
                    for dir in ["first", "last"] {
                        let vars = json!({ "q": q, dir: size, side: c, "trashed": trashed });
                        let before = t.statements();
                        let fast = t.gql(plain, vars.clone()).await;
                        let statements = t.statements() - before;
                        let ctx = format!("{q} {dir}: {size} {side}: {c} trashed: {trashed}");
                        if let Some(e) = fast.get("errors") {
                            let g = find_err(&t, "Row", q, json!({ dir: size, side: c, "trashed": trashed })).await;
                            assert_eq!(e[0]["message"], g["message"], "{ctx}");
                            continue;
                        }
                        let mut general = find(&t, "Row", q, json!({ dir: size, side: c, "trashed": trashed })).await;
                        let wants = if q.contains("SORT") { 2 } else { 1 };
                        assert_eq!(statements, wants, "{ctx}: statements");
                        let f = &fast["data"]["find"];
                        let got: Vec<String> = f["edges"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| e["cursor"].as_str().unwrap().to_string())
                            .collect();
                        general.next_offsets.clear();
                        general.previous_offsets.clear();
                        assert_eq!(got, general.ids, "{ctx}: edges");
                        let info = &f["pageInfo"];
                        assert_eq!(info["hasNextPage"], general.has_next, "{ctx}: hasNextPage");
                        assert_eq!(info["hasPreviousPage"], general.has_previous, "{ctx}: hasPreviousPage");
                        assert_eq!(info["startCursor"], general.start.as_str(), "{ctx}");
                        assert_eq!(info["endCursor"], general.end.as_str(), "{ctx}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 800, "{checked}");
    for q in ["*", "SORT s DESC"] {
        let e = t.err(plain, json!({ "q": q, "first": 5, "after": "no-such-row" })).await;
        assert_eq!(code(&e), "NOT_FOUND", "{q}: {e}");
    }
}

/// The sorted page beyond one cursor carries each row's sort keys inside its statement (for the
/// order); they are not response bytes: a page whose documents fit the response bound is served
/// as the general path serves it, even when its keys would double its size.
#[tokio::test]
async fn a_sorted_page_near_the_response_bound_is_served_like_the_general_path() {
    let limits = Limits { response_bytes: 8_000, ..Limits::default() };
    let t = TestApp::with(ROWS, None, limits).await;
    let long = |i: usize| format!("{i:02}{}", "x".repeat(1_000));
    let ids = t.upsert(json!({ "Row": (0..10).map(|i| json!({ "s": long(i) })).collect::<Vec<_>>() })).await;
    let query = "query($after: String) { find(type: Row, arcql: \"SORT s ASC\", first: 5, after: $after) {
        edges { cursor node { ... on Row { s } } } pageInfo { hasNextPage } } }";
    let data = t.ok(query, json!({ "after": ids[0] })).await;
    let got: Vec<&str> =
        data["find"]["edges"].as_array().unwrap().iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(got, ids[1..6].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(data["find"]["edges"][0]["node"]["s"], long(1));
    assert_eq!(data["find"]["pageInfo"]["hasNextPage"], true);
    // A page whose documents do not fit is the bound's error.
    let e = t.err(&query.replace("first: 5", "first: 9"), json!({ "after": ids[0] })).await;
    assert!(e["message"].as_str().unwrap().contains("8000"), "{e}");
}

/// A page-info flag reads rows only when the selection asks for it: what lies beyond a cursor,
/// or in the pages an offset skips, is read for `hasPreviousPage` / `hasNextPage` alone. Every
/// flag that is selected (by name, alias or fragment) is the one the whole page info gives, in
/// every paging shape; the general path (two cursors, `page: n`) runs a statement fewer per
/// flag left out, and a flag under `@skip(if: true)` counts as left out.
#[tokio::test]
async fn page_info_flags_read_only_when_asked_for() {
    let (t, rows) = thousand_rows().await;
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let query = |info: &str| {
        format!(
            "query($q: String!, $first: Int, $after: String, $last: Int, $before: String, $page: Int) {{
              find(type: Row, arcql: $q, first: $first, after: $after, last: $last, before: $before, page: $page) {{
                edges {{ cursor }} pageInfo {{ endCursor {info} }} }} }}"
        )
    };
    let both = query("hasNextPage hasPreviousPage");
    let selections = [
        ("next", query("hasNextPage"), true, false),
        ("previous", query("... on PageInfo { prev: hasPreviousPage }"), false, true),
        ("neither", query("hasPreviousPage @skip(if: true)"), false, false),
    ];
    let (mut checked, mut fewer) = (0, 0);
    for q in ["*", "k > 500", "g = 1 OR k < 10 SORT d DESC, k", "k < 0"] {
        for (a, b) in [(ids[17], ids[980]), (ids[0], ids[999]), (ids[500], ids[501])] {
            let shapes = [
                json!({ "first": 5, "after": a }),
                json!({ "last": 5, "before": b }),
                json!({ "first": 5, "after": a, "before": b }),
                json!({ "last": 5, "after": a, "before": b }),
                json!({ "first": 5, "after": a, "page": 3 }),
                json!({ "first": 5, "before": b, "page": 2 }),
                json!({ "first": 5, "page": 2 }),
            ];
            for mut vars in shapes {
                vars["q"] = json!(q);
                let start = t.statements();
                let full = t.ok(&both, vars.clone()).await;
                let all = t.statements() - start;
                let info = &full["find"]["pageInfo"];
                for (name, text, next, previous) in &selections {
                    let ctx = format!("{q} {vars} {name}");
                    let start = t.statements();
                    let data = t.ok(text, vars.clone()).await;
                    let ran = t.statements() - start;
                    assert_eq!(data["find"]["edges"], full["find"]["edges"], "{ctx}");
                    let got = &data["find"]["pageInfo"];
                    assert_eq!(got["endCursor"], info["endCursor"], "{ctx}");
                    if *next {
                        assert_eq!(got["hasNextPage"], info["hasNextPage"], "{ctx}");
                    }
                    if *previous {
                        assert_eq!(got["prev"], info["hasPreviousPage"], "{ctx}");
                    }
                    assert!(got.get("hasPreviousPage").is_none(), "{ctx}: {got}");
                    assert!(ran <= all, "{ctx}: {ran} statements, {all} with both flags");
                    // Two cursors read each side's far side in a statement of its own; the side
                    // behind the page's direction always (the other only when the page's own
                    // extra row has not answered it).
                    let two_cursors = vars.get("after").is_some() && vars.get("before").is_some();
                    if two_cursors {
                        let behind_left_out = if vars.get("first").is_some() { !*previous } else { !*next };
                        assert!(ran + u64::from(behind_left_out) <= all, "{ctx}: {ran} statements, {all} with both");
                        fewer += u64::from(behind_left_out && ran < all);
                    }
                    checked += 1;
                }
            }
        }
    }
    // Of the three selections, two leave out the flag behind the page.
    assert_eq!((checked, fewer), (4 * 3 * 7 * 3, 4 * 3 * 2 * 2));
}
