//! SQLite reads on the calling thread.
//!
//! sqlx runs every SQLite statement on its connection's own thread: the calling task sends the
//! statement over a channel, that thread wakes, runs it and wakes the task again. Under load the
//! two wake-ups per statement were about a quarter of the CPU of a `get` served over HTTP
//! (docs/benchmarks.md, "The SQLite thread hop"). A read here runs where its caller runs: on a
//! connection taken from a stack of idle ones (a mutex held for a push or a pop, never across a
//! statement), stepped on the current thread, and put back.
//!
//! A statement stepped on a runtime worker holds that worker, so this path is for short reads:
//! each runs within a budget of its own ([`Inline::budget`], `ARCBASE_LIMIT_SQLITE_INLINE_US`),
//! besides the statement's. A read that runs past it is stopped by the progress handler and
//! handed back to the caller, which runs it again on the pool's connections (the thread-hopping
//! path, with what is left of the statement's budget). Each run on the pool says how long that
//! text takes ([`Inline::ran_on_pool`]): while its last run there took longer than the inline
//! budget, the text goes to the pool directly; once a run there is short again (a first read
//! that was slow only because the pages were not cached yet), it comes back. A read that meets
//! a lock (`SQLITE_BUSY`) or any error is handed back the same way, so errors keep their one
//! classification (the pool's). Reads change nothing, so running one again only moves the moment
//! its snapshot is taken.
//!
//! The connections are opened like the pool's (same file, same memory map) and follow the same
//! planner statistics: a connection reloads them before its next read once they changed. They
//! keep SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`): a text's
//! plan is made from the statistics alone, not from the values bound, so its cached statement
//! is prepared once. Without it, SQLite built with its value statistics (`SQLITE_ENABLE_STAT4`,
//! as libsqlite3-sys builds it) expires a statement each time a new value is bound to a
//! parameter compared with an indexed column, and the next step parses and plans it again:
//! a quarter of a `find`'s CPU (docs/benchmarks.md). [`ReadFigures::reprepared`] counts what is
//! prepared again. The pool's connections (writes, and reads past the inline budget) keep
//! SQLite's default: sqlx offers no safe way to set it, and for a read that long a plan fitted
//! to its values is worth a parse.
//!
//! A read transaction is begun for a read and kept for the next ones while nothing is written:
//! taking and letting go of WAL's read lock, checking the file's size and ending the
//! transaction were about a tenth of a SQLite `get`'s CPU (docs/benchmarks.md). The file's pools
//! (`sqlite.rs`) tell its [`Writes`] when a write begins and ends: a transaction, or a statement
//! outside one that is not a `SELECT` (the read pool runs `UPDATE ... RETURNING` too). Each
//! moves the file's write generation on and ends the idle readers' snapshots there and then;
//! a reader whose snapshot began in an older generation ends it before its next read and when
//! it is given back. So every read sees every write committed before it began, as without kept
//! snapshots. No snapshot is begun while a write runs or within [`QUIET`] of the last one, so
//! none keeps the checkpoint after a commit from copying every frame back (a snapshot held
//! across writes would keep the WAL from starting again at its beginning, and it would grow);
//! and none is kept past [`SNAPSHOT_AGE`], by the reader that takes it or, for idle readers, by
//! a timer ([`Writes::age_snapshots`]), which bounds how long a write by another process (the
//! CLI's commands take no serve claim, `server/claim.rs`) goes unseen and how long this
//! process holds back that process's checkpoints. Stores of one process on one file share one
//! [`Writes`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{ErrorCode, OpenFlags};

use super::sqlite::{since_epoch, Budget, PROGRESS_OPS};
use crate::sql::{Sql, SqlValue};

/// Texts remembered as slow at most (past it the memory starts again).
const SLOW_TEXTS: usize = 1_024;

/// Prepared statements each connection keeps.
const STATEMENTS: usize = 128;

/// Reads keep no snapshot until the file has not been written for this long.
pub(crate) const QUIET: Duration = Duration::from_millis(50);

/// A kept snapshot is ended at the first read past this age.
pub(crate) const SNAPSHOT_AGE: Duration = Duration::from_secs(1);

/// The writes of this process to one SQLite file, shared by every store open on it.
pub(crate) struct Writes {
    /// Moved on when a write begins and when it ends.
    generation: AtomicU64,
    /// Writes running now: statements that may write outside a transaction, and transactions.
    busy: AtomicUsize,
    /// The task of [`Writes::age_snapshots`] runs.
    aging: AtomicBool,
    /// When the last write ended (`sqlite::since_epoch`).
    last: AtomicU64,
    /// The inline readers of the stores open on the file.
    readers: Mutex<Vec<Weak<Inline>>>,
}

