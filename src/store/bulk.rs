//! Operations over the objects a filter matches: trash, untrash, delete, deleteScalars.
//! Each is one transaction: select the (at most `limit`) matching ids in the query's order,
//! change them, append their change-feed rows.

use super::write::WriteCtx;
use super::{tx_execute, tx_fetch, Store, Tx};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::Storage;
use crate::plan::filter::{Cond, FilterPlan, Leaf, Target, Test};
use crate::sql::find::{FindRenderer, Output, Select, Trashed};
use crate::sql::SqlValue;

fn renderer<'a>(store: &Store, ctx: &'a WriteCtx<'_>) -> FindRenderer<'a> {
    FindRenderer { model: ctx.model, app: ctx.app, dialect: store.dialect() }
}

async fn matching_ids(
    tx: &mut Tx,
    r: &FindRenderer<'_>,
    ctx: &WriteCtx<'_>,
    type_idx: usize,
    filter: &FilterPlan,
    trashed: Trashed,
    limit: usize,
) -> ApiResult<Vec<String>> {
    let select = Select {
        type_idx,
        filter,
        instance: ctx.instance,
        trashed,
        seeks: Vec::new(),
        reverse: false,
        limit: Some(limit as u64),
        offset: 0,
    };
    let rows = tx_fetch(tx, &r.select(&select, Output::Ids)).await?;
    Ok(rows.into_iter().filter_map(|row| row.into_iter().next().and_then(|v| v.as_str().map(str::to_string))).collect())
}

fn id_versions(rows: Vec<Vec<SqlValue>>) -> Vec<(String, i64)> {
    rows.into_iter()
        .filter_map(|row| {
            let id = row.first()?.as_str()?.to_string();
            let version = row.get(1).and_then(SqlValue::as_i64).unwrap_or(0);
            Some((id, version))
        })
        .collect()
}

async fn record(
    tx: &mut Tx,
    r: &FindRenderer<'_>,
    ctx: &WriteCtx<'_>,
    type_idx: usize,
    rows: &[(String, i64)],
    op: &str,
) -> ApiResult<()> {
    if !rows.is_empty() {
        tx_execute(tx, &r.changes(ctx.instance, type_idx, rows, op, &ctx.now)).await?;
    }
    Ok(())
}

