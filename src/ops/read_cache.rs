//! The object cache: `get` of a `@hyper(cache: true)` type answered from the node's memory.
//!
//! What it holds: for one object (app, instance, type, id), the documents `get` produced for it,
//! each under what decided it: the release (its read plans), the selection, `includeTrashed`,
//! and whose read rule it passed (`None` when the caller may read every object of the type,
//! else the account it was restricted to). Only plain selections are kept, the object's own
//! columns and `hypi` fields: a document with references, lists or attachments depends on other
//! rows, so it is always read from the database.
//!
//! Never stale after the writer's acknowledgement: every write ends in
//! [`super::commit::commit`], which drops the changed objects' entries after the transaction
//! commits and before the write answers. A read that raced a write cannot put an older document
//! back: a read notes its shard's generation before its statement and stores its document only
//! if no write of that shard came between (a write moves the generation and drops the entries
//! under one lock). On SQLite this node is the database's only writer, so that is the whole
//! truth. On PostgreSQL several nodes write one database and a node's memory cannot know of the
//! others' writes without asking the database, which costs what the read costs: the cache is
//! off there and `get` reads the database (see README, "The hyper model").
//!
//! Bounded by entries and bytes (`ARCBASE_LIMIT_OBJECT_CACHE_ENTRIES`,
//! `ARCBASE_LIMIT_OBJECT_CACHE_BYTES`), evicting the least recently used object first. Figures
//! for `GET /admin/caches`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hashlink::LruCache;
use serde_json::Value as Json;

use crate::plan::read::{Item, ObjectSelection};

/// Generations are kept per shard of object keys, so a write only stops the reads of its
/// shard from filling the cache.
const SHARDS: usize = 64;
/// Variants (selections, viewers) kept per object; the oldest goes first.
const PER_OBJECT: usize = 8;

/// One cached document of an object.
#[derive(Debug)]
struct Entry {
    release: u64,
    include_trashed: bool,
    viewer: Option<String>,
    selection: ObjectSelection,
    doc: Json,
    bytes: usize,
}

impl Entry {
    fn matches(&self, l: &Lookup<'_>) -> bool {
        self.release == l.release
            && self.include_trashed == l.include_trashed
            && self.viewer.as_deref() == l.viewer
            && &self.selection == l.selection
    }
}

#[derive(Debug)]
struct Inner {
    objects: LruCache<String, Vec<Entry>>,
    entries: usize,
    bytes: usize,
    /// Writes of each shard's objects between their start and their end ([`Writing`]).
    pending: [usize; SHARDS],
}

/// The cache of one database (shared by every release and instance served from it).
#[derive(Debug)]
pub struct ReadCache {
    enabled: bool,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
    generations: [AtomicU64; SHARDS],
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
}

/// What a `get` looks up and, on a miss, stores.
#[derive(Debug)]
pub struct Lookup<'a> {
    pub app: &'a str,
    pub instance: &'a str,
    pub type_name: &'a str,
    pub id: &'a str,
    pub release: u64,
    pub include_trashed: bool,
    /// `None`: the caller may read every object of the type; else the account the read was
    /// restricted to.
    pub viewer: Option<&'a str>,
    pub selection: &'a ObjectSelection,
}

/// A miss's ticket: the object's key and its shard's generation before the statement ran.
#[derive(Debug)]
pub struct Ticket {
    key: String,
    shard: usize,
    generation: u64,
}

/// The figures of `GET /admin/caches`: every cache's ([`crate::bounded::Figures`]: here
/// `entries` counts documents, several per object) and the objects they belong to and how many
/// documents writes dropped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    #[serde(flatten)]
    pub cache: crate::bounded::Figures,
    pub objects: usize,
    pub invalidations: u64,
}

impl std::ops::Deref for Figures {
    type Target = crate::bounded::Figures;
    fn deref(&self) -> &Self::Target {
        &self.cache
    }
}

