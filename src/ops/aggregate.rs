//! `aggregate`: counts, sums, averages, minima and maxima over the objects of a type that a
//! filter matches, optionally grouped, with `having` and paging over groups. One statement per
//! call (a `last` without `before` needs one more, to count the groups).

use serde_json::Value as Json;

use super::{read::filter_for, Caller, Engine, Paging};
use crate::error::{ApiError, ApiResult};
use crate::plan::aggregate::{group_key, plan_having, AggField, AggPlan, TimeUnit};
use crate::plan::filter::FilterPlan;
use crate::sql::aggregate::AggRenderer;
use crate::value::SqlValue;

/// One `groupBy` entry, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBy {
    /// A scalar field of the type, or a flattened `hypi_*` name.
    pub field: String,
    pub desc: bool,
    /// `SECONDS`, `MINUTES`, `HOURS` or `DAYS` (DateTime fields only).
    pub granularity: Option<String>,
}

/// `xWith(groupBy:, having:, first:, after:, last:, before:, page:, includeTrashed:)`.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub group_by: Vec<GroupBy>,
    pub having: Option<String>,
    /// Cursors are 1-based group positions.
    pub paging: Paging,
    pub include_trashed: bool,
}

/// `x(where:)` (no grouping) or `xWith(...)`.
#[derive(Debug, Clone)]
pub struct AggregateArgs {
    pub type_idx: usize,
    /// The selected fields and functions (planned from the front door's selection with
    /// `plan::aggregate::{agg_target, check_call}`).
    pub fields: Vec<AggField>,
    /// ArcQL without SORT; `None`: every object.
    pub where_: Option<String>,
    pub grouping: Option<Grouping>,
}

fn where_filter(engine: &Engine, caller: &Caller, type_idx: usize, text: Option<&str>) -> ApiResult<FilterPlan> {
    let plan = filter_for(engine, caller, type_idx, text.unwrap_or("*"), false)?;
    if !plan.sort.is_empty() {
        return Err(ApiError::validation("where takes no SORT: groups are ordered by groupBy"));
    }
    Ok(plan)
}

/// The aggregates of one group (or of all matching objects).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregated {
    /// Per selected field (under `&key`), per function (under `&key`), and `groupValues`.
    pub doc: Json,
    /// The results beyond the range of a Float (`(field key, function key)`): null in `doc`.
    pub out_of_range: Vec<(String, String)>,
}

impl Aggregated {
    fn from((doc, out_of_range): (Json, Vec<(String, String)>)) -> Self {
        Aggregated { doc, out_of_range }
    }
}

/// The aggregates of every matching object: one document.
pub async fn aggregate(engine: &Engine, caller: &Caller, args: &AggregateArgs) -> ApiResult<Aggregated> {
    let plan = AggPlan {
        type_idx: args.type_idx,
        fields: args.fields.clone(),
        filter: where_filter(engine, caller, args.type_idx, args.where_.as_deref())?,
        group_by: Vec::new(),
        having: None,
        include_trashed: false,
    };
    let r = renderer(engine);
    match engine.store.fetch_json(&r.select(&plan, &caller.instance, None)).await? {
        Some(text) => r.decode(&plan, &text).map(Aggregated::from),
        None => Ok(Aggregated { doc: Json::Object(Default::default()), out_of_range: Vec::new() }),
    }
}

/// `count(type)`: how many live objects of the type the caller can read. O(1) from the
/// type's counter when it has `@hyper(count: true)` and the caller may read every object of it
/// (the admin; `@access(read: PUBLIC)`, or `AUTHENTICATED` for an account); otherwise one
/// `count(*)` under the caller's read rule, as `aggregate` counts.
pub async fn count(engine: &Engine, caller: &Caller, type_idx: usize) -> ApiResult<i64> {
    let ty = &engine.model.types[type_idx];
    if ty.hyper.as_ref().is_some_and(|h| h.count)
        && caller.viewer.allowed(&engine.model, type_idx, false) == crate::access::Allowed::All
    {
        let sql = crate::sql::hyper::counts::read(engine.store.dialect(), &caller.instance, &ty.name);
        if let Some(n) = engine.store.fetch_rows(&sql).await?.first().and_then(|r| r.first()).and_then(SqlValue::as_i64)
        {
            return Ok(n);
        }
    }
    let fields = vec![AggField {
        key: "n".into(),
        target: crate::plan::aggregate::AggTarget::Column(
            crate::plan::filter::Col::System("hypi_id"),
            crate::model::Scalar::Id,
        ),
        calls: vec![crate::plan::aggregate::AggCall {
            key: "count".into(),
            func: crate::plan::aggregate::AggFn::Count,
            distinct: false,
        }],
        group_values: false,
    }];
    let a = aggregate(engine, caller, &AggregateArgs { type_idx, fields, where_: None, grouping: None }).await?;
    Ok(a.doc["n"]["count"].as_i64().unwrap_or(0))
}