/// `trash` (untrash = false) or `untrash`: returns how many objects changed.
pub async fn trash(
    store: &Store,
    ctx: &WriteCtx<'_>,
    type_idx: usize,
    filter: &FilterPlan,
    untrash: bool,
    limit: usize,
) -> ApiResult<u64> {
    let r = renderer(store, ctx);
    let mut tx = store.begin_write().await?;
    let which = if untrash { Trashed::Only } else { Trashed::Hide };
    let ids = matching_ids(&mut tx, &r, ctx, type_idx, filter, which, limit).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let stamp = if untrash { None } else { Some(ctx.now.as_str()) };
    let rows = id_versions(tx_fetch(&mut tx, &r.set_trashed(type_idx, ctx.instance, &ids, stamp, &ctx.now)).await?);
    record(&mut tx, &r, ctx, type_idx, &rows, if untrash { "untrash" } else { "trash" }).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// `delete`: removes matching objects (trashed ones included) and returns how many.
pub async fn delete(
    store: &Store,
    ctx: &WriteCtx<'_>,
    type_idx: usize,
    filter: &FilterPlan,
    clear_array_references: bool,
    limit: usize,
) -> ApiResult<u64> {
    let r = renderer(store, ctx);
    let model = ctx.model;
    let mut tx = store.begin_write().await?;
    let ids = matching_ids(&mut tx, &r, ctx, type_idx, filter, Trashed::Include, limit).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    for (from, ty) in model.types.iter().enumerate() {
        for (fi, field) in ty.fields.iter().enumerate() {
            match field.storage() {
                Storage::LinkTable(t) if t == type_idx => {
                    let sources: Vec<String> = tx_fetch(&mut tx, &r.linked_from(from, fi, ctx.instance, &ids))
                        .await?
                        .into_iter()
                        .filter_map(|row| row.into_iter().next().and_then(|v| v.as_str().map(str::to_string)))
                        .collect();
                    // A source deleted in this same call takes its outgoing links with it
                    // (contract: only a list of *another* object blocks the delete).
                    let survivors: Vec<String> =
                        sources.into_iter().filter(|s| from != type_idx || !ids.contains(s)).collect();
                    if survivors.is_empty() {
                        continue;
                    }
                    if !clear_array_references {
                        // Only the admin learns which object: the referencing one may be
                        // invisible to the caller, and its id must not leak.
                        let which = if *ctx.viewer == crate::sql::Viewer::Admin {
                            format!(" of {} '{}'", ty.name, survivors[0])
                        } else {
                            String::new()
                        };
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            format!(
                                "cannot delete: {}.{}{which} still references it; unlink it first or pass clearArrayReferences: true",
                                ty.name, field.name
                            ),
                        ));
                    }
                    tx_execute(&mut tx, &r.unlink_targets(from, fi, ctx.instance, &ids)).await?;
                    let rows =
                        id_versions(tx_fetch(&mut tx, &r.touch(from, ctx.instance, &survivors, &ctx.now)).await?);
                    record(&mut tx, &r, ctx, from, &rows, "unlink").await?;
                }
                Storage::RefColumn(t) if t == type_idx => {
                    let rows =
                        id_versions(tx_fetch(&mut tx, &r.clear_refs(from, fi, ctx.instance, &ids, &ctx.now)).await?);
                    let rows: Vec<_> =
                        rows.into_iter().filter(|(id, _)| from != type_idx || !ids.contains(id)).collect();
                    record(&mut tx, &r, ctx, from, &rows, "update").await?;
                }
                _ => {}
            }
        }
    }
    let rows = id_versions(tx_fetch(&mut tx, &r.delete(type_idx, ctx.instance, &ids)).await?);
    record(&mut tx, &r, ctx, type_idx, &rows, "delete").await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// `deleteScalars`: remove `values` from scalar list `field` of matching objects; returns how
/// many objects changed.
pub async fn delete_scalars(
    store: &Store,
    ctx: &WriteCtx<'_>,
    type_idx: usize,
    field: usize,
    values: Vec<SqlValue>,
    filter: FilterPlan,
    limit: usize,
) -> ApiResult<u64> {
    let r = renderer(store, ctx);
    let scalar = ctx.model.types[type_idx].fields[field].value_scalar().unwrap_or(crate::model::Scalar::String);
    // Only objects that hold one of the values count towards the limit.
    let holds = Cond::Leaf(Leaf {
        hops: Vec::new(),
        target: Target::Values { type_idx, field, scalar },
        test: Test::In(values.clone()),
    });
    let cond = match filter.cond {
        Some(c) => Cond::And(vec![c, holds]),
        None => holds,
    };
    let filter = FilterPlan { cond: Some(cond), sort: filter.sort, visibility: filter.visibility };
    let mut tx = store.begin_write().await?;
    let ids = matching_ids(&mut tx, &r, ctx, type_idx, &filter, Trashed::Hide, limit).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut owners: Vec<String> = tx_fetch(&mut tx, &r.delete_values(type_idx, field, ctx.instance, &ids, &values))
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().and_then(|v| v.as_str().map(str::to_string)))
        .collect();
    owners.sort();
    owners.dedup();
    if owners.is_empty() {
        return Ok(0);
    }
    let rows = id_versions(tx_fetch(&mut tx, &r.touch(type_idx, ctx.instance, &owners, &ctx.now)).await?);
    record(&mut tx, &r, ctx, type_idx, &rows, "update").await?;
    tx.commit().await?;
    Ok(owners.len() as u64)
}
