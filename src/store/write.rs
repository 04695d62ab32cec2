//! The write path: upsert (nested objects included), link and unlink, each one transaction
//! that also appends its change-feed rows.

use futures_util::future::BoxFuture;

use super::{tx_execute, tx_fetch, Store, StoreError, Tx};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::{Model, Storage};
use crate::plan::write::WriteObject;
use crate::sql::write::{RefChange, WriteRenderer};
use crate::sql::{names, SqlValue};

/// Who writes where, and when.
pub struct WriteCtx<'a> {
    pub model: &'a Model,
    pub app: &'a str,
    pub instance: &'a str,
    /// The account id of the caller (`hypi.createdBy`); `None` for admin and anonymous.
    pub caller: Option<&'a str>,
    /// What the caller may see and change.
    pub viewer: &'a crate::sql::Viewer,
    /// One timestamp for the whole call.
    pub now: String,
}

impl WriteCtx<'_> {
    fn renderer(&self, store: &Store) -> WriteRenderer<'_> {
        WriteRenderer { model: self.model, app: self.app, dialect: store.dialect(), viewer: self.viewer }
    }
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

/// Write every object (and everything nested in it) in one transaction; the records come
/// back in input order.
pub async fn upsert(store: &Store, ctx: &WriteCtx<'_>, objects: &[WriteObject]) -> ApiResult<Vec<HypiRecord>> {
    let mut tx = store.begin_write().await?;
    let r = ctx.renderer(store);
    let mut out = Vec::with_capacity(objects.len());
    for obj in objects {
        out.push(write_object(&mut tx, ctx, &r, obj, false).await?);
    }
    tx.commit().await?;
    Ok(out)
}

/// Create an account (a new object of the built-in type, owned by itself) with its password
/// hash, in one transaction.
pub async fn create_account(
    store: &Store,
    ctx: &WriteCtx<'_>,
    obj: &WriteObject,
    password_hash: &str,
) -> ApiResult<HypiRecord> {
    let Some(account_type) = ctx.model.account_type() else {
        return Err(ApiError::internal("the model has no account type"));
    };
    let mut tx = store.begin_write().await?;
    let r = ctx.renderer(store);
    let record = write_object(&mut tx, ctx, &r, obj, false).await?;
    let a =
        crate::sql::account::AccountRenderer { model: ctx.model, app: ctx.app, dialect: store.dialect(), account_type };
    tx_execute(&mut tx, &a.set_password(ctx.instance, &record.id, password_hash)).await?;
    tx.commit().await?;
    Ok(record)
}

fn write_object<'a>(
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
                let found = tx_fetch(tx, &r.exists(obj.type_idx, ctx.instance, id, write)).await?;
                let visible = found.first().is_some_and(|row| row.first() == Some(&SqlValue::Null));
                (id.clone(), !found.is_empty(), visible)
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
            if ty.builtin && *ctx.viewer != crate::sql::Viewer::Admin && ctx.caller != Some(id.as_str()) {
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
        let Some(row) = rows.into_iter().next() else {
            // The id belongs to an object this caller may not change (or see).
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("{}: hypi.id '{id}' is not available for a new {}", obj.location, ty.name),
            ));
        };

        for (f, ids) in &links {
            for dst in ids {
                tx_execute(tx, &r.link_append(obj.type_idx, *f, ctx.instance, &id, dst)).await?;
            }
        }
        for (f, values) in &obj.value_lists {
            for v in values {
                tx_execute(tx, &r.value_append(obj.type_idx, *f, ctx.instance, &id, v.clone())).await?;
            }
        }
        let version = row.get(4).and_then(SqlValue::as_i64).unwrap_or(1);
        // Version 1 is a fresh row (an insert that met a concurrent insert became an update).
        let op = if version == 1 { "insert" } else { "update" };
        tx_execute(tx, &r.change(ctx.instance, obj.type_idx, &id, op, version, &ctx.now)).await?;

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

