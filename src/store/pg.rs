//! PostgreSQL connections for reads and write transactions, lent without a round trip of
//! their own.
//!
//! sqlx's pool tests every connection given back to it with a `Sync` message and waits for
//! the server's `ReadyForQuery` (sqlx 0.8: `return_to_pool` pings unconditionally). For a read
//! of one statement that is a second round trip to the server: measured under `wrk` on a
//! `get` by id, every request cost two `sendto` calls on the PostgreSQL socket, and the
//! server's wake-ups for the second one took CPU that the database and arcbase share. A write
//! transaction paid it too, once per transaction.
//!
//! This pool knows whether a statement ended: a lease whose statement ran to its end (rows or
//! an error from the server, after which the connection is ready again) is given back as it
//! is; a lease dropped mid-statement (the caller went away, or a read stopped early at the
//! response bound) closes its connection instead, so no connection is lent out with a
//! statement's leftovers. A connection whose socket failed is never given back either.
//!
//! A write transaction ([`Tx`]) holds a lease from `BEGIN` to `COMMIT`. Dropped without its
//! `COMMIT` between statements, it is rolled back on its connection in the background and the
//! connection given back once the server confirmed; dropped while a statement ran, it closes
//! its connection (the server rolls back when the socket closes).
//!
//! Every statement, `BEGIN` and `COMMIT` included, is answered by its budget and
//! [`ANSWER_GRACE`] or given up (a read's rows: the first by then, each next within the grace
//! of the last): its connection then counts as lost and is closed. The server's
//! `statement_timeout` answers first whenever the network works, so a silent socket (a
//! partition, a peer gone without a reset) is what meets the grace. A `COMMIT` given up that
//! way may or may not have been written, and the caller is told so
//! ([`super::StoreError::CommitUnknown`]), not that it timed out. The server's side of such a
//! connection learns nothing either; every session is opened with
//! `idle_in_transaction_session_timeout` ([`super::Budgets::idle_in_transaction`]: the write
//! budget, or an ATOMIC remote's wait, and the grace), so the server ends an abandoned
//! transaction and frees its row locks then, not when TCP keepalive gives up.
//!
//! Listeners stay on a small sqlx pool of their own (`LISTEN` holds its connection for good).
//!
//! The pool is a semaphore of `size` permits over a stack of idle connections, opened as
//! needed; waiting for a permit is bounded, past it the caller is told the store is overloaded.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

struct Inner {
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    /// Write transactions open at once: fewer than the connections, so that transactions
    /// waiting on locks (or an ATOMIC service's remote call) never leave reads without one.
    writers: Arc<Semaphore>,
    opts: PgConnectOptions,
    size: usize,
}

/// A pool of connections.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

/// A connection lent from [`Pool`]: closed when dropped, unless [`Lease::give_back`] said
/// its statement ended.
pub(crate) struct Lease {
    conn: Option<PgConnection>,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    reused: bool,
}

impl Pool {
    /// A pool of at most `size` connections; none is opened before it is needed.
    pub fn new(opts: PgConnectOptions, size: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size)),
                writers: Arc::new(Semaphore::new(writers(size))),
                opts,
                size,
            }),
        }
    }

    /// Borrow a connection, waiting at most `wait` for one to be free. `fresh`: open a new one
    /// rather than reuse an idle one (after an idle one's socket failed).
    pub async fn acquire(&self, wait: Duration, fresh: bool) -> Result<Lease, StoreError> {
        let permit = super::permit(&self.inner.permits, wait).await?;
        let idle = if fresh { None } else { self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() };
        let reused = idle.is_some();
        let conn = match idle {
            Some(c) => c,
            // Opening one is bounded by the same wait (a server that never answers the
            // connection would hold the permit forever).
            None => match tokio::time::timeout(wait, PgConnection::connect_with(&self.inner.opts)).await {
                Ok(c) => c.map_err(StoreError::Db)?,
                Err(_) => return Err(StoreError::Overloaded),
            },
        };
        Ok(Lease { conn: Some(conn), pool: self.inner.clone(), permit: Some(permit), reused })
    }

    /// Connections open and idle now.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A place for one more write transaction, waiting at most `wait` for one (see
    /// [`writers`]); held by its [`Tx`].
    pub async fn writer(&self, wait: Duration) -> Result<OwnedSemaphorePermit, StoreError> {
        super::permit(&self.inner.writers, wait).await
    }

    /// Close every connection, waiting (at most 30 s) for those lent out.
    pub async fn close(&self) {
        let n = u32::try_from(self.inner.size).unwrap_or(u32::MAX);
        let all = tokio::time::timeout(Duration::from_secs(30), self.inner.permits.acquire_many(n)).await;
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for c in idle {
            let _ = c.close().await;
        }
        drop(all);
    }
}