fn object_key(app: &str, instance: &str, type_name: &str, id: &str) -> String {
    let mut k = String::with_capacity(app.len() + instance.len() + type_name.len() + id.len() + 3);
    for (i, part) in [app, instance, type_name, id].into_iter().enumerate() {
        if i > 0 {
            k.push('\u{1f}');
        }
        k.push_str(part);
    }
    k
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: stable and cheap; only spreads keys over the shards.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// A plain selection: the object's own columns and `hypi` fields only.
pub fn cacheable(selection: &ObjectSelection) -> bool {
    selection.items.iter().all(|i| matches!(i, Item::Column(_) | Item::Hypi(_)))
}

impl ReadCache {
    /// A cache with these bounds; `enabled: false` (or a bound of 0) keeps nothing.
    pub fn new(enabled: bool, max_entries: usize, max_bytes: usize) -> ReadCache {
        ReadCache {
            enabled: enabled && max_entries > 0 && max_bytes > 0,
            max_entries,
            max_bytes,
            inner: Mutex::new(Inner { objects: LruCache::new_unbounded(), entries: 0, bytes: 0, pending: [0; SHARDS] }),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached document, or a ticket to store the one the database gives.
    pub fn get(&self, l: &Lookup<'_>) -> Result<Json, Ticket> {
        let key = object_key(l.app, l.instance, l.type_name, l.id);
        let shard = shard_of(&key);
        let mut inner = self.lock();
        // Read under the lock, so a write's drop and generation move are seen together.
        let generation = self.generations[shard].load(Ordering::Acquire);
        let found =
            inner.objects.get(&key).and_then(|entries| entries.iter().find(|e| e.matches(l))).map(|e| e.doc.clone());
        drop(inner);
        match found {
            Some(doc) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(doc)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(Ticket { key, shard, generation })
            }
        }
    }

    /// Keep `doc` (read from the database after `ticket` was taken), unless a write of its
    /// shard came in between. `bytes`: the document's size as the database returned it.
    pub fn put(&self, ticket: Ticket, l: &Lookup<'_>, doc: &Json, bytes: usize) {
        if !self.enabled {
            return;
        }
        let Ticket { key, shard, generation } = ticket;
        let bytes = bytes + key.len() + std::mem::size_of::<Entry>();
        if bytes > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if self.generations[shard].load(Ordering::Acquire) != generation || inner.pending[shard] > 0 {
            return;
        }
        let inner = &mut *inner;
        let entries = inner.objects.entry(key).or_insert_with(Vec::new);
        if entries.iter().any(|e| e.matches(l)) {
            return;
        }
        if entries.len() >= PER_OBJECT {
            let old = entries.remove(0);
            inner.entries -= 1;
            inner.bytes -= old.bytes;
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        entries.push(Entry {
            release: l.release,
            include_trashed: l.include_trashed,
            viewer: l.viewer.map(str::to_string),
            selection: l.selection.clone(),
            doc: doc.clone(),
            bytes,
        });
        inner.entries += 1;
        inner.bytes += bytes;
        while inner.entries > self.max_entries || inner.bytes > self.max_bytes {
            let Some((_, gone)) = inner.objects.remove_lru() else { break };
            inner.entries -= gone.len();
            inner.bytes -= gone.iter().map(|e| e.bytes).sum::<usize>();
            self.evictions.fetch_add(gone.len() as u64, Ordering::Relaxed);
        }
    }

    /// A write of these objects is about to commit: their documents go now, and until the
    /// returned mark is dropped (after the commit, or when the write failed) no read keeps a
    /// document of their shards; dropping it moves the generations, so a read that began
    /// before it ends keeps nothing either, and drops the documents again.
    ///
    /// Both ends are needed: a read that ran before the commit and stores between the commit
    /// and the end would leave the old document for readers that already saw the new one; a
    /// document kept from before the start would be answered after the commit.
    pub fn writing<'a>(
        &self,
        app: &str,
        instance: &str,
        objects: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Writing<'_> {
        let keys: Vec<String> = objects.into_iter().map(|(t, id)| object_key(app, instance, t, id)).collect();
        if self.enabled {
            let mut inner = self.lock();
            for key in &keys {
                inner.pending[shard_of(key)] += 1;
            }
            self.drop_documents(&mut inner, &keys);
        }
        Writing { cache: self, keys }
    }

    fn drop_documents(&self, inner: &mut Inner, keys: &[String]) {
        for key in keys {
            self.generations[shard_of(key)].fetch_add(1, Ordering::AcqRel);
            if let Some(gone) = inner.objects.remove(key) {
                inner.entries -= gone.len();
                inner.bytes -= gone.iter().map(|e| e.bytes).sum::<usize>();
                self.invalidations.fetch_add(gone.len() as u64, Ordering::Relaxed);
            }
        }
    }

    pub fn figures(&self) -> Figures {
        let inner = self.lock();
        Figures {
            cache: crate::bounded::Figures {
                enabled: self.enabled,
                entries: inner.entries,
                bytes: inner.bytes,
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                hits: self.hits.load(Ordering::Relaxed),
                misses: self.misses.load(Ordering::Relaxed),
                evictions: self.evictions.load(Ordering::Relaxed),
            },
            objects: inner.objects.len(),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }
}

/// A write of cached objects in progress (see [`ReadCache::writing`]).
pub struct Writing<'a> {
    cache: &'a ReadCache,
    keys: Vec<String>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.cache.enabled {
            return;
        }
        let mut inner = self.cache.lock();
        for key in &self.keys {
            let p = &mut inner.pending[shard_of(key)];
            *p = p.saturating_sub(1);
        }
        self.cache.drop_documents(&mut inner, &self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::read::HypiField;
    use serde_json::json;

    fn sel(cols: &[usize]) -> ObjectSelection {
        let mut s = ObjectSelection::new(0);
        for &c in cols {
            s.add_column(c);
        }
        s.add_hypi(&[HypiField::Id]);
        s
    }

    fn lookup<'a>(id: &'a str, s: &'a ObjectSelection, viewer: Option<&'a str>) -> Lookup<'a> {
        Lookup {
            app: "a",
            instance: "i",
            type_name: "Book",
            id,
            release: 1,
            include_trashed: false,
            viewer,
            selection: s,
        }
    }

    #[test]
    fn a_hit_needs_the_same_selection_viewer_and_release() {
        let c = ReadCache::new(true, 100, 1 << 20);
        let s = sel(&[1]);
        let t = c.get(&lookup("b1", &s, None)).unwrap_err();
        c.put(t, &lookup("b1", &s, None), &json!({"title": "Dune"}), 20);
        assert_eq!(c.get(&lookup("b1", &s, None)).unwrap(), json!({"title": "Dune"}));
        assert!(c.get(&lookup("b1", &sel(&[1, 2]), None)).is_err(), "another selection");
        assert!(c.get(&lookup("b1", &s, Some("acc"))).is_err(), "another viewer");
        let mut other = lookup("b1", &s, None);
        other.release = 2;
        assert!(c.get(&other).is_err(), "another release");
        assert!(c.get(&lookup("b2", &s, None)).is_err(), "another object");
        let f = c.figures();
        assert_eq!((f.hits, f.misses, f.entries), (1, 5, 1));
    }

    #[test]
    fn a_write_between_the_lookup_and_the_put_keeps_the_old_read_out() {
        let c = ReadCache::new(true, 100, 1 << 20);
        let s = sel(&[1]);
        let t = c.get(&lookup("b1", &s, None)).unwrap_err();
        drop(c.writing("a", "i", [("Book", "b1")]));
        c.put(t, &lookup("b1", &s, None), &json!({"title": "old"}), 20);
        assert!(c.get(&lookup("b1", &s, None)).is_err());
        // A ticket taken after the write stores.
        let t = c.get(&lookup("b1", &s, None)).unwrap_err();
        c.put(t, &lookup("b1", &s, None), &json!({"title": "new"}), 20);
        assert_eq!(c.get(&lookup("b1", &s, None)).unwrap(), json!({"title": "new"}));
        drop(c.writing("a", "i", [("Book", "b1")]));
        assert!(c.get(&lookup("b1", &s, None)).is_err());
        assert_eq!(c.figures().entries, 0);
    }

    #[test]
    fn a_read_from_before_a_commit_is_not_kept_while_the_write_ends() {
        // The race the end-to-end test met: a read of the old document, stored between the
        // write's commit and its end, answered later to a reader that had seen the new one.
        let c = ReadCache::new(true, 100, 1 << 20);
        let s = sel(&[1]);
        let l = lookup("b1", &s, None);
        let t = c.get(&l).unwrap_err();
        c.put(t, &l, &json!({"year": 0}), 20);
        assert_eq!(c.get(&l).unwrap(), json!({"year": 0}));
        let writing = c.writing("a", "i", [("Book", "b1")]);
        assert!(c.get(&l).is_err(), "the document goes before the commit");
        let during = c.get(&l).unwrap_err();
        // ... the commit happens here; a read that began before it stores now:
        c.put(during, &l, &json!({"year": 0}), 20);
        assert!(c.get(&l).is_err(), "nothing is kept while the write is in progress");
        drop(writing);
        let t = c.get(&l).unwrap_err();
        c.put(t, &l, &json!({"year": 1}), 20);
        assert_eq!(c.get(&l).unwrap(), json!({"year": 1}));
    }

    #[test]
    fn bounded_by_entries_and_bytes_least_recently_used_first() {
        let c = ReadCache::new(true, 3, 1 << 20);
        let s = sel(&[1]);
        for id in ["b1", "b2", "b3"] {
            let t = c.get(&lookup(id, &s, None)).unwrap_err();
            c.put(t, &lookup(id, &s, None), &json!(id), 10);
        }
        assert!(c.get(&lookup("b1", &s, None)).is_ok()); // b1 is now the most recent
        let t = c.get(&lookup("b4", &s, None)).unwrap_err();
        c.put(t, &lookup("b4", &s, None), &json!("b4"), 10);
        assert!(c.get(&lookup("b2", &s, None)).is_err(), "the least recently used went");
        assert!(c.get(&lookup("b1", &s, None)).is_ok());
        assert_eq!(c.figures().entries, 3);

        let per = 100 + std::mem::size_of::<Entry>() + "a\u{1f}i\u{1f}Book\u{1f}b1".len();
        let c = ReadCache::new(true, 1000, per * 2);
        for id in ["b1", "b2", "b3"] {
            let t = c.get(&lookup(id, &s, None)).unwrap_err();
            c.put(t, &lookup(id, &s, None), &json!(id), 100);
        }
        let f = c.figures();
        assert_eq!(f.entries, 2);
        assert!(f.bytes <= per * 2);
        assert!(c.get(&lookup("b1", &s, None)).is_err());
    }

    #[test]
    fn disabled_keeps_nothing() {
        let c = ReadCache::new(false, 100, 1 << 20);
        let s = sel(&[1]);
        let t = c.get(&lookup("b1", &s, None)).unwrap_err();
        c.put(t, &lookup("b1", &s, None), &json!(1), 10);
        assert!(c.get(&lookup("b1", &s, None)).is_err());
        assert!(!c.enabled());
        assert_eq!(c.figures().entries, 0);
        // A bound of 0 turns it off as well.
        assert!(!ReadCache::new(true, 0, 1 << 20).enabled());
    }
}
