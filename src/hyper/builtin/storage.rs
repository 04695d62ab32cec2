//! The built-in storage service: object bytes as files in the storage directory, their
//! names and sizes in `hyper_objects`.
//!
//! Layout: `<dir>/objects/<2 chars>/<file>` where `<file>` is a fresh ULID (the object's
//! name never becomes a path), `<dir>/tmp/<file>.part` while an upload arrives. An upload is
//! written to its temporary file, flushed to disk, renamed into `objects/` (atomic), and
//! only then recorded in the database: a crash at any point leaves either the old object
//! or the new one visible, never a part of one. What a crash can leave behind (a temporary
//! file, a file that was renamed but never recorded, a replaced file not yet deleted) is
//! removed by the sweeper once it is an hour old. On PostgreSQL with several nodes, the
//! storage directory must be shared by all of them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{missing, Base};
use crate::hyper::storage::{content_type, ByteStream, Object, ObjectInfo, StorageService};
use crate::hyper::{HyperError, HyperResult, Scope, Service, StoreName};
use crate::sql::hyper::{self as sql, storage as osql};
use crate::store::{tx_execute, tx_fetch};

/// Files the sweeper leaves alone: younger than this (an upload in progress, a file between
/// its rename and its row).
const SWEEP_AGE: Duration = Duration::from_secs(3600);
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Bytes per chunk of a download.
const CHUNK: usize = 64 << 10;

pub struct Storage {
    pub(crate) base: Base,
    dir: PathBuf,
}

fn io_error(what: &str, e: std::io::Error) -> HyperError {
    HyperError::internal(format!("storage {what}: {e}"))
}

