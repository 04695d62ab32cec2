//! The built-in cache service: values in `hyper_cache`, expiry checked on every read, expired
//! rows swept in the background.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{missing, parse, Base};
use crate::hyper::cache::{CacheService, Pattern};
use crate::hyper::{now_ms, HyperError, HyperResult, Scope, Service, StoreName};
use crate::sql::hyper::{self as sql, cache as csql};
use crate::store::tx_execute;

/// How often the sweeper looks for expired entries, and how many it removes per statement.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const SWEEP_BATCH: u32 = 1_000;

pub struct Cache {
    pub(crate) base: Base,
}

impl Cache {
    fn expiry(ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|d| now_ms().saturating_add(d.as_millis().min(i64::MAX as u128) as i64))
    }

    /// Run `stmt` (an add or a set), creating the cache when it is missing; rows changed.
    async fn write(&self, scope: &Scope, cache: &StoreName, stmt: &crate::sql::Sql) -> HyperResult<u64> {
        let mut tx = self.base.store.begin_write().await?;
        let mut n = tx_execute(&mut tx, stmt).await?;
        if n == 0 {
            let (_, created) =
                self.base.ensure(&mut tx, scope, Service::Cache, cache, &Value::Object(Default::default())).await?;
            if created {
                n = tx_execute(&mut tx, stmt).await?;
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Remove expired entries until none are left; how many.
    pub async fn sweep(&self) -> HyperResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.base.store.begin_write().await?;
            let n = tx_execute(&mut tx, &csql::sweep(self.base.dialect(), now_ms(), SWEEP_BATCH)).await?;
            tx.commit().await?;
            total += n;
            if n < u64::from(SWEEP_BATCH) {
                return Ok(total);
            }
        }
    }

    pub async fn sweep_loop(&self, mut shutdown: crate::tasks::Shutdown) {
        // The first round after a while: start-up has its own `PRAGMA optimize`.
        if shutdown.sleep(SWEEP_EVERY).await {
            return;
        }
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired cache entries removed"),
                Err(e) => tracing::warn!(status = e.status, "cache sweep failed: {}", e.msg),
            }
            // The planner's statistics follow the documents as they grow (SQLite).
            if let Err(e) = self.base.store.refresh_statistics().await {
                tracing::warn!("statistics refresh failed: {e}");
            }
            if shutdown.sleep(SWEEP_EVERY).await {
                return;
            }
        }
    }
}

#[async_trait]
impl CacheService for Cache {
    async fn create(&self, scope: &Scope, cache: &StoreName) -> HyperResult<()> {
        self.base.create_plain(scope, Service::Cache, cache).await
    }

    async fn destroy(&self, scope: &Scope, cache: &StoreName) -> HyperResult<()> {
        let row = self.base.existing(scope, Service::Cache, cache).await?;
        self.base.store.execute(&sql::delete_store(self.base.dialect(), row.id)).await?;
        Ok(())
    }

    async fn add(
        &self,
        scope: &Scope,
        cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()> {
        crate::hyper::cache::check_key(key)?;
        let stmt = csql::add(
            self.base.dialect(),
            &scope.instance,
            cache.as_str(),
            key,
            &value.to_string(),
            Self::expiry(ttl),
            now_ms(),
        );
        if self.write(scope, cache, &stmt).await? == 0 {
            return Err(HyperError::conflict(format!("the key '{key}' exists")));
        }
        Ok(())
    }

    async fn get(&self, scope: &Scope, cache: &StoreName, key: &str) -> HyperResult<Value> {
        let stmt = csql::get(self.base.dialect(), &scope.instance, cache.as_str(), key, now_ms());
        match self.base.store.fetch_rows(&stmt).await?.first() {
            Some(r) => parse(r[0].as_str()),
            None => Err(HyperError::not_found(format!("no key '{key}'"))),
        }
    }

    async fn set(
        &self,
        scope: &Scope,
        cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()> {
        crate::hyper::cache::check_key(key)?;
        let stmt =
            csql::set(self.base.dialect(), &scope.instance, cache.as_str(), key, &value.to_string(), Self::expiry(ttl));
        self.write(scope, cache, &stmt).await?;
        Ok(())
    }

    async fn remove(&self, scope: &Scope, cache: &StoreName, key: &str) -> HyperResult<()> {
        let rows =
            self.base.store.execute(&csql::delete(self.base.dialect(), &scope.instance, cache.as_str(), key)).await?;
        let now = now_ms();
        match rows.first() {
            Some(r) if r[0].as_i64().is_none_or(|at| at > now) => Ok(()),
            _ => Err(HyperError::not_found(format!("no key '{key}'"))),
        }
    }

    async fn query(
        &self,
        scope: &Scope,
        cache: &StoreName,
        pattern: &Pattern,
        limit: u32,
    ) -> HyperResult<Vec<(String, Value)>> {
        let row = self.base.row(scope, Service::Cache, cache).await?.ok_or_else(|| missing(Service::Cache, cache))?;
        let stmt = csql::query(self.base.dialect(), row.id, pattern, limit, now_ms());
        let rows = self.base.store.fetch_rows_within(&stmt, self.base.limits.response_bytes).await?;
        rows.iter().map(|r| Ok((r[0].as_str().unwrap_or_default().to_string(), parse(r[1].as_str())?))).collect()
    }
}
