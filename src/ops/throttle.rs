//! Guards of the credential checks, shared by the whole process: each check costs an
//! argon2id hash (19 MiB of memory and tens of milliseconds of a core), so
//!
//! - at most `hash_concurrency` hashes run at once; a check that cannot get a slot within
//!   `hash_wait_ms` is answered RATE_LIMITED instead of queueing without bound;
//! - after `login_failures` failed logins of one account (or `4 ×` that many from one client
//!   address), each further attempt must wait, the wait doubling with every failure up to
//!   `login_backoff_max_ms`; a success clears the account's count. The attempt is refused
//!   before any hash is computed.
//!
//! One [`Guards`] serves a whole server process (every instance and release). The failure
//! counts are per node (a cluster of n nodes allows n times the attempts) and bounded in
//! number; they are forgotten after the longest wait has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Most failure records kept; past it the oldest are dropped.
const MAX_RECORDS: usize = 100_000;

/// A slot for one password hash.
pub struct HashSlot(#[allow(dead_code)] OwnedSemaphorePermit);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// No attempt before this.
    next: Instant,
    last: Instant,
}

/// The hashing slots and the failed-login records of one server.
#[derive(Debug)]
pub struct Guards {
    /// The threads that compute hashes, one per slot, each with its memory allocated once (at its first hash).
    pub hasher: crate::auth::Hasher,
    slots: Arc<Semaphore>,
    records: Mutex<HashMap<(String, String), Record>>,
}

impl Guards {
    pub fn new(limits: &Limits) -> Self {
        let n = limits.hash_concurrency.max(1);
        Guards {
            hasher: crate::auth::Hasher::new(n),
            slots: Arc::new(Semaphore::new(n)),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Wait (briefly) for a hashing slot.
    pub async fn hash_slot(&self, limits: &Limits) -> ApiResult<HashSlot> {
        let wait = Duration::from_millis(limits.hash_wait_ms);
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(HashSlot(p)),
            _ => Err(ApiError::new(ErrorCode::RateLimited, "too many credential checks at once; retry shortly")
                .retry_after(1)),
        }
    }
}

/// The keys one attempt counts against: the account (`instance`, folded name) and, when
/// known, the client address.
fn keys(instance: &str, who: &str, client: Option<IpAddr>) -> Vec<((String, String), u32)> {
    let mut k = vec![((instance.to_string(), format!("account:{}", crate::plan::write::fold(who))), 1)];
    if let Some(ip) = client {
        k.push(((instance.to_string(), format!("address:{ip}")), 4));
    }
    k
}

impl Guards {
    /// May this attempt go ahead? RATE_LIMITED with the wait otherwise.
    pub fn check(&self, instance: &str, who: &str, client: Option<IpAddr>) -> ApiResult<()> {
        let now = Instant::now();
        let recs = self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, _) in keys(instance, who, client) {
            if let Some(r) = recs.get(&key) {
                if r.next > now {
                    let secs = (r.next - now).as_secs_f64().ceil() as u64;
                    return Err(ApiError::new(
                        ErrorCode::RateLimited,
                        format!("too many failed logins; retry in {} s", secs.max(1)),
                    )
                    .retry_after(secs.max(1)));
                }
            }
        }
        Ok(())
    }

    /// Record the outcome of an attempt.
    pub fn record(&self, limits: &Limits, instance: &str, who: &str, client: Option<IpAddr>, ok: bool) {
        let now = Instant::now();
        let max = Duration::from_millis(limits.login_backoff_max_ms);
        let mut recs = self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, factor) in keys(instance, who, client) {
            if ok {
                if factor == 1 {
                    recs.remove(&key);
                }
                continue;
            }
            let r = recs.entry(key).or_insert(Record { failures: 0, next: now, last: now });
            // A record older than the longest wait starts over.
            if now.duration_since(r.last) > max {
                r.failures = 0;
            }
            r.failures += 1;
            r.last = now;
            let allowed = limits.login_failures.saturating_mul(factor);
            if r.failures >= allowed {
                let doublings = (r.failures - allowed).min(30);
                let wait = Duration::from_secs(1u64 << doublings).min(max);
                r.next = now + wait;
            }
        }
        if recs.len() > MAX_RECORDS {
            let horizon = now.checked_sub(max).unwrap_or(now);
            recs.retain(|_, r| r.last > horizon);
            if recs.len() > MAX_RECORDS {
                // Still too many: drop the oldest half.
                let mut lasts: Vec<Instant> = recs.values().map(|r| r.last).collect();
                lasts.sort();
                let cut = lasts[lasts.len() / 2];
                recs.retain(|_, r| r.last > cut);
            }
        }
    }
}
