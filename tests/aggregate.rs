//! `aggregate` (contract §2 `XAggs`, `AggInt`, `AggFloat`, `AggOtherScalar`, `XGroupByOptions`,
//! `HypiAggregationType`; §3 aggregate):
//!
//! - a differential property test: a random dataset is stored once through the HTTP API, random
//!   aggregate queries (every function on every kind of field, `where`, `groupBy` on one or two
//!   keys with order and `dateGranularity`, `having`, `includeTrashed`, group paging) must
//!   return exactly what an in-memory computation written from the contract gives;
//! - one SQL statement per aggregate root field (plus the documented count for `last` without
//!   `before`);
//! - golden snapshots of the SQL for SQLite and PostgreSQL;
//! - the error cases, each with its `extensions.code`;
//! - the examples of the contract, computed by hand.
#![allow(clippy::unwrap_used)]

mod common;

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use arcbase::config::Limits;
use arcbase::model::{parse_sdl, Model};
use arcbase::plan::aggregate::{
    agg_target, check_call, group_key, plan_having, AggCall, AggField, AggFn, AggPlan, TimeUnit,
};
use arcbase::plan::filter::{plan_query, FilterPlan};
use arcbase::sql::aggregate::AggRenderer;
use arcbase::sql::{Dialect, Sql, SqlValue};
use common::*;

const SDL: &str = "type Sale { region: Region  city: String  qty: Int  price: Float  big: Long  ok: Boolean  at: DateTime  tags: [String] }\nenum Region { NORTH SOUTH }";

// =============================================================================================
// The dataset
// =============================================================================================

/// SplitMix64: a small deterministic generator driven by a proptest seed.
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
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const REGIONS: &[&str] = &["NORTH", "SOUTH"];
/// Code point order: "" < "Bergen" < "Oslo" < "Z" < "Zürich" < "oslo" < "Åre".
const CITIES: &[&str] = &["Oslo", "oslo", "Bergen", "Åre", "Zürich", "", "Z"];
const QTYS: &[i64] = &[-5, -1, 0, 1, 2, 3, 3, 7, 10, 20, 1000];
/// Dyadic fractions: every sum of them is exact in f64, whatever the order of summation, so
/// `having` comparisons cannot flip on rounding; averages still need the tolerance.
const PRICES: &[f64] = &[0.125, 0.25, 1.5, 2.75, -1.5, 10.125, 0.0, 1e6, 3.0];
/// Longs beyond Int, one beyond what an f64 holds exactly (2^53 + 1): group keys must stay exact.
const BIGS: &[i64] = &[-3, 0, 7, 5_000_000_000, 9_007_199_254_740_993];
/// DateTimes as written and as stored (UTC, milliseconds, `Z`): values that share a day, an
/// hour, a minute and a second, so that every granularity merges some and splits others.
const ATS: &[(&str, &str)] = &[
    ("2020-07-09T06:14:00Z", "2020-07-09T06:14:00.000Z"),
    ("2020-07-09T06:14:00.5Z", "2020-07-09T06:14:00.500Z"),
    ("2020-07-09T06:14:59Z", "2020-07-09T06:14:59.000Z"),
    ("2020-07-09T06:59:00Z", "2020-07-09T06:59:00.000Z"),
    ("2020-07-09T23:00:00Z", "2020-07-09T23:00:00.000Z"),
    ("2020-07-10T02:00:00+02:00", "2020-07-10T00:00:00.000Z"),
    ("2020-07-17T04:14:05.123Z", "2020-07-17T04:14:05.123Z"),
    ("2019-12-31T23:59:59.999Z", "2019-12-31T23:59:59.999Z"),
];
const TAGS: &[&str] = &["a", "b", "c", ""];

#[derive(Debug, Clone)]
struct Obj {
    id: String,
    region: Option<&'static str>,
    city: Option<&'static str>,
    qty: Option<i64>,
    price: Option<f64>,
    big: Option<i64>,
    ok: Option<bool>,
    /// Index into `ATS`.
    at: Option<usize>,
    tags: Vec<Option<&'static str>>,
    trashed: bool,
    // System columns, read back after loading.
    created: String,
    updated: String,
    trashed_at: Option<String>,
    created_by: Option<String>,
    instance: String,
}

fn gen_dataset(seed: u64) -> Vec<Obj> {
    let mut r = Rng(seed);
    let count = 30 + r.below(51);
    let mut out: Vec<Obj> = Vec::with_capacity(count);
    for i in 0..count {
        let mut o = Obj {
            id: format!("s{i:02}"),
            region: (!r.chance(30)).then(|| r.pick(REGIONS)),
            city: (!r.chance(30)).then(|| r.pick(CITIES)),
            qty: (!r.chance(30)).then(|| r.pick(QTYS)),
            price: (!r.chance(30)).then(|| r.pick(PRICES)),
            big: (!r.chance(35)).then(|| r.pick(BIGS)),
            ok: (!r.chance(35)).then(|| r.chance(50)),
            at: (!r.chance(30)).then(|| r.below(ATS.len())),
            tags: (0..r.below(4)).map(|_| (!r.chance(15)).then(|| r.pick(TAGS))).collect(),
            trashed: r.chance(10),
            created: String::new(),
            updated: String::new(),
            trashed_at: None,
            created_by: None,
            instance: String::new(),
        };
        // Whole duplicates (but for the id).
        if i > 0 && r.chance(15) {
            let prev = &out[r.below(i)];
            o = Obj { id: o.id, trashed: o.trashed, ..prev.clone() };
        }
        out.push(o);
    }
    out
}

/// Store the dataset through the API, trash some objects, and read back the system columns.
async fn load(t: &TestApp, data: &mut [Obj]) {
    for chunk in data.chunks(25) {
        let items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = json!({ "hypi": { "id": o.id } });
                // Missing values are sometimes omitted and sometimes sent as null.
                let mut put = |k: &str, x: Option<Value>| match x {
                    Some(x) => v[k] = x,
                    None if i % 2 == 0 => v[k] = Value::Null,
                    None => {}
                };
                put("region", o.region.map(|x| json!(x)));
                put("city", o.city.map(|x| json!(x)));
                put("qty", o.qty.map(|x| json!(x)));
                put("price", o.price.map(|x| json!(x)));
                put("big", o.big.map(|x| json!(x)));
                put("ok", o.ok.map(|x| json!(x)));
                put("at", o.at.map(|x| json!(ATS[x].0)));
                if !o.tags.is_empty() {
                    v["tags"] = json!(o.tags);
                }
                v
            })
            .collect();
        t.upsert(json!({ "Sale": items })).await;
    }
    let trashed: Vec<&Obj> = data.iter().filter(|o| o.trashed).collect();
    for chunk in trashed.chunks(20) {
        let ids: Vec<String> = chunk.iter().map(|o| format!("'{}'", o.id)).collect();
        // The trailing comma makes two ids a set, not the range `(a, b)`.
        let q = format!("hypi.id IN ({},)", ids.join(", "));
        let n = t.ok("mutation($q: String!) { trash(type: Sale, arcql: $q) }", json!({ "q": q })).await;
        assert_eq!(n["trash"], chunk.len());
    }
    let rows = t
        .sql(
            "SELECT hypi_id, hypi_created, hypi_updated, hypi_trashed, hypi_created_by, hypi_instance \
             FROM \"default__Sale\" ORDER BY hypi_id",
            Vec::new(),
        )
        .await;
    assert_eq!(rows.len(), data.len());
    let text = |v: &SqlValue| v.as_str().map(str::to_string);
    for (o, row) in data.iter_mut().zip(rows) {
        assert_eq!(text(&row[0]).as_deref(), Some(o.id.as_str()));
        assert_eq!(o.trashed, text(&row[3]).is_some(), "{}", o.id);
        o.created = text(&row[1]).unwrap();
        o.updated = text(&row[2]).unwrap();
        o.trashed_at = text(&row[3]);
        o.created_by = text(&row[4]);
        o.instance = text(&row[5]).unwrap();
    }
}

// =============================================================================================
// The in-memory model of the contract
// =============================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Region,
    City,
    Qty,
    Price,
    Big,
    Ok,
    At,
    Tags,
    HId,
    HCreated,
    HUpdated,
    HTrashed,
    HCreatedBy,
    HInstance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Other,
    List,
}

const AGG_FIELDS: [F; 14] = [
    F::Region,
    F::City,
    F::Qty,
    F::Price,
    F::Big,
    F::Ok,
    F::At,
    F::Tags,
    F::HId,
    F::HCreated,
    F::HUpdated,
    F::HTrashed,
    F::HCreatedBy,
    F::HInstance,
];

