//! ArcQL AST + model → a typed filter: every path resolved to storage, every value checked
//! against its field's type and converted to its stored form. Errors name the field.

use crate::arcql::ast::{Expr, Literal, Op, Path, Query, Value};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::{Base, Model, Scalar, Storage};
use crate::plan::write::normalize_datetime;
use crate::value::SqlValue;

/// Longest `*` wildcard pattern.
pub const MAX_PATTERN_CHARS: usize = 100;

/// A step through a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// One-to-one: a join.
    Ref { from: usize, field: usize, to: usize },
    /// List reference: an EXISTS subquery over the link table.
    List { from: usize, field: usize, to: usize },
}

/// What a leaf tests, at the end of its hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A column of the object reached: a scalar or enum field, or a system column.
    Column { column: Col, scalar: Scalar },
    /// Some element of a scalar list.
    Values { type_idx: usize, field: usize, scalar: Scalar },
    /// The list reference itself (only EXIST).
    List { from: usize, field: usize, to: usize },
}

/// A column: a field of the model or a system column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Field { type_idx: usize, field: usize },
    System(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Cmp(CmpOp, SqlValue),
    IsNull,
    NotNull,
    /// Every word must occur (lower-case ASCII letters/digits and other non-separators).
    Words(Vec<String>),
    /// Case-sensitive prefix; `as_text` compares an integer column as decimal text.
    Prefix {
        prefix: String,
        as_text: bool,
    },
    /// Case-sensitive whole-value pattern: `*` any run, `?` one character.
    Wildcard {
        pattern: String,
        as_text: bool,
    },
    In(Vec<SqlValue>),
    Range {
        lo: SqlValue,
        lo_inclusive: bool,
        hi: SqlValue,
        hi_inclusive: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub hops: Vec<Hop>,
    pub target: Target,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Leaf(Leaf),
    /// Great-circle distance from (lat, lon) within `radius_km`; coordinates in radians.
    Geo {
        lat: f64,
        lon: f64,
        radius_km: f64,
        lat_col: Col,
        lon_col: Col,
    },
}

/// A sort key: a column reached through one-to-one references only.
#[derive(Debug, Clone, PartialEq)]
pub struct SortPlan {
    pub hops: Vec<Hop>,
    pub column: Col,
    pub desc: bool,
}

/// A whole query: filter (`None` = everything) and sort keys (the `hypi.id` tie-breaker is
/// added by the renderer).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterPlan {
    pub cond: Option<Cond>,
    pub sort: Vec<SortPlan>,
    /// Whose query it is, and whether the rows are to be changed: the generated SQL keeps
    /// only rows this viewer may read (or write).
    pub visibility: Visibility,
}

/// The viewer of a statement and the access it needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visibility {
    pub viewer: crate::access::Viewer,
    /// The rows are to be changed (trash, delete, ...): the type's write level applies.
    pub write: bool,
}

/// What one query may cost, checked while it is planned (before any SQL is built): every
/// list an ArcQL path goes through multiplies the work by its length, every one-to-one hop is
/// a join, and the databases have fixed ceilings on joins, expression depth and sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Lists one path may go through.
    pub list_hops: usize,
    /// Distinct one-to-one reference paths (joins) in the query.
    pub joins: usize,
    /// Comparisons, EXISTs and geo conditions.
    pub conditions: usize,
    /// SORT keys.
    pub sort_keys: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        crate::config::Limits::default().arcql()
    }
}

/// Parse and type-check `text` against `type_idx`, within the default limits.
pub fn plan_query(model: &Model, type_idx: usize, text: &str) -> ApiResult<FilterPlan> {
    plan_query_within(model, type_idx, text, &QueryLimits::default())
}

/// Parse and type-check `text` against `type_idx`, within `limits`.
pub fn plan_query_within(model: &Model, type_idx: usize, text: &str, limits: &QueryLimits) -> ApiResult<FilterPlan> {
    let q = crate::arcql::parse(text)?;
    plan_within(model, type_idx, &q, limits)
}