/// The [`Writes`] of each file open in this process.
static FILES: Mutex<Vec<(PathBuf, Weak<Writes>)>> = Mutex::new(Vec::new());

impl Writes {
    /// The writes to the file at `path` (by its canonical path, so that two spellings of one
    /// file share one; the file need not exist yet); `None`: an in-memory database (its own).
    pub fn of(path: Option<&std::path::Path>) -> Arc<Writes> {
        let fresh = || {
            Arc::new(Writes {
                generation: AtomicU64::new(0),
                busy: AtomicUsize::new(0),
                aging: AtomicBool::new(false),
                last: AtomicU64::new(0),
                readers: Mutex::new(Vec::new()),
            })
        };
        let canonical = |p: &std::path::Path| {
            p.canonicalize().ok().or_else(|| {
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                Some(dir.canonicalize().ok()?.join(p.file_name()?))
            })
        };
        let Some(path) = path.and_then(canonical) else { return fresh() };
        let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
        files.retain(|(_, w)| w.strong_count() > 0);
        if let Some(w) = files.iter().find(|(p, _)| *p == path).and_then(|(_, w)| w.upgrade()) {
            return w;
        }
        let w = fresh();
        files.push((path, Arc::downgrade(&w)));
        w
    }

    fn register(&self, inline: &Arc<Inline>) {
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        readers.retain(|r| r.strong_count() > 0);
        readers.push(Arc::downgrade(inline));
    }

    /// A statement that may write (outside a transaction) or a transaction begins: no snapshot
    /// is kept until it has ended, and the kept ones end now, so that the checkpoint after its
    /// commit can copy every frame back.
    pub fn enter(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.stale();
    }

    /// What [`Writes::enter`] began has ended (committed or not): every snapshot begun before
    /// now is stale, and the idle readers' ones end now.
    pub fn leave(&self) {
        self.last.fetch_max(since_epoch(Instant::now()), Ordering::AcqRel);
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.stale();
    }

    fn stale(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.each_inline(|inline| inline.end_snapshots(|_| true));
    }

    /// `f` for each live inline reader set of the file. Holds `readers`, then each one's
    /// `idle`: nothing takes them in the other order.
    fn each_inline(&self, f: impl Fn(&Inline)) {
        for inline in self.readers.lock().unwrap_or_else(PoisonError::into_inner).iter().filter_map(Weak::upgrade) {
            f(&inline);
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Is nothing being written, and has nothing been for [`QUIET`] by `now`?
    fn quiet(&self, now: Instant) -> bool {
        self.busy.load(Ordering::Acquire) == 0
            && since_epoch(now).saturating_sub(self.last.load(Ordering::Acquire)) >= QUIET.as_nanos() as u64
    }

    /// End the idle readers' snapshots older than [`SNAPSHOT_AGE`], every half of it, for as
    /// long as the stores on the file are open: a process that stops reading keeps no snapshot
    /// that would hold back another process's checkpoints.
    pub fn age_snapshots(writes: &Arc<Writes>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if writes.aging.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(writes);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(SNAPSHOT_AGE / 2).await;
                let Some(w) = weak.upgrade() else { return };
                let now = Instant::now();
                w.each_inline(|inline| inline.end_snapshots(|(_, at)| now.duration_since(at) >= SNAPSHOT_AGE));
            }
        });
    }
}

/// Why a read was not answered here.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Declined {
    /// Run it on the pool (slow, locked, an error, no connection free, or inline reads off).
    Pool,
    /// The statement's own budget ran out (not only the inline one).
    Timeout,
    /// The rows passed the byte bound the caller gave.
    TooLarge,
}

struct Reader {
    conn: rusqlite::Connection,
    budget: Arc<Budget>,
    /// The statistics generation this connection's planner has loaded.
    statistics: u64,
    /// The read transaction kept open: the write generation it began in, and when.
    snapshot: Option<(u64, Instant)>,
}