/// Group keys: every scalar kind but Float (whose text form the contract leaves open).
const GROUP_FIELDS: [F; 11] =
    [F::Region, F::City, F::Qty, F::Big, F::Ok, F::At, F::HId, F::HCreated, F::HTrashed, F::HCreatedBy, F::HInstance];

impl F {
    fn name(self) -> &'static str {
        match self {
            F::Region => "region",
            F::City => "city",
            F::Qty => "qty",
            F::Price => "price",
            F::Big => "big",
            F::Ok => "ok",
            F::At => "at",
            F::Tags => "tags",
            F::HId => "hypi_id",
            F::HCreated => "hypi_created",
            F::HUpdated => "hypi_updated",
            F::HTrashed => "hypi_trashed",
            F::HCreatedBy => "hypi_createdBy",
            F::HInstance => "hypi_instanceId",
        }
    }

    /// Which aggregate type `SaleAggs` gives the field (contract §2).
    fn kind(self) -> Kind {
        match self {
            F::Qty => Kind::Int,
            F::Price => Kind::Float,
            F::Tags => Kind::List,
            _ => Kind::Other,
        }
    }

    fn is_datetime(self) -> bool {
        matches!(self, F::At | F::HCreated | F::HUpdated | F::HTrashed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fun {
    Count,
    CountD,
    Sum,
    SumD,
    Avg,
    AvgD,
    Min,
    Max,
}

impl Fun {
    fn name(self) -> &'static str {
        match self {
            Fun::Count | Fun::CountD => "count",
            Fun::Sum | Fun::SumD => "sum",
            Fun::Avg | Fun::AvgD => "avg",
            Fun::Min => "min",
            Fun::Max => "max",
        }
    }
    fn distinct(self) -> bool {
        matches!(self, Fun::CountD | Fun::SumD | Fun::AvgD)
    }
}

/// The functions `AggInt`, `AggFloat` and `AggOtherScalar` offer; a scalar list only counts
/// (without distinct).
fn funs_for(f: F) -> Vec<Fun> {
    match f.kind() {
        Kind::Int | Kind::Float => {
            vec![Fun::Count, Fun::CountD, Fun::Sum, Fun::SumD, Fun::Avg, Fun::AvgD, Fun::Min, Fun::Max]
        }
        Kind::Other => vec![Fun::Count, Fun::CountD],
        Kind::List => vec![Fun::Count],
    }
}

/// A single value: the ordering of the variants does not matter, one field has one variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum K {
    B(bool),
    I(i64),
    /// A Float, by its bits: only for distinctness.
    Fl(u64),
    S(String),
}

fn val(o: &Obj, f: F) -> Option<K> {
    let s = |x: &str| K::S(x.to_string());
    match f {
        F::Region => o.region.map(s),
        F::City => o.city.map(s),
        F::Qty => o.qty.map(K::I),
        F::Price => o.price.map(|x| K::Fl(x.to_bits())),
        F::Big => o.big.map(K::I),
        F::Ok => o.ok.map(K::B),
        F::At => o.at.map(|i| s(ATS[i].1)),
        F::Tags => unreachable!("a list has no single value"),
        F::HId => Some(s(&o.id)),
        F::HCreated => Some(s(&o.created)),
        F::HUpdated => Some(s(&o.updated)),
        F::HTrashed => o.trashed_at.as_deref().map(s),
        F::HCreatedBy => o.created_by.as_deref().map(s),
        F::HInstance => Some(s(&o.instance)),
    }
}

/// An expected aggregate result.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Null,
    Int(i64),
    Float(f64),
}

impl Want {
    fn num(self) -> Option<f64> {
        match self {
            Want::Null => None,
            Want::Int(i) => Some(i as f64),
            Want::Float(x) => Some(x),
        }
    }
}

/// `fun` of field `f` over `objs`, as the contract defines it: nulls are ignored; over no
/// values `count` is 0 and the others are null; `avg` is a Float; `distinct` first removes
/// duplicate values.
fn aggregate(objs: &[&Obj], f: F, fun: Fun) -> Want {
    if f == F::Tags {
        assert_eq!(fun, Fun::Count);
        return Want::Int(objs.iter().map(|o| o.tags.iter().flatten().count() as i64).sum());
    }
    let mut vals: Vec<K> = objs.iter().filter_map(|o| val(o, f)).collect();
    if fun.distinct() {
        vals.sort();
        vals.dedup();
    }
    if matches!(fun, Fun::Count | Fun::CountD) {
        return Want::Int(vals.len() as i64);
    }
    if vals.is_empty() {
        return Want::Null;
    }
    let n = vals.len() as f64;
    match f.kind() {
        Kind::Int => {
            let xs: Vec<i64> = vals.iter().map(|v| if let K::I(i) = v { *i } else { unreachable!() }).collect();
            match fun {
                Fun::Sum | Fun::SumD => Want::Int(xs.iter().sum()),
                Fun::Avg | Fun::AvgD => Want::Float(xs.iter().sum::<i64>() as f64 / n),
                Fun::Min => Want::Int(*xs.iter().min().unwrap()),
                Fun::Max => Want::Int(*xs.iter().max().unwrap()),
                _ => unreachable!(),
            }
        }
        Kind::Float => {
            let xs: Vec<f64> =
                vals.iter().map(|v| if let K::Fl(b) = v { f64::from_bits(*b) } else { unreachable!() }).collect();
            match fun {
                Fun::Sum | Fun::SumD => Want::Float(xs.iter().sum()),
                Fun::Avg | Fun::AvgD => Want::Float(xs.iter().sum::<f64>() / n),
                Fun::Min => Want::Float(xs.iter().copied().fold(f64::INFINITY, f64::min)),
                Fun::Max => Want::Float(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                _ => unreachable!(),
            }
        }
        _ => unreachable!("{f:?} has only count"),
    }
}

fn same(got: &Value, want: Want) -> bool {
    match want {
        Want::Null => got.is_null(),
        Want::Int(i) => got.is_i64() && got.as_i64() == Some(i),
        // A Float stays a Float in the response (`avg` of an Int field included).
        Want::Float(w) => {
            got.is_f64() && got.as_f64().is_some_and(|g| g == w || (g - w).abs() <= 1e-9 * g.abs().max(w.abs()))
        }
    }
}

// --- where (ArcQL) ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

const OPS: [Op; 6] = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    I(i64),
    F(f64),
    S(&'static str),
    B(bool),
    /// Index into `ATS`: written in its written form, compared in its stored form.
    Dt(usize),
}

impl Lit {
    fn text(&self) -> String {
        match self {
            Lit::I(i) => i.to_string(),
            Lit::F(x) => x.to_string(),
            Lit::S(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Lit::B(b) => b.to_string(),
            Lit::Dt(i) => format!("'{}'", ATS[*i].0),
        }
    }
    /// `v` compared with this literal (`v` is never null here).
    fn cmp_with(&self, v: &K) -> Ordering {
        match (v, self) {
            (K::I(a), Lit::I(b)) => a.cmp(b),
            (K::Fl(a), Lit::F(b)) => f64::from_bits(*a).partial_cmp(b).unwrap(),
            (K::S(a), Lit::S(b)) => a.as_str().cmp(b),
            (K::S(a), Lit::Dt(i)) => a.as_str().cmp(ATS[*i].1),
            (K::B(a), Lit::B(b)) => a.cmp(b),
            (v, l) => unreachable!("{v:?} vs {l:?}"),
        }
    }
}

/// `(a, b)` with two values is ArcQL's exclusive range; a set of two needs a trailing comma.
fn set_end(len: usize) -> &'static str {
    if len == 2 {
        ","
    } else {
        ""
    }
}

#[derive(Debug, Clone)]
enum WLeaf {
    Cmp(F, Op, Lit),
    Range(F, Lit, bool, Lit, bool),
    Exist(F),
    Tag(&'static str),
    Ids(Vec<usize>),
}

#[derive(Debug, Clone)]
enum W {
    And(Vec<W>),
    Or(Vec<W>),
    Not(Box<W>),
    Leaf(WLeaf),
}

impl W {
    fn text(&self) -> String {
        let join = |xs: &[W], sep: &str| xs.iter().map(|x| format!("({})", x.text())).collect::<Vec<_>>().join(sep);
        match self {
            W::And(xs) => join(xs, " AND "),
            W::Or(xs) => join(xs, " OR "),
            W::Not(x) => format!("NOT ({})", x.text()),
            W::Leaf(WLeaf::Cmp(f, op, lit)) => format!("{} {} {}", f.name(), op.text(), lit.text()),
            W::Leaf(WLeaf::Range(f, lo, li, hi, hi_inc)) => format!(
                "{} IN {}{}, {}{}",
                f.name(),
                if *li { "[" } else { "(" },
                lo.text(),
                hi.text(),
                if *hi_inc { "]" } else { ")" }
            ),
            W::Leaf(WLeaf::Exist(f)) => format!("EXIST {}", f.name()),
            W::Leaf(WLeaf::Tag(t)) => format!("tags = {}", Lit::S(t).text()),
            W::Leaf(WLeaf::Ids(ids)) => {
                let ids: Vec<String> = ids.iter().map(|i| format!("'s{i:02}'")).collect();
                format!("hypi.id IN ({}{})", ids.join(", "), set_end(ids.len()))
            }
        }
    }

    /// ArcQL's two-valued semantics: a comparison with a missing value is false, `NOT` negates.
    fn eval(&self, o: &Obj) -> bool {
        match self {
            W::And(xs) => xs.iter().all(|x| x.eval(o)),
            W::Or(xs) => xs.iter().any(|x| x.eval(o)),
            W::Not(x) => !x.eval(o),
            W::Leaf(WLeaf::Cmp(f, op, lit)) => val(o, *f).is_some_and(|v| op.holds(lit.cmp_with(&v))),
            W::Leaf(WLeaf::Range(f, lo, li, hi, hi_inc)) => val(o, *f).is_some_and(|v| {
                let a = lo.cmp_with(&v);
                let b = hi.cmp_with(&v);
                (if *li { a != Ordering::Less } else { a == Ordering::Greater })
                    && (if *hi_inc { b != Ordering::Greater } else { b == Ordering::Less })
            }),
            W::Leaf(WLeaf::Exist(f)) => val(o, *f).is_some(),
            W::Leaf(WLeaf::Tag(t)) => o.tags.contains(&Some(*t)),
            W::Leaf(WLeaf::Ids(ids)) => ids.iter().any(|i| o.id == format!("s{i:02}")),
        }
    }
}

// --- having ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn text(self) -> String {
        match self {
            Num::I(i) => i.to_string(),
            Num::F(x) => x.to_string(),
        }
    }
    fn value(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(x) => x,
        }
    }
}