pub fn plan(model: &Model, type_idx: usize, q: &Query) -> ApiResult<FilterPlan> {
    plan_within(model, type_idx, q, &QueryLimits::default())
}

pub fn plan_within(model: &Model, type_idx: usize, q: &Query, limits: &QueryLimits) -> ApiResult<FilterPlan> {
    if q.sort.len() > limits.sort_keys {
        return Err(ApiError::limit(format!(
            "the query has {} SORT keys; the limit is {}",
            q.sort.len(),
            limits.sort_keys
        )));
    }
    let c = Checker { model, root: type_idx, limits };
    let cond = q.filter.as_ref().map(|e| c.expr(e)).transpose()?;
    let mut sort = Vec::new();
    for key in &q.sort {
        let resolved = c.path(&key.path)?;
        let (hops, column) = match resolved.end {
            End::Column(col, _) if resolved.hops.iter().all(|h| matches!(h, Hop::Ref { .. })) => (resolved.hops, col),
            End::Column(..) | End::Values(..) | End::List(..) => {
                return Err(ApiError::validation(format!(
                    "cannot sort by '{}': it goes through a list",
                    key.path.dotted()
                )))
            }
            End::Ref(..) => {
                return Err(ApiError::validation(format!(
                    "cannot sort by '{}': it is a reference; sort by one of its fields",
                    key.path.dotted()
                )))
            }
        };
        sort.push(SortPlan { hops, column, desc: key.desc });
    }
    let plan = FilterPlan { cond, sort, visibility: Visibility::default() };
    check_size(&plan, limits)?;
    Ok(plan)
}

/// The number of conditions and of distinct one-to-one paths (each one join, shared by
/// the conditions and sort keys that use it).
fn check_size(plan: &FilterPlan, limits: &QueryLimits) -> ApiResult<()> {
    fn walk<'a>(c: &'a Cond, leaves: &mut usize, joins: &mut std::collections::HashSet<&'a [Hop]>) {
        match c {
            Cond::And(xs) | Cond::Or(xs) => xs.iter().for_each(|x| walk(x, leaves, joins)),
            Cond::Not(x) => walk(x, leaves, joins),
            Cond::Geo { .. } => *leaves += 1,
            Cond::Leaf(l) => {
                *leaves += 1;
                for i in 1..=l.hops.len() {
                    if matches!(l.hops[i - 1], Hop::Ref { .. }) {
                        joins.insert(&l.hops[..i]);
                    }
                }
            }
        }
    }
    let mut leaves = 0;
    let mut joins = std::collections::HashSet::new();
    if let Some(c) = &plan.cond {
        walk(c, &mut leaves, &mut joins);
    }
    for s in &plan.sort {
        for i in 1..=s.hops.len() {
            joins.insert(&s.hops[..i]);
        }
    }
    if leaves > limits.conditions {
        return Err(ApiError::limit(format!("the query has {leaves} conditions; the limit is {}", limits.conditions)));
    }
    if joins.len() > limits.joins {
        return Err(ApiError::limit(format!(
            "the query follows {} one-to-one references (joins); the limit is {}",
            joins.len(),
            limits.joins
        )));
    }
    Ok(())
}

struct Checker<'a> {
    model: &'a Model,
    root: usize,
    limits: &'a QueryLimits,
}

enum End {
    Column(Col, Scalar),
    Values(usize, usize, Scalar),
    /// A one-to-one reference named as the last segment.
    Ref(usize, usize, usize),
    List(usize, usize, usize),
}

struct Resolved {
    hops: Vec<Hop>,
    end: End,
    /// `Type.field` of the last segment, for messages.
    name: String,
    enum_idx: Option<usize>,
}

