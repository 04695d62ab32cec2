//! The root operations. Each resolver: read arguments → build a plan → render → run it in
//! `store` → hand the JSON document to the object resolvers. One statement per read.

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use async_graphql::Value;
use serde_json::Value as Json;

use super::find::FindArgs;
use super::selection::{sets_at, Planner, ROOT_UNION};
use super::{Engine, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::model::{Model, Storage};
use crate::plan::filter::{plan_query, Visibility};
use crate::plan::write::{now, plan_upsert, scalar_from_text};
use crate::sql::read::ReadRenderer;
use crate::store::bulk;
use crate::store::write::{self as w, LinkArgs, WriteCtx};

pub(super) fn engine<'a>(ctx: &ResolverContext<'a>) -> ApiResult<&'a Arc<Engine>> {
    ctx.ctx.data::<Arc<Engine>>().map_err(|_| ApiError::internal("schema has no engine (built for printing only)"))
}

pub(super) fn request<'a>(ctx: &ResolverContext<'a>) -> ApiResult<&'a RequestCtx> {
    ctx.ctx.data::<RequestCtx>().map_err(|_| ApiError::internal("request has no RequestCtx"))
}

/// An argument of type `HypiMutationType` (an enum of the model's type names).
fn type_arg(ctx: &ResolverContext<'_>, model: &Model, name: &str) -> ApiResult<usize> {
    let v = ctx.args.get(name).ok_or_else(|| ApiError::validation(format!("argument '{name}' is required")))?;
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

fn int_arg(ctx: &ResolverContext<'_>, name: &str) -> ApiResult<Option<i64>> {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::validation(format!("argument '{name}' must be an Int")))
        }
        Some(_) => Err(ApiError::validation(format!("argument '{name}' must be an Int"))),
    }
}

fn opt_string_arg(ctx: &ResolverContext<'_>, name: &str) -> ApiResult<Option<String>> {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(format!("argument '{name}' must be a String"))),
    }
}

fn write_ctx<'a>(engine: &'a Engine, req: &'a RequestCtx) -> WriteCtx<'a> {
    WriteCtx {
        model: &engine.model,
        app: &engine.app,
        instance: &req.instance,
        caller: req.account.as_deref(),
        viewer: &req.viewer,
        now: now(),
    }
}