const HAVING_TARGETS: &[(F, Fun)] = &[
    (F::Qty, Fun::Sum),
    (F::Qty, Fun::Sum),
    (F::Qty, Fun::Count),
    (F::Qty, Fun::Avg),
    (F::Qty, Fun::Min),
    (F::Qty, Fun::Max),
    (F::Price, Fun::Sum),
    (F::Price, Fun::Avg),
    (F::Price, Fun::Min),
    (F::Price, Fun::Max),
    (F::Price, Fun::Count),
    (F::HId, Fun::Count),
    (F::HId, Fun::Count),
    (F::City, Fun::Count),
    (F::Tags, Fun::Count),
    (F::Ok, Fun::Count),
    (F::At, Fun::Count),
    (F::Big, Fun::Count),
];

#[derive(Debug, Clone)]
enum H {
    And(Vec<H>),
    Or(Vec<H>),
    Not(Box<H>),
    Cmp((F, Fun), Op, Num),
    Range((F, Fun), Num, bool, Num, bool),
    In((F, Fun), Vec<Num>),
}

impl H {
    fn text(&self) -> String {
        let join = |xs: &[H], sep: &str| xs.iter().map(|x| format!("({})", x.text())).collect::<Vec<_>>().join(sep);
        let t = |(f, fun): (F, Fun)| format!("{}.{}", f.name(), fun.name());
        match self {
            H::And(xs) => join(xs, " AND "),
            H::Or(xs) => join(xs, " OR "),
            H::Not(x) => format!("NOT ({})", x.text()),
            H::Cmp(target, op, n) => format!("{} {} {}", t(*target), op.text(), n.text()),
            H::Range(target, lo, li, hi, hi_inc) => format!(
                "{} IN {}{}, {}{}",
                t(*target),
                if *li { "[" } else { "(" },
                lo.text(),
                hi.text(),
                if *hi_inc { "]" } else { ")" }
            ),
            H::In(target, ns) => format!(
                "{} IN ({}{})",
                t(*target),
                ns.iter().map(|n| n.text()).collect::<Vec<_>>().join(", "),
                set_end(ns.len())
            ),
        }
    }

    /// Comparisons with a null aggregate are false (as SQL's HAVING treats unknown); `NOT`
    /// negates two-valued, as ArcQL's `NOT` does.
    fn eval(&self, objs: &[&Obj]) -> bool {
        let v = |(f, fun): (F, Fun)| aggregate(objs, f, fun).num();
        match self {
            H::And(xs) => xs.iter().all(|x| x.eval(objs)),
            H::Or(xs) => xs.iter().any(|x| x.eval(objs)),
            H::Not(x) => !x.eval(objs),
            H::Cmp(target, op, n) => v(*target).is_some_and(|x| op.holds(x.partial_cmp(&n.value()).unwrap())),
            H::Range(target, lo, li, hi, hi_inc) => v(*target).is_some_and(|x| {
                (if *li { x >= lo.value() } else { x > lo.value() })
                    && (if *hi_inc { x <= hi.value() } else { x < hi.value() })
            }),
            H::In(target, ns) => v(*target).is_some_and(|x| ns.iter().any(|n| n.value() == x)),
        }
    }
}

// --- the query ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Gran {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Gran {
    fn name(self) -> &'static str {
        match self {
            Gran::Seconds => "SECONDS",
            Gran::Minutes => "MINUTES",
            Gran::Hours => "HOURS",
            Gran::Days => "DAYS",
        }
    }
    /// The contract's examples: `2020-07-09` for DAYS, `2020-07-17T04:14` for MINUTES.
    fn truncate(self, stored: &str) -> String {
        let n = match self {
            Gran::Seconds => "2020-07-17T04:14:05".len(),
            Gran::Minutes => "2020-07-17T04:14".len(),
            Gran::Hours => "2020-07-17T04".len(),
            Gran::Days => "2020-07-09".len(),
        };
        stored[..n].to_string()
    }
}

#[derive(Debug, Clone)]
struct GKey {
    f: F,
    /// `None`: no `order` given (ascending).
    desc: Option<bool>,
    gran: Option<Gran>,
}

impl GKey {
    fn value(&self, o: &Obj) -> Option<K> {
        match (val(o, self.f)?, self.gran) {
            (K::S(s), Some(g)) => Some(K::S(g.truncate(&s))),
            (v, _) => Some(v),
        }
    }
}

/// A group key as `groupValues` prints it.
fn key_text(v: &Option<K>) -> Value {
    match v {
        None => Value::Null,
        Some(K::B(b)) => json!(b.to_string()),
        Some(K::I(i)) => json!(i.to_string()),
        Some(K::S(s)) => json!(s),
        Some(K::Fl(_)) => unreachable!("no Float group keys"),
    }
}

/// One selected field of `SaleAggs`.
#[derive(Debug, Clone)]
struct Sel {
    f: F,
    alias: bool,
    funs: Vec<Fun>,
    /// Write the field inside `... on SaleAggs { }`.
    fragment: bool,
    group_values: bool,
    /// Write `(distinct: false)` on the functions that are not distinct.
    explicit: bool,
}

#[derive(Debug, Clone)]
enum Paging {
    None,
    First { n: Option<i64>, after: Option<u64>, page: Option<i64>, before: Option<u64> },
    Last { n: i64, after: Option<u64>, before: Option<u64> },
}

#[derive(Debug, Clone)]
struct Case {
    grouped: bool,
    filter: Option<W>,
    sels: Vec<Sel>,
    group_by: Vec<GKey>,
    having: Option<H>,
    include_trashed: Option<bool>,
    paging: Paging,
}

/// Page sizes of the property test's server, small so that defaults and caps matter.
const PAGE_DEFAULT: usize = 6;
const PAGE_MAX: usize = 9;

/// A response key of `SaleAggs` and what is selected under it (merged, as GraphQL merges
/// fields with the same response key).
#[derive(Debug)]
struct RKey {
    key: String,
    f: F,
    calls: Vec<(String, Fun)>,
    group_values: bool,
}