/// How much longer than its statement budget a statement may go unanswered before its
/// connection is taken for lost. The server's `statement_timeout` answers at the budget; past
/// it and this grace the socket is half-open (a partition, a host gone without a reset), and
/// waiting on would hold the request, its connection and, in a transaction, a writer's place
/// until the kernel gives up on the peer, many minutes later.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// The error a statement unanswered by its deadline ends with: an I/O error, so that the
/// connection counts as lost ([`super::connection_lost`]) and is closed, never given back,
/// carrying [`Unanswered`] so that it is told apart from any other I/O error ([`is_unanswered`]).
pub(crate) fn unanswered() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, Unanswered))
}

/// The mark of [`unanswered`].
#[derive(Debug)]
pub(crate) struct Unanswered;

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgreSQL did not answer in time")
    }
}

impl std::error::Error for Unanswered {}

/// Did `e` come from [`unanswered`]?
pub(crate) fn is_unanswered(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<Unanswered>()))
}

/// `work` (one statement and its answer), given up once `budget` and [`ANSWER_GRACE`] passed.
pub(crate) async fn answered<T>(
    budget: Duration,
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(budget + ANSWER_GRACE, work).await.unwrap_or_else(|_| Err(unanswered()))
}

/// Write transactions open at once out of `size` connections: all but two (at least one).
fn writers(size: usize) -> usize {
    size.saturating_sub(2).max(1)
}

impl Lease {
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lease holds its connection until dropped")
    }

    /// Was the connection used before (and so may have died while idle)?
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The statement ended (all its rows read, or the server answered with an error): the
    /// connection is ready for the next one.
    pub fn give_back(mut self) {
        if let Some(c) = self.conn.take() {
            if !self.pool.permits.is_closed() {
                self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(c);
            }
        }
        drop(self.permit.take());
    }
}

/// A write transaction: a lease whose connection ran `BEGIN`.
pub(crate) struct Tx {
    lease: Option<Lease>,
    /// Its place among the write transactions ([`Pool::writer`]).
    _writer: OwnedSemaphorePermit,
    /// A statement was sent and its end not seen yet.
    busy: bool,
    /// How long the background `ROLLBACK` of a dropped transaction may take.
    rollback_within: Duration,
}

impl Tx {
    /// The transaction on `lease`, whose connection ran `BEGIN`.
    pub fn new(lease: Lease, writer: OwnedSemaphorePermit, rollback_within: Duration) -> Tx {
        Tx { lease: Some(lease), _writer: writer, busy: false, rollback_within }
    }

    /// The connection, for a statement: pair with [`Tx::done`] once it ended (answered, with
    /// rows or an error), so that a drop in between knows the connection is not reusable.
    pub fn start(&mut self) -> &mut PgConnection {
        self.busy = true;
        self.lease.as_mut().expect("a transaction holds its lease until it ends").conn()
    }

    /// The statement begun by [`Tx::start`] ended with `result`. A connection found lost
    /// stays marked busy: dropped, the transaction closes it instead of sending a `ROLLBACK`
    /// that would wait on a dead socket.
    pub fn done<T>(&mut self, result: &Result<T, sqlx::Error>) {
        if !matches!(result, Err(e) if super::connection_lost(e)) {
            self.busy = false;
        }
    }

    /// The transaction ended (`COMMIT` answered): the connection goes back to the pool,
    /// unless it was found lost (then it is closed).
    pub fn end(mut self) {
        if let Some(lease) = self.lease.take() {
            if self.busy {
                drop(lease);
            } else {
                lease.give_back();
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut lease) = self.lease.take() else { return };
        // Mid-statement, or outside a runtime: the lease closes its connection.
        if self.busy {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let within = self.rollback_within;
        runtime.spawn(async move {
            let rolled_back = tokio::time::timeout(within, lease.conn().execute("ROLLBACK")).await;
            if matches!(rolled_back, Ok(Ok(_))) {
                lease.give_back();
            }
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not given back: its statement may not have ended. The socket closes with the
        // connection; the server ends the backend (and any statement at its budget).
        drop(self.conn.take());
        drop(self.permit.take());
    }
}
