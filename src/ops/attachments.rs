//! `@hyper(attachments: true)`: files per object, their bytes in the storage service (the
//! target's: built in, or the remote hyper server) under `<Type>/<id>/<name>`, their metadata
//! in `arcbase_attachments` (which the GraphQL field `attachments` reads in the object's own
//! statement).
//!
//! Uploading or removing a file needs write access to the object, reading needs read access
//! (the same rules as `upsert` and `get`). Deleting an object marks its files gone in the
//! delete's transaction; the bridge then removes their bytes (`hyper::bridge`). A trashed
//! object keeps its files (untrash brings them back) but cannot take new ones.

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::hyper::storage::{ByteStream, Object, StorageService};
use crate::hyper::{HyperError, Scope};
use crate::sql::hyper::attachments as asql;
use crate::sql::write::WriteRenderer;
use crate::store::{tx_execute, tx_fetch};
use crate::value::SqlValue;

use super::{Caller, Engine};

/// Files listed per object at most (the GraphQL field and the listing).
pub const MAX_LISTED: u32 = 100;

/// One file of an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub name: String,
    pub size: i64,
    #[serde(rename = "contentType")]
    pub content_type: String,
    /// Where to download it: `/rest/v1/<Type>/<id>/attachments/<name>` (segments encoded).
    pub url: String,
}

/// Which object's file.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub type_idx: usize,
    pub id: String,
    pub name: String,
}

/// The download path of a file.
pub fn url_of(type_name: &str, id: &str, name: &str) -> String {
    let enc = crate::hyper::remote::encode_segment;
    let name: Vec<String> = name.split('/').map(enc).collect();
    format!("/rest/v1/{}/{}/attachments/{}", enc(type_name), enc(id), name.join("/"))
}

fn storage_path(type_name: &str, id: &str, name: &str) -> String {
    format!("{type_name}/{id}/{name}")
}

fn from_hyper(e: HyperError) -> ApiError {
    match e.status {
        404 => ApiError::not_found(e.msg),
        413 => ApiError::limit(e.msg),
        400 | 422 => ApiError::validation(e.msg),
        _ => ApiError::new(ErrorCode::HyperUnavailable, format!("the storage service failed: {} {}", e.status, e.msg)),
    }
}

fn check(engine: &Engine, f: &FileRef) -> ApiResult<()> {
    let ty = &engine.model.types[f.type_idx];
    if !ty.hyper.as_ref().is_some_and(|h| h.attachments) {
        return Err(ApiError::not_found(format!("{} has no attachments (declare @hyper(attachments: true))", ty.name)));
    }
    crate::hyper::storage::check_name(&f.name).map_err(from_hyper)?;
    Ok(())
}

fn missing(engine: &Engine, type_idx: usize, id: &str) -> ApiError {
    ApiError::not_found(format!("{} '{id}' does not exist", engine.model.types[type_idx].name))
}

fn writer<'a>(engine: &'a Engine, caller: &'a Caller) -> WriteRenderer<'a> {
    WriteRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect(), viewer: &caller.viewer }
}

fn bucket(engine: &Engine) -> ApiResult<crate::hyper::StoreName> {
    crate::hyper::bridge::store_name(engine).map_err(|e| ApiError::internal(e.msg))
}

/// Is the object there, untrashed, and may the caller read (or change) it?
async fn visible(engine: &Engine, caller: &Caller, type_idx: usize, id: &str, write: bool) -> ApiResult<bool> {
    let rows = engine.store.fetch_rows(&writer(engine, caller).exists(type_idx, &caller.instance, id, write)).await?;
    Ok(rows.first().is_some_and(|r| r.first() == Some(&SqlValue::Null)))
}