/// The query text, its variables, and the response keys to check.
fn render(case: &Case) -> (String, Value, Vec<RKey>) {
    let mut keys: Vec<RKey> = Vec::new();
    let mut sel_text = String::new();
    let mut n = 0;
    for (i, s) in case.sels.iter().enumerate() {
        let key = if s.alias { format!("a{i}") } else { s.f.name().to_string() };
        let at = match keys.iter().position(|k| k.key == key) {
            Some(p) => p,
            None => {
                keys.push(RKey { key: key.clone(), f: s.f, calls: Vec::new(), group_values: false });
                keys.len() - 1
            }
        };
        let rk = &mut keys[at];
        let mut inner = String::new();
        for fun in &s.funs {
            // The plain name when it is free under this key, otherwise an alias.
            let plain = fun.name().to_string();
            let ck = if rk.calls.iter().any(|(k, _)| *k == plain) || (n % 3 == 1) {
                n += 1;
                format!("k{n}")
            } else {
                n += 1;
                plain.clone()
            };
            let args = match (fun.distinct(), s.explicit && *fun != Fun::Min && *fun != Fun::Max) {
                (true, _) => "(distinct: true)",
                (false, true) => "(distinct: false)",
                (false, false) => "",
            };
            if ck == plain {
                let _ = write!(inner, " {plain}{args}");
            } else {
                let _ = write!(inner, " {ck}: {}{args}", fun.name());
            }
            rk.calls.push((ck, *fun));
        }
        if s.group_values && case.grouped {
            inner.push_str(" groupValues { key value }");
            rk.group_values = true;
        }
        let field = if s.alias { format!("{key}: {}", s.f.name()) } else { key.clone() };
        if s.fragment {
            let _ = write!(sel_text, " ... on SaleAggs {{ {field} {{{inner} }} }}");
        } else {
            let _ = write!(sel_text, " {field} {{{inner} }}");
        }
    }

    let mut decls: Vec<&str> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut vars = json!({});
    if let Some(w) = &case.filter {
        decls.push("$w: String");
        args.push("where: $w".into());
        vars["w"] = json!(w.text());
    }
    let root = if case.grouped {
        let gb: Vec<String> = case
            .group_by
            .iter()
            .map(|k| {
                let mut s = format!("{{field: {}", k.f.name());
                if let Some(d) = k.desc {
                    let _ = write!(s, ", order: {}", if d { "DESC" } else { "ASC" });
                }
                if let Some(g) = k.gran {
                    let _ = write!(s, ", dateGranularity: {}", g.name());
                }
                s + "}"
            })
            .collect();
        args.push(format!("groupBy: [{}]", gb.join(", ")));
        if let Some(h) = &case.having {
            decls.push("$h: String");
            args.push("having: $h".into());
            vars["h"] = json!(h.text());
        }
        if let Some(t) = case.include_trashed {
            args.push(format!("includeTrashed: {t}"));
        }
        let mut cursor = |name: &'static str, pos: Option<u64>, decls: &mut Vec<&str>, args: &mut Vec<String>| {
            if let Some(p) = pos {
                decls.push(if name == "after" { "$after: String" } else { "$before: String" });
                args.push(format!("{name}: ${name}"));
                vars[name] = json!(p.to_string());
            }
        };
        match &case.paging {
            Paging::None => {}
            Paging::First { n, after, page, before } => {
                if let Some(n) = n {
                    args.push(format!("first: {n}"));
                }
                if let Some(p) = page {
                    args.push(format!("page: {p}"));
                }
                cursor("after", *after, &mut decls, &mut args);
                cursor("before", *before, &mut decls, &mut args);
            }
            Paging::Last { n, after, before } => {
                args.push(format!("last: {n}"));
                cursor("after", *after, &mut decls, &mut args);
                cursor("before", *before, &mut decls, &mut args);
            }
        }
        "saleWith"
    } else {
        "sale"
    };
    let decl = if decls.is_empty() { String::new() } else { format!("({})", decls.join(", ")) };
    let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
    (format!("query{decl} {{ aggregate {{ {root}{args} {{{sel_text} }} }} }}"), vars, keys)
}

/// Which groups (by 0-based position) the paging arguments select: the positions strictly
/// between `after` and `before`, then the first (or last) `n` of them, `page` counting pages of
/// `n` from `after`.
fn window(groups: usize, paging: &Paging) -> std::ops::Range<usize> {
    let size = |n: Option<i64>| (n.map_or(PAGE_DEFAULT, |n| n as usize)).min(PAGE_MAX);
    let upper = |before: Option<u64>| before.map_or(groups, |b| (b as usize - 1).min(groups));
    match paging {
        Paging::None => 0..groups.min(PAGE_DEFAULT),
        Paging::First { n, after, page, before } => {
            let size = size(*n);
            let start = after.unwrap_or(0) as usize + (page.unwrap_or(1) as usize - 1) * size;
            let end = (start + size).min(upper(*before));
            start.min(end)..end
        }
        Paging::Last { n, after, before } => {
            let end = upper(*before);
            let start = end.saturating_sub(size(Some(*n))).max(after.unwrap_or(0) as usize);
            start.min(end)..end
        }
    }
}

/// Check one `SaleAggs` document against the objects of its group.
fn check_doc(
    got: &Value,
    keys: &[RKey],
    objs: &[&Obj],
    group: Option<&[Option<K>]>,
    case: &Case,
    what: &str,
) -> Result<(), TestCaseError> {
    for k in keys {
        let doc = &got[&k.key];
        for (ck, fun) in &k.calls {
            let want = aggregate(objs, k.f, *fun);
            prop_assert!(
                same(&doc[ck], want),
                "{what}: {}.{ck} = {:?} is {}, expected {want:?}\n{case:#?}",
                k.key,
                fun,
                doc[ck]
            );
        }
        if k.group_values {
            let group = group.unwrap();
            let want: Vec<Value> = case
                .group_by
                .iter()
                .zip(group)
                .map(|(g, v)| json!({ "key": g.f.name(), "value": key_text(v) }))
                .collect();
            prop_assert_eq!(&doc["groupValues"], &json!(want), "{}: {}.groupValues\n{:#?}", what, k.key, case);
        }
    }
    Ok(())
}

