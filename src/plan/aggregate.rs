//! Aggregation plans: which functions over which fields, grouped how, filtered by `where`
//! and `having`. Checked against the model; no SQL.

use crate::arcql::ast::{Expr, Literal, Op, Value};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::{Base, Model, Scalar, Storage, HYPI_FLAT_FIELDS};
use crate::plan::filter::{CmpOp, Col, FilterPlan};
use crate::value::SqlValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn from_name(name: &str) -> Option<AggFn> {
        Some(match name {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "avg" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            _ => return None,
        })
    }

    pub fn sql(self) -> &'static str {
        match self {
            AggFn::Count => "COUNT",
            AggFn::Sum => "SUM",
            AggFn::Avg => "AVG",
            AggFn::Min => "MIN",
            AggFn::Max => "MAX",
        }
    }
}

/// What an aggregate reads: a column (field or system) or a scalar list's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggTarget {
    Column(Col, Scalar),
    /// A scalar list: only `count` (of all its elements in the group).
    Values {
        type_idx: usize,
        field: usize,
    },
}

/// One selected function: `alias: sum(distinct: true)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggCall {
    pub key: String,
    pub func: AggFn,
    pub distinct: bool,
}

/// One selected field of `XAggs` (`price { sum avg }`), keyed by its response key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggField {
    pub key: String,
    pub target: AggTarget,
    pub calls: Vec<AggCall>,
    pub group_values: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn from_name(name: &str) -> Option<TimeUnit> {
        Some(match name {
            "SECONDS" => TimeUnit::Seconds,
            "MINUTES" => TimeUnit::Minutes,
            "HOURS" => TimeUnit::Hours,
            "DAYS" => TimeUnit::Days,
            _ => return None,
        })
    }

    /// Characters of the stored form (`2020-07-17T04:14:05.000Z`) the unit keeps.
    pub fn prefix_len(self) -> i64 {
        match self {
            TimeUnit::Seconds => 19,
            TimeUnit::Minutes => 16,
            TimeUnit::Hours => 13,
            TimeUnit::Days => 10,
        }
    }
}

/// One `groupBy` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    /// The name clients see in `groupValues` (`rating`, `hypi_created`).
    pub name: String,
    pub column: Col,
    pub scalar: Scalar,
    pub desc: bool,
    pub granularity: Option<TimeUnit>,
}

