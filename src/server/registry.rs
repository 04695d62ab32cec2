//! The instances this node serves and the schema each runs, rebuilt from the database when
//! the registry changes (a release published, an instance created or upgraded, by this node
//! or any other) and swapped atomically: a request uses one consistent snapshot.
//!
//! Every release's GraphQL schema is built once and shared by the instances that run it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Limits;
use crate::graphql::Served;
use crate::ops::Engine;
use crate::store::tenancy::InstanceRow;
use crate::store::Store;
use crate::tenancy::{release_model, TenancyError};

/// How often a node looks for registry changes made elsewhere (the contract: within 2 s).
pub const POLL: Duration = Duration::from_millis(500);

/// One instance and what it runs.
pub struct Tenant {
    pub row: InstanceRow,
    pub served: Arc<Served>,
}

/// A snapshot of the registry.
#[derive(Default)]
pub struct Snapshot {
    pub version: i64,
    pub tenants: HashMap<String, Tenant>,
    built: HashMap<(String, String), Arc<Served>>,
}

pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    store: Store,
    limits: Limits,
    /// The object cache of this database, shared by every release's engine.
    pub read_cache: Arc<crate::ops::read_cache::ReadCache>,
    /// The node's compiled GraphQL operations (see `graphql::compiled`).
    pub operations: Arc<crate::graphql::compiled::OperationCache>,
    /// The node's planned ArcQL filters (see `plan::filter_cache`).
    pub filters: Arc<crate::plan::filter_cache::FilterCache>,
}

/// A distinct mark per release engine built in this process (see [`Engine::release_tag`]).
static RELEASE_TAGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Registry {
    /// `read_cache`: the object cache of the database (see `ops::read_cache`).
    pub async fn load(
        store: Store,
        limits: Limits,
        read_cache: Arc<crate::ops::read_cache::ReadCache>,
    ) -> Result<Registry, TenancyError> {
        let operations = Arc::new(crate::graphql::compiled::OperationCache::new(
            limits.operation_cache_entries,
            limits.operation_cache_bytes,
        ));
        let filters = Arc::new(crate::plan::filter_cache::FilterCache::new(
            limits.filter_cache_entries,
            limits.filter_cache_bytes,
        ));
        let r = Registry {
            current: RwLock::new(Arc::new(Snapshot { version: -1, ..Snapshot::default() })),
            store,
            limits,
            read_cache,
            operations,
            filters,
        };
        r.refresh().await?;
        Ok(r)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reload when the registry version moved; schemas of releases already built are reused.
    pub async fn refresh(&self) -> Result<(), TenancyError> {
        // Its own statement count: the poll every 500 ms is no request's statement (the
        // engines built below count on the store's).
        let version = self.store.with_own_count().registry_version().await?;
        let old = self.snapshot();
        if version == old.version {
            return Ok(());
        }
        let mut built = old.built.clone();
        let mut tenants = HashMap::new();
        for row in self.store.instance_rows().await? {
            let Some(release) = row.release.clone() else { continue };
            let key = (row.app.clone(), release.clone());
            let served = match built.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let Some(r) = self.store.release(&row.app, &release).await? else { continue };
                    let model = release_model(&r)?;
                    // An index an earlier arcbase made for this release and the model no longer
                    // has goes now, not at the next release (its own statement count, like the
                    // poll). Best effort: an index left in place costs writes, not answers, so
                    // a drop that fails (its lock wait bounded) is logged and serving goes on.
                    match self.store.with_own_count().drop_redundant_indexes(&row.app, &model).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(app = %row.app, dropped = n, "dropped redundant indexes"),
                        Err(e) => tracing::warn!(app = %row.app, "dropping redundant indexes failed: {e}"),
                    }
                    let engine = Arc::new(Engine {
                        model: Arc::new(model),
                        store: self.store.clone(),
                        app: row.app.clone(),
                        limits: self.limits.clone(),
                        read_cache: self.read_cache.clone(),
                        release_tag: RELEASE_TAGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        filters: self.filters.clone(),
                    });
                    let s = Arc::new(crate::graphql::serve(engine, self.operations.clone()).map_err(|e| {
                        TenancyError::Corrupt { app: row.app.clone(), name: release.clone(), why: e.to_string() }
                    })?);
                    built.insert(key, s.clone());
                    s
                }
            };
            // A release newly served to an instance counts its `@hyper(count)` types once,
            // before any write under it (and forgets the counts of types that stopped).
            let unchanged =
                old.tenants.get(&row.domain).is_some_and(|t| t.row.id == row.id && t.row.release == row.release);
            if !unchanged {
                let model = &served.engine.model;
                crate::ops::commit::recount(&self.store.with_own_count(), &row.app, &row.id, &release, model).await?;
            }
            tenants.insert(row.domain.clone(), Tenant { row, served });
        }
        // Compiled operations and planned filters of releases no instance runs any more can
        // never be used again.
        let live = tenants.values().map(|t| t.served.engine.release_tag).collect();
        self.operations.retain_releases(&live);
        self.filters.retain_releases(&live);
        let next = Arc::new(Snapshot { version, tenants, built });
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// Poll for changes until shutdown.
    pub fn watch(this: &Arc<Registry>, tasks: &crate::tasks::Supervisor) {
        let registry = this.clone();
        tasks.spawn("registry refresh", move |mut shutdown| async move {
            while !shutdown.sleep(POLL).await {
                if let Err(e) = registry.refresh().await {
                    tracing::warn!("registry refresh failed: {e}");
                }
            }
        });
    }
}