/// Run one case; returns how many groups (1 for an ungrouped query) it returned.
async fn run_case(t: &TestApp, data: &[Obj], case: &Case) -> Result<usize, TestCaseError> {
    let (query, vars, keys) = render(case);
    let before = t.statements();
    let body = t.gql(&query, vars.clone()).await;
    let used = t.statements() - before;
    prop_assert!(body.get("errors").is_none(), "{query}\n{vars}\n{body}");
    let what = format!("{query}\n{vars}");

    let include_trashed = case.grouped && case.include_trashed == Some(true);
    let matching: Vec<&Obj> = data
        .iter()
        .filter(|o| include_trashed || !o.trashed)
        .filter(|o| case.filter.as_ref().is_none_or(|w| w.eval(o)))
        .collect();

    if !case.grouped {
        prop_assert!(used == 1, "{what}: {used} statements");
        check_doc(&body["data"]["aggregate"]["sale"], &keys, &matching, None, case, &what)?;
        return Ok(1);
    }

    // Groups in groupBy order (missing values are the smallest), then having, then paging.
    let mut groups: Vec<(Vec<Option<K>>, Vec<&Obj>)> = Vec::new();
    for o in &matching {
        let key: Vec<Option<K>> = case.group_by.iter().map(|g| g.value(o)).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(o),
            None => groups.push((key, vec![o])),
        }
    }
    groups.sort_by(|(a, _), (b, _)| {
        for ((x, y), g) in a.iter().zip(b).zip(&case.group_by) {
            let o = if g.desc == Some(true) { y.cmp(x) } else { x.cmp(y) };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    if let Some(h) = &case.having {
        groups.retain(|(_, members)| h.eval(members));
    }
    let range = window(groups.len(), &case.paging);
    let want = &groups[range.clone()];

    let got = body["data"]["aggregate"]["saleWith"].as_array();
    prop_assert!(got.is_some(), "{what}\n{body}");
    let got = got.unwrap();
    let shown: Vec<Value> = want.iter().map(|(k, _)| json!(k.iter().map(key_text).collect::<Vec<_>>())).collect();
    prop_assert_eq!(
        got.len(),
        want.len(),
        "{}\n{} groups in all, window {:?}; expected groups {:?}\ngot {}",
        what,
        groups.len(),
        range,
        shown,
        body
    );
    for (i, (g, (key, members))) in got.iter().zip(want).enumerate() {
        check_doc(g, &keys, members, Some(key), case, &format!("{what}\ngroup {i} of {shown:?}"))?;
    }
    let max = match case.paging {
        Paging::Last { before: None, .. } => 2,
        Paging::Last { .. } => 3,
        _ => 1,
    };
    prop_assert!(used <= max, "{what}: {used} statements");
    Ok(got.len())
}

// --- strategies -----------------------------------------------------------------------------

fn sel() -> impl Strategy<Value = Sel> {
    prop::sample::select(AGG_FIELDS.to_vec())
        .prop_flat_map(|f| {
            let funs = funs_for(f);
            let n = funs.len();
            (Just(f), prop::sample::subsequence(funs, 1..=n.min(5)), any::<(bool, bool, bool, bool)>())
        })
        .prop_map(|(f, funs, (alias, fragment, group_values, explicit))| Sel {
            f,
            alias,
            funs,
            fragment,
            group_values,
            explicit,
        })
}

fn gkey() -> impl Strategy<Value = GKey> {
    let gran =
        prop::sample::select(vec![None, Some(Gran::Seconds), Some(Gran::Minutes), Some(Gran::Hours), Some(Gran::Days)]);
    (prop::sample::select(GROUP_FIELDS.to_vec()), prop::option::of(any::<bool>()), gran)
        .prop_map(|(f, desc, gran)| GKey { f, desc, gran: if f.is_datetime() { gran } else { None } })
}

fn where_leaf() -> impl Strategy<Value = WLeaf> {
    let ops = prop::sample::select(OPS.to_vec());
    let eq_ne = prop::sample::select(vec![Op::Eq, Op::Ne]);
    let qty = prop::sample::select(QTYS.to_vec());
    let at = 0..ATS.len();
    prop_oneof![
        (ops.clone(), qty.clone()).prop_map(|(op, n)| WLeaf::Cmp(F::Qty, op, Lit::I(n))),
        (ops.clone(), prop::sample::select(PRICES.to_vec())).prop_map(|(op, x)| WLeaf::Cmp(F::Price, op, Lit::F(x))),
        (eq_ne.clone(), prop::sample::select(REGIONS.to_vec())).prop_map(|(op, r)| WLeaf::Cmp(
            F::Region,
            op,
            Lit::S(r)
        )),
        (eq_ne, any::<bool>()).prop_map(|(op, b)| WLeaf::Cmp(F::Ok, op, Lit::B(b))),
        (ops.clone(), prop::sample::select(CITIES.to_vec())).prop_map(|(op, c)| WLeaf::Cmp(F::City, op, Lit::S(c))),
        (ops, at.clone()).prop_map(|(op, i)| WLeaf::Cmp(F::At, op, Lit::Dt(i))),
        (qty.clone(), any::<bool>(), qty, any::<bool>())
            // Equal bounds need both ends inclusive: an empty range is refused.
            .prop_map(|(a, li, b, hi)| WLeaf::Range(
                F::Qty,
                Lit::I(a.min(b)),
                li || a == b,
                Lit::I(a.max(b)),
                hi || a == b
            )),
        (at.clone(), any::<bool>(), at, any::<bool>()).prop_map(|(a, li, b, hi)| {
            let (a, b) = if ATS[a].1 <= ATS[b].1 { (a, b) } else { (b, a) };
            let same = ATS[a].1 == ATS[b].1;
            WLeaf::Range(F::At, Lit::Dt(a), li || same, Lit::Dt(b), hi || same)
        }),
        prop::sample::select(vec![F::Qty, F::City, F::At, F::Region, F::Price, F::Ok]).prop_map(WLeaf::Exist),
        prop::sample::select(TAGS.to_vec()).prop_map(WLeaf::Tag),
        prop::collection::vec(0..80usize, 1..8).prop_map(WLeaf::Ids),
    ]
}

fn where_cond() -> impl Strategy<Value = W> {
    where_leaf().prop_map(W::Leaf).prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..=3).prop_map(W::And),
            prop::collection::vec(inner.clone(), 2..=3).prop_map(W::Or),
            inner.prop_map(|x| W::Not(Box::new(x))),
        ]
    })
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        3 => prop::sample::select(vec![-5i64, 0, 1, 2, 3, 4, 5, 7, 10, 20, 40, 1000]).prop_map(Num::I),
        1 => prop::sample::select(vec![-1.5, 0.5, 1.25, 2.5, 10.125, 3.0]).prop_map(Num::F),
    ]
}

fn having_leaf() -> impl Strategy<Value = H> {
    let target = prop::sample::select(HAVING_TARGETS.to_vec());
    prop_oneof![
        3 => (target.clone(), prop::sample::select(OPS.to_vec()), num()).prop_map(|(t, op, n)| H::Cmp(t, op, n)),
        1 => (target.clone(), num(), any::<bool>(), num(), any::<bool>()).prop_map(|(t, a, li, b, hi)| {
            let (a, b) = if a.value() <= b.value() { (a, b) } else { (b, a) };
            let same = a.value() == b.value();
            H::Range(t, a, li || same, b, hi || same)
        }),
        1 => (target, prop::collection::vec(num(), 1..4)).prop_map(|(t, ns)| H::In(t, ns)),
    ]
}

fn having() -> impl Strategy<Value = H> {
    prop_oneof![
        // The contract's example shape: `qty.sum > N AND hypi_id.count >= 2`.
        1 => num().prop_map(|n| H::And(vec![
            H::Cmp((F::Qty, Fun::Sum), Op::Gt, n),
            H::Cmp((F::HId, Fun::Count), Op::Ge, Num::I(2)),
        ])),
        4 => having_leaf().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..=3).prop_map(H::And),
                prop::collection::vec(inner.clone(), 2..=3).prop_map(H::Or),
                inner.prop_map(|x| H::Not(Box::new(x))),
            ]
        }),
    ]
}