fn system(name: &str) -> Option<(&'static str, Scalar)> {
    Some(match name {
        "id" => ("hypi_id", Scalar::Id),
        "created" => ("hypi_created", Scalar::DateTime),
        "updated" => ("hypi_updated", Scalar::DateTime),
        "trashed" => ("hypi_trashed", Scalar::DateTime),
        "createdBy" => ("hypi_created_by", Scalar::Id),
        "instanceId" => ("hypi_instance", Scalar::String),
        _ => return None,
    })
}

impl Checker<'_> {
    fn unknown(&self, type_idx: usize, name: &str) -> ApiError {
        ApiError::new(ErrorCode::UnknownField, format!("unknown field '{}.{name}'", self.model.types[type_idx].name))
    }

    fn path(&self, path: &Path) -> ApiResult<Resolved> {
        let mut hops = Vec::new();
        let mut ty = self.root;
        let segs = &path.segments;
        let mut i = 0;
        while i < segs.len() {
            let seg = segs[i].as_str();
            let last = i + 1 == segs.len();
            let tname = &self.model.types[ty].name;
            // `hypi.id` and the flattened `hypi_id` name the same system column.
            let sys = if seg == "hypi" {
                if last {
                    return Err(ApiError::validation(format!(
                        "'{}' needs a field: hypi.id, hypi.created, ...",
                        path.dotted()
                    )));
                }
                i += 1;
                Some(segs[i].as_str())
            } else {
                seg.strip_prefix("hypi_")
            };
            if let Some(s) = sys {
                let Some((col, scalar)) = system(s) else {
                    return Err(ApiError::new(ErrorCode::UnknownField, format!("unknown field '{tname}.hypi.{s}'")));
                };
                if i + 1 != segs.len() {
                    return Err(ApiError::validation(format!("'{}': hypi.{s} has no fields", path.dotted())));
                }
                return Ok(Resolved {
                    hops,
                    end: End::Column(Col::System(col), scalar),
                    name: format!("{tname}.hypi.{s}"),
                    enum_idx: None,
                });
            }
            let Some((fi, field)) = self.model.types[ty].field(seg) else {
                return Err(self.unknown(ty, seg));
            };
            let name = format!("{tname}.{seg}");
            let enum_idx = if let Base::Enum(e) = field.base { Some(e) } else { None };
            match field.storage() {
                Storage::Column | Storage::ValueTable if !last => {
                    return Err(ApiError::validation(format!(
                        "'{}': {name} is not a reference, it has no fields",
                        path.dotted()
                    )))
                }
                Storage::Column => {
                    let scalar = field.value_scalar().unwrap_or(Scalar::String);
                    return Ok(Resolved {
                        hops,
                        end: End::Column(Col::Field { type_idx: ty, field: fi }, scalar),
                        name,
                        enum_idx,
                    });
                }
                Storage::ValueTable => {
                    let scalar = field.value_scalar().unwrap_or(Scalar::String);
                    return Ok(Resolved { hops, end: End::Values(ty, fi, scalar), name, enum_idx });
                }
                Storage::RefColumn(to) if last => {
                    return Ok(Resolved { hops, end: End::Ref(ty, fi, to), name, enum_idx })
                }
                Storage::LinkTable(to) if last => {
                    return Ok(Resolved { hops, end: End::List(ty, fi, to), name, enum_idx })
                }
                Storage::RefColumn(to) => {
                    hops.push(Hop::Ref { from: ty, field: fi, to });
                    ty = to;
                }
                Storage::LinkTable(to) => {
                    hops.push(Hop::List { from: ty, field: fi, to });
                    let lists = hops.iter().filter(|h| matches!(h, Hop::List { .. })).count();
                    if lists > self.limits.list_hops {
                        return Err(ApiError::limit(format!(
                            "the path '{}' goes through more than {} lists (each multiplies the work by its length)",
                            path.dotted(),
                            self.limits.list_hops
                        )));
                    }
                    ty = to;
                }
            }
            i += 1;
        }
        Err(ApiError::validation(format!("'{}' is not a field path", path.dotted())))
    }

    fn expr(&self, e: &Expr) -> ApiResult<Cond> {
        Ok(match e {
            Expr::Or(xs) => Cond::Or(xs.iter().map(|x| self.expr(x)).collect::<ApiResult<_>>()?),
            Expr::And(xs) => Cond::And(xs.iter().map(|x| self.expr(x)).collect::<ApiResult<_>>()?),
            Expr::Not(x) => Cond::Not(Box::new(self.expr(x)?)),
            Expr::Exist { path } => {
                let r = self.path(path)?;
                self.exist(r)
            }
            Expr::Compare { path, op, value } => {
                let r = self.path(path)?;
                self.compare(r, *op, value)?
            }
            Expr::In { path, values } => {
                let r = self.path(path)?;
                let scalar = self.comparable(&r, "IN")?;
                let vals = values.iter().map(|v| self.value(&r, scalar, v)).collect::<ApiResult<Vec<_>>>()?;
                if vals.contains(&SqlValue::Null) {
                    return Err(ApiError::validation(format!(
                        "{}: null cannot be in an IN set; use NOT EXIST",
                        r.name
                    )));
                }
                let vals = if matches!(scalar, Scalar::Int | Scalar::Long) { int_set(vals) } else { vals };
                if vals.is_empty() {
                    // Only fractions, which no integer equals.
                    let (cmp, v) = never();
                    return self.leaf(r, Test::Cmp(cmp, v));
                }
                self.leaf(r, Test::In(vals))?
            }
            Expr::Range { path, lo, lo_inclusive, hi, hi_inclusive } => {
                let r = self.path(path)?;
                let scalar = self.comparable(&r, "IN")?;
                let bare = !*lo_inclusive && !*hi_inclusive;
                // `(a, b)`: a set where a range means nothing (enum, Boolean, ID), Hypi's
                // exclusive range for numbers and DateTimes, and ambiguous for strings.
                if bare && (r.enum_idx.is_some() || matches!(scalar, Scalar::Boolean | Scalar::Id)) {
                    let vals = [lo, hi].iter().map(|v| self.value(&r, scalar, v)).collect::<ApiResult<Vec<_>>>()?;
                    if vals.contains(&SqlValue::Null) {
                        return Err(ApiError::validation(format!(
                            "{}: null cannot be in an IN set; use NOT EXIST",
                            r.name
                        )));
                    }
                    return self.leaf(r, Test::In(vals));
                }
                if bare && scalar == Scalar::String {
                    return Err(ApiError::validation(format!(
                        "'{} IN ({}, {})' is ambiguous for String field '{}': write the set of two values with a \
                         trailing comma, IN ({}, {},), or a range with a bracket: IN [{}, {}) or IN ({}, {}]",
                        path.dotted(),
                        shown(&lo.lit),
                        shown(&hi.lit),
                        r.name,
                        shown(&lo.lit),
                        shown(&hi.lit),
                        shown(&lo.lit),
                        shown(&hi.lit),
                        shown(&lo.lit),
                        shown(&hi.lit),
                    )));
                }
                if scalar == Scalar::Boolean {
                    return Err(ApiError::validation(format!("a range is not defined for Boolean field '{}'", r.name)));
                }
                if r.enum_idx.is_some() {
                    return Err(ApiError::validation(format!(
                        "a range is not defined for enum field '{}'; list the values: IN ({}, {},)",
                        r.name,
                        shown(&lo.lit),
                        shown(&hi.lit)
                    )));
                }
                let (mut lo_v, mut hi_v) = (self.value(&r, scalar, lo)?, self.value(&r, scalar, hi)?);
                let (mut lo_inclusive, mut hi_inclusive) = (*lo_inclusive, *hi_inclusive);
                if matches!(scalar, Scalar::Int | Scalar::Long) {
                    (lo_v, lo_inclusive) = int_bound(lo_v, lo_inclusive, true);
                    (hi_v, hi_inclusive) = int_bound(hi_v, hi_inclusive, false);
                }
                let (lo_inclusive, hi_inclusive) = (&lo_inclusive, &hi_inclusive);
                if lo_v == SqlValue::Null || hi_v == SqlValue::Null {
                    return Err(ApiError::validation(format!("{}: range bounds cannot be null", r.name)));
                }
                // A range that can hold nothing is a mistake, not a query: say so instead of
                // answering an empty page.
                if range_is_empty(&lo_v, *lo_inclusive, &hi_v, *hi_inclusive) {
                    let hint = if bare {
                        format!(
                            "; (lo, hi) is an exclusive range, for the set of both values write IN ({}, {},)",
                            shown(&lo.lit),
                            shown(&hi.lit)
                        )
                    } else {
                        String::new()
                    };
                    return Err(ApiError::validation(format!(
                        "the range of '{}' is empty: {} is not below {}{hint}",
                        r.name,
                        shown(&lo.lit),
                        shown(&hi.lit)
                    )));
                }
                self.leaf(
                    r,
                    Test::Range { lo: lo_v, lo_inclusive: *lo_inclusive, hi: hi_v, hi_inclusive: *hi_inclusive },
                )?
            }
            Expr::Geo { lat, lon, radius_km, lat_field, lon_field, .. } => {
                let col = |name: &str| -> ApiResult<Col> {
                    let ty = &self.model.types[self.root];
                    match ty.field(name) {
                        Some((fi, f))
                            if !f.list
                                && matches!(f.base, Base::Scalar(Scalar::Float | Scalar::Int | Scalar::Long)) =>
                        {
                            Ok(Col::Field { type_idx: self.root, field: fi })
                        }
                        Some(_) => {
                            Err(ApiError::validation(format!("geo: '{}.{name}' is not a number field", ty.name)))
                        }
                        None => Err(self.unknown(self.root, name)),
                    }
                };
                if *radius_km < 0.0 {
                    return Err(ApiError::validation("geo: the radius cannot be negative"));
                }
                Cond::Geo {
                    lat: *lat,
                    lon: *lon,
                    radius_km: *radius_km,
                    lat_col: col(lat_field)?,
                    lon_col: col(lon_field)?,
                }
            }
        })
    }

    fn leaf(&self, r: Resolved, test: Test) -> ApiResult<Cond> {
        let target = match r.end {
            End::Column(column, scalar) => Target::Column { column, scalar },
            End::Values(t, f, scalar) => Target::Values { type_idx: t, field: f, scalar },
            End::List(from, field, to) => Target::List { from, field, to },
            End::Ref(..) => {
                return Err(ApiError::validation(format!("{} is a reference; compare one of its fields", r.name)))
            }
        };
        Ok(Cond::Leaf(Leaf { hops: r.hops, target, test }))
    }

    fn exist(&self, r: Resolved) -> Cond {
        match r.end {
            // A reference exists when its target does (and is not trashed).
            End::Ref(from, field, to) => {
                let mut hops = r.hops;
                hops.push(Hop::Ref { from, field, to });
                Cond::Leaf(Leaf {
                    hops,
                    target: Target::Column { column: Col::System("hypi_id"), scalar: Scalar::Id },
                    test: Test::NotNull,
                })
            }
            End::Column(column, scalar) => {
                Cond::Leaf(Leaf { hops: r.hops, target: Target::Column { column, scalar }, test: Test::NotNull })
            }
            End::Values(t, f, scalar) => Cond::Leaf(Leaf {
                hops: r.hops,
                target: Target::Values { type_idx: t, field: f, scalar },
                test: Test::NotNull,
            }),
            End::List(from, field, to) => {
                Cond::Leaf(Leaf { hops: r.hops, target: Target::List { from, field, to }, test: Test::NotNull })
            }
        }
    }

    /// The scalar of a comparable end (columns and scalar lists).
    fn comparable(&self, r: &Resolved, op: &str) -> ApiResult<Scalar> {
        match r.end {
            End::Column(_, s) | End::Values(_, _, s) => {
                if s == Scalar::Json {
                    return Err(ApiError::validation(format!(
                        "'{op}' is not defined for Json field '{}'; use EXIST",
                        r.name
                    )));
                }
                Ok(s)
            }
            End::Ref(..) | End::List(..) => Err(ApiError::validation(format!(
                "'{op}' is not defined for reference '{}'; compare one of its fields or use EXIST",
                r.name
            ))),
        }
    }

    fn compare(&self, r: Resolved, op: Op, v: &Value) -> ApiResult<Cond> {
        let op_text = op.text();
        // `a = null` / `a != null` mean "not set" / "set" for every kind of field, references
        // and lists included (contract §4), so they are decided before the type checks.
        if v.lit == Literal::Null {
            match op {
                Op::Eq => return Ok(Cond::Not(Box::new(self.exist(r)))),
                Op::Ne => return Ok(self.exist(r)),
                _ => {}
            }
        }
        let scalar = self.comparable(&r, op_text)?;
        let is_text = matches!(scalar, Scalar::String | Scalar::Id);
        let is_int = matches!(scalar, Scalar::Int | Scalar::Long);
        let test = match op {
            Op::Words => {
                if !is_text {
                    return Err(self.op_error(op_text, scalar, &r));
                }
                let Literal::Str(s) = &v.lit else { return Err(self.type_error(v, "a string", &r)) };
                let words = split_words(s);
                if words.is_empty() {
                    return Err(ApiError::validation(format!("{}: '~' needs at least one word", r.name)));
                }
                Test::Words(words)
            }
            Op::Prefix | Op::Wildcard => {
                if !is_text && !is_int {
                    return Err(self.op_error(op_text, scalar, &r));
                }
                let s = match &v.lit {
                    Literal::Str(s) => s.clone(),
                    Literal::Int(i) if is_int => i.to_string(),
                    _ => return Err(self.type_error(v, "a string", &r)),
                };
                if op == Op::Prefix {
                    Test::Prefix { prefix: s, as_text: is_int }
                } else {
                    if s.chars().count() > MAX_PATTERN_CHARS {
                        return Err(ApiError::limit(format!(
                            "{}: a wildcard pattern may have at most {MAX_PATTERN_CHARS} characters",
                            r.name
                        )));
                    }
                    Test::Wildcard { pattern: s, as_text: is_int }
                }
            }
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let cmp = match op {
                    Op::Eq => CmpOp::Eq,
                    Op::Ne => CmpOp::Ne,
                    Op::Lt => CmpOp::Lt,
                    Op::Le => CmpOp::Le,
                    Op::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                if scalar == Scalar::Boolean && !matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
                    return Err(self.op_error(op_text, scalar, &r));
                }
                if r.enum_idx.is_some() && !matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
                    return Err(ApiError::validation(format!(
                        "'{op_text}' is not defined for enum field '{}'",
                        r.name
                    )));
                }
                let value = self.value(&r, scalar, v)?;
                let (cmp, value) = match value {
                    SqlValue::Real(f) if matches!(scalar, Scalar::Int | Scalar::Long) => match int_cmp(cmp, f) {
                        Some(exact) => exact,
                        // `!=` a value no integer has: every object with the field set.
                        None => return Ok(self.exist(r)),
                    },
                    v => (cmp, v),
                };
                match (cmp, value) {
                    (CmpOp::Eq, SqlValue::Null) => Test::IsNull,
                    (CmpOp::Ne, SqlValue::Null) => Test::NotNull,
                    (_, SqlValue::Null) => {
                        return Err(ApiError::validation(format!("{}: null can only be compared with = or !=", r.name)))
                    }
                    (cmp, value) => Test::Cmp(cmp, value),
                }
            }
        };
        if test == Test::IsNull {
            // `a = null` is NOT EXIST a.
            return Ok(Cond::Not(Box::new(self.exist(r))));
        }
        if test == Test::NotNull {
            return Ok(self.exist(r));
        }
        self.leaf(r, test)
    }

    fn op_error(&self, op: &str, scalar: Scalar, r: &Resolved) -> ApiError {
        let kind = if r.enum_idx.is_some() { "enum" } else { scalar.name() };
        ApiError::validation(format!("'{op}' is not defined for {kind} field '{}'", r.name))
    }

    fn type_error(&self, v: &Value, what: &str, r: &Resolved) -> ApiError {
        ApiError::validation(format!("{} is not {what} for field '{}'", shown(&v.lit), r.name))
    }

    /// A literal converted to the stored form of `scalar`.
    fn value(&self, r: &Resolved, scalar: Scalar, v: &Value) -> ApiResult<SqlValue> {
        if v.lit == Literal::Null {
            return Ok(SqlValue::Null);
        }
        if let Some(e) = r.enum_idx {
            let en = &self.model.enums[e];
            return match &v.lit {
                Literal::Str(s) if en.values.iter().any(|x| x == s) => Ok(SqlValue::Text(s.clone())),
                _ => Err(ApiError::validation(format!(
                    "{} is not a value of enum {} for field '{}' ({})",
                    shown(&v.lit),
                    en.name,
                    r.name,
                    en.values.join(", ")
                ))),
            };
        }
        let bad = |what: &str| self.type_error(v, what, r);
        match (scalar, &v.lit) {
            (Scalar::String | Scalar::Id, Literal::Str(s)) => Ok(SqlValue::Text(s.clone())),
            (Scalar::Id, Literal::Int(i)) => Ok(SqlValue::Text(i.to_string())),
            (Scalar::String, _) => Err(bad("a String")),
            (Scalar::Id, _) => Err(bad("an ID")),
            (Scalar::Int | Scalar::Long, Literal::Int(i)) => Ok(SqlValue::Int(*i)),
            (Scalar::Int | Scalar::Long, Literal::Float(f)) => Ok(SqlValue::Real(*f)),
            (Scalar::Int | Scalar::Long, Literal::Str(s)) => s
                .trim()
                .parse::<i64>()
                .map(SqlValue::Int)
                .map_err(|_| bad(if scalar == Scalar::Int { "an Int" } else { "a Long" })),
            (Scalar::Int, _) => Err(bad("an Int")),
            (Scalar::Long, _) => Err(bad("a Long")),
            (Scalar::Float, Literal::Int(i)) => Ok(SqlValue::Real(*i as f64)),
            (Scalar::Float, Literal::Float(f)) => Ok(SqlValue::Real(*f)),
            (Scalar::Float, Literal::Str(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(SqlValue::Real(f)),
                _ => Err(bad("a Float")),
            },
            (Scalar::Float, _) => Err(bad("a Float")),
            (Scalar::Boolean, Literal::Bool(b)) => Ok(SqlValue::Bool(*b)),
            (Scalar::Boolean, _) => Err(bad("a Boolean")),
            (Scalar::DateTime, Literal::Str(s)) => {
                normalize_datetime(s).map(SqlValue::Text).ok_or_else(|| bad("a DateTime"))
            }
            (Scalar::DateTime, _) => Err(bad("a DateTime")),
            (Scalar::Json, _) => Err(bad("comparable (Json)")),
        }
    }
}