impl Storage {
    pub(crate) fn new(base: Base, dir: PathBuf) -> Self {
        Storage { base, dir }
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn object_path(&self, file: &str) -> PathBuf {
        self.dir.join("objects").join(file.get(..2).unwrap_or("00")).join(file)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Write `body` to a new temporary file, at most `limit` bytes; `(path, size)`.
    async fn receive(&self, mut body: ByteStream, file: &str) -> HyperResult<(PathBuf, u64)> {
        let tmp_dir = self.tmp_dir();
        tokio::fs::create_dir_all(&tmp_dir).await.map_err(|e| io_error("directory", e))?;
        let path = tmp_dir.join(format!("{file}.part"));
        let mut out = tokio::fs::File::create(&path).await.map_err(|e| io_error("create", e))?;
        let limit = self.base.limits.object_bytes;
        let mut size: u64 = 0;
        let result: HyperResult<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| match e.kind() {
                    std::io::ErrorKind::TimedOut => HyperError::new(408, format!("the upload stalled: {e}")),
                    _ => HyperError::bad_request(format!("the upload did not arrive whole: {e}")),
                })?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(HyperError::too_large(format!("an object is at most {limit} bytes")));
                }
                out.write_all(&chunk).await.map_err(|e| io_error("write", e))?;
            }
            out.flush().await.map_err(|e| io_error("write", e))?;
            out.sync_all().await.map_err(|e| io_error("sync", e))?;
            Ok(())
        }
        .await;
        drop(out);
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Ok((path, size))
    }

    /// Move a complete temporary file to its place (atomic), made durable.
    async fn publish(&self, tmp: &Path, file: &str) -> HyperResult<PathBuf> {
        let dest = self.object_path(file);
        let parent = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
        tokio::fs::create_dir_all(&parent).await.map_err(|e| io_error("directory", e))?;
        tokio::fs::rename(tmp, &dest).await.map_err(|e| io_error("rename", e))?;
        // The rename itself survives a crash once the directory is flushed.
        let dir = parent.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::File::open(dir).and_then(|d| d.sync_all())).await;
        Ok(dest)
    }

    async fn remove_file(&self, file: &str) {
        if let Err(e) = tokio::fs::remove_file(self.object_path(file)).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file, "cannot remove a stored object's file: {e}");
            }
        }
    }

    /// Remove what a crash or a replaced object left behind; how many files.
    pub async fn sweep(&self) -> HyperResult<usize> {
        let mut removed = 0;
        let old = |m: &std::fs::Metadata| {
            m.modified().ok().and_then(|t| SystemTime::now().duration_since(t).ok()).is_some_and(|a| a > SWEEP_AGE)
        };
        if let Ok(mut rd) = tokio::fs::read_dir(self.tmp_dir()).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                if e.metadata().await.is_ok_and(|m| old(&m)) && tokio::fs::remove_file(e.path()).await.is_ok() {
                    removed += 1;
                }
            }
        }
        let Ok(mut shards) = tokio::fs::read_dir(self.dir.join("objects")).await else { return Ok(removed) };
        while let Ok(Some(shard)) = shards.next_entry().await {
            let Ok(mut files) = tokio::fs::read_dir(shard.path()).await else { continue };
            let mut candidates = Vec::new();
            while let Ok(Some(e)) = files.next_entry().await {
                if e.metadata().await.is_ok_and(|m| old(&m)) {
                    candidates.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            for batch in candidates.chunks(500) {
                let used: std::collections::HashSet<String> = self
                    .base
                    .store
                    .fetch_rows(&osql::used(self.base.dialect(), batch))
                    .await?
                    .iter()
                    .filter_map(|r| r[0].as_str().map(str::to_string))
                    .collect();
                for f in batch.iter().filter(|f| !used.contains(*f)) {
                    self.remove_file(f).await;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub async fn sweep_loop(&self, mut shutdown: crate::tasks::Shutdown) {
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "storage: removed files no object uses"),
                Err(e) => tracing::warn!("storage sweep failed: {}", e.msg),
            }
            if shutdown.sleep(SWEEP_EVERY).await {
                return;
            }
        }
    }
}

#[async_trait]
impl StorageService for Storage {
    async fn create(&self, scope: &Scope, bucket: &StoreName) -> HyperResult<()> {
        self.base.create_plain(scope, Service::Storage, bucket).await
    }

    async fn destroy(&self, scope: &Scope, bucket: &StoreName) -> HyperResult<()> {
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        let row = self
            .base
            .row_in(&mut tx, scope, Service::Storage, bucket)
            .await?
            .ok_or_else(|| missing(Service::Storage, bucket))?;
        let files: Vec<String> = tx_fetch(&mut tx, &osql::files(d, row.id))
            .await?
            .iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect();
        tx_execute(&mut tx, &sql::delete_store(d, row.id)).await?;
        tx.commit().await?;
        for f in files {
            self.remove_file(&f).await;
        }
        Ok(())
    }

    async fn put(&self, scope: &Scope, bucket: &StoreName, name: &str, body: ByteStream) -> HyperResult<ObjectInfo> {
        crate::hyper::storage::check_name(name)?;
        let file = ulid::Ulid::new().to_string().to_ascii_lowercase();
        let (tmp, size) = self.receive(body, &file).await?;
        let dest = match self.publish(&tmp, &file).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let d = self.base.dialect();
        let recorded: HyperResult<Option<String>> = async {
            let mut tx = self.base.store.begin_write().await?;
            let (row, _) =
                self.base.ensure(&mut tx, scope, Service::Storage, bucket, &Value::Object(Default::default())).await?;
            let old = tx_fetch(&mut tx, &osql::file_of(d, row.id, name))
                .await?
                .first()
                .and_then(|r| r[0].as_str().map(str::to_string));
            tx_execute(&mut tx, &osql::upsert(d, row.id, name, &file, size, &crate::plan::write::now())).await?;
            tx.commit().await?;
            Ok(old)
        }
        .await;
        match recorded {
            Ok(old) => {
                if let Some(old) = old {
                    self.remove_file(&old).await;
                }
                Ok(ObjectInfo { name: name.to_string(), size })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&dest).await;
                Err(e)
            }
        }
    }

    async fn get(&self, scope: &Scope, bucket: &StoreName, name: &str) -> HyperResult<Object> {
        let rows =
            self.base.store.fetch_rows(&osql::get(self.base.dialect(), &scope.instance, bucket.as_str(), name)).await?;
        let Some(r) = rows.first() else {
            return Err(HyperError::not_found(format!("no object named '{name}'")));
        };
        let file = r[0].as_str().unwrap_or_default().to_string();
        let size = r[1].as_i64().unwrap_or(0).max(0) as u64;
        let f = tokio::fs::File::open(self.object_path(&file)).await.map_err(|e| io_error("open", e))?;
        let body = futures_util::stream::unfold(Some(f), |f| async move {
            let mut f = f?;
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Object { size, content_type: content_type(name), body: Box::pin(body) })
    }

    async fn remove(&self, scope: &Scope, bucket: &StoreName, name: &str) -> HyperResult<()> {
        let rows =
            self.base.store.execute(&osql::delete(self.base.dialect(), &scope.instance, bucket.as_str(), name)).await?;
        let Some(file) = rows.first().and_then(|r| r[0].as_str().map(str::to_string)) else {
            return Err(HyperError::not_found(format!("no object named '{name}'")));
        };
        self.remove_file(&file).await;
        Ok(())
    }
}