fn paging() -> impl Strategy<Value = Paging> {
    let n = prop_oneof![4 => 0i64..8, 1 => Just(50i64)];
    let pos = prop::option::of(1u64..14);
    prop_oneof![
        1 => Just(Paging::None),
        3 => (prop::option::of(n.clone()), pos.clone(), prop::option::of(1i64..4), pos.clone())
            .prop_map(|(n, after, page, before)| Paging::First { n, after, page, before }),
        2 => (n, pos.clone(), pos).prop_map(|(n, after, before)| Paging::Last { n, after, before }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::bool::weighted(0.75),
        prop::option::of(where_cond()),
        prop::collection::vec(sel(), 1..5),
        prop::collection::vec(gkey(), 1..=2),
        prop::option::of(having()),
        prop::option::of(any::<bool>()),
        paging(),
    )
        .prop_map(|(grouped, filter, mut sels, mut group_by, having, include_trashed, paging)| {
            // One entry per field in groupBy; groupValues selected at least once.
            if group_by.len() == 2 && group_by[0].f == group_by[1].f {
                group_by.pop();
            }
            sels[0].group_values = true;
            Case { grouped, filter, sels, group_by, having, include_trashed, paging }
        })
}

#[test]
fn aggregates_agree_with_an_in_memory_computation() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = Config { cases: 96, failure_persistence: None, max_shrink_iters: 400, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let seed = any::<u64>().new_tree(&mut runner).unwrap().current();
    let mut data = gen_dataset(seed);
    let limits = Limits { page_default: PAGE_DEFAULT as u32, page_max: PAGE_MAX as u32, ..Limits::default() };
    let app = rt.block_on(async {
        let app = TestApp::with(SDL, None, limits).await;
        load(&app, &mut data).await;
        app
    });
    let mut listing = String::new();
    for o in &data {
        let _ = writeln!(listing, "{o:?}");
    }
    // How many cases ran, and how many of them returned a group or more: the comparison must
    // not be vacuous.
    let ran = AtomicUsize::new(0);
    let with_groups = AtomicUsize::new(0);
    let result = runner.run(&case(), |case| {
        let groups = rt.block_on(run_case(&app, &data, &case))?;
        ran.fetch_add(1, AtomicOrdering::Relaxed);
        if groups > 0 {
            with_groups.fetch_add(1, AtomicOrdering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n\ndataset (seed {seed}):\n{listing}");
    }
    let (ran, with_groups) = (ran.into_inner(), with_groups.into_inner());
    assert!(ran >= 96, "{ran} cases ran");
    assert!(with_groups * 3 >= ran, "only {with_groups} of {ran} cases returned a group");
}

// =============================================================================================
// Examples of the contract, by hand
// =============================================================================================

async fn examples_app() -> TestApp {
    let t = TestApp::new(SDL).await;
    t.upsert(json!({ "Sale": [
        { "hypi": { "id": "e1" }, "region": "NORTH", "city": "Oslo", "qty": 1, "price": 1.5, "ok": true,
          "at": "2020-07-09T06:14:00Z", "tags": ["a", null, "b"] },
        { "hypi": { "id": "e2" }, "region": "NORTH", "city": "Oslo", "qty": 2, "price": 2.5, "ok": false,
          "at": "2020-07-09T23:59:59.999Z", "tags": ["a"] },
        { "hypi": { "id": "e3" }, "region": "SOUTH", "qty": 2, "ok": true, "at": "2020-07-17T04:14:05Z" },
        { "hypi": { "id": "e4" }, "qty": 2, "at": "2020-07-17T04:14:59Z", "tags": [null] },
        { "hypi": { "id": "e5" }, "region": "SOUTH", "qty": 100, "price": 9.0 },
    ] }))
    .await;
    let n = t.ok("mutation { trash(type: Sale, arcql: \"hypi.id = 'e5'\") }", json!({})).await;
    assert_eq!(n["trash"], 1);
    t
}

#[tokio::test]
async fn contract_examples() {
    let t = examples_app().await;

    // Nulls are ignored (in scalar lists too); avg of an Int field is a Float; trashed objects
    // are left out.
    let d = t
        .ok(
            "{ aggregate { sale { qty { count sum avg min max d: count(distinct: true) sd: sum(distinct: true) ad: avg(distinct: true) }
               price { count sum avg min max } tags { count } city { count d: count(distinct: true) }
               ok { count d: count(distinct: true) } hypi_id { count } hypi_trashed { count } hypi_createdBy { count }
               hypi_instanceId { d: count(distinct: true) } } } }",
            json!({}),
        )
        .await;
    let s = &d["aggregate"]["sale"];
    assert_eq!(s["qty"], json!({ "count": 4, "sum": 7, "avg": 1.75, "min": 1, "max": 2, "d": 2, "sd": 3, "ad": 1.5 }));
    assert_eq!(s["price"], json!({ "count": 2, "sum": 4.0, "avg": 2.0, "min": 1.5, "max": 2.5 }));
    assert!(s["price"]["avg"].is_f64() && s["qty"]["avg"].is_f64(), "{s}");
    assert_eq!(s["tags"], json!({ "count": 3 }), "null elements are not counted");
    assert_eq!(s["city"], json!({ "count": 2, "d": 1 }));
    assert_eq!(s["ok"], json!({ "count": 3, "d": 2 }));
    assert_eq!(s["hypi_id"], json!({ "count": 4 }));
    assert_eq!(s["hypi_trashed"], json!({ "count": 0 }));
    assert_eq!(s["hypi_createdBy"], json!({ "count": 0 }), "an admin creates objects without an owner");
    assert_eq!(s["hypi_instanceId"], json!({ "d": 1 }));

    // avg of Ints that divide evenly is still a Float.
    let d = t.ok("{ aggregate { sale(where: \"qty = 2\") { qty { avg } } } }", json!({})).await;
    assert!(d["aggregate"]["sale"]["qty"]["avg"].is_f64(), "{d}");
    assert_eq!(d["aggregate"]["sale"]["qty"]["avg"], 2.0);

    // The empty set: count 0, the others null; no groups at all.
    let d = t
        .ok(
            "{ aggregate { sale(where: \"qty > 1000\") { qty { count sum avg min max } price { count sum avg min max }
               tags { count } hypi_id { count } }
               saleWith(where: \"qty > 1000\", groupBy: [{field: region}]) { hypi_id { count } } } }",
            json!({}),
        )
        .await;
    let s = &d["aggregate"]["sale"];
    let empty = json!({ "count": 0, "sum": null, "avg": null, "min": null, "max": null });
    assert_eq!(s["qty"], empty);
    assert_eq!(s["price"], empty);
    assert_eq!(s["tags"], json!({ "count": 0 }));
    assert_eq!(s["hypi_id"], json!({ "count": 0 }));
    assert_eq!(d["aggregate"]["saleWith"], json!([]));

    // dateGranularity, with the contract's example values.
    for (unit, want) in [
        ("DAYS", vec!["2020-07-09", "2020-07-17"]),
        ("HOURS", vec!["2020-07-09T06", "2020-07-09T23", "2020-07-17T04"]),
        ("MINUTES", vec!["2020-07-09T06:14", "2020-07-09T23:59", "2020-07-17T04:14"]),
        ("SECONDS", vec!["2020-07-09T06:14:00", "2020-07-09T23:59:59", "2020-07-17T04:14:05", "2020-07-17T04:14:59"]),
    ] {
        let q = format!(
            "{{ aggregate {{ saleWith(where: \"EXIST at\", groupBy: [{{field: at, dateGranularity: {unit}}}]) {{ at {{ groupValues {{ value }} }} }} }} }}"
        );
        let d = t.ok(&q, json!({})).await;
        let got: Vec<&str> = d["aggregate"]["saleWith"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["at"]["groupValues"][0]["value"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{unit}");
    }
    // Without granularity the key is the stored instant.
    let d = t
        .ok("{ aggregate { saleWith(where: \"hypi.id = 'e3'\", groupBy: [{field: at}]) { at { groupValues { key value } } } } }", json!({}))
        .await;
    assert_eq!(
        d["aggregate"]["saleWith"],
        json!([{ "at": { "groupValues": [{ "key": "at", "value": "2020-07-17T04:14:05.000Z" }] } }])
    );

    // Group order: missing values are the smallest (first ASC, last DESC); two keys; Boolean
    // and enum values as text; includeTrashed brings e5 back.
    let q = "{ aggregate { saleWith(groupBy: [{field: region, order: DESC}, {field: ok}], includeTrashed: true) {
                 qty { sum groupValues { key value } } } } }";
    let d = t.ok(q, json!({})).await;
    let got: Vec<(Value, Value, Value)> = d["aggregate"]["saleWith"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["qty"]["groupValues"][0]["value"].clone(),
                g["qty"]["groupValues"][1]["value"].clone(),
                g["qty"]["sum"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("SOUTH"), Value::Null, json!(100)),
            (json!("SOUTH"), json!("true"), json!(2)),
            (json!("NORTH"), json!("false"), json!(2)),
            (json!("NORTH"), json!("true"), json!(1)),
            (Value::Null, Value::Null, json!(2)),
        ]
    );
    assert_eq!(d["aggregate"]["saleWith"][1]["qty"]["groupValues"][1]["key"], "ok");

    // having over aggregate results, as in the contract.
    let q = "{ aggregate { saleWith(groupBy: [{field: qty}], having: \"qty.sum > 3 AND hypi_id.count >= 2\") {
                 qty { sum groupValues { value } } } } }";
    let d = t.ok(q, json!({})).await;
    assert_eq!(d["aggregate"]["saleWith"], json!([{ "qty": { "sum": 6, "groupValues": [{ "value": "2" }] } }]));
}

