//! `login`, `loginByEmail` and `createAccount`. A failed login is an `AccessToken` with
//! `errorCode`/`errorMsg` (the same for an unknown user and a wrong password, and taking the
//! same time), never a GraphQL error.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};
use async_graphql::{Name, Value};
use serde_json::{json, Value as Json};

use super::ops::{engine, request};
use crate::auth;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::ACCOUNT;
use crate::plan::write::{now, plan_upsert};
use crate::sql::account::AccountRenderer;
use crate::sql::{SqlValue, Viewer};
use crate::store::write::{create_account as store_create, WriteCtx};

const FAILED: &str = "INVALID_LOGIN";
const FAILED_MSG: &str = "invalid username, email or password";

/// The `AccessToken` output type.
pub fn access_token_type() -> Object {
    let field = |name: &'static str, ty: &'static str| {
        Field::new(name, TypeRef::named(ty), move |ctx| {
            let v = ctx.parent_value.downcast_ref::<Json>().and_then(|p| p.get(name)).cloned().unwrap_or(Json::Null);
            FieldFuture::Value(Some(FieldValue::value(Value::from_json(v).unwrap_or(Value::Null))))
        })
    };
    Object::new("AccessToken")
        .field(field("sessionToken", TypeRef::STRING))
        .field(field("sessionExpires", "Long"))
        .field(field("errorCode", TypeRef::STRING))
        .field(field("errorMsg", TypeRef::STRING))
}

pub fn login_fields() -> [Field; 2] {
    let by_name = Field::new("login", TypeRef::named("AccessToken"), |ctx| {
        FieldFuture::new(async move {
            login(&ctx, false).await.map(|j| Some(FieldValue::owned_any(j))).map_err(ApiError::into_gql)
        })
    })
    .argument(InputValue::new("username", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("password", TypeRef::named_nn(TypeRef::STRING)))
    .description("A session token for an account of this instance.");
    let by_email = Field::new("loginByEmail", TypeRef::named("AccessToken"), |ctx| {
        FieldFuture::new(async move {
            login(&ctx, true).await.map(|j| Some(FieldValue::owned_any(j))).map_err(ApiError::into_gql)
        })
    })
    .argument(InputValue::new("email", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("password", TypeRef::named_nn(TypeRef::STRING)))
    .description("A session token for the account listing this email address.");
    [by_name, by_email]
}

pub fn create_account_field() -> Field {
    Field::new("createAccount", TypeRef::named("Hypi"), |ctx| {
        FieldFuture::new(async move {
            create_account(&ctx).await.map(|j| Some(FieldValue::owned_any(j))).map_err(ApiError::into_gql)
        })
    })
    .argument(InputValue::new("value", TypeRef::named_nn(format!("{ACCOUNT}Input"))))
    .description("Register an account (anonymously only where the instance allows registrations).")
}

fn arg(ctx: &ResolverContext<'_>, name: &str) -> String {
    match ctx.args.get(name).map(|v| v.as_value().clone()) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

async fn login(ctx: &ResolverContext<'_>, by_email: bool) -> ApiResult<Json> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    let Some(account_type) = engine.model.account_type() else {
        return Err(ApiError::internal("the model has no account type"));
    };
    let r = AccountRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect(), account_type };
    let who = arg(ctx, if by_email { "email" } else { "username" });
    let password = arg(ctx, "password");
    let sql = if by_email { r.by_email(&req.instance, &who) } else { r.by_username(&req.instance, &who) };
    let rows = engine.store.fetch_rows(&sql).await?;
    // Exactly one account, or the login fails like a wrong password would.
    let found = if rows.len() == 1 {
        rows[0]
            .first()
            .and_then(SqlValue::as_str)
            .map(|id| (id.to_string(), rows[0].get(1).and_then(SqlValue::as_str).map(str::to_string)))
    } else {
        None
    };
    let hash = found.as_ref().and_then(|(_, h)| h.clone());
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, hash.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    match (ok, found) {
        (true, Some((id, _))) => {
            let (token, exp) = auth::issue(&req.jwt_secret, &id, &req.instance).map_err(ApiError::internal)?;
            Ok(json!({ "sessionToken": token, "sessionExpires": exp, "errorCode": null, "errorMsg": null }))
        }
        _ => Ok(json!({ "sessionToken": null, "sessionExpires": null, "errorCode": FAILED, "errorMsg": FAILED_MSG })),
    }
}

async fn create_account(ctx: &ResolverContext<'_>) -> ApiResult<Json> {
    let engine = engine(ctx)?;
    let req = request(ctx)?;
    if req.viewer != Viewer::Admin && !req.anonymous_registrations {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "this instance does not accept registrations; ask its admin",
        ));
    }
    let Some(Value::Object(mut value)) = ctx.args.get("value").map(|v| v.as_value().clone()) else {
        return Err(ApiError::validation("value must be an AccountInput"));
    };
    let password = match value.shift_remove(&Name::new("password")) {
        Some(Value::String(p)) => p,
        _ => return Err(ApiError::validation("Account.password is required")),
    };
    if password.chars().count() < auth::MIN_PASSWORD {
        return Err(ApiError::validation(format!(
            "Account.password must have at least {} characters",
            auth::MIN_PASSWORD
        )));
    }
    if password.len() > 1024 {
        return Err(ApiError::validation("Account.password is longer than 1024 bytes"));
    }
    // The account owns itself: its id is chosen here so `createdBy` can be set to it.
    let id = ulid::Ulid::new().to_string();
    value
        .insert(Name::new("hypi"), Value::Object([(Name::new("id"), Value::String(id.clone()))].into_iter().collect()));
    let values = Value::Object([(Name::new(ACCOUNT), Value::List(vec![Value::Object(value)]))].into_iter().collect());
    let mut objects = plan_upsert(&engine.model, &values, engine.limits.write_limits())?;
    let Some(obj) = objects.pop() else {
        return Err(ApiError::validation("value must be an AccountInput"));
    };
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let wctx = WriteCtx {
        model: &engine.model,
        app: &engine.app,
        instance: &req.instance,
        caller: Some(&id),
        viewer: &Viewer::Admin,
        now: now(),
    };
    let record = store_create(&engine.store, &wctx, &obj, &hash).await?;
    serde_json::to_value(record).map_err(ApiError::internal)
}
