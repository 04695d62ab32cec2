//! Aggregation plans → one statement per aggregate root field: a JSON document per group.

use super::filter::{FilterRenderer, Scope};
use super::names::*;
use super::{quote, Dialect, Sql};
use crate::model::{Model, Scalar};
use crate::plan::aggregate::{AggFn, AggPlan, AggTarget, GroupKey, Having};
use crate::plan::filter::Col;
use crate::plan::read::ref_key;

/// What an aggregate that left the range of a double reads as in a SQLite document.
pub const OVERFLOW: &str = "#overflow";

pub struct AggRenderer<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub dialect: Dialect,
}

impl AggRenderer<'_> {
    /// A group's document as this renderer's SQL produced it, in the model's types: Float
    /// results as floats (PostgreSQL prints an integral value without a fraction), and Float
    /// group keys printed one way on both databases (as JSON prints the double), so both
    /// databases answer byte for byte alike.
    ///
    /// A result beyond the range of a double reads as null, and is named in the second part
    /// of the answer (field key, function key), for the front door to report where it is.
    pub fn decode(
        &self,
        plan: &AggPlan,
        text: &str,
    ) -> Result<(serde_json::Value, Vec<(String, String)>), crate::error::ApiError> {
        let mut doc: serde_json::Value = serde_json::from_str(text).map_err(crate::error::ApiError::internal)?;
        let mut overflows = Vec::new();
        for f in &plan.fields {
            let Some(obj) = doc.get_mut(ref_key(&f.key).as_str()).and_then(|v| v.as_object_mut()) else { continue };
            for c in &f.calls {
                if let Some(v) = obj.get_mut(ref_key(&c.key).as_str()) {
                    if !Self::is_float(c.func, f.target) {
                        continue;
                    }
                    // PostgreSQL's numeric text, rounded once to the nearest double (zero
                    // where it is that small); SQLite's marker.
                    let exact = match v.as_str() {
                        Some(OVERFLOW) => Some(f64::INFINITY),
                        Some(text) => Some(text.parse::<f64>().map_err(crate::error::ApiError::internal)?),
                        None => None,
                    };
                    match exact.map(super::read::canonical_float) {
                        Some(x) if x.is_finite() => {
                            *v = serde_json::Number::from_f64(x)
                                .map_or(serde_json::Value::Null, serde_json::Value::Number)
                        }
                        Some(_) => {
                            *v = serde_json::Value::Null;
                            overflows.push((f.key.clone(), c.key.clone()));
                        }
                        None => super::read::scalar(Some(Scalar::Float), v),
                    }
                }
            }
            let Some(serde_json::Value::Array(pairs)) = obj.get_mut("groupValues") else { continue };
            for (pair, k) in pairs.iter_mut().zip(&plan.group_by) {
                if k.scalar != Scalar::Float {
                    continue;
                }
                let Some(v) = pair.get_mut("value") else { continue };
                let canonical = v
                    .as_str()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .map(super::read::canonical_float)
                    .and_then(serde_json::Number::from_f64)
                    .map(|n| n.to_string());
                if let Some(t) = canonical {
                    *v = serde_json::Value::String(t);
                }
            }
        }
        Ok((doc, overflows))
    }

    /// Does this aggregate give a Float (an `avg`; `sum`, `min`, `max` of a Float field)?
    fn is_float(func: AggFn, target: AggTarget) -> bool {
        match (func, target) {
            (AggFn::Avg, _) => true,
            (AggFn::Sum | AggFn::Min | AggFn::Max, AggTarget::Column(_, s)) => s == Scalar::Float,
            _ => false,
        }
    }

    fn col(&self, col: Col) -> String {
        match col {
            Col::Field { type_idx, field } => {
                format!("t0.{}", quote(column(&self.model.types[type_idx].fields[field])))
            }
            Col::System(name) => format!("t0.{name}"),
        }
    }

    fn agg(&self, func: AggFn, target: AggTarget, distinct: bool) -> String {
        match target {
            // An average of doubles must not overflow where the average itself is a double.
            // PostgreSQL: its AVG keeps a sum of squares (overflowing long before the average
            // does) and its SUM raises an error, so both sum exactly in numeric, from each
            // double's shortest exact text (a double cast to numeric directly keeps only 15
            // digits); the result goes out as numeric text and is rounded once, correctly, by
            // the decode (PostgreSQL's own cast fails on results beyond the range of a double
            // and on those that round to zero). SQLite: its sum goes to infinity, or, summing
            // with compensation, to a wrong finite value, once the sum leaves the range; where
            // any value is that large the sum is taken over the values scaled by 2^-30 (exact: a
            // power of two), which cannot overflow for fewer than 2^30 values (the count of a
            // DISTINCT average is of the values themselves: scaling may merge subnormals); below that
            // size fewer than 10^8 values cannot overflow.
            AggTarget::Column(col, Scalar::Float) if matches!(func, AggFn::Avg | AggFn::Sum) => {
                let d = if distinct { "DISTINCT " } else { "" };
                let c = self.col(col);
                match (self.dialect, func) {
                    (Dialect::Postgres, _) => format!("{}({d}({c})::text::numeric)", func.sql()),
                    (Dialect::Sqlite, AggFn::Avg) => format!(
                        "(CASE WHEN MAX(abs({c})) > 1e300 THEN SUM({d}{c} * (1.0 / 1073741824.0)) / COUNT({d}{c}) * 1073741824.0 ELSE AVG({d}{c}) END)"
                    ),
                    (Dialect::Sqlite, _) => format!(
                        "(CASE WHEN MAX(abs({c})) > 1e300 THEN SUM({d}{c} * (1.0 / 1073741824.0)) * 1073741824.0 ELSE SUM({d}{c}) END)"
                    ),
                }
            }
            AggTarget::Column(col, _) => {
                let d = if distinct { "DISTINCT " } else { "" };
                format!("{}({d}{})", func.sql(), self.col(col))
            }
            // The elements of every object of the group; null elements are ignored, as nulls
            // are everywhere else.
            AggTarget::Values { type_idx, field } => {
                let ty = &self.model.types[type_idx];
                format!(
                    "COALESCE(SUM((SELECT COUNT(v.{VALUE}) FROM {} v WHERE v.{COL_INSTANCE} = t0.{COL_INSTANCE} AND v.{VALUE_OWNER} = t0.{COL_ID})), 0)",
                    quote(&list_table(self.app, ty, &ty.fields[field]))
                )
            }
        }
    }

    /// An aggregate as a value of the group's JSON document. SQLite prints a REAL in JSON with
    /// only 15 significant digits, so a Float result (`avg`; `sum`, `min`, `max` of a Float
    /// field) is printed exactly, as the object readers print stored Floats; a sum beyond the
    /// range of a double (SQLite's infinity) becomes the marker [`OVERFLOW`]. PostgreSQL's
    /// exact Float sums and averages go out as numeric text. The decode turns both into the
    /// double, or null with the field named. (SQLite computes an aggregate that occurs several
    /// times in a statement once.)
    fn result(&self, func: AggFn, target: AggTarget, distinct: bool) -> String {
        let e = self.agg(func, target, distinct);
        match self.dialect {
            Dialect::Postgres if Self::is_numeric(func, target) => format!("({e})::text"),
            Dialect::Sqlite if Self::is_float(func, target) => format!(
                "CASE WHEN abs({e}) > 1.7976931348623157e308 THEN '{OVERFLOW}' ELSE {} END",
                super::sqlite_exact_float(&e)
            ),
            _ => e,
        }
    }

    /// Is this aggregate computed in numeric on PostgreSQL (a `sum` or `avg` of a Float field)?
    fn is_numeric(func: AggFn, target: AggTarget) -> bool {
        matches!((func, target), (AggFn::Avg | AggFn::Sum, AggTarget::Column(_, Scalar::Float)))
    }

    /// An aggregate as a double, for `having` to compare: as the document's value, rounded
    /// from PostgreSQL's numeric (where it is beyond the range, the comparison fails as out of
    /// range).
    fn agg_value(&self, func: AggFn, target: AggTarget) -> String {
        let e = self.agg(func, target, false);
        match self.dialect {
            Dialect::Postgres if Self::is_numeric(func, target) => format!("({e})::float8"),
            _ => e,
        }
    }

    fn key_expr(&self, k: &GroupKey) -> String {
        let e = self.col(k.column);
        match k.granularity {
            Some(unit) => format!("substr({e}, 1, {})", unit.prefix_len()),
            None => e,
        }
    }

    fn key_text(&self, k: &GroupKey) -> String {
        let e = self.key_expr(k);
        match (self.dialect, k.scalar) {
            (Dialect::Sqlite, Scalar::Boolean) => {
                format!("CASE WHEN {e} IS NULL THEN NULL WHEN {e} THEN 'true' ELSE 'false' END")
            }
            // 17 digits identify the double; the decode prints it in its shortest form.
            (Dialect::Sqlite, Scalar::Float) => {
                format!("CASE WHEN {e} IS NULL THEN NULL ELSE printf('%!.17g', {e}) END")
            }
            (Dialect::Sqlite, _) => format!("CAST({e} AS TEXT)"),
            (Dialect::Postgres, _) => format!("({e})::text"),
        }
    }

    fn obj(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "json_object(",
            Dialect::Postgres => "jsonb_build_object(",
        }
    }

    /// The statement: groups in key order, `limit`/`offset` over groups when given.
    pub fn select(&self, plan: &AggPlan, instance: &str, page: Option<(u64, u64)>) -> Sql {
        let ty = &self.model.types[plan.type_idx];
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ").push(self.obj());
        for (i, f) in plan.fields.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(ref_key(&f.key)).push(", ").push(self.obj());
            let mut first = true;
            for c in &f.calls {
                if !first {
                    sql.push(", ");
                }
                first = false;
                sql.bind(ref_key(&c.key)).push(", ").push(&self.result(c.func, f.target, c.distinct));
            }
            if f.group_values {
                if !first {
                    sql.push(", ");
                }
                sql.bind("groupValues").push(", ");
                sql.push(match self.dialect {
                    Dialect::Sqlite => "json_array(",
                    Dialect::Postgres => "jsonb_build_array(",
                });
                for (j, k) in plan.group_by.iter().enumerate() {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.push(self.obj()).bind("key").push(", ").bind(k.name.as_str()).push(", ").bind("value");
                    sql.push(", ").push(&self.key_text(k)).push(")");
                }
                sql.push(")");
            }
            sql.push(")");
        }
        sql.push(")");

        let mut f = FilterRenderer::new(self.model, self.app, self.dialect).with_viewer(&plan.filter.visibility.viewer);
        let mut scope = Scope::new("t0", plan.type_idx);
        let mut wh = Sql::new(self.dialect);
        wh.push(" WHERE t0.").push(COL_INSTANCE).push(" = ").bind(instance);
        if !plan.include_trashed {
            wh.push(" AND t0.").push(COL_TRASHED).push(" IS NULL");
        }
        f.restrict(&mut wh, plan.type_idx, "t0", false);
        if let Some(c) = &plan.filter.cond {
            wh.push(" AND ");
            f.cond(&mut wh, &mut scope, c);
        }
        sql.push(" FROM ").ident(&object_table(self.app, ty)).push(" t0").append(scope.joins());
        sql.append(wh);
        if !plan.group_by.is_empty() {
            let keys: Vec<String> = plan.group_by.iter().map(|k| self.key_expr(k)).collect();
            sql.push(" GROUP BY ").push(&keys.join(", "));
        }
        if let Some(h) = &plan.having {
            sql.push(" HAVING ");
            self.having(&mut sql, h);
        }
        if !plan.group_by.is_empty() {
            let order: Vec<String> = plan
                .group_by
                .iter()
                .map(|k| {
                    let e = self.key_expr(k);
                    match (self.dialect, k.desc) {
                        (Dialect::Sqlite, false) => format!("{e} ASC"),
                        (Dialect::Sqlite, true) => format!("{e} DESC"),
                        (Dialect::Postgres, false) => format!("{e} ASC NULLS FIRST"),
                        (Dialect::Postgres, true) => format!("{e} DESC NULLS LAST"),
                    }
                })
                .collect();
            sql.push(" ORDER BY ").push(&order.join(", "));
        }
        if let Some((limit, offset)) = page {
            // Positions come from client cursors: clamp instead of wrapping to a negative
            // OFFSET (which SQLite reads as 0, i.e. the first page).
            let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            sql.push(" LIMIT ").bind(clamp(limit)).push(" OFFSET ").bind(clamp(offset));
        }
        sql
    }

    /// How many groups there are (for `last` without `before`).
    pub fn count_groups(&self, plan: &AggPlan, instance: &str) -> Sql {
        let inner = self.select(&AggPlan { fields: Vec::new(), ..plan.clone() }, instance, None);
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM (").append(inner).push(") g");
        sql
    }

    fn having(&self, sql: &mut Sql, h: &Having) {
        match h {
            Having::And(xs) | Having::Or(xs) => {
                let sep = if matches!(h, Having::And(_)) { " AND " } else { " OR " };
                sql.push("(");
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        sql.push(sep);
                    }
                    self.having(sql, x);
                }
                sql.push(")");
            }
            Having::Not(x) => {
                sql.push("NOT COALESCE(");
                self.having(sql, x);
                sql.push(", FALSE)");
            }
            Having::Cmp { func, target, op, value } => {
                sql.push(&self.agg_value(*func, *target)).push(" ").push(op.sql()).push(" ").bind(value.clone());
            }
            Having::Range { func, target, lo, lo_inclusive, hi, hi_inclusive } => {
                let e = self.agg_value(*func, *target);
                sql.push("(").push(&e).push(if *lo_inclusive { " >= " } else { " > " }).bind(lo.clone());
                sql.push(" AND ").push(&e).push(if *hi_inclusive { " <= " } else { " < " }).bind(hi.clone()).push(")");
            }
            Having::In { func, target, values } => {
                sql.push(&self.agg_value(*func, *target)).push(" IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(v.clone());
                }
                sql.push(")");
            }
        }
    }
}