/// Float results are the exact doubles (as `find` returns stored Floats): `min`/`max` are stored
/// values, `avg`/`sum` the doubles the database computed, not a 15-digit rounding of them.
#[tokio::test]
async fn float_results_are_exact() {
    let t = TestApp::new(SDL).await;
    t.upsert(json!({ "Sale": [
        { "price": 1.2345678901234567, "qty": 1 },
        { "price": 0.1, "qty": 2 },
        { "price": f64::MAX, "qty": 2 },
        { "qty": 7 },
    ] }))
    .await;
    let d = t
        .ok(
            "{ aggregate {
                 all: sale { price { min max } }
                 one: sale(where: \"qty = 1\") { price { avg sum min max } }
                 big: sale(where: \"price > 1e300\") { price { avg sum d: avg(distinct: true) } }
                 ints: sale(where: \"qty < 3\") { qty { avg } }
                 g: saleWith(where: \"qty < 3\", groupBy: [{field: qty}]) { price { max } qty { avg } }
               } }",
            json!({}),
        )
        .await;
    let a = &d["aggregate"];
    let f = |v: &Value| v.as_f64().unwrap();
    assert_eq!(f(&a["all"]["price"]["min"]), 0.1);
    assert_eq!(f(&a["all"]["price"]["max"]), f64::MAX);
    for k in ["avg", "sum", "min", "max"] {
        assert_eq!(f(&a["one"]["price"][k]), 1.2345678901234567, "{k}: {a}");
    }
    for k in ["avg", "sum", "d"] {
        assert_eq!(f(&a["big"]["price"][k]), f64::MAX, "{k}: {a}");
    }
    assert_eq!(f(&a["ints"]["qty"]["avg"]), 5.0 / 3.0);
    assert_eq!(f(&a["g"][0]["price"]["max"]), 1.2345678901234567);
    assert_eq!(f(&a["g"][1]["price"]["max"]), f64::MAX);
    assert_eq!(f(&a["g"][1]["qty"]["avg"]), 2.0);
}

/// Group paging: the cursor is the group's 1-based position; a cursor past the last group is
/// a position like any other (no error), and `last` counts back from the end of what exists.
#[tokio::test]
async fn group_paging() {
    let t = TestApp::new(SDL).await;
    let values: Vec<Value> = (0..7).map(|i| json!({ "qty": i })).collect();
    t.upsert(json!({ "Sale": values })).await;
    let page = |args: &'static str| {
        let t = &t;
        async move {
            let q = format!("{{ aggregate {{ saleWith(groupBy: [{{field: qty}}] {args}) {{ qty {{ min }} }} }} }}");
            let d = t.ok(&q, json!({})).await;
            d["aggregate"]["saleWith"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["qty"]["min"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("").await, vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(page(", first: 2").await, vec![0, 1]);
    assert_eq!(page(", first: 2, after: \"2\"").await, vec![2, 3]);
    assert_eq!(page(", first: 2, page: 3").await, vec![4, 5]);
    assert_eq!(page(", first: 2, after: \"1\", page: 3").await, vec![5, 6]);
    assert_eq!(page(", first: 5, after: \"1\", before: \"5\"").await, vec![1, 2, 3]);
    assert_eq!(page(", last: 2").await, vec![5, 6]);
    assert_eq!(page(", last: 2, before: \"4\"").await, vec![1, 2]);
    assert_eq!(page(", last: 5, before: \"4\", after: \"1\"").await, vec![1, 2]);
    assert_eq!(page(", last: 3, before: \"8\"").await, vec![4, 5, 6]);
    assert_eq!(page(", last: 3, before: \"100\"").await, vec![4, 5, 6]);
    assert_eq!(page(", last: 3, before: \"100\", after: \"5\"").await, vec![5, 6]);
    assert_eq!(page(", first: 3, after: \"7\"").await, Vec::<i64>::new());
    assert_eq!(page(", first: 3, after: \"18446744073709551615\"").await, Vec::<i64>::new());
    assert_eq!(page(", first: 3, after: \"9223372036854775807\", page: 2").await, Vec::<i64>::new());
    assert_eq!(page(", last: 3, after: \"18446744073709551615\"").await, Vec::<i64>::new());
    assert_eq!(page(", before: \"1\"").await, Vec::<i64>::new());
    assert_eq!(page(", first: 0").await, Vec::<i64>::new());
}

// =============================================================================================
// One statement per aggregate root field
// =============================================================================================

#[tokio::test]
async fn one_statement_per_aggregate_root_field() {
    let t = examples_app().await;
    let run = |q: &'static str| {
        let t = &t;
        async move {
            let before = t.statements();
            let d = t.ok(q, json!({})).await;
            (t.statements() - before, d)
        }
    };

    // Two root fields under `aggregate`, many functions each: two statements.
    let (n, d) = run(
        "{ aggregate {
             a: sale { qty { count sum avg min max c: count(distinct: true) } price { sum avg } tags { count } hypi_id { count } }
             b: saleWith(groupBy: [{field: region}, {field: at, dateGranularity: DAYS}], having: \"hypi_id.count >= 1\", first: 3) {
                 qty { sum avg groupValues { key value } } city { count } tags { count } }
           } }",
    )
    .await;
    assert_eq!(n, 2, "{d}");
    assert_eq!(d["aggregate"]["a"]["qty"]["count"], 4);
    assert_eq!(d["aggregate"]["b"].as_array().unwrap().len(), 3);

    // One root field with every kind of field selected is still one statement.
    let (n, _) = run(
        "{ aggregate { sale { region { count } city { count } qty { sum } price { max } big { count } ok { count } at { count }
             tags { count } hypi_id { count } hypi_created { count } hypi_updated { count } hypi_trashed { count }
             hypi_createdBy { count } hypi_instanceId { count } } } }",
    )
    .await;
    assert_eq!(n, 1);

    // Three root fields: three statements.
    let (n, _) = run("{ aggregate { a: sale { qty { sum } } b: sale(where: \"qty > 1\") { qty { sum } }
                       c: saleWith(groupBy: [{field: ok}]) { qty { sum } } } }")
    .await;
    assert_eq!(n, 3);

    // Paging with `first`/`after`/`page`/`before` and `last` with `before` is computed from the
    // cursors alone: one statement.
    let (n, d) = run("{ aggregate { saleWith(groupBy: [{field: city}], last: 1, before: \"2\") { city { groupValues { value } } } } }").await;
    assert_eq!(n, 1);
    assert_eq!(d["aggregate"]["saleWith"], json!([{ "city": { "groupValues": [{ "value": null }] } }]));
    let (n, _) =
        run("{ aggregate { saleWith(groupBy: [{field: city}], first: 1, after: \"1\", page: 2) { city { count } } } }")
            .await;
    assert_eq!(n, 1);

    // By design, `last` without `before` first counts the groups (one extra statement) to
    // know where the last page starts, then reads that page.
    let (n, d) =
        run("{ aggregate { saleWith(groupBy: [{field: qty}], last: 1) { qty { groupValues { value } } } } }").await;
    assert_eq!(n, 2);
    assert_eq!(d["aggregate"]["saleWith"], json!([{ "qty": { "groupValues": [{ "value": "2" }] } }]));
}

// =============================================================================================
// SQL snapshots
// =============================================================================================

fn sale_model() -> (Model, usize) {
    let model = parse_sdl(SDL).unwrap();
    let idx = model.type_by_name("Sale").unwrap().0;
    (model, idx)
}

/// An `AggField` from `(function, distinct)` pairs, checked as the resolver checks them.
fn field(model: &Model, ty: usize, name: &str, calls: &[(&str, bool)], group_values: bool) -> AggField {
    let target = agg_target(model, ty, name).unwrap();
    let calls = calls
        .iter()
        .map(|(f, distinct)| {
            let func = AggFn::from_name(f).unwrap();
            check_call(model, ty, name, target, func, *distinct).unwrap();
            AggCall { key: if *distinct { format!("{f}_d") } else { f.to_string() }, func, distinct: *distinct }
        })
        .collect();
    AggField { key: name.to_string(), target, calls, group_values }
}

fn render_both(name: &str, plan: &AggPlan, page: Option<(u64, u64)>) -> String {
    let (model, _) = sale_model();
    let mut out = String::new();
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let r = AggRenderer { model: &model, app: "app", dialect };
        for (what, sql) in [("select", r.select(plan, "inst", page)), ("count_groups", r.count_groups(plan, "inst"))] {
            if what == "count_groups" && plan.group_by.is_empty() {
                continue;
            }
            check_placeholders(&sql);
            let _ = writeln!(out, "-- {name}: {what}, {dialect:?}\n{}\n{:?}\n", sql.driver_text(), sql.binds);
        }
    }
    out
}

/// Holds whatever the snapshot says: one placeholder per bound value, `$n` in order for
/// PostgreSQL and `?` for SQLite.
fn check_placeholders(sql: &Sql) {
    let text = sql.driver_text();
    match sql.dialect() {
        Dialect::Sqlite => assert_eq!(text.matches('?').count(), sql.binds.len(), "{text}"),
        Dialect::Postgres => {
            assert!(!text.contains('?'), "{text}");
            for i in 1..=sql.binds.len() {
                assert!(text.contains(&format!("${i}")), "${i} in {text}");
            }
            assert!(!text.contains(&format!("${}", sql.binds.len() + 1)), "{text}");
        }
    }
}

