//! The bounded, least-recently-used map behind the operation cache
//! ([`crate::graphql::compiled`]), the filter cache ([`crate::plan::filter_cache`]) and the
//! persisted queries ([`crate::graphql::persisted`]), and the [`Figures`] every cache of
//! `GET /admin/caches` reports (the object cache, [`crate::ops::read_cache`], adds its own
//! counts to them): at most `max_entries` values and `max_bytes` (each value charged the cost
//! its owner gives), the least recently used evicted first, with hit, miss and eviction counts.
//! Either bound 0: nothing is kept. A value costing more than `largest` is not kept, so that no
//! one value a client sends can push the others out.
//!
//! Caches whose keys are texts key the map by [`Bounded::hash`] of the key's parts (a
//! SipHash with a random key per map, so a lookup allocates nothing) and keep the parts in the
//! value to check on a hit: a collision is a miss, never a wrong value.

use std::hash::{BuildHasher, Hash};
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
    largest: usize,
    keys: std::collections::hash_map::RandomState,
    inner: Mutex<Inner<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    /// At most `max_entries` values and `max_bytes`; any one value at most the whole budget.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self::with_largest(max_entries, max_bytes, max_bytes)
    }

    /// Like [`Bounded::new`], keeping no value that costs more than `largest`.
    pub(crate) fn with_largest(max_entries: usize, max_bytes: usize, largest: usize) -> Self {
        Bounded {
            max_entries,
            max_bytes,
            largest: largest.min(max_bytes),
            keys: Default::default(),
            inner: Mutex::new(Inner { map: LruCache::new_unbounded(), bytes: 0 }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// A key for `parts` (see the module docs).
    pub(crate) fn hash(&self, parts: impl Hash) -> u64 {
        self.keys.hash_one(parts)
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
    /// bounds; a value costing more than `largest` is not kept.
    pub(crate) fn put(&self, key: K, value: V, cost: usize) {
        if !self.enabled() || cost > self.largest {
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
