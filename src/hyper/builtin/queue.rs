//! The built-in queue service: jobs as rows of `hyper_jobs`, delivered by a background task
//! of every node.
//!
//! A round takes up to [`BATCH`] due jobs (holding each for `queue_lease_ms`; on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so several nodes share the work and never take the same job),
//! posts them to their queues' targets at once, and records each outcome while it still
//! holds the job: delivered jobs are deleted, failed ones wait `2^attempts` seconds (±25%,
//! at most five minutes) or become ERROR after the last attempt. A node that dies
//! mid-delivery leaves its jobs to be taken again when the lease runs out, so delivery is at
//! least once; a job's id is in every delivery (`X-HYPER-JOB-ID`) for receivers that must
//! not act twice.
//!
//! Targets: with `ARCBASE_ADMIN_KEY` set, a target must resolve to public addresses only (a
//! tenant cannot make the server post into its own network) unless
//! `ARCBASE_QUEUE_PRIVATE_TARGETS=1`; development mode allows every address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{missing, parse, Base};
use crate::hyper::queue::{js_json, signature, JobInfo, JobStatus, QueueConfig, QueueService};
use crate::hyper::{now_ms, HyperError, HyperResult, Scope, Service, StoreName};
use crate::sql::hyper::{self as sql, queue as qsql};
use crate::store::tx_execute;

/// Jobs one round takes.
const BATCH: u32 = 16;
/// The pause between rounds when nothing was due (an enqueue on this node wakes it at once).
const IDLE: Duration = Duration::from_millis(500);
/// The longest pause between attempts.
const MAX_BACKOFF_MS: i64 = 300_000;

pub struct Queue {
    pub(crate) base: Base,
    pub(super) wake: tokio::sync::Notify,
    client: Option<reqwest::Client>,
    allow_private: bool,
}

/// Is `ip` an address on the public internet?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("'{host}' resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One job taken for delivery.
struct Taken {
    id: String,
    store_id: i64,
    job: String,
    attempts: u32,
}

impl Queue {
    pub(crate) fn new(base: Base, allow_private: bool) -> Self {
        static PROVIDER: std::sync::Once = std::sync::Once::new();
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(base.limits.queue_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arcbase/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = match builder.build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("queue delivery is off: cannot build the HTTP client: {e}");
                None
            }
        };
        Queue { base, wake: tokio::sync::Notify::new(), client, allow_private }
    }

    /// Deliver until shutdown.
    pub async fn run(&self, mut shutdown: crate::tasks::Shutdown) {
        loop {
            let taken = match self.round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(status = e.status, "queue round failed: {}", e.msg);
                    0
                }
            };
            if shutdown.is_set() {
                return;
            }
            if taken < BATCH as usize {
                tokio::select! {
                    () = self.wake.notified() => {}
                    stop = shutdown.sleep(IDLE) => if stop { return },
                }
            }
        }
    }

    /// Take the due jobs and deliver them; how many were taken.
    pub async fn round(&self) -> HyperResult<usize> {
        let Some(client) = &self.client else { return Ok(0) };
        let d = self.base.dialect();
        let now = now_ms();
        let lease = now + self.base.limits.queue_lease_ms as i64;
        let rows = self.base.store.execute(&qsql::claim(d, now, lease, BATCH)).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let taken: Vec<Taken> = rows
            .iter()
            .map(|r| Taken {
                id: r[0].as_str().unwrap_or_default().to_string(),
                store_id: r[1].as_i64().unwrap_or_default(),
                job: r[2].as_str().unwrap_or("null").to_string(),
                attempts: r[3].as_i64().unwrap_or(0).max(0) as u32,
            })
            .collect();
        let mut ids: Vec<i64> = taken.iter().map(|t| t.store_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let targets: std::collections::HashMap<i64, QueueConfig> = self
            .base
            .store
            .fetch_rows(&qsql::targets(d, &ids))
            .await?
            .iter()
            .map(|r| {
                let mut c = QueueConfig::from_stored(
                    &r[2].as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null),
                );
                c.target = r[1].as_str().map(str::to_string);
                (r[0].as_i64().unwrap_or_default(), c)
            })
            .collect();
        let deliveries = taken.iter().map(|t| {
            let config = targets.get(&t.store_id).cloned().unwrap_or_default();
            async move { (t, self.deliver(client, &config, t).await) }
        });
        let outcomes = futures_util::future::join_all(deliveries).await;
        for (t, outcome) in outcomes {
            let stmt = match outcome {
                Ok(()) => qsql::delivered(d, &t.id, lease),
                Err(why) => {
                    let next = now_ms() + backoff_ms(t.attempts);
                    tracing::info!(job = %t.id, attempt = t.attempts + 1, "queue delivery failed: {why}");
                    qsql::failed(d, &t.id, lease, &why, next, self.base.limits.queue_attempts)
                }
            };
            let mut tx = self.base.store.begin_write().await?;
            tx_execute(&mut tx, &stmt).await?;
            tx.commit().await?;
        }
        Ok(taken.len())
    }

    /// POST one job; the reason when it did not arrive.
    async fn deliver(&self, client: &reqwest::Client, config: &QueueConfig, t: &Taken) -> Result<(), String> {
        let target = config.target.as_deref().ok_or("the queue has no target")?;
        let url = reqwest::Url::parse(target).map_err(|e| format!("invalid target: {e}"))?;
        if !self.allow_private {
            if let Some(host) = url.host_str() {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = bare.parse::<IpAddr>() {
                    if !is_public(ip) {
                        return Err(format!("the target {host} is not a public address"));
                    }
                }
            }
        }
        let job: Value = serde_json::from_str(&t.job).map_err(|e| format!("stored job unreadable: {e}"))?;
        let body = js_json(&job);
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hyper-job-id", t.id.as_str())
            .body(body.clone());
        if let Some(secret) = &config.secret {
            req = req.header("x-hyper-signature", signature(secret, now_ms(), &body));
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the target answered HTTP {}", resp.status().as_u16())),
            Err(e) => {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                why.truncate(500);
                Err(why)
            }
        }
    }
}