/// A comparison of an integer field with a Float, as an exact integer comparison (PostgreSQL
/// would compare a BIGINT with a double as doubles, wrongly above 2^53). `None` for `!=` a
/// value no integer has (true for every set value).
fn int_cmp(op: CmpOp, f: f64) -> Option<(CmpOp, SqlValue)> {
    const MIN: f64 = -9_223_372_036_854_775_808.0;
    let as_int = |x: f64| -> Option<i64> { (MIN..-MIN).contains(&x).then_some(x as i64) };
    if f.fract() == 0.0 {
        return Some(match as_int(f) {
            Some(i) => (op, SqlValue::Int(i)),
            None if f > 0.0 => match op {
                CmpOp::Lt | CmpOp::Le | CmpOp::Ne => (CmpOp::Le, SqlValue::Int(i64::MAX)),
                _ => never(),
            },
            None => match op {
                CmpOp::Gt | CmpOp::Ge | CmpOp::Ne => (CmpOp::Ge, SqlValue::Int(i64::MIN)),
                _ => never(),
            },
        });
    }
    match op {
        CmpOp::Eq => Some(never()),
        CmpOp::Ne => None,
        CmpOp::Lt | CmpOp::Le => Some(match as_int(f.floor()) {
            Some(i) => (CmpOp::Le, SqlValue::Int(i)),
            None if f > 0.0 => (CmpOp::Le, SqlValue::Int(i64::MAX)),
            None => never(),
        }),
        CmpOp::Gt | CmpOp::Ge => Some(match as_int(f.ceil()) {
            Some(i) => (CmpOp::Ge, SqlValue::Int(i)),
            None if f < 0.0 => (CmpOp::Ge, SqlValue::Int(i64::MIN)),
            None => never(),
        }),
    }
}