/// Store a file (replacing one of the same name): the bytes first, then the metadata, in a
/// transaction that holds the object so it cannot be deleted meanwhile.
pub async fn put(
    engine: &Engine,
    caller: &Caller,
    storage: &dyn StorageService,
    f: &FileRef,
    body: ByteStream,
) -> ApiResult<Attachment> {
    check(engine, f)?;
    if !visible(engine, caller, f.type_idx, &f.id, true).await? {
        return Err(missing(engine, f.type_idx, &f.id));
    }
    let ty = &engine.model.types[f.type_idx];
    let scope = Scope { instance: caller.instance.clone() };
    let path = storage_path(&ty.name, &f.id, &f.name);
    let info = storage.put(&scope, &bucket(engine)?, &path, body).await.map_err(from_hyper)?;
    let a = Attachment {
        name: f.name.clone(),
        size: info.size as i64,
        content_type: crate::hyper::storage::content_type(&f.name),
        url: url_of(&ty.name, &f.id, &f.name),
    };
    let d = engine.store.dialect();
    let mut tx = engine.store.begin_write().await?;
    let rows = tx_fetch(&mut tx, &writer(engine, caller).exists_held(f.type_idx, &caller.instance, &f.id)).await?;
    if !rows.first().is_some_and(|r| r.first() == Some(&SqlValue::Null)) {
        drop(tx);
        let _ = storage.remove(&scope, &bucket(engine)?, &path).await;
        return Err(missing(engine, f.type_idx, &f.id));
    }
    let now = super::now();
    let meta = asql::put(d, &caller.instance, &ty.name, &f.id, &f.name, a.size, &a.content_type, &a.url, &now);
    tx_execute(&mut tx, &meta).await?;
    tx.commit().await?;
    Ok(a)
}

/// Read a file.
pub async fn get(engine: &Engine, caller: &Caller, storage: &dyn StorageService, f: &FileRef) -> ApiResult<Object> {
    check(engine, f)?;
    if !visible(engine, caller, f.type_idx, &f.id, false).await? {
        return Err(missing(engine, f.type_idx, &f.id));
    }
    let ty = &engine.model.types[f.type_idx];
    let d = engine.store.dialect();
    if engine.store.fetch_rows(&asql::get(d, &caller.instance, &ty.name, &f.id, &f.name)).await?.is_empty() {
        return Err(ApiError::not_found(format!("{} '{}' has no attachment '{}'", ty.name, f.id, f.name)));
    }
    let scope = Scope { instance: caller.instance.clone() };
    storage.get(&scope, &bucket(engine)?, &storage_path(&ty.name, &f.id, &f.name)).await.map_err(from_hyper)
}

/// Remove a file: marked gone, then its bytes removed (a failure there leaves it to the
/// bridge, which retries).
pub async fn remove(engine: &Engine, caller: &Caller, storage: &dyn StorageService, f: &FileRef) -> ApiResult<()> {
    check(engine, f)?;
    if !visible(engine, caller, f.type_idx, &f.id, true).await? {
        return Err(missing(engine, f.type_idx, &f.id));
    }
    let ty = &engine.model.types[f.type_idx];
    let d = engine.store.dialect();
    let mut tx = engine.store.begin_write().await?;
    let n = tx_execute(&mut tx, &asql::mark_gone(d, &caller.instance, &ty.name, &f.id, &f.name)).await?;
    tx.commit().await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("{} '{}' has no attachment '{}'", ty.name, f.id, f.name)));
    }
    let scope = Scope { instance: caller.instance.clone() };
    match storage.remove(&scope, &bucket(engine)?, &storage_path(&ty.name, &f.id, &f.name)).await {
        Ok(()) => {}
        Err(e) if e.status == 404 => {}
        Err(e) => {
            tracing::warn!("removing an attachment's bytes failed ({} {}); the bridge will retry", e.status, e.msg);
            return Ok(());
        }
    }
    engine.store.execute(&asql::forget(d, &caller.instance, &ty.name, &f.id, &f.name)).await?;
    Ok(())
}

/// The files of an object, by name (at most [`MAX_LISTED`]).
pub async fn list(engine: &Engine, caller: &Caller, type_idx: usize, id: &str) -> ApiResult<Vec<Attachment>> {
    let f = FileRef { type_idx, id: id.to_string(), name: "x".into() };
    check(engine, &f)?;
    if !visible(engine, caller, type_idx, id, false).await? {
        return Err(missing(engine, type_idx, id));
    }
    let ty = &engine.model.types[type_idx];
    let rows = engine
        .store
        .fetch_rows(&asql::list(engine.store.dialect(), &caller.instance, &ty.name, id, MAX_LISTED))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let s = |i: usize| r.get(i).and_then(SqlValue::as_str).unwrap_or_default().to_string();
            Attachment {
                name: s(0),
                size: r.get(1).and_then(SqlValue::as_i64).unwrap_or(0),
                content_type: s(2),
                url: s(3),
            }
        })
        .collect())
}