impl Reader {
    /// End the kept read transaction, if any.
    fn end_snapshot(&mut self) {
        if self.snapshot.take().is_some() && !self.conn.is_autocommit() {
            // A read transaction's end cannot fail for want of a lock; should it fail anyway,
            // the roll back ends it, and [`Inline::read`] never uses a connection still in one.
            if self.conn.prepare_cached("COMMIT").and_then(|mut s| s.raw_execute()).is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }
}

/// How reads were answered (for `GET /admin/caches` and the tests).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ReadFigures {
    /// Answered on the calling thread.
    pub inline: u64,
    /// Run on the pool's threads: a text known to be slow, inline reads off, or no inline
    /// connection free.
    pub pool: u64,
    /// Stopped at the inline budget, then run on the pool.
    pub past_budget: u64,
    /// Met a lock or an error inline, then run on the pool.
    pub handed_back: u64,
    /// Times SQLite prepared an inline statement again (its plan expired: the schema or the
    /// statistics changed, or, without the planner stability guarantee, a new bound value).
    pub reprepared: u64,
    /// Read transactions begun to be kept for the reads after (the module doc); reads outside
    /// one (while the file is being written) are not counted.
    pub snapshots: u64,
}

#[derive(Default)]
struct Counts {
    inline: AtomicU64,
    pool: AtomicU64,
    past_budget: AtomicU64,
    handed_back: AtomicU64,
    reprepared: AtomicU64,
    snapshots: AtomicU64,
}

/// Idle inline reader connections of one SQLite database.
pub(crate) struct Inline {
    idle: Mutex<Vec<Reader>>,
    path: PathBuf,
    mmap_bytes: u64,
    /// 0: every read goes to the pool.
    budget: Duration,
    /// Connections at most (open at once, idle or in use).
    max: usize,
    open: AtomicUsize,
    /// Set by [`Inline::close`]: a connection in use then is closed when it is given back.
    closed: AtomicBool,
    /// Moved each time the planner's statistics were refreshed.
    statistics: AtomicU64,
    /// Texts whose last run on the pool took longer than the budget.
    slow: Mutex<HashSet<String>>,
    slow_count: AtomicUsize,
    counts: Counts,
    /// This process's writes to the file.
    writes: Arc<Writes>,
}

impl Inline {
    /// Inline readers of the file at `path` (`None`: an in-memory database, which only the
    /// pool's connections share; every read then goes to the pool).
    pub fn new(
        path: Option<PathBuf>,
        mmap_bytes: u64,
        budget: Duration,
        max: usize,
        writes: Arc<Writes>,
    ) -> Arc<Inline> {
        let budget = if path.is_some() { budget } else { Duration::ZERO };
        let inline = Arc::new(Inline {
            idle: Mutex::new(Vec::new()),
            path: path.unwrap_or_default(),
            mmap_bytes,
            budget,
            max,
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            statistics: AtomicU64::new(0),
            slow: Mutex::new(HashSet::new()),
            slow_count: AtomicUsize::new(0),
            counts: Counts::default(),
            writes: writes.clone(),
        });
        writes.register(&inline);
        inline
    }

    /// The planner's statistics changed: every connection reloads them before its next read.
    pub fn statistics_changed(&self) {
        self.statistics.fetch_add(1, Ordering::AcqRel);
    }

    pub fn figures(&self) -> ReadFigures {
        let c = &self.counts;
        ReadFigures {
            inline: c.inline.load(Ordering::Relaxed),
            pool: c.pool.load(Ordering::Relaxed),
            past_budget: c.past_budget.load(Ordering::Relaxed),
            handed_back: c.handed_back.load(Ordering::Relaxed),
            reprepared: c.reprepared.load(Ordering::Relaxed),
            snapshots: c.snapshots.load(Ordering::Relaxed),
        }
    }

