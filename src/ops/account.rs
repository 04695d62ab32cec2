//! `login`, `loginByEmail` and `createAccount`. A failed login is an [`AccessToken`] with
//! `error_code`/`error_msg` (the same for an unknown user and a wrong password, and taking the
//! same time), never an error.

use serde_json::Value as Json;

use super::upsert::{write_object, HypiRecord, WriteCtx};
use super::{Caller, Engine};
use crate::access::Viewer;
use crate::auth;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::ACCOUNT;
use crate::plan::write::plan_upsert;
use crate::sql::account::AccountRenderer;
use crate::store::tx_execute;
use crate::value::SqlValue;

/// `errorCode` of every failed login.
pub const FAILED: &str = "INVALID_LOGIN";
const FAILED_MSG: &str = "invalid username, email or password";

/// `login(username, password)` or `loginByEmail(email, password)`.
#[derive(Debug, Clone)]
pub struct LoginArgs {
    pub by_email: bool,
    /// The username or the email address.
    pub who: String,
    pub password: String,
}

/// What a login answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessToken {
    #[serde(rename = "sessionToken")]
    pub session_token: Option<String>,
    /// Epoch seconds.
    #[serde(rename = "sessionExpires")]
    pub session_expires: Option<i64>,
    #[serde(rename = "errorCode")]
    pub error_code: Option<String>,
    #[serde(rename = "errorMsg")]
    pub error_msg: Option<String>,
}

fn accounts<'a>(engine: &'a Engine) -> ApiResult<AccountRenderer<'a>> {
    let Some(account_type) = engine.model.account_type() else {
        return Err(ApiError::internal("the model has no account type"));
    };
    Ok(AccountRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect(), account_type })
}

pub async fn login(engine: &Engine, caller: &Caller, args: &LoginArgs) -> ApiResult<AccessToken> {
    let limits = &engine.limits;
    caller.guards.check(&caller.instance, &args.who, caller.client)?;
    let r = accounts(engine)?;
    let sql = if args.by_email {
        r.by_email(&caller.instance, &crate::plan::write::fold(&args.who))
    } else {
        r.by_username(&caller.instance, &args.who)
    };
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
    let password = args.password.clone();
    let slot = caller.guards.hash_slot(limits).await?;
    let ok = caller.guards.hasher.verify(password, hash).await.map_err(ApiError::internal)?;
    drop(slot);
    caller.guards.record(limits, &caller.instance, &args.who, caller.client, ok && found.is_some());
    match (ok, found) {
        (true, Some((id, _))) => {
            let (token, exp) = auth::issue(&caller.jwt_secret, &id, &caller.instance).map_err(ApiError::internal)?;
            Ok(AccessToken {
                session_token: Some(token),
                session_expires: Some(exp),
                error_code: None,
                error_msg: None,
            })
        }
        _ => Ok(AccessToken {
            session_token: None,
            session_expires: None,
            error_code: Some(FAILED.into()),
            error_msg: Some(FAILED_MSG.into()),
        }),
    }
}

/// `createAccount(value: AccountInput!)`: `value` holds the account's fields and `password`.
#[derive(Debug, Clone)]
pub struct CreateAccountArgs {
    pub value: Json,
}

pub async fn create_account(engine: &Engine, caller: &Caller, args: &CreateAccountArgs) -> ApiResult<HypiRecord> {
    if caller.viewer != Viewer::Admin && !caller.anonymous_registrations {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "this instance does not accept registrations; ask its admin",
        ));
    }
    let Json::Object(mut value) = args.value.clone() else {
        return Err(ApiError::validation("value must be an AccountInput"));
    };
    let password = match value.shift_remove("password") {
        Some(Json::String(p)) => p,
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
    value.insert("hypi".into(), serde_json::json!({ "id": id }));
    let values = serde_json::json!({ ACCOUNT: [Json::Object(value)] });
    let mut objects = plan_upsert(&engine.model, &values, engine.limits.write_limits())?;
    let Some(obj) = objects.pop() else {
        return Err(ApiError::validation("value must be an AccountInput"));
    };
    let slot = caller.guards.hash_slot(&engine.limits).await?;
    let hash = caller.guards.hasher.hash(password).await.map_err(ApiError::internal)?;
    drop(slot);
    let r = accounts(engine)?;
    // Written as the admin (nobody may see an account before it exists), created by itself.
    let admin = Viewer::Admin;
    let ctx = WriteCtx { caller: Some(&id), viewer: &admin, ..WriteCtx::new(engine, caller) };
    let w = ctx.renderer();
    let mut tx = engine.store.begin_write().await?;
    let record = write_object(&mut tx, &ctx, &w, &obj, false).await?;
    tx_execute(&mut tx, &r.set_password(&caller.instance, &record.id, &hash)).await?;
    crate::ops::commit::commit(engine, caller, &ctx, tx).await?;
    Ok(record)
}

/// Why a session token was refused.
#[derive(Debug)]
pub enum TokenRefused {
    /// Not a valid token of this instance, or its account is gone (the reason is for the
    /// log only).
    Invalid(String),
    /// The account could not be looked up.
    Failed(ApiError),
}

/// The viewer a session token stands for on `instance`: a live account of it.
pub async fn viewer_for_token(
    engine: &Engine,
    jwt_secret: &[u8],
    instance: &str,
    token: &str,
) -> Result<Viewer, TokenRefused> {
    let claims = auth::verify(jwt_secret, token, instance).map_err(TokenRefused::Invalid)?;
    let r = accounts(engine).map_err(TokenRefused::Failed)?;
    match engine.store.fetch_rows(&r.exists(instance, &claims.sub)).await {
        Ok(rows) if !rows.is_empty() => Ok(Viewer::Account(claims.sub)),
        Ok(_) => Err(TokenRefused::Invalid("the account does not exist".into())),
        Err(e) => Err(TokenRefused::Failed(e.into())),
    }
}
