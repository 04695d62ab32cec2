//! One serving process per SQLite file. `serve` takes an exclusive lock on `<file>-serve.lock`
//! for as long as it runs (the operating system lets go of it when the process ends, `kill -9`
//! included), so a second `arcbase serve` on the same file stops at start with an error that
//! says so, instead of serving from memory what the other process changed: the object cache
//! ([`crate::ops::read_cache`]) and the subscriptions' wake-ups hold only for writes made in
//! this process. Servers built in one process on one file (tests run two nodes that way) share
//! the claim, and with it the one object cache. The other commands (`arcbase hyper status`,
//! `schema`, ...) take no claim. Several nodes need PostgreSQL, where there is no claim and the
//! object cache is off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::config::Limits;
use crate::ops::read_cache::ReadCache;

/// This process's hold on a SQLite file.
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
    pub read_cache: Arc<ReadCache>,
}

static CLAIMS: Mutex<Vec<(PathBuf, Weak<Claim>)>> = Mutex::new(Vec::new());

/// The SQLite file of a database URL, if it names one (not `:memory:`, not PostgreSQL).
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Claim `db` (an existing SQLite file) for this process, or share this process's claim.
pub fn claim(db: &Path, limits: &Limits) -> Result<Arc<Claim>, String> {
    let canonical = db.canonicalize().map_err(|e| format!("{}: {e}", db.display()))?;
    let mut claims = CLAIMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(held) = claims.iter().find(|(p, _)| *p == canonical).and_then(|(_, w)| w.upgrade()) {
        return Ok(held);
    }
    let lock_path = PathBuf::from(format!("{}-serve.lock", canonical.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(format!(
                "{} is served by another arcbase process (it holds {}): SQLite is one process's \
                 database; stop the other server, or run several nodes on PostgreSQL",
                db.display(),
                lock_path.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: {e}", lock_path.display())),
    }
    let claim = Arc::new(Claim {
        _lock: file,
        read_cache: Arc::new(ReadCache::new(true, limits.object_cache_entries, limits.object_cache_bytes)),
    });
    claims.retain(|(p, w)| w.strong_count() > 0 && *p != canonical);
    claims.push((canonical, Arc::downgrade(&claim)));
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://a/b.db?mode=rwc"), Some(PathBuf::from("a/b.db")));
        assert_eq!(sqlite_file("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn one_process_shares_its_claim() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        std::fs::write(&db, b"").unwrap();
        let a = claim(&db, &Limits::default()).unwrap();
        let b = claim(&db, &Limits::default()).unwrap();
        assert!(Arc::ptr_eq(&a.read_cache, &b.read_cache));
        // The lock is held: another open file description cannot take it.
        let other = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("{}-serve.lock", db.canonicalize().unwrap().display()))
            .unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop((a, b));
        assert!(other.try_lock().is_ok(), "released with the last server");
    }
}
