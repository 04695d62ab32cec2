//! The bridge: the objects of every type with `@hyper(...)` follow into hyper's data and search
//! services, built in (the same database) or on a remote hyper server (`--hyper URL`).
//!
//! **The outbox is the change feed.** Every write already appends one row per changed object
//! to `arcbase_changes` in its own transaction, so the bridge keeps only a cursor per target
//! (`arcbase_hyper_sync.position`): nothing extra is written per mutation, a rolled-back
//! write leaves nothing to send, and positions are read in commit order
//! ([`crate::ops::changes::FeedReader`], which waits out PostgreSQL's late commits).
//!
//! **One node at a time per target**, under a lease (`locked_by`, `locked_until`, renewed each
//! round and taken over when it lapses), so any number of nodes can run the worker; the
//! position only moves forward, and only for the lease holder.
//!
//! **A round**: read up to [`BATCH`] changes after the position, keep the last change per
//! object (last write wins), read those objects' current state in one statement per type
//! (what is missing or trashed is removed), send the data documents in one `_bulk` and each
//! search document as hyper-api.md says (remove, then add), then move the position past the
//! batch. Idempotent: a batch resent after a crash writes the same documents again.
//!
//! **Failures**: network errors, timeouts, 5xx and 429 keep the position and are retried with
//! exponential backoff and jitter capped at 10 s (honouring `Retry-After`); 401/403 pause the target
//! (a configuration error: the reason shows in `arcbase hyper status` and the log; retried
//! every minute); any other 4xx for one object records it as dead (`arcbase_hyper_dead`, with
//! the reason) and the batch moves on; `arcbase hyper retry` sends dead objects again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::cache::CacheService;
use super::data::{BulkOp, DataService};
use super::queue::QueueService;
use super::search::{IndexConfig, SearchService};
use super::{HyperError, Scope, StoreName};
use crate::feed::ChangeOp;
use crate::model::{Base, HyperMode, HyperService, HyperSpec, ObjectType};
use crate::ops::{Caller, Engine};
use crate::plan::read::{HypiField, Item, ObjectSelection};
use crate::sql::hyper::sync as ssql;
use crate::store::Store;

/// Changes read per round.
pub const BATCH: u64 = 500;
/// Objects read per statement.
const READ_CHUNK: usize = 200;
/// The lease a node takes on a target, renewed every round (a node that dies holds the
/// target this long at most).
const LEASE_MS: i64 = 10_000;
/// How long a 401/403 pauses a target.
const PAUSE_MS: i64 = 60_000;
const IDLE: Duration = Duration::from_millis(250);
/// The longest pause between retries: a remote back from an outage is caught up with soon.
const MAX_BACKOFF_MS: u64 = 10_000;

/// Where the services are: the built-in ones or a remote hyper server.
#[derive(Clone)]
pub struct Target {
    /// `builtin`, or the remote's URL without credentials.
    pub name: String,
    pub data: Arc<dyn DataService>,
    pub search: Arc<dyn SearchService>,
    pub cache: Arc<dyn CacheService>,
    pub queue: Arc<dyn QueueService>,
    pub storage: Arc<dyn super::storage::StorageService>,
    /// The built-in services, when they are the target (ATOMIC then writes them in the
    /// write's own transaction).
    pub builtin: Option<Arc<super::builtin::Builtin>>,
    /// How long an ATOMIC write waits for a remote target.
    pub atomic_timeout: Duration,
    /// (instance, store) pairs provisioned on the target by this process.
    pub provisioned: Arc<Mutex<HashSet<(String, String)>>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Target {
    /// The built-in services as a target.
    pub fn builtin(b: &Arc<super::builtin::Builtin>) -> Target {
        Target {
            name: "builtin".into(),
            data: b.services.data.clone(),
            search: b.services.search.clone(),
            cache: b.services.cache.clone(),
            queue: b.services.queue.clone(),
            storage: b.services.storage.clone(),
            builtin: Some(b.clone()),
            atomic_timeout: Duration::from_secs(5),
            provisioned: Default::default(),
        }
    }

    /// A remote hyper server as a target.
    pub fn remote(remote: super::remote::Remote, atomic_timeout: Duration, object_bytes: u64) -> Target {
        use super::remote::{RemoteCache, RemoteData, RemoteQueue, RemoteSearch, RemoteStorage};
        Target {
            name: remote.describe(),
            data: Arc::new(RemoteData(remote.clone())),
            search: Arc::new(RemoteSearch(remote.clone())),
            cache: Arc::new(RemoteCache(remote.clone())),
            queue: Arc::new(RemoteQueue(remote.clone())),
            storage: Arc::new(RemoteStorage(remote, object_bytes)),
            builtin: None,
            atomic_timeout,
            provisioned: Default::default(),
        }
    }
}

/// The engine serving an instance (from the registry), or `None` when it serves none.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Arc<Engine>> + Send + Sync>;

/// Whether any instance serves a release with a `@hyper` type (else the bridge stays idle and
/// touches nothing; it catches up from its position once one does).
pub type Active = Arc<dyn Fn() -> bool + Send + Sync>;

/// Why a round stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Try the same batch again after a pause (`Retry-After` seconds when the remote said).
    Retry(String, Option<u64>),
    /// The remote refused our credentials: pause the target.
    Pause(String),
    /// Our own database failed.
    Local(String),
}