#[test]
fn sql_snapshots() {
    let (model, ty) = sale_model();
    let m = &model;
    let mut out = String::new();

    // No grouping, a `where`, every function.
    let plain = AggPlan {
        type_idx: ty,
        fields: vec![
            field(
                m,
                ty,
                "qty",
                &[("count", false), ("sum", false), ("avg", false), ("min", false), ("max", false)],
                false,
            ),
            field(m, ty, "price", &[("sum", false), ("avg", false)], false),
            field(m, ty, "tags", &[("count", false)], false),
            field(m, ty, "hypi_id", &[("count", false)], false),
        ],
        filter: plan_query(m, ty, "qty > 2 AND region = 'NORTH'").unwrap(),
        group_by: Vec::new(),
        having: None,
        include_trashed: false,
    };
    out += &render_both("no grouping", &plain, None);

    // Two keys (an enum descending, a DateTime by day), groupValues, trashed included, a page.
    let grouped = AggPlan {
        type_idx: ty,
        fields: vec![field(m, ty, "qty", &[("sum", false)], true), field(m, ty, "ok", &[("count", false)], true)],
        filter: FilterPlan::default(),
        group_by: vec![
            group_key(m, ty, "region", true, None).unwrap(),
            group_key(m, ty, "at", false, Some(TimeUnit::Days)).unwrap(),
        ],
        having: None,
        include_trashed: true,
    };
    out += &render_both("two keys", &grouped, Some((10, 20)));

    // having with AND, OR, NOT, a range and a set.
    let having = AggPlan {
        type_idx: ty,
        fields: vec![field(m, ty, "price", &[("avg", false)], true)],
        filter: FilterPlan::default(),
        group_by: vec![group_key(m, ty, "ok", false, None).unwrap()],
        having: plan_having(
            m,
            ty,
            "qty.sum > 10 AND (hypi_id.count >= 2 OR NOT price.avg IN [1, 2.5)) AND tags.count IN (1, 2, 4) OR qty.max IN (0, 1)",
        )
        .unwrap(),
        include_trashed: false,
    };
    out += &render_both("having", &having, Some((5, 0)));

    // distinct.
    let distinct = AggPlan {
        type_idx: ty,
        fields: vec![
            field(m, ty, "city", &[("count", true)], false),
            field(m, ty, "price", &[("sum", true), ("avg", true), ("count", true)], true),
        ],
        filter: FilterPlan::default(),
        group_by: vec![group_key(m, ty, "hypi_created", true, Some(TimeUnit::Hours)).unwrap()],
        having: None,
        include_trashed: false,
    };
    out += &render_both("distinct", &distinct, None);

    // PostgreSQL orders missing keys first ascending and last descending, as SQLite does.
    assert!(out.contains("substr(t0.\"at\", 1, 10) ASC NULLS FIRST"), "{out}");
    assert!(out.contains("t0.\"region\" DESC NULLS LAST"), "{out}");
    insta::assert_snapshot!("sql", out);
}

// =============================================================================================
// Errors
// =============================================================================================

const ERR_SDL: &str = "type Sale { region: Region  city: String  qty: Int  price: Float  big: Long  ok: Boolean  at: DateTime  tags: [String]  meta: Json  shop: Shop  shops: [Shop] }\nenum Region { NORTH SOUTH }\ntype Shop { name: String }";

#[tokio::test]
async fn errors() {
    let t = TestApp::new(ERR_SDL).await;
    t.upsert(json!({ "Sale": [{ "qty": 1, "city": "x", "tags": ["a"] }, { "qty": 2 }] })).await;
    let with = |args: &str| format!("{{ aggregate {{ saleWith({args}) {{ qty {{ sum }} }} }} }}");

    let cases: Vec<(String, &str, &str)> = vec![
        // Group by a reference: the generated enum leaves it out (GraphQL argument validation).
        (with("groupBy: [{field: shop}]"), "VALIDATION", "shop"),
        (with("groupBy: [{field: shops}]"), "VALIDATION", "shops"),
        // Aggregating a reference: SaleAggs has no such field.
        ("{ aggregate { sale { shop { count } } } }".into(), "GRAPHQL_VALIDATION", "shop"),
        // Group by a scalar list, a Json field; granularity on a non-DateTime.
        (with("groupBy: [{field: tags}]"), "VALIDATION", "Sale.tags"),
        (with("groupBy: [{field: meta}]"), "VALIDATION", "Sale.meta"),
        (with("groupBy: [{field: qty, dateGranularity: DAYS}]"), "VALIDATION", "Sale.qty"),
        (with("groupBy: [{field: hypi_id, dateGranularity: HOURS}]"), "VALIDATION", "hypi_id"),
        (with("groupBy: [{field: region, dateGranularity: WEEKS}]"), "VALIDATION", "WEEKS"),
        // AggOtherScalar has no sum/avg/min/max (String, Long, a list alike).
        ("{ aggregate { sale { city { sum } } } }".into(), "GRAPHQL_VALIDATION", "sum"),
        ("{ aggregate { sale { big { max } } } }".into(), "GRAPHQL_VALIDATION", "max"),
        ("{ aggregate { sale { tags { avg } } } }".into(), "GRAPHQL_VALIDATION", "avg"),
        // Distinct elements of a list are not defined.
        ("{ aggregate { sale { tags { count(distinct: true) } } } }".into(), "VALIDATION", "Sale.tags"),
        // Bad having.
        (with("groupBy: [{field: ok}], having: \"nope.sum > 1\""), "UNKNOWN_FIELD", "Sale.nope"),
        (with("groupBy: [{field: ok}], having: \"qty.median > 1\""), "VALIDATION", "median"),
        (with("groupBy: [{field: ok}], having: \"qty > 1\""), "VALIDATION", "qty"),
        (with("groupBy: [{field: ok}], having: \"qty.sum.x > 1\""), "VALIDATION", "qty.sum.x"),
        (with("groupBy: [{field: ok}], having: \"qty.sum > 'x'\""), "VALIDATION", "number"),
        (with("groupBy: [{field: ok}], having: \"qty.sum = null\""), "VALIDATION", "number"),
        (with("groupBy: [{field: ok}], having: \"qty.sum > 1 SORT qty\""), "VALIDATION", "SORT"),
        (with("groupBy: [{field: ok}], having: \"qty.sum >\""), "ARCQL_SYNTAX", "1:"),
        (with("groupBy: [{field: ok}], having: \"qty.sum ^ '1'\""), "VALIDATION", "^"),
        (with("groupBy: [{field: ok}], having: \"EXIST qty\""), "VALIDATION", "having"),
        (with("groupBy: [{field: ok}], having: \"city.sum > 1\""), "VALIDATION", "Sale.city"),
        (with("groupBy: [{field: ok}], having: \"big.sum > 1\""), "VALIDATION", "Sale.big"),
        (with("groupBy: [{field: ok}], having: \"tags.avg > 1\""), "VALIDATION", "Sale.tags"),
        (with("groupBy: [{field: ok}], having: \"shop.count > 1\""), "VALIDATION", "Sale.shop"),
        // where takes no SORT; bad where.
        (with("groupBy: [{field: ok}], where: \"qty > 1 SORT qty\""), "VALIDATION", "SORT"),
        ("{ aggregate { sale(where: \"SORT qty ASC\") { qty { sum } } } }".into(), "VALIDATION", "SORT"),
        ("{ aggregate { sale(where: \"qty >\") { qty { sum } } } }".into(), "ARCQL_SYNTAX", "1:"),
        ("{ aggregate { sale(where: \"nope = 1\") { qty { sum } } } }".into(), "UNKNOWN_FIELD", "Sale.nope"),
        // Paging.
        (with("groupBy: [{field: ok}], first: 1, last: 1"), "VALIDATION", "first"),
        (with("groupBy: [{field: ok}], first: -1"), "VALIDATION", "negative"),
        (with("groupBy: [{field: ok}], last: -2"), "VALIDATION", "negative"),
        (with("groupBy: [{field: ok}], page: 0"), "VALIDATION", "page"),
        (with("groupBy: [{field: ok}], last: 1, page: 2"), "VALIDATION", "page"),
        (with("groupBy: [{field: ok}], last: 1, page: 1"), "VALIDATION", "page"),
        // Bad group cursors: not a 1-based position.
        (with("groupBy: [{field: ok}], after: \"abc\""), "VALIDATION", "abc"),
        (with("groupBy: [{field: ok}], before: \"-1\""), "VALIDATION", "-1"),
        (with("groupBy: [{field: ok}], after: \"0\""), "VALIDATION", "'0'"),
        (with("groupBy: [{field: ok}], before: \"1.5\""), "VALIDATION", "1.5"),
        (with("groupBy: [{field: ok}], after: \"99999999999999999999999\""), "VALIDATION", "99999999999999999999999"),
    ];
    for (q, want_code, mention) in cases {
        let body = t.gql(&q, json!({})).await;
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{q}: expected errors: {body}"));
        let err = &errors[0];
        assert_eq!(code(err), want_code, "{q}: {err}");
        let msg = err["message"].as_str().unwrap();
        assert!(msg.contains(mention), "{q}: message {msg:?} should mention {mention:?}");
        assert!(!msg.to_lowercase().contains("select"), "{q}: no SQL in {msg:?}");
        // No partial answer for the failed field.
        assert!(
            body["data"].is_null()
                || body["data"]["aggregate"].as_object().is_none_or(|a| a.values().all(Value::is_null)),
            "{q}: {body}"
        );
    }
}