fn renderer(engine: &Engine) -> AggRenderer<'_> {
    AggRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() }
}

/// A group cursor is the group's 1-based position, as text. A position past the last group is
/// still a position (paging past the end gives an empty page); `0`, negative numbers and
/// anything else are errors.
fn position(cursor: Option<&str>, name: &str) -> ApiResult<Option<u64>> {
    cursor
        .map(|c| match c.trim().parse::<u64>() {
            Ok(p) if p >= 1 => Ok(p),
            _ => Err(ApiError::validation(format!("'{name}': '{c}' is not a group position (1, 2, ...)"))),
        })
        .transpose()
}

/// The page of `last: size` ending before the 0-based position `end`, not reaching back to
/// `after`: `(offset, limit)`.
fn last_window(end: u64, size: u64, after: u64) -> (u64, u64) {
    let start = end.saturating_sub(size).max(after);
    (start, end.saturating_sub(start))
}

/// One document per group, in group order, paged.
pub async fn aggregate_groups(engine: &Engine, caller: &Caller, args: &AggregateArgs) -> ApiResult<Vec<Aggregated>> {
    let model = &engine.model;
    let grouping = args.grouping.clone().unwrap_or_default();
    let mut group_by = Vec::with_capacity(grouping.group_by.len());
    for g in &grouping.group_by {
        let granularity = g
            .granularity
            .as_deref()
            .map(|name| {
                TimeUnit::from_name(name)
                    .ok_or_else(|| ApiError::validation(format!("unknown dateGranularity '{name}'")))
            })
            .transpose()?;
        group_by.push(group_key(model, args.type_idx, &g.field, g.desc, granularity)?);
    }
    let having = match &grouping.having {
        Some(h) => plan_having(model, args.type_idx, h)?,
        None => None,
    };
    let plan = AggPlan {
        type_idx: args.type_idx,
        fields: args.fields.clone(),
        filter: where_filter(engine, caller, args.type_idx, args.where_.as_deref())?,
        group_by,
        having,
        include_trashed: grouping.include_trashed,
    };
    let paging = &grouping.paging;
    let window = paging.window(&engine.limits)?;
    let size = window.size;
    let after = position(paging.after.as_deref(), "after")?.unwrap_or(0);
    let before = position(paging.before.as_deref(), "before")?;
    let r = renderer(engine);
    let page = Pager { engine, r: &r, plan: &plan, instance: &caller.instance };
    // Positions are 1-based; `offset`/`end` below are 0-based. `before: b` ends the page
    // before the 0-based position `b - 1`.
    if window.backward {
        let end = match before {
            Some(b) => b - 1,
            // By design: the end is not known without counting the groups.
            None => page.count().await?,
        };
        let (offset, limit) = last_window(end, size, after);
        let docs = page.fetch(offset, limit).await?;
        return match before {
            // A short page means `before` lies past the last group: the page must end at the
            // last group instead (the groups before `before` are all the groups).
            Some(_) if (docs.len() as u64) < limit => {
                let groups = if docs.is_empty() { page.count().await? } else { offset + docs.len() as u64 };
                let (offset, limit) = last_window(groups.min(end), size, after);
                page.fetch(offset, limit).await
            }
            _ => Ok(docs),
        };
    }
    let offset = after.saturating_add((window.page - 1).saturating_mul(size));
    let limit = match before {
        Some(b) => size.min((b - 1).saturating_sub(offset)),
        None => size,
    };
    page.fetch(offset, limit).await
}

struct Pager<'a> {
    engine: &'a Engine,
    r: &'a AggRenderer<'a>,
    plan: &'a AggPlan,
    instance: &'a str,
}

impl Pager<'_> {
    /// How many groups there are.
    async fn count(&self) -> ApiResult<u64> {
        let rows = self.engine.store.fetch_rows(&self.r.count_groups(self.plan, self.instance)).await?;
        Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(0).max(0) as u64)
    }

    /// The documents of the groups at 0-based positions `offset..offset + limit`.
    async fn fetch(&self, offset: u64, limit: u64) -> ApiResult<Vec<Aggregated>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows =
            self.engine.store.fetch_rows(&self.r.select(self.plan, self.instance, Some((limit, offset)))).await?;
        let mut docs = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(SqlValue::Text(text)) = row.into_iter().next() else {
                return Err(ApiError::internal("aggregate row without a document"));
            };
            docs.push(Aggregated::from(self.r.decode(self.plan, &text)?));
        }
        Ok(docs)
    }
}