enum Class {
    Retry,
    Pause,
    Dead,
}

fn classify(e: &HyperError) -> Class {
    match e.status {
        401 | 403 => Class::Pause,
        429 | 408 => Class::Retry,
        s if (400..500).contains(&s) => Class::Dead,
        _ => Class::Retry,
    }
}

fn stop_for(e: &HyperError) -> Stop {
    match classify(e) {
        Class::Pause => Stop::Pause(format!("{} {}", e.status, e.msg)),
        _ => Stop::Retry(format!("{} {}", e.status, e.msg), e.retry_after),
    }
}

/// The bridge of one target.
pub struct Bridge {
    store: Store,
    target: Target,
    lookup: Lookup,
    active: Active,
    /// The server's credential guards, for the admin caller the bridge reads objects as (made
    /// once: they own the hashing threads).
    guards: Arc<crate::ops::throttle::Guards>,
    /// The sync row of the target exists.
    ensured: std::sync::atomic::AtomicBool,
    node: String,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub changes: usize,
    pub sent: usize,
    pub dead: usize,
}

impl Bridge {
    pub fn new(
        store: Store,
        target: Target,
        lookup: Lookup,
        active: Active,
        guards: Arc<crate::ops::throttle::Guards>,
    ) -> Arc<Bridge> {
        Arc::new(Bridge {
            store,
            target,
            lookup,
            active,
            guards,
            ensured: std::sync::atomic::AtomicBool::new(false),
            node: ulid::Ulid::new().to_string(),
        })
    }

    /// Run rounds until shutdown.
    pub fn start(self: &Arc<Self>, tasks: &crate::tasks::Supervisor) {
        let me = self.clone();
        tasks.spawn("hyper bridge", move |mut shutdown| async move {
            let mut reader = crate::ops::changes::FeedReader::after(0);
            let mut failures: u32 = 0;
            loop {
                let pause = match me.round(&mut reader).await {
                    Ok(r) if r.changes > 0 => {
                        failures = 0;
                        Duration::ZERO
                    }
                    Ok(_) => {
                        failures = 0;
                        IDLE
                    }
                    Err(stop) => {
                        failures = failures.saturating_add(1);
                        me.failed(&stop, failures).await
                    }
                };
                if shutdown.sleep(pause.max(Duration::from_millis(10))).await {
                    let _ = me.store.execute(&ssql::release(me.store.dialect(), &me.target.name, &me.node)).await;
                    return;
                }
            }
        });
    }

    /// Record a failed round; how long to wait before the next.
    async fn failed(&self, stop: &Stop, failures: u32) -> Duration {
        let d = self.store.dialect();
        let now = crate::plan::write::now();
        let (msg, pause_until, wait_ms) = match stop {
            Stop::Pause(m) => {
                tracing::error!(target = %self.target.name, "hyper bridge paused: the target refused our credentials: {m}");
                (m.clone(), Some(super::now_ms() + PAUSE_MS), PAUSE_MS as u64)
            }
            Stop::Retry(m, after) => {
                let base = 500u64.saturating_mul(1 << failures.min(10)).min(MAX_BACKOFF_MS);
                let jitter = u64::from(ulid::Ulid::new().random() as u16) % (base / 2 + 1);
                let wait = after.map_or(base / 2 + jitter, |s| s.saturating_mul(1000).min(MAX_BACKOFF_MS));
                tracing::warn!(target = %self.target.name, retry_in_ms = wait, "hyper bridge: {m}");
                (m.clone(), None, wait)
            }
            Stop::Local(m) => {
                tracing::error!(target = %self.target.name, "hyper bridge: {m}");
                (m.clone(), None, 1_000)
            }
        };
        let _ = self.store.execute(&ssql::failed(d, &self.target.name, &msg, pause_until, &now)).await;
        Duration::from_millis(wait_ms)
    }

