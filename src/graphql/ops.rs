//! The root operations. Each resolver: read arguments → build a plan → render → run it in
//! `store` → hand the JSON document to the object resolvers. One statement per read.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;

use super::selection::{Planner, ROOT_UNION};
use super::{Engine, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::model::{Model, Storage};
use crate::plan::write::{now, plan_upsert};
use crate::sql::read::ReadRenderer;
use crate::store::write::{self as w, LinkArgs, WriteCtx};

fn engine<'a>(ctx: &ResolverContext<'a>) -> ApiResult<&'a Arc<Engine>> {
    ctx.ctx
        .data::<Arc<Engine>>()
        .map_err(|_| ApiError::internal("schema has no engine (built for printing only)"))
}

fn request<'a>(ctx: &ResolverContext<'a>) -> ApiResult<&'a RequestCtx> {
    ctx.ctx.data::<RequestCtx>().map_err(|_| ApiError::internal("request has no RequestCtx"))
}

/// An argument of type `HypiMutationType` (an enum of the model's type names).
fn type_arg(ctx: &ResolverContext<'_>, model: &Model, name: &str) -> ApiResult<usize> {
    let v = ctx
        .args
        .get(name)
        .ok_or_else(|| ApiError::validation(format!("argument '{name}' is required")))?;
    let type_name = match v.as_value() {
        Value::Enum(n) => n.as_str().to_string(),
        Value::String(s) => s.clone(),
        other => return Err(ApiError::validation(format!("argument '{name}': {other} is not a type name"))),
    };
    model
        .type_by_name(&type_name)
        .map(|(i, _)| i)
        .ok_or_else(|| ApiError::validation(format!("unknown type '{type_name}'")))
}

fn string_arg(ctx: &ResolverContext<'_>, name: &str) -> ApiResult<String> {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ApiError::validation(format!("argument '{name}' must be a String"))),
    }
}

fn bool_arg(ctx: &ResolverContext<'_>, name: &str) -> bool {
    matches!(ctx.args.get(name).map(|v| v.as_value().clone()), Some(Value::Boolean(true)))
}

pub fn query(model: &Model) -> Object {
    let _ = model;
    Object::new("Query").field(
        Field::new("get", TypeRef::named(ROOT_UNION), |ctx| FieldFuture::new(async move { get(&ctx).await.map_err(ApiError::into_gql) }))
            .argument(InputValue::new("type", TypeRef::named_nn("HypiMutationType")))
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
            .description("One object by id, or null when it does not exist, is trashed, or is not visible."),
    )
}

pub fn mutation(model: &Model) -> Object {
    let _ = model;
    let link_field = |name: &'static str, add: bool, doc: &'static str| {
        Field::new(name, TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::new(async move { link(&ctx, add).await.map(|b| Some(FieldValue::value(b))).map_err(ApiError::into_gql) })
        })
        .argument(InputValue::new("from", TypeRef::named_nn("HypiMutationType")))
        .argument(InputValue::new("to", TypeRef::named_nn("HypiMutationType")))
        .argument(InputValue::new("via", TypeRef::named_nn(TypeRef::STRING)))
        .argument(InputValue::new("whereFromID", TypeRef::named_nn(TypeRef::STRING)))
        .argument(InputValue::new("andToID", TypeRef::named_nn(TypeRef::STRING)))
        .description(doc)
    };
    Object::new("Mutation")
        .field(
            Field::new("upsert", TypeRef::named_nn_list_nn("Hypi"), |ctx| {
                FieldFuture::new(async move { upsert(&ctx).await.map(Some).map_err(ApiError::into_gql) })
            })
            .argument(InputValue::new("values", TypeRef::named_nn("HypiUpsertInputUnion")))
            .description("Insert or partially update objects, nested ones included, in one transaction."),
        )
        .field(link_field("link", true, "Add `andToID` to the reference `via` of `whereFromID`."))
        .field(link_field("unlink", false, "Remove `andToID` from the reference `via` of `whereFromID`."))
}

async fn get<'a>(ctx: &ResolverContext<'a>) -> ApiResult<Option<FieldValue<'a>>> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let type_idx = type_arg(ctx, model, "type")?;
    let id = string_arg(ctx, "id")?;
    let planner = Planner { ctx: ctx.ctx, model, limits: &engine.limits };
    let sel = planner.plan(type_idx, &ctx.ctx.item.node.selection_set.node)?;
    let renderer = ReadRenderer { model, app: &engine.app, dialect: engine.store.dialect() };
    let sql = renderer.get_by_id(&sel, &req.instance, &id, bool_arg(ctx, "includeTrashed"));
    let Some(text) = engine.store.fetch_json(&sql).await? else {
        return Ok(None);
    };
    let doc: Json = serde_json::from_str(&text).map_err(ApiError::internal)?;
    Ok(Some(FieldValue::owned_any(doc).with_type(model.types[type_idx].name.clone())))
}

async fn upsert<'a>(ctx: &ResolverContext<'a>) -> ApiResult<FieldValue<'a>> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let values = ctx
        .args
        .get("values")
        .ok_or_else(|| ApiError::validation("argument 'values' is required"))?;
    let objects = plan_upsert(&engine.model, values.as_value(), engine.limits.write_limits())?;
    let wctx = WriteCtx {
        model: &engine.model,
        app: &engine.app,
        instance: &req.instance,
        caller: req.account.as_deref(),
        now: now(),
    };
    let records = w::upsert(&engine.store, &wctx, &objects).await?;
    let docs: Vec<FieldValue> = records
        .into_iter()
        .map(|r| FieldValue::owned_any(serde_json::to_value(r).unwrap_or(Json::Null)))
        .collect();
    Ok(FieldValue::list(docs))
}

async fn link(ctx: &ResolverContext<'_>, add: bool) -> ApiResult<bool> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let from = type_arg(ctx, model, "from")?;
    let to = type_arg(ctx, model, "to")?;
    let via = string_arg(ctx, "via")?;
    let ty = &model.types[from];
    let field = match ty.field(&via) {
        Some((fi, f)) => match f.storage() {
            Storage::RefColumn(t) | Storage::LinkTable(t) if t == to => fi,
            _ => {
                return Err(ApiError::validation(format!(
                    "'{}.{via}' is not a reference from {} to {}",
                    ty.name, ty.name, model.types[to].name
                )))
            }
        },
        None => {
            return Err(ApiError::new(
                crate::error::ErrorCode::UnknownField,
                format!("unknown field '{}.{via}'", ty.name),
            ))
        }
    };
    let from_id = string_arg(ctx, "whereFromID")?;
    let to_id = string_arg(ctx, "andToID")?;
    let wctx = WriteCtx {
        model,
        app: &engine.app,
        instance: &req.instance,
        caller: req.account.as_deref(),
        now: now(),
    };
    w::link(&engine.store, &wctx, &LinkArgs { from, field, from_id: &from_id, to_id: &to_id }, add).await
}
