//! SQLite connections with a time budget, and the pool that lends them.
//!
//! SQLite has no `statement_timeout`: a statement runs until it finishes, and sqlx runs it on
//! the connection's own thread, where dropping the request's future does not stop it. So every
//! connection gets a progress handler (called every [`PROGRESS_OPS`] virtual-machine
//! instructions) that interrupts the statement once its [`Budget`] has run out or was
//! cancelled. A lease sets the budget before each statement; a lease dropped while its
//! statement runs (the client went away) cancels it, and the connection returns to the pool
//! only once the interrupted statement has ended (and, for a transaction, rolled back).
//!
//! The pool is small and plain: a semaphore of `size` permits over a stack of idle
//! connections, opened as needed. Waiting for a permit is bounded; past it the caller is told
//! the store is overloaded instead of queueing without end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::inline::Writes;
use super::StoreError;

/// Virtual-machine instructions between two looks at the budget (a few microseconds).
pub(super) const PROGRESS_OPS: i32 = 1_000;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` as nanoseconds since this process's [`epoch`] (an instant that fits an atomic).
pub(super) fn since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// When the statement running on a connection must stop.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Nanoseconds since [`epoch`]; 0: no statement is timed.
    deadline: AtomicU64,
    /// Stop now (the caller went away).
    cancelled: AtomicBool,
}

impl Budget {
    pub(super) fn set(&self, until: Instant) {
        self.deadline.store(since_epoch(until).max(1), Ordering::Release);
        self.cancelled.store(false, Ordering::Release);
    }

    pub(super) fn clear(&self) {
        self.deadline.store(0, Ordering::Release);
        self.cancelled.store(false, Ordering::Release);
    }

    /// May the statement go on?
    pub(super) fn allows(&self) -> bool {
        if self.cancelled.load(Ordering::Acquire) {
            return false;
        }
        let d = self.deadline.load(Ordering::Acquire);
        d == 0 || (epoch().elapsed().as_nanos() as u64) < d
    }
}

/// A connection and its budget.
pub(crate) struct Conn {
    pub conn: SqliteConnection,
    budget: Arc<Budget>,
    /// The pool's statistics generation this connection's planner has loaded.
    statistics: u64,
}

impl Conn {
    async fn open(opts: &SqliteConnectOptions, statistics: u64) -> Result<Conn, StoreError> {
        let mut conn = SqliteConnection::connect_with(opts).await?;
        let budget = Arc::new(Budget::default());
        let b = budget.clone();
        conn.lock_handle().await?.set_progress_handler(PROGRESS_OPS, move || b.allows());
        Ok(Conn { conn, budget, statistics })
    }
}

struct Inner {
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    opts: SqliteConnectOptions,
    size: usize,
    /// Moved each time the planner's statistics were refreshed (by another connection).
    statistics: AtomicU64,
    /// Told when a write begins and ends (the inline readers' snapshots).
    writes: Arc<Writes>,
}

/// A pool of budgeted connections.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

/// What a lease must do with its connection before anyone else may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// A statement is running.
    Busy,
    /// A transaction is open (roll back when dropped).
    InTransaction,
}

/// A connection lent from the pool; returned when dropped.
pub(crate) struct Lease {
    conn: Option<Conn>,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    state: State,
    in_tx: bool,
    /// The statement started is a `SELECT`, which writes nothing ([`Lease::start_query`]).
    select: bool,
    /// This lease holds the file busy for [`Writes`]: a statement that may write is running
    /// outside a transaction, or a transaction is open.
    holds: bool,
}

impl Pool {
    /// A pool of at most `size` connections, `min` of them opened now. `writes` is told when
    /// a transaction, or a statement outside one that is not a `SELECT`, begins and ends.
    pub async fn open(
        opts: SqliteConnectOptions,
        size: usize,
        min: usize,
        writes: Arc<Writes>,
    ) -> Result<Pool, StoreError> {
        let inner = Arc::new(Inner {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            opts,
            size,
            statistics: AtomicU64::new(0),
            writes,
        });
        for _ in 0..min.min(size) {
            let c = Conn::open(&inner.opts, 0).await?;
            inner.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(c);
        }
        Ok(Pool { inner })
    }

    /// Borrow a connection, waiting at most `wait`.
    pub async fn acquire(&self, wait: Duration) -> Result<Lease, StoreError> {
        let permit = super::permit(&self.inner.permits, wait).await?;
        let idle = self.inner.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let statistics = self.inner.statistics.load(Ordering::Acquire);
        let mut conn = match idle {
            Some(c) => c,
            // A new connection loads the statistics as they are now.
            None => Conn::open(&self.inner.opts, statistics).await?,
        };
        if conn.statistics != statistics {
            // SQLite's planner loads the statistics tables with the schema and does not see
            // another connection's ANALYZE: reload them (SQLite's documented way).
            // It takes the write lock for a moment; past the busy timeout (SQLITE_BUSY, primary
            // code 5), the next lease tries again.
            match sqlx::Executor::execute(&mut conn.conn, "ANALYZE sqlite_schema").await {
                Ok(_) => conn.statistics = statistics,
                Err(sqlx::Error::Database(db))
                    if db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5) => {}
                Err(e) => {
                    tracing::warn!("a connection could not reload the planner's statistics: {e}");
                    conn.statistics = statistics;
                }
            }
        }
        Ok(Lease {
            conn: Some(conn),
            pool: self.inner.clone(),
            permit: Some(permit),
            state: State::Idle,
            in_tx: false,
            select: false,
            holds: false,
        })
    }

    /// The planner's statistics changed: every connection reloads them before its next
    /// statement.
    pub fn statistics_changed(&self) {
        self.inner.statistics.fetch_add(1, Ordering::AcqRel);
    }

    /// Every connection of the pool at once (waiting for those lent out), for a look at each.
    pub async fn acquire_all(&self, wait: Duration) -> Result<Vec<Lease>, StoreError> {
        let mut all = Vec::with_capacity(self.inner.size);
        for _ in 0..self.inner.size {
            all.push(self.acquire(wait).await?);
        }
        Ok(all)
    }

    /// Close every connection (waiting for those lent out to come back).
    pub async fn close(&self) {
        let n = u32::try_from(self.inner.size).unwrap_or(u32::MAX);
        let all = tokio::time::timeout(Duration::from_secs(30), self.inner.permits.acquire_many(n)).await;
        let idle = std::mem::take(&mut *self.inner.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for c in idle {
            let _ = c.conn.close().await;
        }
        self.inner.permits.close();
        drop(all);
    }
}

impl Lease {
    /// The connection, for one statement that must end by `until`. Call [`Lease::done`] when
    /// the statement has ended. The statement may write: until it ends (in a transaction,
    /// until the transaction does) the inline readers keep no snapshot.
    pub fn start(&mut self, until: Instant) -> &mut SqliteConnection {
        self.select = false;
        self.run(until)
    }

    /// [`Lease::start`] for the statement `text`: a `SELECT` (which in SQLite writes nothing)
    /// is not counted as a write; anything else (`UPDATE ... RETURNING` through a read, a
    /// `PRAGMA`) is.
    pub fn start_query(&mut self, until: Instant, text: &str) -> &mut SqliteConnection {
        self.select = is_select(text);
        self.run(until)
    }

    fn run(&mut self, until: Instant) -> &mut SqliteConnection {
        if !self.select && !self.holds {
            self.pool.writes.enter();
            self.holds = true;
        }
        self.state = State::Busy;
        let c = self.conn.as_mut().expect("a lease holds its connection until dropped");
        c.budget.set(until);
        &mut c.conn
    }

    /// The statement started by [`Lease::start`] has ended.
    pub fn done(&mut self) {
        if let Some(c) = &self.conn {
            c.budget.clear();
        }
        self.state = if self.in_tx { State::InTransaction } else { State::Idle };
        if !self.in_tx && self.holds {
            self.holds = false;
            self.pool.writes.leave();
        }
    }

    /// From now on a drop rolls back (after `BEGIN`); [`Lease::end_transaction`] undoes it.
    pub fn begin_transaction(&mut self) {
        self.in_tx = true;
        if !self.holds {
            self.pool.writes.enter();
            self.holds = true;
        }
    }

    pub fn end_transaction(&mut self) {
        self.in_tx = false;
        if self.state == State::InTransaction {
            self.state = State::Idle;
        }
        if self.holds {
            self.holds = false;
            self.pool.writes.leave();
        }
    }
}

/// Is `text` one `SELECT` statement, which cannot write? Anything else (a `WITH` may lead to an
/// `UPDATE`) counts as a write.
fn is_select(text: &str) -> bool {
    let t = text.trim_start();
    t.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("SELECT")) && !t.contains(';')
}

/// Roll back the transaction of `c` and make sure none is open any more: `BEGIN` succeeds
/// only outside one (then it is undone at once). A ROLLBACK can fail (an interrupted statement
/// not yet reset); the connection is then tried again, and given up (closed, the pool opens
/// another) rather than lent out inside a transaction, where every later write would fail.
async fn rolled_back(c: &mut Conn) -> bool {
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
        }
        let _ = sqlx::Executor::execute(&mut c.conn, "ROLLBACK").await;
        if sqlx::Executor::execute(&mut c.conn, "BEGIN").await.is_ok() {
            return sqlx::Executor::execute(&mut c.conn, "ROLLBACK").await.is_ok();
        }
    }
    tracing::warn!("a SQLite connection could not be rolled back: closed");
    false
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut c) = self.conn.take() else { return };
        let pool = self.pool.clone();
        let permit = self.permit.take();
        let busy = self.state == State::Busy;
        let in_tx = self.in_tx || self.state == State::InTransaction;
        let holds = std::mem::take(&mut self.holds);
        if !busy && !in_tx {
            if holds {
                pool.writes.leave();
            }
            pool.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(c);
            drop(permit);
            return;
        }
        // A statement was running when its caller went away: stop it. The connection (and its
        // permit) comes back once it is quiet again and any transaction is rolled back.
        if busy {
            c.budget.cancelled.store(true, Ordering::Release);
        }
        let cleanup = async move {
            // First wait for the cut-off statement to end (a ping queues behind it and runs no
            // statement, so the cancellation still stops it); only then lift the cancellation.
            let quiet = !busy || c.conn.ping().await.is_ok();
            c.budget.clear();
            if holds {
                // Nothing runs on it now; the statement cut off may have been a `COMMIT` that
                // got through: let go of the file before the roll back's retries.
                pool.writes.leave();
            }
            // Roll back, also after a statement cut off outside a transaction: it may have
            // been the `BEGIN` itself, which then ran without its lease knowing.
            let ok = quiet && (!(in_tx || busy) || rolled_back(&mut c).await);
            c.budget.clear();
            if ok {
                pool.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(c);
            }
            drop(permit);
        };
        // Without a runtime (the process is ending) the connection is simply closed.
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(cleanup);
        }
    }
}