/// A comparison no integer satisfies (and that stays two-valued under NOT).
fn never() -> (CmpOp, SqlValue) {
    (CmpOp::Lt, SqlValue::Int(i64::MIN))
}

/// An IN set for an integer field: integral Floats as integers, fractions dropped.
fn int_set(vals: Vec<SqlValue>) -> Vec<SqlValue> {
    vals.into_iter()
        .filter_map(|v| match v {
            SqlValue::Real(f) => match int_cmp(CmpOp::Eq, f) {
                Some((CmpOp::Eq, i @ SqlValue::Int(_))) => Some(i),
                _ => None,
            },
            v => Some(v),
        })
        .collect()
}

/// A range bound for an integer field: a Float bound as the nearest integer inside the range
/// (inclusive), an integral one as that integer.
fn int_bound(v: SqlValue, inclusive: bool, low: bool) -> (SqlValue, bool) {
    let SqlValue::Real(f) = v else { return (v, inclusive) };
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let clamp = |x: f64| -> i64 {
        if x >= LIMIT {
            i64::MAX
        } else if x < -LIMIT {
            i64::MIN
        } else {
            x as i64
        }
    };
    if f.fract() == 0.0 {
        (SqlValue::Int(clamp(f)), inclusive)
    } else if low {
        (SqlValue::Int(clamp(f.ceil())), true)
    } else {
        (SqlValue::Int(clamp(f.floor())), true)
    }
}