    /// One round (see the module documentation). `reader` is this node's place in the feed,
    /// reset to the stored position whenever the lease is (re)taken elsewhere.
    async fn round(&self, reader: &mut crate::ops::changes::FeedReader) -> Result<Round, Stop> {
        if !(self.active)() {
            return Ok(Round::default());
        }
        let d = self.store.dialect();
        if !self.ensured.load(std::sync::atomic::Ordering::Acquire) {
            let now = crate::plan::write::now();
            self.store
                .execute(&ssql::ensure(d, &self.target.name, 0, &now))
                .await
                .map_err(|e| Stop::Local(e.to_string()))?;
            self.ensured.store(true, std::sync::atomic::Ordering::Release);
        }
        let now_ms = super::now_ms();
        let rows = self
            .store
            .fetch_rows(&ssql::claim(d, &self.target.name, &self.node, now_ms, now_ms + LEASE_MS))
            .await
            .map_err(|e| Stop::Local(e.to_string()))?;
        let Some(position) = rows.first().and_then(|r| r.first()).and_then(|v| v.as_i64()) else {
            return Ok(Round::default());
        };
        if reader.position != position {
            *reader = crate::ops::changes::FeedReader::after(position);
        }
        let mut next = reader.clone();
        let changes = next.next(&self.store, BATCH).await.map_err(|e| Stop::Local(e.message))?;
        let mut round = Round { changes: changes.len(), ..Round::default() };
        // The last change per object, grouped by instance and type.
        let mut groups: BTreeMap<(String, String), HashMap<String, ChangeOp>> = BTreeMap::new();
        for c in &changes {
            groups.entry((c.instance.clone(), c.type_name.clone())).or_default().insert(c.id.clone(), c.op);
        }
        for ((instance, type_name), objects) in &groups {
            let ids: Vec<String> = objects.keys().cloned().collect();
            let r = self.sync_objects(instance, type_name, &ids).await?;
            round.sent += r.sent;
            round.dead += r.dead;
        }
        self.notify(&changes, &mut round).await?;
        self.counts(&groups).await?;
        round.sent += self.retry_dead(&mut round).await?;
        round.sent += self.sweep_attachments().await?;
        round.sent += self.resync_some(&mut round).await?;
        if next.position != position || round.sent > 0 {
            let now = crate::plan::write::now();
            self.store
                .execute(&ssql::advance(d, &self.target.name, &self.node, next.position, round.sent as i64, &now))
                .await
                .map_err(|e| Stop::Local(e.to_string()))?;
        }
        *reader = next;
        Ok(round)
    }

    /// Send dead objects marked for another try (`arcbase hyper retry`).
    async fn retry_dead(&self, round: &mut Round) -> Result<usize, Stop> {
        let d = self.store.dialect();
        let rows = self
            .store
            .fetch_rows(&ssql::retries(d, &self.target.name, 200))
            .await
            .map_err(|e| Stop::Local(e.to_string()))?;
        let groups = by_type(rows);
        let mut sent = 0;
        for ((instance, type_name), ids) in groups {
            let r = self.sync_objects(&instance, &type_name, &ids).await?;
            sent += r.sent;
            round.dead += r.dead;
            // What was sent is no longer dead; what failed again was recorded anew (retry = 0).
            let sent_ids: Vec<String> = ids.into_iter().filter(|id| !r.dead_ids.contains(id)).collect();
            if !sent_ids.is_empty() {
                let undead = ssql::undead(d, &self.target.name, &instance, &type_name, &sent_ids);
                self.store.execute(&undead).await.map_err(|e| Stop::Local(e.to_string()))?;
            }
        }
        Ok(sent)
    }

