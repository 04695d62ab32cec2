//! `aggregate { x(where) { ... } xWith(groupBy: ...) { ... } }`: each field under
//! `aggregate` is one SQL statement computing only the selected functions.

use async_graphql::dynamic::{FieldValue, ResolverContext};
use async_graphql::parser::types::SelectionSet;
use async_graphql::Value;
use serde_json::Value as Json;

use super::selection::{argument, for_each_field};
use super::{Engine, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::model::Model;
use crate::plan::aggregate::{
    agg_target, check_call, group_key, plan_having, AggCall, AggField, AggFn, AggPlan, TimeUnit,
};
use crate::plan::filter::{plan_query, FilterPlan};
use crate::sql::aggregate::AggRenderer;
use crate::sql::SqlValue;

/// The `XAggs` selection → the fields and functions to compute. Each field is keyed by its
/// response key; repeated keys merge.
fn plan_fields(
    ctx: &ResolverContext<'_>,
    model: &Model,
    type_idx: usize,
    set: &SelectionSet,
) -> ApiResult<Vec<AggField>> {
    let mut out: Vec<AggField> = Vec::new();
    for_each_field(ctx.ctx, set, &mut |f| {
        let name = f.name.node.as_str();
        if name == "__typename" {
            return Ok(());
        }
        let key = f.response_key().node.to_string();
        let target = agg_target(model, type_idx, name)?;
        let idx = match out.iter().position(|x| x.key == key) {
            Some(i) => i,
            None => {
                out.push(AggField { key, target, calls: Vec::new(), group_values: false });
                out.len() - 1
            }
        };
        let field = &mut out[idx];
        for_each_field(ctx.ctx, &f.selection_set.node, &mut |c| {
            let fname = c.name.node.as_str();
            if fname == "groupValues" {
                field.group_values = true;
                return Ok(());
            }
            let Some(func) = AggFn::from_name(fname) else { return Ok(()) };
            let distinct = matches!(argument(ctx.ctx, c, "distinct")?, Some(Value::Boolean(true)));
            check_call(model, type_idx, name, field.target, func, distinct)?;
            let key = c.response_key().node.to_string();
            if !field.calls.iter().any(|x| x.key == key) {
                field.calls.push(AggCall { key, func, distinct });
            }
            Ok(())
        })
    })?;
    Ok(out)
}

fn where_filter(model: &Model, type_idx: usize, text: Option<String>, req: &RequestCtx) -> ApiResult<FilterPlan> {
    let mut plan = match text {
        Some(text) => plan_query(model, type_idx, &text)?,
        None => FilterPlan::default(),
    };
    plan.visibility = crate::plan::filter::Visibility { viewer: req.viewer.clone(), write: false };
    if !plan.sort.is_empty() {
        return Err(ApiError::validation("where takes no SORT: groups are ordered by groupBy"));
    }
    Ok(plan)
}

fn opt_string(ctx: &ResolverContext<'_>, name: &str) -> ApiResult<Option<String>> {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(format!("argument '{name}' must be a String"))),
    }
}

fn opt_int(ctx: &ResolverContext<'_>, name: &str) -> ApiResult<Option<i64>> {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::validation(format!("argument '{name}' must be an Int")))
        }
        Some(_) => Err(ApiError::validation(format!("argument '{name}' must be an Int"))),
    }
}

/// A group cursor is the group's 1-based position, as text. A position past the last group is
/// still a position (paging past the end gives an empty page); `0`, negative numbers and
/// anything else are errors.
fn position(cursor: Option<String>, name: &str) -> ApiResult<Option<u64>> {
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

/// How many groups there are.
async fn count_groups(engine: &Engine, r: &AggRenderer<'_>, plan: &AggPlan, instance: &str) -> ApiResult<u64> {
    let rows = engine.store.fetch_rows(&r.count_groups(plan, instance)).await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(0).max(0) as u64)
}

/// The documents of the groups at 0-based positions `offset..offset + limit`.
async fn fetch_page(
    engine: &Engine,
    r: &AggRenderer<'_>,
    plan: &AggPlan,
    instance: &str,
    offset: u64,
    limit: u64,
) -> ApiResult<Vec<Json>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = engine.store.fetch_rows(&r.select(plan, instance, Some((limit, offset)))).await?;
    let mut docs = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(SqlValue::Text(text)) = row.into_iter().next() else {
            return Err(ApiError::internal("aggregate row without a document"));
        };
        docs.push(serde_json::from_str(&text).map_err(ApiError::internal)?);
    }
    Ok(docs)
}