pub fn query(model: &Model) -> Object {
    let _ = model;
    let [login_a, login_b] = super::auth::login_fields();
    Object::new("Query")
        .field(
            Field::new("find", TypeRef::named_nn("HypiFilterConnection"), |ctx| {
                FieldFuture::new(async move { find(&ctx).await.map(Some).map_err(ApiError::into_gql) })
            })
            .argument(InputValue::new("type", TypeRef::named_nn("HypiMutationType")))
            .argument(InputValue::new("arcql", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
            .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
            .argument(InputValue::new("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
            .argument(InputValue::new("page", TypeRef::named(TypeRef::INT)))
            .description("Objects matching an ArcQL query, paged by cursor."),
        )
        .field(login_a)
        .field(login_b)
        .field(
            Field::new("aggregate", TypeRef::named("HypiAggregationType"), |_| {
                FieldFuture::Value(Some(FieldValue::owned_any(Json::Object(Default::default()))))
            })
            .description("Counts, sums, averages, minima and maxima, optionally grouped."),
        )
        .field(
            Field::new("get", TypeRef::named(ROOT_UNION), |ctx| {
                FieldFuture::new(async move { get(&ctx).await.map_err(ApiError::into_gql) })
            })
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
            FieldFuture::new(async move {
                link(&ctx, add).await.map(|b| Some(FieldValue::value(b))).map_err(ApiError::into_gql)
            })
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
        .field(bulk_field("trash", "Mark matching objects trashed; returns how many changed.", false))
        .field(bulk_field("untrash", "Restore matching trashed objects; returns how many changed.", false))
        .field(bulk_field("delete", "Delete matching objects permanently; returns how many.", true))
        .field(
            Field::new("deleteScalars", TypeRef::named_nn(TypeRef::INT), |ctx| {
                FieldFuture::new(async move {
                    delete_scalars(&ctx).await.map(|n| Some(FieldValue::value(n as i64))).map_err(ApiError::into_gql)
                })
            })
            .argument(InputValue::new("type", TypeRef::named_nn("HypiMutationType")))
            .argument(InputValue::new("field", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("values", TypeRef::named_nn_list_nn(TypeRef::STRING)))
            .argument(InputValue::new("arcql", TypeRef::named_nn(TypeRef::STRING)))
            .description("Remove values from a scalar list of matching objects; returns how many objects changed."),
        )
        .field(super::auth::create_account_field())
        .field(link_field("link", true, "Add `andToID` to the reference `via` of `whereFromID`."))
        .field(link_field("unlink", false, "Remove `andToID` from the reference `via` of `whereFromID`."))
}

/// A field of `HypiAggregationType`: `x(where)` or, with `grouped`, `xWith(groupBy, ...)`.
pub fn aggregate_field(name: &str, type_idx: usize, type_name: &str, grouped: bool) -> Field {
    let aggs = format!("{type_name}Aggs");
    let ty = if grouped { TypeRef::named_list(aggs) } else { TypeRef::named(aggs) };
    let f = Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let run = async {
                let engine = engine(&ctx)?;
                let req = request(&ctx)?;
                if grouped {
                    super::aggregate::aggregate_groups(&ctx, engine, req, type_idx).await
                } else {
                    super::aggregate::aggregate_all(&ctx, engine, req, type_idx).await
                }
            };
            run.await.map(Some).map_err(ApiError::into_gql)
        })
    });
    let f = f.argument(InputValue::new("where", TypeRef::named(TypeRef::STRING)));
    if !grouped {
        return f;
    }
    f.argument(InputValue::new("groupBy", TypeRef::named_nn_list_nn(format!("{type_name}GroupByOptions"))))
        .argument(InputValue::new("having", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)))
        .argument(InputValue::new("page", TypeRef::named(TypeRef::INT)))
}

fn bulk_field(name: &'static str, doc: &'static str, clear: bool) -> Field {
    let mut f = Field::new(name, TypeRef::named_nn(TypeRef::INT), move |ctx| {
        FieldFuture::new(async move {
            bulk(&ctx, name).await.map(|n| Some(FieldValue::value(n as i64))).map_err(ApiError::into_gql)
        })
    })
    .argument(InputValue::new("type", TypeRef::named_nn("HypiMutationType")))
    .argument(InputValue::new("arcql", TypeRef::named_nn(TypeRef::STRING)))
    .description(doc);
    if clear {
        f = f.argument(InputValue::new("clearArrayReferences", TypeRef::named(TypeRef::BOOLEAN)).default_value(false));
    }
    f
}

async fn find<'a>(ctx: &ResolverContext<'a>) -> ApiResult<FieldValue<'a>> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let type_idx = type_arg(ctx, model, "type")?;
    let mut filter = plan_query(model, type_idx, &string_arg(ctx, "arcql")?)?;
    filter.visibility = Visibility { viewer: req.viewer.clone(), write: false };
    let root = &ctx.ctx.item.node.selection_set.node;
    let mut node_sets = Vec::new();
    sets_at(ctx.ctx, root, &["edges", "node"], &mut node_sets)?;
    let planner = Planner { ctx: ctx.ctx, model, limits: &engine.limits };
    let sel = planner.plan_all(type_idx, &node_sets)?;
    let selected = |name: &str| -> ApiResult<bool> {
        let mut v = Vec::new();
        sets_at(ctx.ctx, root, &["pageInfo", name], &mut v)?;
        Ok(!v.is_empty())
    };
    let args = FindArgs {
        first: int_arg(ctx, "first")?,
        after: opt_string_arg(ctx, "after")?,
        last: int_arg(ctx, "last")?,
        before: opt_string_arg(ctx, "before")?,
        page: int_arg(ctx, "page")?,
        include_trashed: bool_arg(ctx, "includeTrashed"),
        want_next_offsets: selected("nextOffsets")?,
        want_previous_offsets: selected("previousOffsets")?,
    };
    let doc = super::find::find(engine, req, type_idx, &sel, &filter, &args).await?;
    Ok(FieldValue::owned_any(doc))
}