    /// Remove the bytes of attachments marked gone (their object or the file was deleted), a
    /// batch a round; then forget them.
    async fn sweep_attachments(&self) -> Result<usize, Stop> {
        let d = self.store.dialect();
        let local = |e: crate::store::StoreError| Stop::Local(e.to_string());
        let rows = self.store.fetch_rows(&crate::sql::hyper::attachments::gone(d, 100)).await.map_err(local)?;
        let mut removed = 0;
        for r in rows {
            let s = |i: usize| r.get(i).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let (instance, type_name, id, name) = (s(0), s(1), s(2), s(3));
            let Some(engine) = (self.lookup)(&instance) else { continue };
            let scope = Scope { instance: instance.clone() };
            let bucket = store_name(&engine).map_err(|e| Stop::Local(e.msg))?;
            match self.target.storage.remove(&scope, &bucket, &format!("{type_name}/{id}/{name}")).await {
                Ok(()) => {}
                Err(e) if e.status == 404 => {}
                Err(e) => return Err(stop_for(&e)),
            }
            let forget = crate::sql::hyper::attachments::forget(d, &instance, &type_name, &id, &name);
            self.store.execute(&forget).await.map_err(local)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Send objects a resync queued (`arcbase hyper resync`), a batch a round.
    async fn resync_some(&self, round: &mut Round) -> Result<usize, Stop> {
        let d = self.store.dialect();
        let rows = self
            .store
            .fetch_rows(&ssql::resync_take(d, &self.target.name, READ_CHUNK as u32))
            .await
            .map_err(|e| Stop::Local(e.to_string()))?;
        let groups = by_type(rows);
        let mut sent = 0;
        for ((instance, type_name), ids) in groups {
            let r = self.sync_objects(&instance, &type_name, &ids).await?;
            sent += r.sent;
            round.dead += r.dead;
            let done = ssql::resync_done(d, &self.target.name, &instance, &type_name, &ids);
            self.store.execute(&done).await.map_err(|e| Stop::Local(e.to_string()))?;
        }
        Ok(sent)
    }

    /// Bring the target's copy of these objects to their current state (every service of the
    /// type but notify, which [`Bridge::notify`] sends per change).
    async fn sync_objects(&self, instance: &str, type_name: &str, ids: &[String]) -> Result<Synced, Stop> {
        let mut out = Synced::default();
        let Some(engine) = (self.lookup)(instance) else { return Ok(out) };
        let Some(type_idx) = engine.model.types.iter().position(|t| t.name == type_name) else { return Ok(out) };
        let ty = &engine.model.types[type_idx];
        let Some(spec) = &ty.hyper else { return Ok(out) };
        let scope = Scope { instance: instance.to_string() };
        let store = store_name(&engine).map_err(|e| Stop::Local(e.msg))?;
        provision(&self.target, &engine, &scope, &store).await?;
        let caller = admin_caller(instance, &self.guards);
        let mut current: HashMap<String, Value> = HashMap::new();
        for chunk in ids.chunks(READ_CHUNK) {
            let selection = mirror_selection(ty, type_idx);
            let docs = crate::ops::read::get_many(&engine, &caller, &selection, chunk)
                .await
                .map_err(|e| Stop::Local(e.message))?;
            for doc in docs {
                if let Some(id) = doc["hypi"]["id"].as_str() {
                    current.insert(id.to_string(), mirror_doc(ty, &doc));
                }
            }
        }
        let services: Vec<HyperService> = spec
            .services()
            .into_iter()
            .filter(|s| matches!(s, HyperService::Data | HyperService::Search | HyperService::Cache))
            .collect();
        let sent = send_objects(&self.target, &scope, &store, ty, &services, ids, &current).await?;
        out.sent = sent.sent;
        let now = crate::plan::write::now();
        for f in sent.refused {
            self.dead(&mut out, instance, type_name, &f.id, f.service.as_str(), f.status, &f.reason, &now).await?;
        }
        Ok(out)
    }

    /// Enqueue `{action, type, id, version, at, seq}` for every change of a `notify` type (not
    /// in ATOMIC mode: the mutation sent those), in feed order.
    async fn notify(&self, changes: &[crate::feed::Change], round: &mut Round) -> Result<(), Stop> {
        let now = crate::plan::write::now();
        for c in changes {
            let Some(engine) = (self.lookup)(&c.instance) else { continue };
            let Some((_, ty)) = engine.model.type_by_name(&c.type_name) else { continue };
            let Some(spec) = &ty.hyper else { continue };
            if !spec.notify || spec.mode_of(HyperService::Notify) == HyperMode::Atomic {
                continue;
            }
            let scope = Scope { instance: c.instance.clone() };
            let store = store_name(&engine).map_err(|e| Stop::Local(e.msg))?;
            match self.target.queue.enqueue(&scope, &store, notice(c)).await {
                Ok(_) => round.sent += 1,
                Err(e) if e.status == 404 => {
                    return Err(Stop::Pause(format!(
                        "notify: the queue '{}' does not exist on {}: create it with PUT /queue/{} {{\"target\": ...}}",
                        store.as_str(),
                        self.target.name,
                        store.as_str()
                    )))
                }
                Err(e) => match classify(&e) {
                    Class::Dead => {
                        let mut out = Synced::default();
                        self.dead(&mut out, &c.instance, &c.type_name, &c.id, "notify", e.status, &e.msg, &now).await?;
                        round.dead += out.dead;
                    }
                    _ => return Err(stop_for(&e)),
                },
            }
        }
        Ok(())
    }

    /// Write the counters of the `count` types changed in this batch to the cache service
    /// (key `<type>~count`, the number as its value).
    async fn counts(&self, changed: &BTreeMap<(String, String), HashMap<String, ChangeOp>>) -> Result<(), Stop> {
        let d = self.store.dialect();
        for (instance, type_name) in changed.keys() {
            let Some(engine) = (self.lookup)(instance) else { continue };
            if !engine.model.type_by_name(type_name).is_some_and(|(_, t)| t.hyper.as_ref().is_some_and(|h| h.count)) {
                continue;
            }
            let rows = self
                .store
                .fetch_rows(&crate::sql::hyper::counts::read(d, instance, type_name))
                .await
                .map_err(|e| Stop::Local(e.to_string()))?;
            let Some(n) = rows.first().and_then(|r| r.first()).and_then(|v| v.as_i64()) else { continue };
            let scope = Scope { instance: instance.clone() };
            let store = store_name(&engine).map_err(|e| Stop::Local(e.msg))?;
            if let Err(e) = self.target.cache.set(&scope, &store, &count_key(type_name), json!(n), None).await {
                return Err(stop_for(&e));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn dead(
        &self,
        out: &mut Synced,
        instance: &str,
        type_name: &str,
        id: &str,
        service: &str,
        status: u16,
        reason: &str,
        now: &str,
    ) -> Result<(), Stop> {
        tracing::warn!(target = %self.target.name, instance, type_name, id, service, status, "hyper bridge: refused: {reason}");
        let sql =
            ssql::dead(self.store.dialect(), &self.target.name, instance, type_name, id, service, status, reason, now);
        self.store.execute(&sql).await.map_err(|e| Stop::Local(e.to_string()))?;
        out.dead += 1;
        out.dead_ids.insert(id.to_string());
        Ok(())
    }
}

/// The search index configuration of an engine's app: every `@hyper` type's searched fields,
/// and their stored fields plus `type`.
pub(crate) fn index_config(engine: &Engine) -> Result<IndexConfig, HyperError> {
    let (fields, stored) = index_fields(engine);
    let path = |n: &String| super::data::FieldPath::parse(n);
    Ok(IndexConfig {
        fields: Some(fields.iter().map(path).collect::<Result<_, _>>()?),
        store_fields: Some(stored.iter().map(path).collect::<Result<_, _>>()?),
    })
}

/// Create the data store, the search index (when a type searches) and the cache (when a type
/// caches or counts) of `scope` on the target, once per process (201 and 409 are both fine).
pub(crate) async fn provision(target: &Target, engine: &Engine, scope: &Scope, store: &StoreName) -> Result<(), Stop> {
    let key = (scope.instance.clone(), store.as_str().to_string());
    if target.provisioned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&key) {
        return Ok(());
    }
    let ok = |r: Result<(), HyperError>| match r {
        Ok(()) => Ok(()),
        Err(e) if e.status == 409 => Ok(()),
        Err(e) => Err(stop_for(&e)),
    };
    ok(target.data.create(scope, store).await)?;
    let config = index_config(engine).map_err(|e| Stop::Local(e.msg))?;
    if config.fields.as_ref().is_some_and(|f| !f.is_empty()) {
        ok(target.search.create(scope, store, &config).await)?;
    }
    let specs = || engine.model.types.iter().filter_map(|t| t.hyper.as_ref());
    if specs().any(|h| h.cache || h.count) {
        ok(target.cache.create(scope, store).await)?;
    }
    target.provisioned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key);
    Ok(())
}

#[derive(Default)]
struct Synced {
    sent: usize,
    dead: usize,
    dead_ids: HashSet<String>,
}

/// The store (data store, search index, cache and queue name) of an engine's app on a target.
pub(crate) fn store_name(engine: &Engine) -> Result<StoreName, HyperError> {
    StoreName::parse(&engine.app).or_else(|_| StoreName::parse("arcbase"))
}

/// The cache key of an object: `<type>-<id>`, lower-cased as hyper's keys must be (`None` when
/// the id has characters a key cannot hold).
pub fn cache_key(type_name: &str, id: &str) -> Option<String> {
    let key = format!("{}-{}", type_name.to_ascii_lowercase(), id.to_ascii_lowercase());
    super::cache::check_key(&key).ok().map(|_| key)
}

/// The cache key of a type's counter: `<type>~count`.
pub fn count_key(type_name: &str) -> String {
    format!("{}~count", type_name.to_ascii_lowercase())
}

/// The queue job of a change: `{action, type, id, version, at, seq}` (`seq`, its place in the
/// change feed, tells a consumer a job it has seen: delivery is at least once).
pub fn notice(c: &crate::feed::Change) -> Value {
    json!({ "action": c.op.as_str(), "type": c.type_name, "id": c.id, "version": c.version, "at": c.at, "seq": c.seq })
}

/// An object a service refused (4xx other than 401/403/429/408).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub id: String,
    pub service: HyperService,
    pub status: u16,
    pub reason: String,
}

/// What [`send_objects`] did.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub sent: usize,
    pub refused: Vec<Refused>,
}

/// Bring the copies of `ids` on `target` to `current` (an object missing from it is removed)
/// in `services` (data, search, cache; others are ignored): data in `_bulk` batches of 200,
/// search as remove-then-add per object, cache per object. The bridge and ATOMIC writes both
/// send through here.
pub(crate) async fn send_objects(
    target: &Target,
    scope: &Scope,
    store: &StoreName,
    ty: &ObjectType,
    services: &[HyperService],
    ids: &[String],
    current: &HashMap<String, Value>,
) -> Result<Sent, Stop> {
    let mut out = Sent::default();
    let Some(spec) = &ty.hyper else { return Ok(out) };
    let refuse = |out: &mut Sent, id: &str, service: HyperService, status: u16, reason: &str| {
        out.refused.push(Refused { id: id.to_string(), service, status, reason: reason.to_string() })
    };
    if services.contains(&HyperService::Data) && spec.data {
        let ops: Vec<BulkOp> = ids
            .iter()
            .map(|id| match current.get(id) {
                Some(doc) => BulkOp::Put { id: id.clone(), doc: doc.clone() },
                None => BulkOp::Delete { id: id.clone() },
            })
            .collect();
        for batch in ops.chunks(200) {
            match target.data.bulk(scope, store, batch.to_vec()).await {
                Ok(results) => {
                    for (op, r) in batch.iter().zip(results.iter().map(Some).chain(std::iter::repeat(None))) {
                        let (id, deleting) = match op {
                            BulkOp::Put { id, .. } => (id, false),
                            BulkOp::Delete { id } => (id, true),
                        };
                        match r {
                            Some(r) if r.ok => out.sent += 1,
                            // Removing what the target does not have is done.
                            Some(r) if deleting && r.msg.as_deref().is_some_and(|m| m.contains("not found")) => {
                                out.sent += 1
                            }
                            Some(r) => {
                                let reason = r.msg.clone().unwrap_or_else(|| "refused".into());
                                refuse(&mut out, id, HyperService::Data, 422, &reason);
                            }
                            None => return Err(Stop::Retry("the data service answered fewer results".into(), None)),
                        }
                    }
                }
                Err(e) => match classify(&e) {
                    Class::Dead => {
                        for op in batch {
                            let id = match op {
                                BulkOp::Put { id, .. } | BulkOp::Delete { id } => id,
                            };
                            refuse(&mut out, id, HyperService::Data, e.status, &e.msg);
                        }
                    }
                    _ => return Err(stop_for(&e)),
                },
            }
        }
    }
    if services.contains(&HyperService::Search) && !spec.search.is_empty() {
        for id in ids {
            let r = match current.get(id) {
                Some(doc) => target.search.update(scope, store, id, search_doc(ty, spec, doc)).await,
                None => match target.search.remove(scope, store, id).await {
                    Err(e) if e.status == 404 => Ok(()),
                    other => other,
                },
            };
            match r {
                Ok(()) => out.sent += 1,
                Err(e) => match classify(&e) {
                    Class::Dead => refuse(&mut out, id, HyperService::Search, e.status, &e.msg),
                    _ => return Err(stop_for(&e)),
                },
            }
        }
    }
    if services.contains(&HyperService::Cache) && spec.cache {
        for id in ids {
            let Some(key) = cache_key(&ty.name, id) else {
                refuse(&mut out, id, HyperService::Cache, 422, "the id has characters a cache key cannot hold");
                continue;
            };
            let r = match current.get(id) {
                Some(doc) => target.cache.set(scope, store, &key, doc.clone(), None).await,
                None => match target.cache.remove(scope, store, &key).await {
                    Err(e) if e.status == 404 => Ok(()),
                    other => other,
                },
            };
            match r {
                Ok(()) => out.sent += 1,
                Err(e) => match classify(&e) {
                    Class::Dead => refuse(&mut out, id, HyperService::Cache, e.status, &e.msg),
                    _ => return Err(stop_for(&e)),
                },
            }
        }
    }
    Ok(out)
}

/// Rows of `instance_id, type_name, object_id` grouped by instance and type.
fn by_type(rows: Vec<Vec<crate::value::SqlValue>>) -> BTreeMap<(String, String), Vec<String>> {
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rows {
        let s = |i: usize| r.get(i).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        groups.entry((s(0), s(1))).or_default().push(s(2));
    }
    groups
}

fn admin_caller(instance: &str, guards: &Arc<crate::ops::throttle::Guards>) -> Caller {
    Caller {
        instance: instance.to_string(),
        viewer: crate::access::Viewer::Admin,
        anonymous_registrations: false,
        jwt_secret: Arc::from(Vec::new().into_boxed_slice()),
        client: None,
        guards: guards.clone(),
        hyper: None,
        pending: Default::default(),
        fresh: false,
    }
}

/// What a mirror reads of an object: its scalar (and enum) fields, the ids its one-to-one
/// references point at, and its id and times.
pub fn mirror_selection(ty: &ObjectType, type_idx: usize) -> ObjectSelection {
    let mut sel = ObjectSelection::new(type_idx);
    sel.add_hypi(&[HypiField::Id, HypiField::Created, HypiField::Updated, HypiField::Version]);
    for (i, f) in ty.fields.iter().enumerate() {
        match (&f.base, f.list) {
            (Base::Scalar(_) | Base::Enum(_), false) => sel.add_column(i),
            (Base::Object(target), false) => {
                let mut sub = ObjectSelection::new(*target);
                sub.add_hypi(&[HypiField::Id]);
                sel.items.push(Item::Ref { field: i, key: f.name.clone(), sub });
            }
            _ => {}
        }
    }
    sel
}

/// The hyper document of an object read with [`mirror_selection`]: `_id`, `type`, its
/// scalar fields, each reference as the referenced id, and `created`/`updated`.
pub fn mirror_doc(ty: &ObjectType, doc: &Value) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), doc["hypi"]["id"].clone());
    // The id also as `id`, unless the type has a field of that name: hyper's pouchdb adapter
    // takes a bulk document's id from `id`.
    if ty.field("id").is_none() {
        m.insert("id".into(), doc["hypi"]["id"].clone());
    }
    m.insert("type".into(), Value::String(ty.name.clone()));
    for f in &ty.fields {
        match (&f.base, f.list) {
            (Base::Scalar(_) | Base::Enum(_), false) => {
                if let Some(v) = doc.get(&f.name) {
                    m.insert(f.name.clone(), v.clone());
                }
            }
            (Base::Object(_), false) => {
                let key = crate::plan::read::ref_key(&f.name);
                m.insert(f.name.clone(), doc[key.as_str()]["hypi"]["id"].clone());
            }
            _ => {}
        }
    }
    m.insert("created".into(), doc["hypi"]["created"].clone());
    m.insert("updated".into(), doc["hypi"]["updated"].clone());
    m.insert("_v".into(), doc["hypi"]["version"].clone());
    Value::Object(m)
}