    /// Run `sql` here, to end by `until` (the statement's budget), keeping at most `max_bytes`
    /// of text when given.
    pub fn read(&self, sql: &Sql, until: Instant, max_bytes: Option<usize>) -> Result<Vec<Vec<SqlValue>>, Declined> {
        if self.budget.is_zero() || self.is_slow(&sql.text) {
            self.counts.pool.fetch_add(1, Ordering::Relaxed);
            return Err(Declined::Pool);
        }
        let Some(mut reader) = self.take() else {
            self.counts.pool.fetch_add(1, Ordering::Relaxed);
            return Err(Declined::Pool);
        };
        let now = Instant::now();
        let own = now + self.budget;
        // Read before the snapshot begins: a write ending in between makes it stale, never an
        // older snapshot look fresh.
        let generation = self.writes.generation();
        if reader.snapshot.is_some_and(|(g, at)| g != generation || now.duration_since(at) >= SNAPSHOT_AGE) {
            reader.end_snapshot();
        }
        if reader.snapshot.is_none() && !reader.conn.is_autocommit() {
            // In a transaction this path does not know of: its snapshot could be any age.
            tracing::warn!("an inline SQLite reader was left in a transaction: closed");
            self.discard(reader);
            self.counts.pool.fetch_add(1, Ordering::Relaxed);
            return Err(Declined::Pool);
        }
        if reader.snapshot.is_none()
            && self.writes.quiet(now)
            && reader.conn.prepare_cached("BEGIN").and_then(|mut s| s.raw_execute()).is_ok()
        {
            reader.snapshot = Some((generation, now));
            self.counts.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        reader.budget.set(own.min(until));
        let result = step(&reader.conn, sql, max_bytes, &self.counts.reprepared);
        reader.budget.clear();
        if result.is_err() {
            // Whatever stopped it, the next read starts from a fresh snapshot.
            reader.end_snapshot();
        }
        self.put(reader);
        match result {
            Ok(rows) => {
                self.counts.inline.fetch_add(1, Ordering::Relaxed);
                Ok(rows)
            }
            Err(Stop::TooLarge) => Err(Declined::TooLarge),
            Err(Stop::Interrupted) if until <= own => Err(Declined::Timeout),
            Err(Stop::Interrupted) => {
                self.counts.past_budget.fetch_add(1, Ordering::Relaxed);
                Err(Declined::Pool)
            }
            Err(Stop::Other(e)) => {
                self.counts.handed_back.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("an inline read is handed to the pool: {e}");
                Err(Declined::Pool)
            }
        }
    }

    /// Every idle connection, opening one when there is none (for a look at each planner).
    pub fn with_each<T>(&self, mut f: impl FnMut(&rusqlite::Connection) -> T) -> Vec<T> {
        if self.budget.is_zero() {
            return Vec::new();
        }
        let mut taken = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            taken.extend(self.take());
        }
        let mut out = Vec::with_capacity(taken.len());
        for r in &mut taken {
            self.reload(r);
            out.push(f(&r.conn));
        }
        for r in taken {
            self.put(r);
        }
        out
    }

    /// Close the idle connections, and each one in use when it is given back; no new one opens.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        self.open.fetch_sub(idle.len(), Ordering::AcqRel);
    }

    fn is_slow(&self, text: &str) -> bool {
        self.slow_count.load(Ordering::Relaxed) > 0
            && self.slow.lock().unwrap_or_else(PoisonError::into_inner).contains(text)
    }

    /// A read this path declined ran on the pool and took `took`: longer than the inline
    /// budget, its text goes to the pool directly from now on; shorter, it runs here again.
    pub fn ran_on_pool(&self, text: &str, took: Duration) {
        if self.budget.is_zero() {
            return;
        }
        let long = took >= self.budget;
        if !long && self.slow_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut slow = self.slow.lock().unwrap_or_else(PoisonError::into_inner);
        if long {
            if slow.len() >= SLOW_TEXTS {
                slow.clear();
            }
            slow.insert(text.to_string());
        } else {
            slow.remove(text);
        }
        self.slow_count.store(slow.len(), Ordering::Relaxed);
    }

    /// An idle connection, or a new one while fewer than `max` are open.
    fn take(&self) -> Option<Reader> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut reader = match idle {
            Some(r) => r,
            None => {
                if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                match self.open_reader() {
                    Ok(r) => r,
                    Err(e) => {
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        tracing::warn!("an inline SQLite reader could not be opened: {e}");
                        return None;
                    }
                }
            }
        };
        self.reload(&mut reader);
        Some(reader)
    }

    fn put(&self, mut reader: Reader) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Acquire) {
            drop(idle);
            drop(reader);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // Under the lock [`Writes::enter`] and [`Writes::leave`] sweep with: a write that began
        // or ended while this reader was out either shows here or finds it idle.
        if reader.snapshot.is_some_and(|(g, _)| g != self.writes.generation()) {
            reader.end_snapshot();
        }
        idle.push(reader);
    }

    /// Close a connection in use instead of giving it back.
    fn discard(&self, reader: Reader) {
        drop(reader);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// End the idle readers' snapshots for which `which` holds.
    fn end_snapshots(&self, which: impl Fn((u64, Instant)) -> bool) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for r in idle.iter_mut().filter(|r| r.snapshot.is_some_and(&which)) {
            r.end_snapshot();
        }
    }

    /// Load the planner's statistics again if they changed since this connection last did
    /// (SQLite's planner reads them with the schema and does not see another connection's
    /// ANALYZE).
    fn reload(&self, r: &mut Reader) {
        let now = self.statistics.load(Ordering::Acquire);
        if r.statistics != now {
            // The reload writes: outside any read transaction.
            r.end_snapshot();
            // The reload takes the write lock for a moment (it rewrites the statistics of
            // `sqlite_schema`, of which there are none) and this connection does not wait for
            // a lock: when the writer holds it, the next read tries again.
            match r.conn.execute_batch("ANALYZE sqlite_schema") {
                Ok(()) => r.statistics = now,
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
                Err(e) => {
                    tracing::warn!("an inline reader could not reload the planner's statistics: {e}");
                    r.statistics = now;
                }
            }
        }
    }

    fn open_reader(&self) -> Result<Reader, rusqlite::Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        // A lock is not waited for here (the worker would wait with it): the read goes to the
        // pool, whose connections wait up to their busy timeout.
        conn.busy_timeout(Duration::ZERO)?;
        if self.mmap_bytes > 0 {
            conn.pragma_update(None, "mmap_size", self.mmap_bytes.to_string())?;
        }
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        // Plans that do not depend on the values bound (the module doc): a cached statement
        // is not prepared again per request.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let budget = Arc::new(Budget::default());
        let b = budget.clone();
        conn.progress_handler(PROGRESS_OPS, Some(move || !b.allows()));
        // A new connection loads the statistics as they are now.
        Ok(Reader { conn, budget, statistics: self.statistics.load(Ordering::Acquire), snapshot: None })
    }
}

