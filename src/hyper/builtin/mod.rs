//! The built-in hyper services: every port implemented over arcbase's own database (SQLite or
//! PostgreSQL, through `store`, statements from `sql::hyper`), storage objects as files in a
//! directory, queue delivery by a background task. Transactional with each other and with
//! nothing else to run.

pub mod atomic;
pub mod cache;
pub mod data;
pub mod queue;
pub mod search;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::{HyperLimits, HyperResult, Scope, Service, Services, StoreName};
use crate::sql::hyper as sql;
use crate::store::{tx_fetch, Store, Tx};

/// A store row.
#[derive(Debug, Clone)]
pub(crate) struct StoreRow {
    pub id: i64,
    pub config: Value,
    pub target: Option<String>,
}

fn decode_row(r: &[crate::value::SqlValue]) -> StoreRow {
    StoreRow {
        id: r[0].as_i64().unwrap_or_default(),
        config: r[1].as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null),
        target: r[2].as_str().map(str::to_string),
    }
}

/// What every built-in service works with.
#[derive(Clone)]
pub(crate) struct Base {
    pub store: Store,
    pub limits: HyperLimits,
}

impl Base {
    pub fn dialect(&self) -> crate::sql::Dialect {
        self.store.dialect()
    }

    /// The caller's store of `service` named `name`.
    pub async fn row(&self, scope: &Scope, service: Service, name: &StoreName) -> HyperResult<Option<StoreRow>> {
        let rows =
            self.store.fetch_rows(&sql::store_row(self.dialect(), &scope.instance, service, name.as_str())).await?;
        Ok(rows.first().map(|r| decode_row(r)))
    }

    /// [`Base::row`], or 404 naming the store.
    pub async fn existing(&self, scope: &Scope, service: Service, name: &StoreName) -> HyperResult<StoreRow> {
        self.row(scope, service, name).await?.ok_or_else(|| missing(service, name))
    }

    /// The store row, read in `tx`.
    pub async fn row_in(
        &self,
        tx: &mut Tx,
        scope: &Scope,
        service: Service,
        name: &StoreName,
    ) -> HyperResult<Option<StoreRow>> {
        let rows = tx_fetch(tx, &sql::store_row(self.dialect(), &scope.instance, service, name.as_str())).await?;
        Ok(rows.first().map(|r| decode_row(r)))
    }

    /// Create the store in `tx` unless it exists; its id when it was created.
    pub async fn insert(
        &self,
        tx: &mut Tx,
        scope: &Scope,
        service: Service,
        name: &StoreName,
        config: &Value,
    ) -> HyperResult<Option<i64>> {
        let now = crate::plan::write::now();
        let rows =
            tx_fetch(tx, &sql::insert_store(self.dialect(), &scope.instance, service, name.as_str(), config, &now))
                .await?;
        Ok(rows.first().and_then(|r| r[0].as_i64()))
    }

    /// The store row in `tx`, created (with `config`) when missing; and whether it was.
    pub async fn ensure(
        &self,
        tx: &mut Tx,
        scope: &Scope,
        service: Service,
        name: &StoreName,
        config: &Value,
    ) -> HyperResult<(StoreRow, bool)> {
        if let Some(row) = self.row_in(tx, scope, service, name).await? {
            return Ok((row, false));
        }
        let created = self.insert(tx, scope, service, name, config).await?;
        // Another request may have created it between the two statements (PostgreSQL).
        let row = self.row_in(tx, scope, service, name).await?.ok_or_else(|| missing(service, name))?;
        Ok((row, created.is_some()))
    }

    /// Create a store: 409 when it exists. For the stores that need nothing but their row.
    pub async fn create_plain(&self, scope: &Scope, service: Service, name: &StoreName) -> HyperResult<()> {
        let mut tx = self.store.begin_write().await?;
        if self.insert(&mut tx, scope, service, name, &Value::Object(Default::default())).await?.is_none() {
            return Err(super::HyperError::conflict(format!("the {} '{name}' exists", service.noun())));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The order in which a write of several rows of one table takes their locks: by key, stable
/// (so the writes of one key keep their order). Two such writes over overlapping keys then lock
/// them in the same order and cannot deadlock each other on PostgreSQL; a write in the caller's
/// order could, and one of them would fail.
pub(crate) fn lock_order<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(&items[a]).cmp(key(&items[b])));
    order
}

/// 404 for a missing store.
pub(crate) fn missing(service: Service, name: &StoreName) -> super::HyperError {
    super::HyperError::not_found(format!("no {} named '{name}'", service.noun()))
}

/// Parse a JSON text the store wrote (a failure is the server's).
pub(crate) fn parse(text: Option<&str>) -> HyperResult<Value> {
    serde_json::from_str(text.unwrap_or("null")).map_err(super::HyperError::internal)
}

/// The built-in services over `store`, objects under `storage_dir`.
pub struct Builtin {
    pub services: Services,
    pub queue: Arc<queue::Queue>,
    pub storage: Arc<storage::Storage>,
    pub cache: Arc<cache::Cache>,
    pub(crate) base: Base,
}

impl Builtin {
    pub fn new(store: Store, limits: HyperLimits, storage_dir: PathBuf, allow_private_targets: bool) -> Self {
        let base = Base { store, limits };
        let cache = Arc::new(cache::Cache { base: base.clone() });
        let storage = Arc::new(storage::Storage::new(base.clone(), storage_dir));
        let queue = Arc::new(queue::Queue::new(base.clone(), allow_private_targets));
        let services = Services {
            data: Arc::new(data::Data { base: base.clone() }),
            cache: cache.clone(),
            search: Arc::new(search::Search { base: base.clone() }),
            storage: storage.clone(),
            queue: queue.clone(),
            limits,
        };
        Builtin { services, queue, storage, cache, base }
    }

    /// Start the background work: queue delivery, the cache sweeper, the storage sweeper.
    pub fn start(&self, tasks: &crate::tasks::Supervisor) {
        let q = self.queue.clone();
        tasks.spawn("hyper-queue", move |sd| async move { q.run(sd).await });
        let c = self.cache.clone();
        tasks.spawn("hyper-cache-sweep", move |sd| async move { c.sweep_loop(sd).await });
        let s = self.storage.clone();
        tasks.spawn("hyper-storage-sweep", move |sd| async move { s.sweep_loop(sd).await });
    }
}
