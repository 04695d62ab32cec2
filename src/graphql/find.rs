//! `find`: keyset paging over a filter, and the exact page info of contract §3.
//!
//! Statements: one for the page itself; one per cursor (`after`/`before`) to read the cursor
//! row's sort keys (an unknown cursor is an error, so it must be looked up); one to decide the
//! opposite-direction `has...Page` when a cursor is given; one per offsets list, only when
//! `nextOffsets`/`previousOffsets` are selected.

use serde_json::{json, Value as Json};

use super::{Engine, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::plan::filter::FilterPlan;
use crate::plan::read::ObjectSelection;
use crate::sql::find::{FindRenderer, Output, Seek, Select, Trashed};
use crate::sql::SqlValue;

/// Cursor sentinels Hypi returns and its clients send back.
pub const FIRST: &str = "FIRST";
pub const LAST: &str = "LAST";

/// The paging arguments of `find`, as given.
#[derive(Debug, Clone, Default)]
pub struct FindArgs {
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
    pub page: Option<i64>,
    pub include_trashed: bool,
    pub want_next_offsets: bool,
    pub want_previous_offsets: bool,
}

struct Cursor {
    values: Vec<SqlValue>,
    id: String,
}

pub async fn find(
    engine: &Engine,
    req: &RequestCtx,
    type_idx: usize,
    sel: &ObjectSelection,
    filter: &FilterPlan,
    args: &FindArgs,
) -> ApiResult<Json> {
    let limits = &engine.limits;
    if args.first.is_some() && args.last.is_some() {
        return Err(ApiError::validation("'first' and 'last' cannot be used together"));
    }
    if args.page.is_some() && args.last.is_some() {
        return Err(ApiError::validation("'page' cannot be used with 'last'"));
    }
    for (name, v) in [("first", args.first), ("last", args.last)] {
        if v.is_some_and(|v| v < 0) {
            return Err(ApiError::validation(format!("'{name}' cannot be negative")));
        }
    }
    let page = args.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::validation("'page' counts from 1"));
    }
    let size =
        args.first.or(args.last).unwrap_or(i64::from(limits.page_default)).min(i64::from(limits.page_max)) as u64;
    let backward = args.last.is_some();
    let trashed = if args.include_trashed { Trashed::Include } else { Trashed::Hide };
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let type_name = engine.model.types[type_idx].name.clone();

    // The sentinels: `after: FIRST` / `before: LAST` are no bound; `after: LAST` and
    // `before: FIRST` are past the end, so the page is empty.
    let past_end = args.after.as_deref() == Some(LAST) || args.before.as_deref() == Some(FIRST);
    let after = args.after.as_deref().filter(|c| *c != FIRST && *c != LAST);
    let before = args.before.as_deref().filter(|c| *c != FIRST && *c != LAST);
    let lookup = |id: &str| {
        let sql = r.cursor(type_idx, filter, &req.instance, id, args.include_trashed);
        let id = id.to_string();
        let store = &engine.store;
        let type_name = type_name.clone();
        async move {
            let rows = store.fetch_rows(&sql).await?;
            let Some(mut row) = rows.into_iter().next() else {
                return Err(ApiError::not_found(format!("cursor '{id}' names no {type_name} object")));
            };
            row.pop();
            Ok::<_, ApiError>(Cursor { values: row, id })
        }
    };
    let after_c = match after {
        Some(id) => Some(lookup(id).await?),
        None => None,
    };
    let before_c = match before {
        Some(id) => Some(lookup(id).await?),
        None => None,
    };
    let bounds = || -> Vec<Seek<'_>> {
        let mut s = seek(&after_c, false, false);
        s.extend(seek(&before_c, true, false));
        s
    };

    let mut rows = Vec::new();
    let mut more = false;
    if !past_end && size > 0 {
        let select = Select {
            type_idx,
            filter,
            instance: &req.instance,
            trashed,
            seeks: bounds(),
            reverse: backward,
            limit: Some(size + 1),
            offset: (page as u64 - 1).saturating_mul(size),
        };
        rows = engine.store.fetch_rows(&r.select(&select, Output::Documents(sel))).await?;
        more = rows.len() as u64 > size;
        rows.truncate(size as usize);
        if backward {
            rows.reverse();
        }
    }
    let exists = |seeks: Vec<Seek<'_>>| {
        let select = Select {
            type_idx,
            filter,
            instance: &req.instance,
            trashed,
            seeks,
            reverse: false,
            limit: Some(1),
            offset: 0,
        };
        let sql = r.select(&select, Output::Exists);
        let store = &engine.store;
        async move { Ok::<bool, ApiError>(!store.fetch_rows(&sql).await?.is_empty()) }
    };
    // Is there anything on the far side of a cursor (at the cursor or beyond it)?
    let beyond = |c: &Option<Cursor>, backward_side: bool| {
        let s = seek(c, backward_side, true);
        let has_cursor = c.is_some();
        let fut = exists(s);
        async move {
            if has_cursor {
                fut.await
            } else {
                Ok(false)
            }
        }
    };
    let (has_previous, has_next) = if past_end {
        (
            args.after.as_deref() == Some(LAST) && exists(Vec::new()).await?,
            args.before.as_deref() == Some(FIRST) && exists(Vec::new()).await?,
        )
    } else if backward {
        // Rows before the page: more of the window, or anything at or before `after`.
        (more || beyond(&after_c, false).await?, beyond(&before_c, true).await?)
    } else {
        // Rows before the page: anything at or before `after`, or (page > 1) the pages of
        // the window that the offset skipped.
        let prev = beyond(&after_c, false).await? || (page > 1 && exists(bounds()).await?);
        (prev, more || beyond(&before_c, true).await?)
    };

    let mut edges = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let mut it = row.into_iter();
        let (Some(SqlValue::Text(doc)), Some(SqlValue::Text(id))) = (it.next(), it.next()) else {
            return Err(ApiError::internal("find row without document and id"));
        };
        let node: Json = serde_json::from_str(&doc).map_err(ApiError::internal)?;
        edges.push(json!({ "node": node, "cursor": id, "__type": type_name }));
        ids.push(id);
    }
    // Relay's rule: the cursors of the first and last edges (Apollo's and Relay's caches copy
    // them onto edges). An empty page has no edge: the sentinels, which page on to empty
    // pages.
    let start = ids.first().cloned().unwrap_or_else(|| FIRST.to_string());
    let end = ids.last().cloned().unwrap_or_else(|| LAST.to_string());
    let mut page_info = json!({
        "hasPreviousPage": has_previous,
        "hasNextPage": has_next,
        "startCursor": start,
        "endCursor": end,
        "pageLimit": size,
    });
    if args.want_next_offsets {
        let list = match (has_next, ids.last()) {
            (true, Some(last)) => {
                offsets(engine, &r, req, type_idx, filter, trashed, last, size, false, &lookup).await?
            }
            _ => Vec::new(),
        };
        page_info["nextOffsets"] = json!(list);
    }
    if args.want_previous_offsets {
        let list = match (has_previous, ids.first()) {
            (true, Some(first)) => {
                offsets(engine, &r, req, type_idx, filter, trashed, first, size, true, &lookup).await?
            }
            _ => Vec::new(),
        };
        page_info["previousOffsets"] = json!(list);
    }
    Ok(json!({ "edges": edges, "pageInfo": page_info }))
}

