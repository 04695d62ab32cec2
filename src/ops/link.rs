//! `link` and `unlink`: add or remove a reference without touching the objects otherwise.
//! One transaction, one change row (only when something changed).

use super::upsert::WriteCtx;
use super::{Caller, Engine};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::feed::{ChangeOp, NewChange};
use crate::model::Storage;
use crate::sql::write::{RefChange, WriteRenderer};
use crate::store::{tx_execute, tx_fetch, Tx};
use crate::value::SqlValue;

/// `link(from, to, via, whereFromID, andToID)` (`add`) or `unlink(...)`.
#[derive(Debug, Clone)]
pub struct LinkArgs {
    pub from: usize,
    pub to: usize,
    /// The reference field of `from`.
    pub via: String,
    pub from_id: String,
    pub to_id: String,
    /// Link (true) or unlink.
    pub add: bool,
}

pub async fn link(engine: &Engine, caller: &Caller, args: &LinkArgs) -> ApiResult<bool> {
    super::retrying(|| link_once(engine, caller, args)).await
}

async fn link_once(engine: &Engine, caller: &Caller, args: &LinkArgs) -> ApiResult<bool> {
    let model = &engine.model;
    let ty = &model.types[args.from];
    let field = match ty.field(&args.via) {
        Some((fi, f)) => match f.storage() {
            Storage::RefColumn(t) | Storage::LinkTable(t) if t == args.to => fi,
            _ => {
                return Err(ApiError::validation(format!(
                    "'{}.{}' is not a reference from {} to {}",
                    ty.name, args.via, ty.name, model.types[args.to].name
                )))
            }
        },
        None => {
            return Err(ApiError::new(ErrorCode::UnknownField, format!("unknown field '{}.{}'", ty.name, args.via)))
        }
    };
    let ctx = WriteCtx::new(engine, caller);
    let r = ctx.renderer();
    let (from, instance) = (args.from, caller.instance.as_str());
    let mut tx = engine.store.begin_write().await?;
    for (type_idx, id) in [(args.from, args.from_id.as_str()), (args.to, args.to_id.as_str())] {
        // The object whose reference changes must be writable; its target only readable.
        let write = type_idx == args.from && id == args.from_id;
        let found = tx_fetch(&mut tx, &r.exists(type_idx, instance, id, write)).await?;
        let visible = found.first().is_some_and(|row| row.first() == Some(&SqlValue::Null));
        if !visible {
            return Err(ApiError::not_found(format!("{} '{id}' does not exist", model.types[type_idx].name)));
        }
    }
    let version = match (ty.fields[field].storage(), args.add) {
        (Storage::RefColumn(_), add) => {
            let change = if add { RefChange::Set(&args.to_id) } else { RefChange::ClearIf(&args.to_id) };
            let sql = r.set_ref(from, field, instance, &args.from_id, change, &ctx.now);
            first_int(tx_fetch(&mut tx, &sql).await?)
        }
        (_, true) => {
            let changed =
                tx_execute(&mut tx, &r.link_append(from, field, instance, &args.from_id, &args.to_id)).await?;
            touch_if(&mut tx, &r, &ctx, args, changed).await?
        }
        (_, false) => {
            let changed =
                tx_execute(&mut tx, &r.link_remove(from, field, instance, &args.from_id, &args.to_id)).await?;
            touch_if(&mut tx, &r, &ctx, args, changed).await?
        }
    };
    if let Some(version) = version {
        let op = if args.add { ChangeOp::Link } else { ChangeOp::Unlink };
        ctx.record(&mut tx, [NewChange { type_idx: from, id: args.from_id.clone(), op, version, owner: None }]);
    }
    super::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(true)
}

/// Bump the version of the source when a list link changed; its new version.
async fn touch_if(
    tx: &mut Tx,
    r: &WriteRenderer<'_>,
    ctx: &WriteCtx<'_>,
    args: &LinkArgs,
    changed: u64,
) -> ApiResult<Option<i64>> {
    if changed == 0 {
        return Ok(None);
    }
    let rows = tx_fetch(tx, &r.touch(args.from, ctx.instance, &args.from_id, &ctx.now)).await?;
    Ok(rows.first().and_then(|row| row.get(4)).and_then(SqlValue::as_i64))
}

fn first_int(rows: Vec<Vec<SqlValue>>) -> Option<i64> {
    rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64)
}
