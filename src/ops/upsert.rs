//! `upsert`: insert or partially update objects, nested ones included, in one transaction
//! that also appends one change-feed row per object written.
//!
//! The input is checked completely before the transaction starts (`plan::write`); inside it,
//! the rules that need the database: an id names an object the caller may change (or is
//! free), a new object has every required field, accounts are created only by
//! `createAccount`, anonymous callers create only where `@access(write: PUBLIC)` allows.
//!
//! Whether each named id exists (and may be changed, or for a nested link read) is asked once
//! for the whole call, one statement per type and kind of access ([`prefetch`]), not once per
//! object: what it tells is what the per-object question would have told, because the access
//! rules look only at the object's own row, and an object this call already wrote is asked
//! again on its own (its row changed since).

use futures_util::future::BoxFuture;
use serde_json::Value as Json;

use super::{Caller, Engine};
use crate::access::Viewer;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::Model;
use crate::plan::write::{plan_upsert, WriteObject};
use crate::sql::names;
use crate::sql::write::WriteRenderer;
use crate::store::{tx_execute, tx_fetch, StoreError, Tx};
use crate::value::SqlValue;

/// `upsert(values: ...)`: an object keyed by type name, each holding a list of objects.
#[derive(Debug, Clone)]
pub struct UpsertArgs {
    pub values: Json,
}

/// The system fields of a written object, as `upsert` returns them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HypiRecord {
    pub id: String,
    #[serde(rename = "impl")]
    pub impl_name: String,
    pub created: Option<String>,
    pub updated: Option<String>,
    pub trashed: Option<String>,
    #[serde(rename = "createdBy")]
    pub created_by: Option<String>,
    #[serde(rename = "instanceId")]
    pub instance_id: String,
}

/// A new object id: a ULID that is greater than every id this process generated before, so
/// objects created in the same millisecond (one upsert call, say) still sort in creation
/// order. `Ulid::new()` fills the bits after the timestamp at random, which does not.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // `generate` fails only when 2^80 ids were made in one millisecond.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

/// See [`WriteCtx::known`].
pub(crate) type Known = std::collections::HashMap<(usize, bool), std::collections::HashMap<String, Option<bool>>>;

/// Who writes where, and when: one timestamp for the whole call.
pub(crate) struct WriteCtx<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub instance: &'a str,
    /// The account id of the caller (`hypi.createdBy`); `None` for admin and anonymous.
    pub caller: Option<&'a str>,
    pub viewer: &'a Viewer,
    pub now: String,
    pub dialect: crate::sql::Dialect,
    /// What [`WriteCtx::record`] and [`WriteCtx::count`] gathered for [`super::commit::commit`].
    pub touched: std::sync::Mutex<super::commit::Touched>,
    /// What [`prefetch`] learned of objects, by (type, write access) and id: `Some(visible)`
    /// when the object exists (`visible`: not trashed), `None` when it does not (or may not be
    /// changed). Absent: not asked, or written by this call since.
    pub(crate) known: std::sync::Mutex<Known>,
}

impl<'a> WriteCtx<'a> {
    pub fn new(engine: &'a Engine, caller: &'a Caller) -> Self {
        WriteCtx {
            model: &engine.model,
            app: &engine.app,
            instance: &caller.instance,
            caller: caller.viewer.account(),
            viewer: &caller.viewer,
            now: super::now(),
            dialect: engine.store.dialect(),
            touched: Default::default(),
            known: Default::default(),
        }
    }

    /// What [`prefetch`] learned of `id` (see [`WriteCtx::known`]); `None`: ask the database.
    fn known(&self, type_idx: usize, write: bool, id: &str) -> Option<Option<bool>> {
        let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(&(type_idx, write)).and_then(|ids| ids.get(id)).copied()
    }

    /// `id` was written: what was learned of it before no longer holds.
    fn forget(&self, type_idx: usize, id: &str) {
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for write in [false, true] {
            if let Some(ids) = known.get_mut(&(type_idx, write)) {
                ids.remove(id);
            }
        }
    }

    pub fn renderer(&self) -> WriteRenderer<'_> {
        WriteRenderer { model: self.model, app: self.app, dialect: self.dialect, viewer: self.viewer }
    }
}

/// Write every object (and everything nested in it) in one transaction; the records come
/// back in input order.
pub async fn upsert(engine: &Engine, caller: &Caller, args: &UpsertArgs) -> ApiResult<Vec<HypiRecord>> {
    super::retrying(|| upsert_once(engine, caller, args)).await
}

