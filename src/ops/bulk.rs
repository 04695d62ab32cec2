//! Operations over the objects a filter matches: `trash`, `untrash`, `delete`,
//! `deleteScalars`. Each is one transaction: select the (at most `limit`) matching ids in the
//! query's order, change them, append their change-feed rows.

use super::read::filter_for;
use super::upsert::WriteCtx;
use super::{Caller, Engine};
use crate::access::Viewer;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::feed::{ChangeOp, NewChange};
use crate::model::Storage;
use crate::plan::filter::{Cond, FilterPlan, Leaf, Target, Test};
use crate::plan::write::scalar_from_text;
use crate::sql::find::{FindRenderer, Output, Select, Trashed};
use crate::store::{tx_execute, tx_fetch, Tx};
use crate::value::SqlValue;

/// `trash(type, arcql)` or, with `restore`, `untrash(type, arcql)`.
#[derive(Debug, Clone)]
pub struct TrashArgs {
    pub type_idx: usize,
    pub arcql: String,
    pub restore: bool,
}

/// `delete(type, arcql, clearArrayReferences)`.
#[derive(Debug, Clone)]
pub struct DeleteArgs {
    pub type_idx: usize,
    pub arcql: String,
    /// Remove the links of other objects' lists to the deleted objects first (otherwise such
    /// a link is an error).
    pub clear_array_references: bool,
}

/// `deleteScalars(type, field, values, arcql)`.
#[derive(Debug, Clone)]
pub struct DeleteScalarsArgs {
    pub type_idx: usize,
    /// A scalar list field of the type.
    pub field: String,
    /// The values to remove, as text (also for `[Int]`).
    pub values: Vec<String>,
    pub arcql: String,
}

fn renderer<'a>(ctx: &'a WriteCtx<'_>) -> FindRenderer<'a> {
    FindRenderer { model: ctx.model, app: ctx.app, dialect: ctx.dialect }
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
    let select = Select::forward(type_idx, filter, ctx.instance, trashed, Some(limit as u64));
    let rows = tx_fetch(tx, &r.select(&select, Output::Ids)).await?;
    Ok(crate::value::first_texts(rows))
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

/// The changes `op` of `rows` (id, version) of `type_idx`.
fn changes(type_idx: usize, rows: &[(String, i64)], op: ChangeOp) -> impl Iterator<Item = NewChange> + '_ {
    rows.iter().map(move |(id, version)| NewChange { type_idx, id: id.clone(), op, version: *version, owner: None })
}

/// `trash` / `untrash`: how many objects changed.
pub async fn trash(engine: &Engine, caller: &Caller, args: &TrashArgs) -> ApiResult<u64> {
    super::retrying(|| trash_once(engine, caller, args)).await
}

async fn trash_once(engine: &Engine, caller: &Caller, args: &TrashArgs) -> ApiResult<u64> {
    let filter = filter_for(engine, caller, args.type_idx, &args.arcql, true)?;
    let ctx = WriteCtx::new(engine, caller);
    let r = renderer(&ctx);
    let mut tx = engine.store.begin_write().await?;
    let which = if args.restore { Trashed::Only } else { Trashed::Hide };
    let ids = matching_ids(&mut tx, &r, &ctx, args.type_idx, &filter, which, engine.limits.objects_per_call).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let stamp = if args.restore { None } else { Some(ctx.now.as_str()) };
    let rows =
        id_versions(tx_fetch(&mut tx, &r.set_trashed(args.type_idx, ctx.instance, &ids, stamp, &ctx.now)).await?);
    let op = if args.restore { ChangeOp::Untrash } else { ChangeOp::Trash };
    ctx.record(&mut tx, changes(args.type_idx, &rows, op));
    ctx.count(args.type_idx, if args.restore { rows.len() as i64 } else { -(rows.len() as i64) });
    super::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(rows.len() as u64)
}

/// `delete`: removes matching objects (trashed ones included) and returns how many.
pub async fn delete(engine: &Engine, caller: &Caller, args: &DeleteArgs) -> ApiResult<u64> {
    super::retrying(|| delete_once(engine, caller, args)).await
}