/// A `having` condition over aggregate results.
#[derive(Debug, Clone, PartialEq)]
pub enum Having {
    And(Vec<Having>),
    Or(Vec<Having>),
    Not(Box<Having>),
    Cmp { func: AggFn, target: AggTarget, op: CmpOp, value: SqlValue },
    Range { func: AggFn, target: AggTarget, lo: SqlValue, lo_inclusive: bool, hi: SqlValue, hi_inclusive: bool },
    In { func: AggFn, target: AggTarget, values: Vec<SqlValue> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggPlan {
    pub type_idx: usize,
    pub fields: Vec<AggField>,
    pub filter: FilterPlan,
    pub group_by: Vec<GroupKey>,
    pub having: Option<Having>,
    pub include_trashed: bool,
}

/// Resolve a field of `XAggs` (a model field or a flattened `hypi_*` name).
pub fn agg_target(model: &Model, type_idx: usize, name: &str) -> ApiResult<AggTarget> {
    let ty = &model.types[type_idx];
    if HYPI_FLAT_FIELDS.contains(&name) {
        let (col, scalar) = match name {
            "hypi_id" => ("hypi_id", Scalar::Id),
            "hypi_created" => ("hypi_created", Scalar::DateTime),
            "hypi_updated" => ("hypi_updated", Scalar::DateTime),
            "hypi_trashed" => ("hypi_trashed", Scalar::DateTime),
            "hypi_createdBy" => ("hypi_created_by", Scalar::Id),
            _ => ("hypi_instance", Scalar::String),
        };
        return Ok(AggTarget::Column(Col::System(col), scalar));
    }
    let Some((fi, f)) = ty.field(name) else {
        return Err(ApiError::new(ErrorCode::UnknownField, format!("unknown field '{}.{name}'", ty.name)));
    };
    match f.storage() {
        Storage::Column => {
            Ok(AggTarget::Column(Col::Field { type_idx, field: fi }, f.value_scalar().unwrap_or(Scalar::String)))
        }
        Storage::ValueTable => Ok(AggTarget::Values { type_idx, field: fi }),
        Storage::RefColumn(_) | Storage::LinkTable(_) => {
            Err(ApiError::validation(format!("'{}.{name}' is a reference and cannot be aggregated", ty.name)))
        }
    }
}

/// Check that `func` applies to `target`, as the field's aggregate type says (contract §2):
/// `AggInt` (Int) and `AggFloat` (Float) have sum, avg, min and max; `AggOtherScalar` (every
/// other scalar, Long included) only counts; lists only count, without distinct. `having`
/// is checked by the same rule, so it can only test results a selection could return.
pub fn check_call(
    model: &Model,
    type_idx: usize,
    name: &str,
    target: AggTarget,
    func: AggFn,
    distinct: bool,
) -> ApiResult<()> {
    let ty = &model.types[type_idx].name;
    match target {
        AggTarget::Values { .. } if func != AggFn::Count || distinct => {
            Err(ApiError::validation(format!("'{ty}.{name}' is a list: only count (without distinct) is defined")))
        }
        AggTarget::Values { .. } => Ok(()),
        AggTarget::Column(_, s) => {
            let numeric = matches!(s, Scalar::Int | Scalar::Float);
            if func != AggFn::Count && !numeric {
                Err(ApiError::validation(format!(
                    "'{}' is not defined for {} field '{ty}.{name}'",
                    func.sql().to_lowercase(),
                    s.name()
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// A `groupBy` entry: `field` is a name of `XScalarFields`.
pub fn group_key(
    model: &Model,
    type_idx: usize,
    field: &str,
    desc: bool,
    granularity: Option<TimeUnit>,
) -> ApiResult<GroupKey> {
    let ty = &model.types[type_idx];
    let (column, scalar) = match agg_target(model, type_idx, field)? {
        AggTarget::Column(c, s) => (c, s),
        AggTarget::Values { .. } => {
            return Err(ApiError::validation(format!("cannot group by '{}.{field}': it is a list", ty.name)))
        }
    };
    if matches!(ty.field(field), Some((_, f)) if matches!(f.base, Base::Scalar(Scalar::Json))) {
        return Err(ApiError::validation(format!("cannot group by Json field '{}.{field}'", ty.name)));
    }
    if granularity.is_some() && scalar != Scalar::DateTime {
        return Err(ApiError::validation(format!(
            "dateGranularity applies only to DateTime fields, not '{}.{field}'",
            ty.name
        )));
    }
    Ok(GroupKey { name: field.to_string(), column, scalar, desc, granularity })
}

/// Parse and check `having`: ArcQL whose paths are `<field>.<function>`.
pub fn plan_having(model: &Model, type_idx: usize, text: &str) -> ApiResult<Option<Having>> {
    let q = crate::arcql::parse(text)?;
    if !q.sort.is_empty() {
        return Err(ApiError::validation("having takes no SORT"));
    }
    q.filter.as_ref().map(|e| having_expr(model, type_idx, e)).transpose()
}

fn having_expr(model: &Model, type_idx: usize, e: &Expr) -> ApiResult<Having> {
    let term = |path: &crate::arcql::ast::Path| -> ApiResult<(AggFn, AggTarget)> {
        let segs = &path.segments;
        let (field, func) = match segs.as_slice() {
            [f, func] => (f.as_str(), func.as_str()),
            _ => {
                return Err(ApiError::validation(format!(
                    "having: '{}' must be <field>.<count|sum|avg|min|max>",
                    path.dotted()
                )))
            }
        };
        let Some(func) = AggFn::from_name(func) else {
            return Err(ApiError::validation(format!("having: unknown function '{func}' in '{}'", path.dotted())));
        };
        let target = agg_target(model, type_idx, field)?;
        check_call(model, type_idx, field, target, func, false)?;
        Ok((func, target))
    };
    let number = |v: &Value, what: &str| -> ApiResult<SqlValue> {
        match v.lit {
            Literal::Int(i) => Ok(SqlValue::Int(i)),
            Literal::Float(f) => Ok(SqlValue::Real(f)),
            _ => Err(ApiError::validation(format!("having: {what} must be compared with a number"))),
        }
    };
    Ok(match e {
        Expr::And(xs) => Having::And(xs.iter().map(|x| having_expr(model, type_idx, x)).collect::<ApiResult<_>>()?),
        Expr::Or(xs) => Having::Or(xs.iter().map(|x| having_expr(model, type_idx, x)).collect::<ApiResult<_>>()?),
        Expr::Not(x) => Having::Not(Box::new(having_expr(model, type_idx, x)?)),
        Expr::Compare { path, op, value } => {
            let (func, target) = term(path)?;
            let op = match op {
                Op::Eq => CmpOp::Eq,
                Op::Ne => CmpOp::Ne,
                Op::Lt => CmpOp::Lt,
                Op::Le => CmpOp::Le,
                Op::Gt => CmpOp::Gt,
                Op::Ge => CmpOp::Ge,
                other => {
                    return Err(ApiError::validation(format!(
                        "having: '{}' is not defined for aggregate results",
                        other.text()
                    )))
                }
            };
            Having::Cmp { func, target, op, value: number(value, &path.dotted())? }
        }
        Expr::Range { path, lo, lo_inclusive, hi, hi_inclusive } => {
            let (func, target) = term(path)?;
            let (lo, hi) = (number(lo, &path.dotted())?, number(hi, &path.dotted())?);
            if crate::plan::filter::range_is_empty(&lo, *lo_inclusive, &hi, *hi_inclusive) {
                return Err(ApiError::validation(format!(
                    "having: the range of '{}' is empty: its low bound is not below its high bound",
                    path.dotted()
                )));
            }
            Having::Range { func, target, lo, lo_inclusive: *lo_inclusive, hi, hi_inclusive: *hi_inclusive }
        }
        Expr::In { path, values } => {
            let (func, target) = term(path)?;
            let values = values.iter().map(|v| number(v, &path.dotted())).collect::<ApiResult<_>>()?;
            Having::In { func, target, values }
        }
        Expr::Exist { .. } | Expr::Geo { .. } => {
            return Err(ApiError::validation("having: only comparisons of aggregate results are allowed"))
        }
    })
}