/// The pause after `attempts` failed attempts: 2^attempts seconds, ±25%, at most 5 minutes.
fn backoff_ms(attempts: u32) -> i64 {
    let base = 1_000i64.saturating_mul(1i64 << attempts.min(20)).min(MAX_BACKOFF_MS);
    let mut r = [0u8; 2];
    argon2::password_hash::rand_core::RngCore::fill_bytes(&mut argon2::password_hash::rand_core::OsRng, &mut r);
    let jitter = (i64::from(u16::from_le_bytes(r)) * base / 2) / i64::from(u16::MAX) - base / 4;
    base + jitter
}

fn decode_job(r: &[crate::value::SqlValue]) -> HyperResult<JobInfo> {
    Ok(JobInfo {
        id: r[0].as_str().unwrap_or_default().to_string(),
        status: JobStatus::parse(r[1].as_str().unwrap_or("READY")).unwrap_or(JobStatus::Ready),
        job: parse(r[2].as_str())?,
        attempts: r[3].as_i64().unwrap_or(0).max(0) as u32,
        error: r[4].as_str().map(str::to_string),
        created_at: r[5].as_str().unwrap_or_default().to_string(),
    })
}

#[async_trait]
impl QueueService for Queue {
    async fn create(&self, scope: &Scope, queue: &StoreName, config: &QueueConfig) -> HyperResult<()> {
        let d = self.base.dialect();
        let stored = serde_json::json!({ "secret": config.secret });
        let mut tx = self.base.store.begin_write().await?;
        let (row, created) = self.base.ensure(&mut tx, scope, Service::Queue, queue, &stored).await?;
        if !created && row.target.is_some() {
            return Err(HyperError::conflict(format!("the queue '{queue}' exists")));
        }
        tx_execute(&mut tx, &sql::set_store_config(d, row.id, &stored, config.target.as_deref())).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    async fn destroy(&self, scope: &Scope, queue: &StoreName) -> HyperResult<()> {
        let row = self.base.existing(scope, Service::Queue, queue).await?;
        self.base.store.execute(&sql::delete_store(self.base.dialect(), row.id)).await?;
        Ok(())
    }

    async fn enqueue(&self, scope: &Scope, queue: &StoreName, job: Value) -> HyperResult<String> {
        match &job {
            Value::Object(m) if m.is_empty() => return Err(HyperError::bad_request("empty job")),
            Value::Object(_) => {}
            _ => return Err(HyperError::invalid("a job is a JSON object")),
        }
        // Monotonic, so jobs enqueued in the same millisecond keep their order.
        let id = crate::ops::upsert::new_id();
        let stmt = qsql::insert(
            self.base.dialect(),
            &scope.instance,
            queue.as_str(),
            &id,
            &job.to_string(),
            now_ms(),
            &crate::plan::write::now(),
        );
        let mut tx = self.base.store.begin_write().await?;
        if tx_execute(&mut tx, &stmt).await? == 0 {
            self.base.ensure(&mut tx, scope, Service::Queue, queue, &Value::Object(Default::default())).await?;
            tx_execute(&mut tx, &stmt).await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(id)
    }

    async fn list(&self, scope: &Scope, queue: &StoreName, status: JobStatus, limit: u32) -> HyperResult<Vec<JobInfo>> {
        let row = self.base.row(scope, Service::Queue, queue).await?.ok_or_else(|| missing(Service::Queue, queue))?;
        let rows = self
            .base
            .store
            .fetch_rows_within(&qsql::list(self.base.dialect(), row.id, status, limit), self.base.limits.response_bytes)
            .await?;
        rows.iter().map(|r| decode_job(r)).collect()
    }

    async fn cancel(&self, scope: &Scope, queue: &StoreName, id: &str) -> HyperResult<()> {
        let mut tx = self.base.store.begin_write().await?;
        let n = tx_execute(&mut tx, &qsql::delete(self.base.dialect(), &scope.instance, queue.as_str(), id)).await?;
        tx.commit().await?;
        if n == 0 {
            return Err(HyperError::not_found(format!("no job '{id}'")));
        }
        Ok(())
    }

    async fn retry(&self, scope: &Scope, queue: &StoreName, id: &str) -> HyperResult<()> {
        let mut tx = self.base.store.begin_write().await?;
        let n = tx_execute(&mut tx, &qsql::retry(self.base.dialect(), &scope.instance, queue.as_str(), id, now_ms()))
            .await?;
        tx.commit().await?;
        if n == 0 {
            return Err(HyperError::not_found(format!("no ERROR job '{id}'")));
        }
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for (attempts, low, high) in [(0u32, 750, 1250), (3, 6_000, 10_000), (30, 225_000, 375_000)] {
            let b = backoff_ms(attempts);
            assert!((low..=high).contains(&b), "{attempts}: {b}");
        }
    }
}