async fn delete_once(engine: &Engine, caller: &Caller, args: &DeleteArgs) -> ApiResult<u64> {
    let type_idx = args.type_idx;
    let filter = filter_for(engine, caller, type_idx, &args.arcql, true)?;
    let ctx = WriteCtx::new(engine, caller);
    let r = renderer(&ctx);
    let model = ctx.model;
    let instance = ctx.instance;
    let mut tx = engine.store.begin_write().await?;
    let ids =
        matching_ids(&mut tx, &r, &ctx, type_idx, &filter, Trashed::Include, engine.limits.objects_per_call).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    for (from, ty) in model.types.iter().enumerate() {
        for (fi, field) in ty.fields.iter().enumerate() {
            match field.storage() {
                Storage::LinkTable(t) if t == type_idx => {
                    let sources: Vec<String> =
                        crate::value::first_texts(tx_fetch(&mut tx, &r.linked_from(from, fi, instance, &ids)).await?);
                    // A source deleted in this same call takes its outgoing links with it
                    // (contract: only a list of *another* object blocks the delete).
                    let survivors: Vec<String> =
                        sources.into_iter().filter(|s| from != type_idx || !ids.contains(s)).collect();
                    if survivors.is_empty() {
                        continue;
                    }
                    if !args.clear_array_references {
                        // Only the admin learns which object: the referencing one may be
                        // invisible to the caller, and its id must not leak.
                        let which = if caller.viewer == Viewer::Admin {
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
                    tx_execute(&mut tx, &r.unlink_targets(from, fi, instance, &ids)).await?;
                    let rows = id_versions(tx_fetch(&mut tx, &r.touch(from, instance, &survivors, &ctx.now)).await?);
                    ctx.record(&mut tx, changes(from, &rows, ChangeOp::Unlink));
                }
                Storage::RefColumn(t) if t == type_idx => {
                    let rows = id_versions(tx_fetch(&mut tx, &r.clear_refs(from, fi, instance, &ids, &ctx.now)).await?);
                    let rows: Vec<_> =
                        rows.into_iter().filter(|(id, _)| from != type_idx || !ids.contains(id)).collect();
                    ctx.record(&mut tx, changes(from, &rows, ChangeOp::Update));
                }
                _ => {}
            }
        }
    }
    let deleted = tx_fetch(&mut tx, &r.delete(type_idx, instance, &ids)).await?;
    // The third column is `hypi_trashed`: only live objects were counted.
    let live = deleted.iter().filter(|row| row.get(2).is_some_and(|t| *t == SqlValue::Null)).count();
    ctx.count(type_idx, -(live as i64));
    // The fourth is `hypi_created_by`: a subscription judges a DELETE by the owner.
    let owners: Vec<Option<String>> =
        deleted.iter().map(|row| row.get(3).and_then(SqlValue::as_str).map(str::to_string)).collect();
    let rows = id_versions(deleted);
    ctx.record(
        &mut tx,
        rows.iter().zip(owners).map(|((id, version), owner)| NewChange {
            type_idx,
            id: id.clone(),
            op: ChangeOp::Delete,
            version: *version,
            owner,
        }),
    );
    if model.types[type_idx].hyper.as_ref().is_some_and(|h| h.attachments) && !rows.is_empty() {
        // Their files go with them: marked here, their bytes removed by the bridge.
        let gone: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let name = &model.types[type_idx].name;
        tx_execute(&mut tx, &crate::sql::hyper::attachments::mark_objects_gone(ctx.dialect, instance, name, &gone))
            .await?;
    }
    super::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(rows.len() as u64)
}

/// `deleteScalars`: remove `values` from the scalar list `field` of matching objects; returns
/// how many objects changed.
pub async fn delete_scalars(engine: &Engine, caller: &Caller, args: &DeleteScalarsArgs) -> ApiResult<u64> {
    super::retrying(|| delete_scalars_once(engine, caller, args)).await
}

async fn delete_scalars_once(engine: &Engine, caller: &Caller, args: &DeleteScalarsArgs) -> ApiResult<u64> {
    let model = &engine.model;
    let type_idx = args.type_idx;
    let ty = &model.types[type_idx];
    let field = match ty.field(&args.field) {
        Some((fi, f)) if f.storage() == Storage::ValueTable => fi,
        Some(_) => {
            return Err(ApiError::validation(format!("{}.{} is not a scalar list", ty.name, args.field)));
        }
        None => {
            return Err(ApiError::new(ErrorCode::UnknownField, format!("unknown field '{}.{}'", ty.name, args.field)))
        }
    };
    let f = &ty.fields[field];
    let qualified = format!("{}.{}", ty.name, f.name);
    if args.values.len() > engine.limits.scalar_values {
        return Err(ApiError::limit(format!(
            "deleteScalars removes at most {} values per call, got {}",
            engine.limits.scalar_values,
            args.values.len()
        )));
    }
    let values = args
        .values
        .iter()
        .map(|v| scalar_from_text(model, f, &qualified, v, engine.limits.write_limits()))
        .collect::<ApiResult<Vec<_>>>()?;
    if values.is_empty() {
        return Ok(0);
    }
    let filter = filter_for(engine, caller, type_idx, &args.arcql, true)?;
    let ctx = WriteCtx::new(engine, caller);
    let r = renderer(&ctx);
    let scalar = f.value_scalar().unwrap_or(crate::model::Scalar::String);
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
    let mut tx = engine.store.begin_write().await?;
    let ids = matching_ids(&mut tx, &r, &ctx, type_idx, &filter, Trashed::Hide, engine.limits.objects_per_call).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut owners: Vec<String> = crate::value::first_texts(
        tx_fetch(&mut tx, &r.delete_values(type_idx, field, ctx.instance, &ids, &values)).await?,
    );
    owners.sort();
    owners.dedup();
    if owners.is_empty() {
        return Ok(0);
    }
    let rows = id_versions(tx_fetch(&mut tx, &r.touch(type_idx, ctx.instance, &owners, &ctx.now)).await?);
    ctx.record(&mut tx, changes(type_idx, &rows, ChangeOp::Update));
    super::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(owners.len() as u64)
}
