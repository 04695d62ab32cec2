//! The bounded, least-recently-used map behind the operation cache
//! ([`crate::graphql::compiled`]) and the persisted queries ([`crate::graphql::persisted`]), and
//! the [`Figures`] every cache of `GET /admin/caches` reports (the object cache,
//! [`crate::ops::read_cache`], adds its own counts to them): at most `max_entries` values and `max_bytes`
//! (each value charged the cost its owner gives), the least recently used evicted first, with
//! hit, miss and eviction counts. Either bound 0: nothing is kept.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hashlink::LruCache;
use serde::Serialize;

/// Sizes and counts, as `GET /admin/caches` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub enabled: bool,
    pub entries: usize,
    pub bytes: usize,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

struct Inner<K, V> {
    map: LruCache<K, (V, usize)>,
    bytes: usize,
}

pub(crate) struct Bounded<K, V> {
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Bounded {
            max_entries,
            max_bytes,
            inner: Mutex::new(Inner { map: LruCache::new_unbounded(), bytes: 0 }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value under `key` if `matches` accepts it (a hit moves it to the most recently used
    /// end); counted as a hit or a miss.
    pub(crate) fn get(&self, key: &K, matches: impl Fn(&V) -> bool) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let found = self.lock().map.get(key).filter(|(v, _)| matches(v)).map(|(v, _)| v.clone());
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keep `value` (replacing what `key` held), evicting the least recently used past the
    /// bounds; a value costing more than the whole byte budget is not kept.
    pub(crate) fn put(&self, key: K, value: V, cost: usize) {
        if !self.enabled() || cost > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, old)) = inner.map.insert(key, (value, cost)) {
            inner.bytes -= old;
        }
        inner.bytes += cost;
        while inner.map.len() > self.max_entries || inner.bytes > self.max_bytes {
            let Some((_, (_, s))) = inner.map.remove_lru() else { break };
            inner.bytes -= s;
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drop every value `keep` refuses.
    pub(crate) fn retain(&self, keep: impl Fn(&V) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<K> = inner.map.iter().filter(|(_, (v, _))| !keep(v)).map(|(k, _)| k.clone()).collect();
        for k in gone {
            if let Some((_, s)) = inner.map.remove(&k) {
                inner.bytes -= s;
            }
        }
    }

    pub(crate) fn figures(&self) -> Figures {
        let inner = self.lock();
        Figures {
            enabled: self.enabled(),
            entries: inner.map.len(),
            bytes: inner.bytes,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}