async fn upsert_once(engine: &Engine, caller: &Caller, args: &UpsertArgs) -> ApiResult<Vec<HypiRecord>> {
    let objects = plan_upsert(&engine.model, &args.values, engine.limits.write_limits())?;
    let ctx = WriteCtx::new(engine, caller);
    let mut tx = engine.store.begin_write().await?;
    let r = ctx.renderer();
    prefetch(&mut tx, &ctx, &r, &objects).await?;
    let mut out = Vec::with_capacity(objects.len());
    for obj in &objects {
        out.push(write_object(&mut tx, &ctx, &r, obj, false).await?);
    }
    super::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(out)
}

/// Ids asked about by one statement of [`prefetch`] at most.
const PREFETCH_IDS: usize = 500;

/// Ask whether every id named in `objects` (nested ones included) exists, one statement per
/// type and kind of access (a nested object that only names an id is linked: it must be
/// readable; any other must be writable), and remember the answers in `ctx`.
async fn prefetch(tx: &mut Tx, ctx: &WriteCtx<'_>, r: &WriteRenderer<'_>, objects: &[WriteObject]) -> ApiResult<()> {
    type Asked<'o> = std::collections::BTreeMap<(usize, bool), std::collections::BTreeSet<&'o str>>;
    fn walk<'o>(obj: &'o WriteObject, nested: bool, into: &mut Asked<'o>) {
        if let Some(id) = &obj.id {
            let write = !(nested && obj.is_link_only());
            into.entry((obj.type_idx, write)).or_default().insert(id);
        }
        for n in obj.refs.iter().filter_map(|(_, n)| n.as_ref()) {
            walk(n, true, into);
        }
        for n in obj.ref_lists.iter().flat_map(|(_, items)| items) {
            walk(n, true, into);
        }
    }
    let mut asked = Asked::new();
    for obj in objects {
        walk(obj, false, &mut asked);
    }
    for (&key, ids) in &asked {
        let ids: Vec<&str> = ids.iter().copied().collect();
        for chunk in ids.chunks(PREFETCH_IDS) {
            let rows = tx_fetch(tx, &r.exists_many(key.0, ctx.instance, chunk, key.1)).await?;
            let mut known = ctx.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let known = known.entry(key).or_default();
            known.extend(chunk.iter().map(|id| (id.to_string(), None)));
            for row in &rows {
                if let Some(id) = row.first().and_then(SqlValue::as_str) {
                    known.insert(id.to_string(), Some(row.get(1) == Some(&SqlValue::Null)));
                }
            }
        }
    }
    Ok(())
}