async fn bulk(ctx: &ResolverContext<'_>, op: &str) -> ApiResult<u64> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let type_idx = type_arg(ctx, model, "type")?;
    let mut filter = plan_query(model, type_idx, &string_arg(ctx, "arcql")?)?;
    filter.visibility = Visibility { viewer: req.viewer.clone(), write: true };
    let wctx = write_ctx(engine, req);
    let limit = engine.limits.objects_per_call;
    match op {
        "trash" => bulk::trash(&engine.store, &wctx, type_idx, &filter, false, limit).await,
        "untrash" => bulk::trash(&engine.store, &wctx, type_idx, &filter, true, limit).await,
        _ => bulk::delete(&engine.store, &wctx, type_idx, &filter, bool_arg(ctx, "clearArrayReferences"), limit).await,
    }
}

async fn delete_scalars(ctx: &ResolverContext<'_>) -> ApiResult<u64> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let type_idx = type_arg(ctx, model, "type")?;
    let ty = &model.types[type_idx];
    let field_name = string_arg(ctx, "field")?;
    let Some((fi, field)) = ty.field(&field_name) else {
        return Err(ApiError::new(
            crate::error::ErrorCode::UnknownField,
            format!("unknown field '{}.{field_name}'", ty.name),
        ));
    };
    if field.storage() != Storage::ValueTable {
        return Err(ApiError::validation(format!("{}.{field_name} is not a scalar list", ty.name)));
    }
    let raw: Vec<String> = match ctx.args.get("values").map(|v| v.as_value().clone()) {
        Some(Value::List(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(ApiError::validation(format!("values: {other} is not a String"))),
            })
            .collect::<ApiResult<_>>()?,
        _ => return Err(ApiError::validation("argument 'values' must be a list of Strings")),
    };
    let qualified = format!("{}.{}", ty.name, field.name);
    let values = raw
        .iter()
        .map(|s| scalar_from_text(model, field, &qualified, s, engine.limits.write_limits()))
        .collect::<ApiResult<Vec<_>>>()?;
    if values.is_empty() {
        return Ok(0);
    }
    let mut filter = plan_query(model, type_idx, &string_arg(ctx, "arcql")?)?;
    filter.visibility = Visibility { viewer: req.viewer.clone(), write: true };
    let wctx = write_ctx(engine, req);
    bulk::delete_scalars(&engine.store, &wctx, type_idx, fi, values, filter, engine.limits.objects_per_call).await
}

async fn get<'a>(ctx: &ResolverContext<'a>) -> ApiResult<Option<FieldValue<'a>>> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let model = &engine.model;
    let type_idx = type_arg(ctx, model, "type")?;
    let id = string_arg(ctx, "id")?;
    let planner = Planner { ctx: ctx.ctx, model, limits: &engine.limits };
    let sel = planner.plan(type_idx, &ctx.ctx.item.node.selection_set.node)?;
    let renderer = ReadRenderer { model, app: &engine.app, dialect: engine.store.dialect(), viewer: &req.viewer };
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
    let values = ctx.args.get("values").ok_or_else(|| ApiError::validation("argument 'values' is required"))?;
    let objects = plan_upsert(&engine.model, values.as_value(), engine.limits.write_limits())?;
    let wctx = write_ctx(engine, req);
    let records = w::upsert(&engine.store, &wctx, &objects).await?;
    let docs: Vec<FieldValue> =
        records.into_iter().map(|r| FieldValue::owned_any(serde_json::to_value(r).unwrap_or(Json::Null))).collect();
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
    let wctx = write_ctx(engine, req);
    w::link(&engine.store, &wctx, &LinkArgs { from, field, from_id: &from_id, to_id: &to_id }, add).await
}