enum Stop {
    Interrupted,
    TooLarge,
    Other(rusqlite::Error),
}

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => Stop::Interrupted,
            _ => Stop::Other(e),
        }
    }
}

/// Step one statement to its end, decoding its rows as the pool's driver does.
/// Each time SQLite prepared it again on the way is added to `reprepared`.
fn step(
    conn: &rusqlite::Connection,
    sql: &Sql,
    max_bytes: Option<usize>,
    reprepared: &AtomicU64,
) -> Result<Vec<Vec<SqlValue>>, Stop> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    if !stmt.readonly() {
        // Only reads run here: a statement that writes belongs to the pool's connections
        // (which have the foreign keys on and wait for the writer).
        return Err(Stop::Other(rusqlite::Error::InvalidQuery));
    }
    for (i, b) in sql.binds.iter().enumerate() {
        let i = i + 1;
        match b {
            SqlValue::Null => stmt.raw_bind_parameter(i, rusqlite::types::Null)?,
            SqlValue::Bool(v) => stmt.raw_bind_parameter(i, *v)?,
            SqlValue::Int(v) => stmt.raw_bind_parameter(i, *v)?,
            SqlValue::Real(v) => stmt.raw_bind_parameter(i, *v)?,
            SqlValue::Text(v) => stmt.raw_bind_parameter(i, v.as_str())?,
        }
    }
    let out = rows_of(&mut stmt, max_bytes);
    let again = stmt.reset_status(rusqlite::StatementStatus::RePrepare);
    reprepared.fetch_add(u64::try_from(again).unwrap_or(0), Ordering::Relaxed);
    out
}

fn rows_of(stmt: &mut rusqlite::CachedStatement<'_>, max_bytes: Option<usize>) -> Result<Vec<Vec<SqlValue>>, Stop> {
    let width = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    let mut size = 0usize;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let v = match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(v) => SqlValue::Int(v),
                ValueRef::Real(v) => SqlValue::Real(v),
                ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
                    Ok(s) => SqlValue::Text(s.to_string()),
                    // Not text the pool's driver would decode either: let it answer.
                    Err(e) => return Err(Stop::Other(rusqlite::Error::Utf8Error(e))),
                },
            };
            values.push(v);
        }
        if let Some(max) = max_bytes {
            size += values.iter().map(|v| v.as_str().map_or(8, str::len)).sum::<usize>();
            if size > max {
                return Err(Stop::TooLarge);
            }
        }
        out.push(values);
    }
    Ok(out)
}

/// The steps of an `EXPLAIN QUERY PLAN` statement on `conn`, one line each.
pub(crate) fn plan(conn: &rusqlite::Connection, explain: &Sql) -> Result<String, rusqlite::Error> {
    let rows = step(conn, explain, None, &AtomicU64::new(0)).map_err(|e| match e {
        Stop::Other(e) => e,
        Stop::Interrupted | Stop::TooLarge => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
            Some("interrupted".into()),
        ),
    })?;
    // Columns: id, parent, notused, detail.
    let steps: Vec<&str> = rows.iter().filter_map(|r| r.get(3).and_then(SqlValue::as_str)).collect();
    Ok(steps.join("\n"))
}