/// `x(where:)`: the aggregates of all matching objects.
pub async fn aggregate_all<'a>(
    ctx: &ResolverContext<'a>,
    engine: &Engine,
    req: &RequestCtx,
    type_idx: usize,
) -> ApiResult<FieldValue<'a>> {
    let model = &engine.model;
    let fields = plan_fields(ctx, model, type_idx, &ctx.ctx.item.node.selection_set.node)?;
    let plan = AggPlan {
        type_idx,
        fields,
        filter: where_filter(model, type_idx, opt_string(ctx, "where")?, req)?,
        group_by: Vec::new(),
        having: None,
        include_trashed: false,
    };
    let r = AggRenderer { model, app: &engine.app, dialect: engine.store.dialect() };
    let text = engine.store.fetch_json(&r.select(&plan, &req.instance, None)).await?.unwrap_or_else(|| "{}".into());
    let doc: Json = serde_json::from_str(&text).map_err(ApiError::internal)?;
    Ok(FieldValue::owned_any(doc))
}

/// `xWith(groupBy:, having:, ...)`: one `XAggs` per group, in group order, paged.
pub async fn aggregate_groups<'a>(
    ctx: &ResolverContext<'a>,
    engine: &Engine,
    req: &RequestCtx,
    type_idx: usize,
) -> ApiResult<FieldValue<'a>> {
    let model = &engine.model;
    let limits = &engine.limits;
    let mut group_by = Vec::new();
    if let Some(Value::List(items)) = ctx.args.get("groupBy").map(|v| v.as_value().clone()) {
        for item in items {
            let Value::Object(o) = item else { continue };
            let name = |k: &str| match o.get(k) {
                Some(Value::Enum(n)) => Some(n.to_string()),
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let Some(field) = name("field") else {
                return Err(ApiError::validation("groupBy: every entry needs a field"));
            };
            let desc = name("order").as_deref() == Some("DESC");
            let granularity = name("dateGranularity")
                .map(|g| {
                    TimeUnit::from_name(&g)
                        .ok_or_else(|| ApiError::validation(format!("unknown dateGranularity '{g}'")))
                })
                .transpose()?;
            group_by.push(group_key(model, type_idx, &field, desc, granularity)?);
        }
    }
    let fields = plan_fields(ctx, model, type_idx, &ctx.ctx.item.node.selection_set.node)?;
    let having = match opt_string(ctx, "having")? {
        Some(h) => plan_having(model, type_idx, &h)?,
        None => None,
    };
    let include_trashed =
        matches!(ctx.args.get("includeTrashed").map(|v| v.as_value().clone()), Some(Value::Boolean(true)));
    let plan = AggPlan {
        type_idx,
        fields,
        filter: where_filter(model, type_idx, opt_string(ctx, "where")?, req)?,
        group_by,
        having,
        include_trashed,
    };

    let first = opt_int(ctx, "first")?;
    let last = opt_int(ctx, "last")?;
    let page = opt_int(ctx, "page")?;
    if first.is_some() && last.is_some() {
        return Err(ApiError::validation("'first' and 'last' cannot be used together"));
    }
    if page.is_some() && last.is_some() {
        return Err(ApiError::validation("'page' cannot be used with 'last'"));
    }
    let page = page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::validation("'page' counts from 1"));
    }
    if first.is_some_and(|v| v < 0) || last.is_some_and(|v| v < 0) {
        return Err(ApiError::validation("'first' and 'last' cannot be negative"));
    }
    let size = first.or(last).unwrap_or(i64::from(limits.page_default)).min(i64::from(limits.page_max)) as u64;
    let after = position(opt_string(ctx, "after")?, "after")?.unwrap_or(0);
    let before = position(opt_string(ctx, "before")?, "before")?;
    let r = AggRenderer { model, app: &engine.app, dialect: engine.store.dialect() };
    let instance = req.instance.as_str();
    // Positions are 1-based; `offset`/`end` below are 0-based. `before: b` ends the page
    // before the 0-based position `b - 1`.
    let docs = if last.is_some() {
        let end = match before {
            Some(b) => b - 1,
            // By design: the end is not known without counting the groups.
            None => count_groups(engine, &r, &plan, instance).await?,
        };
        let (offset, limit) = last_window(end, size, after);
        let docs = fetch_page(engine, &r, &plan, instance, offset, limit).await?;
        match before {
            // A short page means `before` lies past the last group: the page must end at the
            // last group instead (the groups before `before` are all the groups).
            Some(_) if (docs.len() as u64) < limit => {
                let groups = if docs.is_empty() {
                    count_groups(engine, &r, &plan, instance).await?
                } else {
                    offset + docs.len() as u64
                };
                let (offset, limit) = last_window(groups.min(end), size, after);
                fetch_page(engine, &r, &plan, instance, offset, limit).await?
            }
            _ => docs,
        }
    } else {
        let offset = after.saturating_add((page as u64 - 1).saturating_mul(size));
        let limit = match before {
            Some(b) => size.min((b - 1).saturating_sub(offset)),
            None => size,
        };
        fetch_page(engine, &r, &plan, instance, offset, limit).await?
    };
    Ok(FieldValue::list(docs.into_iter().map(FieldValue::owned_any)))
}
