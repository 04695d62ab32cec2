//! PostgreSQL connections for reads, lent without a round trip of their own.
//!
//! sqlx's pool tests every connection given back to it with a `Sync` message and waits for
//! the server's `ReadyForQuery` (sqlx 0.8: `return_to_pool` pings unconditionally). For a read
//! of one statement that is a second round trip to the server: measured under `wrk` on a
//! `get` by id, every request cost two `sendto` calls on the PostgreSQL socket, and the
//! server's wake-ups for the second one took CPU that the database and arcbase share.
//!
//! This pool knows whether a statement ended: a lease whose statement ran to its end (rows or
//! an error from the server, after which the connection is ready again) is given back as it
//! is; a lease dropped mid-statement (the caller went away, or a read stopped early at the
//! response bound) closes its connection instead, so no connection is lent out with a
//! statement's leftovers. A connection whose socket failed is never given back either.
//!
//! Writes and listeners stay on sqlx's pool: a transaction's lifetime and rollback on drop are
//! its business there.
//!
//! The pool is a semaphore of `size` permits over a stack of idle connections, opened as
//! needed; waiting for a permit is bounded, past it the caller is told the store is overloaded.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

struct Inner {
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    opts: PgConnectOptions,
    size: usize,
}

/// A pool of read connections.
#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<Inner>,
}

/// A connection lent from [`Readers`]: closed when dropped, unless [`Lease::give_back`] said
/// its statement ended.
pub(crate) struct Lease {
    conn: Option<PgConnection>,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    reused: bool,
}

impl Readers {
    /// A pool of at most `size` connections; none is opened before it is needed.
    pub fn new(opts: PgConnectOptions, size: usize) -> Readers {
        Readers {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size)),
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

impl Drop for Lease {
    fn drop(&mut self) {
        // Not given back: its statement may not have ended. The socket closes with the
        // connection; the server ends the backend (and any statement at its budget).
        drop(self.conn.take());
        drop(self.permit.take());
    }
}