/// Name the field and value a unique index refused. The driver's message lists the index's
/// columns (`table.hypi_instance, table.email`); the field is the one of this object that is
/// among them.
fn unique_error(model: &Model, app: &str, obj: &WriteObject, columns: &[(usize, SqlValue)], detail: &str) -> ApiError {
    let ty = &model.types[obj.type_idx];
    for (f, v) in columns {
        let field = &ty.fields[*f];
        // The driver lists `table.column` names separated by ", ": match a whole name, so a
        // field `code` is not mistaken for a field `codeName`.
        // PostgreSQL names the index instead: compare it with the index of this field.
        let col = format!(".{}", names::column(field));
        let index = names::index_name(&names::object_table(app, ty), &format!("unique__{}", field.name));
        let named = detail == index || detail.split(',').any(|part| part.trim_end().ends_with(&col));
        if field.unique && named {
            let shown = match v {
                SqlValue::Text(s) => format!("'{s}'"),
                SqlValue::Int(i) => i.to_string(),
                SqlValue::Real(x) => x.to_string(),
                SqlValue::Bool(b) => b.to_string(),
                SqlValue::Null => "null".into(),
            };
            return ApiError::new(
                ErrorCode::UniqueViolation,
                format!("{}: {}.{} must be unique: {shown} is already used", obj.location, ty.name, field.name),
            );
        }
    }
    ApiError::new(
        ErrorCode::UniqueViolation,
        format!("{}: a unique field of {} repeats an existing value", obj.location, ty.name),
    )
}

/// Arguments of `link` / `unlink`, resolved against the model.
pub struct LinkArgs<'a> {
    pub from: usize,
    pub field: usize,
    pub from_id: &'a str,
    pub to_id: &'a str,
}

/// `link` (add = true) or `unlink` (add = false): one transaction, one change row.
pub async fn link(store: &Store, ctx: &WriteCtx<'_>, args: &LinkArgs<'_>, add: bool) -> ApiResult<bool> {
    let ty = &ctx.model.types[args.from];
    let field = &ty.fields[args.field];
    let target = match field.storage() {
        Storage::RefColumn(t) | Storage::LinkTable(t) => t,
        _ => return Err(ApiError::validation(format!("{}.{} is not a reference", ty.name, field.name))),
    };
    let r = ctx.renderer(store);
    let mut tx = store.begin_write().await?;
    for (type_idx, id) in [(args.from, args.from_id), (target, args.to_id)] {
        // The object whose reference changes must be writable; its target only readable.
        let found =
            tx_fetch(&mut tx, &r.exists(type_idx, ctx.instance, id, type_idx == args.from && id == args.from_id))
                .await?;
        let visible = found.first().is_some_and(|row| row.first() == Some(&SqlValue::Null));
        if !visible {
            return Err(ApiError::not_found(format!("{} '{id}' does not exist", ctx.model.types[type_idx].name)));
        }
    }
    let version = match (field.storage(), add) {
        (Storage::RefColumn(_), true) => {
            let sql =
                r.set_ref(args.from, args.field, ctx.instance, args.from_id, RefChange::Set(args.to_id), &ctx.now);
            first_int(tx_fetch(&mut tx, &sql).await?)
        }
        (Storage::RefColumn(_), false) => {
            let sql =
                r.set_ref(args.from, args.field, ctx.instance, args.from_id, RefChange::ClearIf(args.to_id), &ctx.now);
            first_int(tx_fetch(&mut tx, &sql).await?)
        }
        (_, true) => {
            let changed =
                tx_execute(&mut tx, &r.link_append(args.from, args.field, ctx.instance, args.from_id, args.to_id))
                    .await?;
            touch_if(&mut tx, &r, ctx, args, changed).await?
        }
        (_, false) => {
            let changed =
                tx_execute(&mut tx, &r.link_remove(args.from, args.field, ctx.instance, args.from_id, args.to_id))
                    .await?;
            touch_if(&mut tx, &r, ctx, args, changed).await?
        }
    };
    if let Some(v) = version {
        let op = if add { "link" } else { "unlink" };
        tx_execute(&mut tx, &r.change(ctx.instance, args.from, args.from_id, op, v, &ctx.now)).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn touch_if(
    tx: &mut Tx,
    r: &WriteRenderer<'_>,
    ctx: &WriteCtx<'_>,
    args: &LinkArgs<'_>,
    changed: u64,
) -> ApiResult<Option<i64>> {
    if changed == 0 {
        return Ok(None);
    }
    let rows = tx_fetch(tx, &r.touch(args.from, ctx.instance, args.from_id, &ctx.now)).await?;
    Ok(rows.first().and_then(|row| row.get(4)).and_then(SqlValue::as_i64))
}

fn first_int(rows: Vec<Vec<SqlValue>>) -> Option<i64> {
    rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64)
}