fn seek(c: &Option<Cursor>, backward: bool, negate: bool) -> Vec<Seek<'_>> {
    c.iter().map(|c| Seek { values: &c.values, id: &c.id, backward, negate }).collect()
}

/// The cursors opening each of up to 5 pages beyond `edge` (the page's last id going forward,
/// its first going backward).
#[allow(clippy::too_many_arguments)]
async fn offsets<F, Fut>(
    engine: &Engine,
    r: &FindRenderer<'_>,
    req: &RequestCtx,
    type_idx: usize,
    filter: &FilterPlan,
    trashed: Trashed,
    edge: &str,
    size: u64,
    backward: bool,
    lookup: &F,
) -> ApiResult<Vec<String>>
where
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Cursor>>,
{
    let c = lookup(edge).await?;
    let select = Select {
        type_idx,
        filter,
        instance: &req.instance,
        trashed,
        seeks: vec![Seek { values: &c.values, id: &c.id, backward, negate: false }],
        reverse: backward,
        limit: Some(4 * size + 1),
        offset: 0,
    };
    let ids: Vec<String> = engine
        .store
        .fetch_rows(&r.select(&select, Output::Ids))
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().and_then(|v| v.as_str().map(str::to_string)))
        .collect();
    let mut out = vec![edge.to_string()];
    for k in 1..=4u64 {
        if ids.len() as u64 > k * size {
            out.push(ids[(k * size - 1) as usize].clone());
        }
    }
    Ok(out)
}