/// The search document of a mirrored object: its searched and stored fields and its type.
pub fn search_doc(ty: &ObjectType, spec: &HyperSpec, doc: &Value) -> Value {
    let mut m = Map::new();
    // minisearch (hyper's search adapter) indexes a document only with an `id`.
    if ty.field("id").is_none() {
        m.insert("id".into(), doc["_id"].clone());
    }
    m.insert("type".into(), json!(ty.name));
    for &i in spec.search.iter().chain(&spec.store) {
        let name = &ty.fields[i].name;
        if let Some(v) = doc.get(name) {
            m.insert(name.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// The fields of an app's search index: every type's searched fields; stored: their stored
/// fields and `type`.
pub fn index_fields(engine: &Engine) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut stored = vec!["type".to_string()];
    for ty in &engine.model.types {
        let Some(spec) = &ty.hyper else { continue };
        for &i in &spec.search {
            if !fields.contains(&ty.fields[i].name) {
                fields.push(ty.fields[i].name.clone());
            }
        }
        for &i in &spec.store {
            if !stored.contains(&ty.fields[i].name) {
                stored.push(ty.fields[i].name.clone());
            }
        }
    }
    (fields, stored)
}

/// Where each target stands: `arcbase hyper status` and `GET /admin/hyper`.
pub async fn status(store: &Store) -> Result<Value, crate::store::StoreError> {
    let d = store.dialect();
    let head = crate::ops::changes::head(store).await.unwrap_or(0);
    let rows = store.fetch_rows(&ssql::status(d)).await?;
    let targets: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s = |i: usize| r.get(i).and_then(|v| v.as_str()).map(str::to_string);
            let n = |i: usize| r.get(i).and_then(|v| v.as_i64()).unwrap_or(0);
            json!({
                "target": s(0),
                "position": n(1),
                "head": head,
                "behind": (head - n(1)).max(0),
                "heldBy": s(2),
                "paused": s(4),
                "lastError": s(5),
                "sent": n(6),
                "updatedAt": s(7),
                "dead": n(8),
                "resyncPending": n(9),
            })
        })
        .collect();
    let dead: Vec<Value> = store
        .fetch_rows(&ssql::dead_list(d, 20))
        .await?
        .iter()
        .map(|r| {
            let s = |i: usize| r.get(i).and_then(|v| v.as_str()).map(str::to_string);
            json!({ "target": s(0), "instance": s(1), "type": s(2), "id": s(3), "service": s(4),
                    "status": r.get(5).and_then(|v| v.as_i64()), "reason": s(6), "at": s(7) })
        })
        .collect();
    Ok(json!({ "targets": targets, "dead": dead }))
}

/// Send every dead object again, and lift pauses: `arcbase hyper retry`. The number marked.
pub async fn retry(store: &Store) -> Result<u64, crate::store::StoreError> {
    let d = store.dialect();
    let mut tx = store.begin_write().await?;
    crate::store::tx_execute(&mut tx, &ssql::unpause(d)).await?;
    let n = crate::store::tx_execute(&mut tx, &ssql::retry_all(d, None)).await?;
    tx.commit().await?;
    Ok(n)
}

/// `arcbase hyper resync [--type T]`: walk every object of the `@hyper` types (or of `T`) of
/// every instance in id order and queue it to be sent again to every target the bridge has
/// synced to; the running servers send the queue (`resyncPending` in `status`). The walk keeps
/// a checkpoint per target, instance and type, so an interrupted resync continues where it
/// stopped. `progress` is told each page. Objects deleted outright are not in the walk: their
/// documents stay on the target.
pub async fn resync(
    store: &Store,
    type_filter: Option<&str>,
    progress: &mut dyn FnMut(&str, &str, u64),
) -> Result<Value, String> {
    const PAGE: u32 = 500;
    let d = store.dialect();
    let err = |e: crate::store::StoreError| e.to_string();
    let targets: Vec<String> = store
        .fetch_rows(&ssql::targets(d))
        .await
        .map_err(err)?
        .iter()
        .filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    if targets.is_empty() {
        return Err(
            "no hyper bridge has run on this database yet: start `arcbase serve` (with its --hyper, if any) first"
                .into(),
        );
    }
    let mut summary = Vec::new();
    let mut matched = false;
    for inst in store.instance_rows().await.map_err(err)? {
        let Some(release) = &inst.release else { continue };
        let Some(row) = store.release(&inst.app, release).await.map_err(err)? else { continue };
        let model =
            crate::model::parse_sdl(&row.sdl).map_err(|e| format!("release {}/{}: {}", inst.app, release, e.len()))?;
        for ty in model.types.iter().filter(|t| t.hyper.is_some()) {
            if type_filter.is_some_and(|t| t != ty.name) {
                continue;
            }
            matched = true;
            let table = crate::sql::names::object_table(&inst.app, ty);
            for target in &targets {
                let start = store.fetch_rows(&ssql::checkpoint(d, target, &inst.id, &ty.name)).await.map_err(err)?;
                let mut after =
                    start.first().and_then(|r| r.first()).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                let mut queued: u64 = 0;
                loop {
                    let rows =
                        store.fetch_rows(&ssql::ids_after(d, &table, &inst.id, &after, PAGE)).await.map_err(err)?;
                    let ids: Vec<String> =
                        rows.iter().filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string)).collect();
                    let Some(last) = ids.last().cloned() else { break };
                    let mut tx = store.begin_write().await.map_err(err)?;
                    crate::store::tx_execute(&mut tx, &ssql::resync_add(d, target, &inst.id, &ty.name, &ids))
                        .await
                        .map_err(err)?;
                    crate::store::tx_execute(&mut tx, &ssql::set_checkpoint(d, target, &inst.id, &ty.name, &last))
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    queued += ids.len() as u64;
                    progress(&ty.name, &inst.domain, queued);
                    after = last;
                }
                store.execute(&ssql::clear_checkpoint(d, target, &inst.id, &ty.name)).await.map_err(err)?;
                summary.push(json!({ "target": target, "instance": inst.domain, "type": ty.name, "queued": queued }));
            }
        }
    }
    if let Some(t) = type_filter {
        if !matched {
            return Err(format!("no instance serves a type '{t}' with @hyper"));
        }
    }
    Ok(json!({ "resync": summary }))
}