/// Can no value lie in this range?
pub fn range_is_empty(lo: &SqlValue, lo_inclusive: bool, hi: &SqlValue, hi_inclusive: bool) -> bool {
    match compare(lo, hi) {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Equal) => !(lo_inclusive && hi_inclusive),
        _ => false,
    }
}

/// The order of two bound values of one field (numbers compare as numbers; texts, DateTimes
/// included, by code point as the database compares them).
fn compare(a: &SqlValue, b: &SqlValue) -> Option<std::cmp::Ordering> {
    let num = |v: &SqlValue| match v {
        SqlValue::Int(i) => Some(*i as f64),
        SqlValue::Real(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (SqlValue::Int(x), SqlValue::Int(y)) => Some(x.cmp(y)),
        (SqlValue::Text(x), SqlValue::Text(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

fn shown(l: &Literal) -> String {
    match l {
        Literal::Str(s) => format!("'{s}'"),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => "null".into(),
    }
}

/// Word separators: ASCII characters that are neither letters nor digits.
pub fn is_separator(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_alphanumeric()
}

/// The words of a `~` query, lower-cased (ASCII).
pub fn split_words(s: &str) -> Vec<String> {
    s.split(is_separator).filter(|w| !w.is_empty()).map(|w| w.to_ascii_lowercase()).collect()
}