/// Write one object, its referenced objects first.
pub(crate) fn write_object<'a>(
    tx: &'a mut Tx,
    ctx: &'a WriteCtx<'a>,
    r: &'a WriteRenderer<'a>,
    obj: &'a WriteObject,
    nested: bool,
) -> BoxFuture<'a, ApiResult<HypiRecord>> {
    Box::pin(async move {
        let ty = &ctx.model.types[obj.type_idx];
        let (id, exists, visible) = match &obj.id {
            Some(id) => {
                // A nested object that only names an id is linked, so it must be readable;
                // one that is written to must be writable.
                let write = !(nested && obj.is_link_only());
                match ctx.known(obj.type_idx, write, id) {
                    Some(known) => (id.clone(), known.is_some(), known == Some(true)),
                    None => {
                        let found = tx_fetch(tx, &r.exists(obj.type_idx, ctx.instance, id, write)).await?;
                        let visible = found.first().is_some_and(|row| row.first() == Some(&SqlValue::Null));
                        (id.clone(), !found.is_empty(), visible)
                    }
                }
            }
            None => (new_id(), false, false),
        };
        if nested && obj.is_link_only() {
            // Like `link`: a trashed object cannot be linked (reads would not show it).
            if !visible {
                return Err(ApiError::not_found(format!(
                    "{}: {} '{id}' does not exist (a nested object with only hypi.id links an existing object)",
                    obj.location, ty.name
                )));
            }
            return Ok(HypiRecord {
                id,
                impl_name: ty.name.clone(),
                created: None,
                updated: None,
                trashed: None,
                created_by: None,
                instance_id: ctx.instance.to_string(),
            });
        }

        // Referenced objects first: the row needs their ids.
        let mut columns = obj.columns.clone();
        for (f, nested_obj) in &obj.refs {
            let value = match nested_obj {
                Some(n) => SqlValue::Text(write_object(tx, ctx, r, n, true).await?.id),
                None => SqlValue::Null,
            };
            columns.push((*f, value));
        }
        let mut links = Vec::new();
        for (f, items) in &obj.ref_lists {
            let mut ids = Vec::with_capacity(items.len());
            for item in items {
                ids.push(write_object(tx, ctx, r, item, true).await?.id);
            }
            links.push((*f, ids));
        }

        let stmt = if exists {
            r.update(obj.type_idx, ctx.instance, &id, &ctx.now, &columns)
        } else {
            for (fi, field) in ty.fields.iter().enumerate() {
                if field.required && !obj.has_field(fi) {
                    return Err(ApiError::validation(format!(
                        "{}: {}.{} is required when a new {} is created",
                        obj.location, ty.name, field.name, ty.name
                    )));
                }
            }
            if ty.builtin && *ctx.viewer != Viewer::Admin && ctx.caller != Some(id.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("{}: accounts are created with createAccount", obj.location),
                ));
            }
            if !ctx.viewer.may_create(ctx.model, obj.type_idx) {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    format!("{}: creating a {} needs an account", obj.location, ty.name),
                ));
            }
            r.insert(obj.type_idx, ctx.instance, &id, &ctx.now, ctx.caller, &columns)
        };
        let rows = match tx_fetch(tx, &stmt).await {
            Ok(rows) => rows,
            Err(StoreError::Unique { detail }) => return Err(unique_error(ctx.model, ctx.app, obj, &columns, &detail)),
            Err(e) => return Err(e.into()),
        };
        ctx.forget(obj.type_idx, &id);
        let Some(row) = rows.into_iter().next() else {
            // The id belongs to an object this caller may not change (or see).
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("{}: hypi.id '{id}' is not available for a new {}", obj.location, ty.name),
            ));
        };

        if exists {
            for f in &obj.cleared {
                tx_execute(tx, &r.list_clear(obj.type_idx, *f, ctx.instance, &id)).await?;
            }
        }
        for (f, ids) in &links {
            for dst in ids {
                tx_execute(tx, &r.link_append(obj.type_idx, *f, ctx.instance, &id, dst)).await?;
            }
        }
        for (f, values) in &obj.value_lists {
            for v in values {
                match tx_execute(tx, &r.value_append(obj.type_idx, *f, ctx.instance, &id, v.clone())).await {
                    Ok(_) => {}
                    // A unique list (`Account.emails`): the element belongs to another object
                    // (or is repeated in this one). Which object is not said.
                    Err(StoreError::Unique { .. }) => {
                        return Err(ApiError::new(
                            ErrorCode::UniqueViolation,
                            format!(
                                "{}: {}.{} must be unique: the value is already taken",
                                obj.location, ty.name, ty.fields[*f].name
                            ),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let version = row.get(4).and_then(SqlValue::as_i64).unwrap_or(1);
        // Version 1 is a fresh row (an insert that met a concurrent insert became an update).
        let op = if version == 1 { crate::feed::ChangeOp::Insert } else { crate::feed::ChangeOp::Update };
        ctx.record(tx, [crate::feed::NewChange { type_idx: obj.type_idx, id: id.clone(), op, version, owner: None }]);
        if op == crate::feed::ChangeOp::Insert {
            ctx.count(obj.type_idx, 1);
        }

        let text = |i: usize| row.get(i).and_then(SqlValue::as_str).map(str::to_string);
        Ok(HypiRecord {
            id,
            impl_name: ty.name.clone(),
            created: text(0),
            updated: text(1),
            trashed: text(2),
            created_by: text(3),
            instance_id: ctx.instance.to_string(),
        })
    })
}

/// Name the field a unique index refused. The driver's message lists the index's columns
/// (`table.hypi_instance, table.email`); the field is the one of this object that is among
/// them. The message does not repeat the value or say anything of the object that holds it:
/// that object may be one the caller cannot see (the value being taken is all that a unique
/// field makes known, and it has to).
fn unique_error(model: &Model, app: &str, obj: &WriteObject, columns: &[(usize, SqlValue)], detail: &str) -> ApiError {
    let ty = &model.types[obj.type_idx];
    for (f, _) in columns {
        let field = &ty.fields[*f];
        // The driver lists `table.column` names separated by ", ": match a whole name, so a
        // field `code` is not mistaken for a field `codeName`.
        // PostgreSQL names the index instead: compare it with the index of this field.
        let col = format!(".{}", names::column(field));
        let index = names::index_name(&names::object_table(app, ty), &format!("unique__{}", field.name));
        let named = detail == index || detail.split(',').any(|part| part.trim_end().ends_with(&col));
        if field.unique && named {
            return ApiError::new(
                ErrorCode::UniqueViolation,
                format!("{}: {}.{} must be unique: the value is already taken", obj.location, ty.name, field.name),
            );
        }
    }
    ApiError::new(
        ErrorCode::UniqueViolation,
        format!("{}: a unique field of {} repeats an existing value", obj.location, ty.name),
    )
}
