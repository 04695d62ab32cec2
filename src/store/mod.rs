//! Pools, migrations, DDL and the execution of rendered SQL. The only module that talks to
//! the database.
//!
//! SQLite runs in WAL mode with `synchronous = FULL` (checked at start-up), foreign keys on
//! and a busy timeout. Reads run on the calling thread when they are short (`inline.rs`), and
//! otherwise on a pool of connections with threads of their own; writes go through a single writer
//! connection and `BEGIN IMMEDIATE`, so a write transaction never has to upgrade a read lock
//! (the classic source of `SQLITE_BUSY` under concurrency) and writes in this process queue
//! instead of failing.
//!
//! PostgreSQL: reads run on connections of their own (`pg.rs`), given back without the extra
//! round trip sqlx's pool makes on every release; writes, listeners and maintenance use sqlx's
//! pool. Each pool holds at most 4 connections per CPU (4 to 32).
//!
//! Every statement has a time budget ([`Budgets`]): on PostgreSQL `statement_timeout`, and a
//! statement still unanswered a second past it is given up and its connection closed (a
//! half-open socket would otherwise hold it for good, `pg::answered`); on
//! SQLite a progress handler that interrupts it (`sqlite.rs`), also when its caller goes away.
//! A write transaction has a budget for the whole of it. Waiting for a connection is bounded
//! too: past it the caller hears that the store is overloaded, instead of queueing forever.

mod inline;
mod pg;
mod sqlite;
pub mod tenancy;

pub use inline::ReadFigures;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Row, TypeInfo, ValueRef};

use crate::error::{ApiError, ErrorCode};
use crate::model::{Model, Storage};
use crate::sql::{ddl, names, system, Dialect, Sql, SqlValue};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl(String),
    #[error("database check failed: {0}")]
    Check(String),
    /// A unique index refused a value; `detail` names the index (PostgreSQL) or its columns
    /// (SQLite).
    #[error("unique constraint failed: {detail}")]
    Unique { detail: String },
    /// A statement or transaction ran out of its time budget (and was stopped).
    #[error("the statement ran longer than {0} ms")]
    Timeout(u64),
    /// No connection came free in time.
    #[error("the database is busy")]
    Overloaded,
    #[error("the store is closed")]
    Closed,
    /// A computed value left the range of its type (PostgreSQL: a sum of doubles).
    #[error("a value is out of range")]
    OutOfRange,
    /// A read returned more than it may (`fetch_rows_within`).
    #[error("the result is larger than {0} bytes")]
    TooLarge(usize),
    /// PostgreSQL rolled the transaction back to end a deadlock with another, or a
    /// serialization failure: nothing was written, and the same write may succeed if sent again.
    #[error("the write ran into another one and was rolled back")]
    Contention,
    /// A `COMMIT` was sent and never answered (PostgreSQL, a silent network): the write may
    /// or may not have been saved.
    #[error("the database did not answer the commit")]
    CommitUnknown,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Timeout(ms) => ApiError::new(
                ErrorCode::Timeout,
                format!("the request took longer than its time budget ({ms} ms) and was stopped; nothing was written"),
            ),
            StoreError::CommitUnknown => ApiError::new(
                ErrorCode::Timeout,
                "the database did not answer the commit of this write in time: it may or may not have been saved; \
                 read the objects before writing them again",
            ),
            StoreError::Contention => ApiError::contention(),
            StoreError::Overloaded | StoreError::Closed => {
                ApiError::new(ErrorCode::Overloaded, "the database is busy; retry shortly").retry_after(1)
            }
            StoreError::OutOfRange => {
                ApiError::validation("a computed value (a sum or an average) is beyond the range of its type")
            }
            StoreError::TooLarge(max) => ApiError::limit(format!(
                "the answer would be larger than {max} bytes; ask for fewer objects or fields (smaller pages)"
            )),
            e => ApiError::internal(e),
        }
    }
}

/// The time budgets of the store.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// One statement.
    pub statement: Duration,
    /// One write transaction, from `BEGIN` to `COMMIT`.
    pub write: Duration,
    /// Waiting for a connection.
    pub pool_wait: Duration,
    /// SQLite: bytes of the file each connection maps (`PRAGMA mmap_size`; 0: none).
    pub sqlite_mmap_bytes: u64,
    /// SQLite: how long a read may run on the calling thread before it is moved to the pool's
    /// threads (zero: every read runs there).
    pub sqlite_inline: Duration,
    /// The longest a write transaction waits on something other than its database between two
    /// statements: a remote hyper server in ATOMIC mode (`ARCBASE_HYPER_ATOMIC_TIMEOUT_MS`).
    pub remote_wait: Duration,
}

impl Budgets {
    pub fn from_limits(l: &crate::config::Limits) -> Self {
        Budgets {
            statement: Duration::from_millis(l.statement_ms),
            write: Duration::from_millis(l.write_ms),
            pool_wait: Duration::from_millis(l.pool_wait_ms),
            sqlite_mmap_bytes: l.sqlite_mmap_bytes,
            sqlite_inline: Duration::from_micros(l.sqlite_inline_us),
            remote_wait: Duration::from_secs(5),
        }
    }

    /// PostgreSQL's `idle_in_transaction_session_timeout`: past it the server ends a session
    /// whose transaction went quiet. arcbase never leaves a transaction idle longer than its
    /// write budget (or an ATOMIC remote's wait), and gives up on a silent connection at the
    /// statement budget and a grace; this is for the server's side of that connection. On a
    /// real partition the server learns nothing (no reset arrives), and without it would keep
    /// the abandoned transaction, and its row locks, until TCP keepalive gives up (hours).
    pub fn idle_in_transaction(&self) -> Duration {
        self.write.max(self.remote_wait) + pg::ANSWER_GRACE
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Self::from_limits(&crate::config::Limits::default())
    }
}

/// Embedded migrations of the system tables: (version, name, SQL), per dialect.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "system", include_str!("../../migrations/sqlite/0001_system.sql")),
    (2, "tenancy", include_str!("../../migrations/sqlite/0002_tenancy.sql")),
    (3, "hyper", include_str!("../../migrations/sqlite/0003_hyper.sql")),
    (4, "hyper sync", include_str!("../../migrations/sqlite/0004_hyper_sync.sql")),
    (5, "hyper resync", include_str!("../../migrations/sqlite/0005_hyper_resync.sql")),
    (6, "hyper counts", include_str!("../../migrations/sqlite/0006_hyper_counts.sql")),
    (7, "attachments", include_str!("../../migrations/sqlite/0007_attachments.sql")),
    (8, "realtime", include_str!("../../migrations/sqlite/0008_realtime.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "system", include_str!("../../migrations/postgres/0001_system.sql")),
    (2, "tenancy", include_str!("../../migrations/postgres/0002_tenancy.sql")),
    (3, "hyper", include_str!("../../migrations/postgres/0003_hyper.sql")),
    (4, "hyper sync", include_str!("../../migrations/postgres/0004_hyper_sync.sql")),
    (5, "hyper resync", include_str!("../../migrations/postgres/0005_hyper_resync.sql")),
    (6, "hyper counts", include_str!("../../migrations/postgres/0006_hyper_counts.sql")),
    (7, "attachments", include_str!("../../migrations/postgres/0007_attachments.sql")),
    (8, "realtime", include_str!("../../migrations/postgres/0008_realtime.sql")),
];

/// The advisory lock that serializes migrations and DDL between nodes sharing a PostgreSQL
/// database (any constant unlikely to collide with an application's own).
const DDL_LOCK: i64 = 0x0061_7263_6261_7365;

#[derive(Clone)]
enum Backend {
    Sqlite {
        read: sqlite::Pool,
        write: sqlite::Pool,
        inline: Arc<inline::Inline>,
    },
    /// `conns`: reads and write transactions (`pg.rs`); `listeners`: `LISTEN` connections.
    Postgres {
        conns: pg::Pool,
        listeners: PgPool,
    },
}

/// The database behind one arcbase process.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    budgets: Budgets,
    /// Statements executed through this store, for tests that prove a read is one statement.
    statements: Arc<AtomicU64>,
    /// Woken after every write transaction of this process commits (the realtime hub reads
    /// the feed then, instead of polling).
    commits: Arc<tokio::sync::Notify>,
    /// Objects written since the planner's statistics were last refreshed.
    statistics: Arc<Statistics>,
}

/// SQLite's planner statistics follow the data: refreshed (`PRAGMA optimize`, which analyzes
/// only the tables that grew or shrank much) after every [`REFRESH_AFTER`] objects written,
/// periodically (the built-in cache sweeper) and after schema changes; then every connection
/// reloads them. Without it a table loaded after its first analysis keeps the statistics of
/// its first rows, and the planner can prefer walking the primary key over a selective index
/// (a `find` by member over a million messages went from 1,170 to 63 requests a second).
#[derive(Default)]
struct Statistics {
    written: AtomicU64,
    refreshing: std::sync::atomic::AtomicBool,
}

/// Objects written between two refreshes of the planner's statistics.
pub const REFRESH_AFTER: u64 = 1_000;

enum TxInner {
    Sqlite(sqlite::Lease),
    Postgres(pg::Tx),
}

/// A write transaction; rolled back when dropped without [`WriteTx::commit`].
pub struct WriteTx {
    inner: TxInner,
    statements: Arc<AtomicU64>,
    budgets: Budgets,
    /// The whole transaction must end by then.
    deadline: Instant,
    commits: Arc<tokio::sync::Notify>,
    /// Objects this transaction changed (as the change feed counts them).
    changed: u64,
    store: Store,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let budgets = self.budgets;
        let until = self.deadline.max(Instant::now() + budgets.statement);
        match self.inner {
            TxInner::Sqlite(mut lease) => {
                let conn = lease.start(until);
                let r = sqlx::Executor::execute(&mut *conn, "COMMIT").await.map_err(|e| classify(e, budgets));
                lease.done();
                r?;
                lease.end_transaction();
            }
            TxInner::Postgres(mut tx) => {
                let r = pg::answered(budgets.statement, sqlx::Executor::execute(tx.start(), "COMMIT")).await;
                tx.done(&r);
                // Answered with success or an error, the transaction is over either way.
                tx.end();
                r.map_err(|e| match pg::is_unanswered(&e) {
                    // Sent and never answered: it may have been written. Not a timeout, whose
                    // message promises that nothing was.
                    true => StoreError::CommitUnknown,
                    false => classify(e, budgets),
                })?;
            }
        }
        self.commits.notify_waiters();
        self.store.written(self.changed);
        Ok(())
    }

    /// This transaction changes `n` more objects (for the planner's statistics).
    pub fn note_changes(&mut self, n: usize) {
        self.changed += n as u64;
    }

    /// The budget of the next statement: its own, within what is left of the transaction's.
    fn until(&self) -> Result<Instant, StoreError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(StoreError::Timeout(self.budgets.write.as_millis() as u64));
        }
        Ok(self.deadline.min(now + self.budgets.statement))
    }
}

pub type Tx = WriteTx;

impl Store {
    /// Open the database at `url` (`sqlite://PATH`, created when missing, or
    /// `postgres://...`), check its settings and run the system migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, Budgets::default()).await
    }

    /// [`Store::open`] with the given time budgets.
    pub async fn open_with(url: &str, budgets: Budgets) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Self::open_sqlite(url, &budgets).await?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::open_postgres(url, budgets).await?
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let store = Store {
            backend,
            budgets,
            statements: Default::default(),
            commits: Default::default(),
            statistics: Default::default(),
        };
        store.check_settings().await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(url: &str, budgets: &Budgets) -> Result<Backend, StoreError> {
        let mut opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .optimize_on_close(true, None);
        if budgets.sqlite_mmap_bytes > 0 {
            opts = opts.pragma("mmap_size", budgets.sqlite_mmap_bytes.to_string());
        }
        // An in-memory database lives in the pool's shared cache, out of reach of other
        // connections: its reads all go to the pool.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let file = (!in_memory).then(|| opts.get_filename().to_path_buf());
        // One record of the writes for every store of this process on the file.
        let writes = inline::Writes::of(file.as_deref());
        let write = sqlite::Pool::open(opts.clone(), 1, 1, writes.clone()).await?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(2, 16);
        let read = sqlite::Pool::open(opts, readers, 1, writes.clone()).await?;
        inline::Writes::age_snapshots(&writes);
        let inline = inline::Inline::new(file, budgets.sqlite_mmap_bytes, budgets.sqlite_inline, readers, writes);
        Ok(Backend::Sqlite { read, write, inline })
    }

    async fn open_postgres(url: &str, budgets: Budgets) -> Result<Backend, StoreError> {
        let opts = PgConnectOptions::from_str(url)?.options([
            ("statement_timeout", budgets.statement.as_millis().to_string()),
            ("idle_in_transaction_session_timeout", budgets.idle_in_transaction().as_millis().to_string()),
            ("TimeZone", "UTC".to_string()),
        ]);
        let size = std::thread::available_parallelism().map_or(8, |n| n.get() * 4).clamp(4, 32);
        // A listener holds its connection for good; one per process is used (the realtime
        // hub's), one more spare for its reconnect.
        let listeners =
            PgPoolOptions::new().max_connections(2).acquire_timeout(budgets.pool_wait).connect_lazy_with(opts.clone());
        Ok(Backend::Postgres { conns: pg::Pool::new(opts, size), listeners })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// One value of a setting, read on the writer connection (SQLite's pragmas are per
    /// connection, and the writer is the one whose durability matters).
    async fn setting(&self, s: system::Setting) -> Result<SqlValue, StoreError> {
        let sql = system::setting(self.dialect(), s);
        let rows = match &self.backend {
            Backend::Sqlite { write, .. } => self.on_sqlite(write, &sql, self.budgets.pool_wait, None).await?,
            Backend::Postgres { .. } => self.fetch_rows(&sql).await?,
        };
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .ok_or_else(|| StoreError::Check(format!("{s:?} is not set")))
    }

    /// Durability and timeouts depend on these settings; refuse to run without them.
    async fn check_settings(&self) -> Result<(), StoreError> {
        use system::Setting;
        match self.dialect() {
            Dialect::Sqlite => {
                let mode = self.setting(Setting::JournalMode).await?;
                if !mode.as_str().is_some_and(|m| m.eq_ignore_ascii_case("wal")) {
                    return Err(StoreError::Check(format!("journal_mode is {mode:?}, expected wal")));
                }
                let sync = self.setting(Setting::Synchronous).await?;
                if sync.as_i64() != Some(2) {
                    return Err(StoreError::Check(format!("synchronous is {sync:?}, expected 2 (FULL)")));
                }
                if self.setting(Setting::ForeignKeys).await?.as_i64() != Some(1) {
                    return Err(StoreError::Check("foreign_keys is off".into()));
                }
            }
            Dialect::Postgres => {
                if self.setting(Setting::StatementTimeout).await?.as_str() == Some("0") {
                    return Err(StoreError::Check("statement_timeout is not set".into()));
                }
            }
        }
        Ok(())
    }

    /// The value of PostgreSQL's `statement_timeout` on a pooled connection (diagnostics).
    pub async fn statement_timeout(&self) -> Result<Option<String>, StoreError> {
        match self.dialect() {
            Dialect::Sqlite => Ok(None),
            Dialect::Postgres => {
                Ok(self.setting(system::Setting::StatementTimeout).await?.as_str().map(str::to_string))
            }
        }
    }

    /// A DDL transaction: SQLite takes the write lock; PostgreSQL takes the cluster-wide DDL
    /// advisory lock so nodes starting together apply migrations and DDL one at a time.
    pub(crate) async fn begin_ddl(&self) -> Result<WriteTx, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.dialect() == Dialect::Postgres {
            tx_execute(&mut tx, &system::advisory_lock(Dialect::Postgres, DDL_LOCK)).await?;
        }
        Ok(tx)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut tx = self.begin_ddl().await?;
        let migrations = match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        };
        tx_execute(&mut tx, &system::create_ledger(dialect)).await?;
        for (version, name, text) in migrations {
            if !tx_fetch(&mut tx, &system::migration_applied(dialect, *version)).await?.is_empty() {
                continue;
            }
            // The migration files are scripts of several statements, run as written.
            match &mut tx.inner {
                TxInner::Sqlite(lease) => {
                    let conn = lease.start(Instant::now() + self.budgets.write);
                    let r = sqlx::raw_sql(text).execute(&mut *conn).await;
                    lease.done();
                    r?;
                }
                TxInner::Postgres(t) => {
                    // Within the write budget, as on SQLite: on a silent network a migration
                    // would otherwise hold the DDL lock for good.
                    let r = pg::answered(self.budgets.write, sqlx::raw_sql(text).execute(t.start())).await;
                    t.done(&r);
                    r?;
                }
            }
            tx_execute(&mut tx, &system::record_migration(dialect, *version, name, &crate::plan::write::now())).await?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Create the tables and indexes of `model` for `app`, adding columns that a newer model
    /// introduced to tables that already exist. One transaction: all or nothing.
    pub async fn apply_model(&self, app: &str, model: &Model) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut tx = self.begin_ddl().await?;
        for ty in &model.types {
            let table = names::object_table(app, ty);
            let existing: Vec<String> =
                crate::value::first_texts(tx_fetch(&mut tx, &system::table_columns(dialect, &table)).await?);
            if existing.is_empty() {
                continue;
            }
            for field in &ty.fields {
                if matches!(field.storage(), Storage::Column | Storage::RefColumn(_))
                    && !existing.iter().any(|c| c.eq_ignore_ascii_case(names::column(field)))
                {
                    tx_execute(&mut tx, &Sql::raw(dialect, &ddl::add_column(dialect, &table, field))).await?;
                }
            }
        }
        for stmt in ddl::create_statements(dialect, app, model) {
            tx_execute(&mut tx, &Sql::raw(dialect, &stmt)).await?;
        }
        tx.commit().await?;
        // Refresh the planner's statistics where they are stale, so selective indexed filters
        // use their index; connections opened later load them. (PostgreSQL's autovacuum does
        // this by itself.)
        if let Backend::Sqlite { write, .. } = &self.backend {
            self.on_sqlite(write, &system::optimize(dialect), self.budgets.pool_wait, None).await?;
            self.statistics_changed();
        }
        Ok(())
    }

    /// Drop the indexes of `app`'s tables that an earlier arcbase made and `model` no longer
    /// has ([`ddl::redundant_indexes`]). Which exist is read first, without the DDL lock, so
    /// a database that has none (the usual case) takes no lock and writes nothing; those found
    /// are dropped in one DDL transaction whose lock waits are bounded (PostgreSQL: a second,
    /// so a long transaction on the table delays nobody's reads behind the drop for longer).
    pub async fn drop_redundant_indexes(&self, app: &str, model: &Model) -> Result<usize, StoreError> {
        let names = ddl::redundant_indexes(app, model);
        if names.is_empty() {
            return Ok(0);
        }
        let dialect = self.dialect();
        let found: Vec<String> =
            crate::value::first_texts(self.fetch_rows(&system::existing_indexes(dialect, &names)).await?);
        if found.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_ddl().await?;
        if let Some(timeout) = system::local_lock_timeout(dialect, 1000) {
            tx_execute(&mut tx, &timeout).await?;
        }
        for name in &found {
            tx_execute(&mut tx, &Sql::raw(dialect, &ddl::drop_index(name))).await?;
        }
        tx.commit().await?;
        Ok(found.len())
    }

    /// Run a read that returns at most one row with one JSON column.
    pub async fn fetch_json(&self, sql: &Sql) -> Result<Option<String>, StoreError> {
        let rows = self.fetch_rows(sql).await?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(|v| match v {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }))
    }

    /// Run a read returning rows of plain values.
    pub async fn fetch_rows(&self, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.count();
        let span = tracing::info_span!("statement", binds = sql.binds.len());
        tracing::trace!(parent: &span, sql = %sql.text, "statement");
        let run = async {
            match &self.backend {
                Backend::Sqlite { read, inline, .. } => {
                    let until = Instant::now() + self.budgets.statement;
                    match self.inline_read(inline, sql, until, None).await {
                        Some(done) => done,
                        None => self.on_sqlite(read, sql, self.budgets.pool_wait, Some((until, inline))).await,
                    }
                }
                Backend::Postgres { conns, .. } => {
                    let mut out = Vec::new();
                    self.on_postgres(conns, sql, |row| {
                        out.push(row);
                        Ok(())
                    })
                    .await?;
                    Ok(out)
                }
            }
        };
        tracing::Instrument::instrument(run, span).await
    }

    /// [`Store::fetch_rows`], but stop with [`StoreError::TooLarge`] as soon as the rows' text
    /// passes `max_bytes`: a read's memory is bounded while it arrives.
    pub async fn fetch_rows_within(&self, sql: &Sql, max_bytes: usize) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        use futures_util::StreamExt;
        self.count();
        let span = tracing::info_span!("statement", binds = sql.binds.len());
        tracing::trace!(parent: &span, sql = %sql.text, "statement");
        let budgets = self.budgets;
        let run = async {
            let mut out = Vec::new();
            let mut size = 0usize;
            let mut add = |row: Vec<SqlValue>| -> Result<(), StoreError> {
                size += row.iter().map(|v| v.as_str().map_or(8, str::len)).sum::<usize>();
                if size > max_bytes {
                    return Err(StoreError::TooLarge(max_bytes));
                }
                out.push(row);
                Ok(())
            };
            match &self.backend {
                Backend::Sqlite { read, inline, .. } => {
                    let until = Instant::now() + budgets.statement;
                    if let Some(done) = self.inline_read(inline, sql, until, Some(max_bytes)).await {
                        return done;
                    }
                    let mut lease = read.acquire(budgets.pool_wait).await?;
                    // Timed from the lease: waiting for a connection says nothing of the text.
                    let started = Instant::now();
                    let conn = lease.start_query(until, &sql.text);
                    let mut rows = bind_sqlite(sqlx::query(&sql.text), &sql.binds).fetch(&mut *conn);
                    let mut result = Ok(());
                    while let Some(row) = rows.next().await {
                        result =
                            row.map_err(|e| classify(e, budgets)).and_then(|r| decode_sqlite(&r)).and_then(&mut add);
                        if result.is_err() {
                            break;
                        }
                    }
                    drop(rows);
                    lease.done();
                    inline.ran_on_pool(&sql.text, started.elapsed());
                    result?;
                }
                Backend::Postgres { conns, .. } => self.on_postgres(conns, sql, &mut add).await?,
            }
            Ok(out)
        };
        tracing::Instrument::instrument(run, span).await
    }

    /// A read on the calling thread (`inline.rs`); `None`: run it on the pool.
    async fn inline_read(
        &self,
        inline: &inline::Inline,
        sql: &Sql,
        until: Instant,
        max_bytes: Option<usize>,
    ) -> Option<Result<Vec<Vec<SqlValue>>, StoreError>> {
        let done = match inline.read(sql, until, max_bytes) {
            Ok(rows) => Ok(rows),
            Err(inline::Declined::Timeout) => Err(StoreError::Timeout(self.budgets.statement.as_millis() as u64)),
            Err(inline::Declined::TooLarge) => Err(StoreError::TooLarge(max_bytes.unwrap_or_default())),
            Err(inline::Declined::Pool) => return None,
        };
        // The read finished without yielding: count it against tokio's cooperative budget, so
        // that a task whose reads all finish at once still gives its thread back now and then.
        tokio::task::consume_budget().await;
        Some(done)
    }

    /// One statement on a connection of `pool`, within the statement budget from now; or, for a
    /// read the inline path `declined`, by the `until` it began with, telling the inline path
    /// how long the text took here.
    async fn on_sqlite(
        &self,
        pool: &sqlite::Pool,
        sql: &Sql,
        wait: Duration,
        declined: Option<(Instant, &inline::Inline)>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let mut lease = pool.acquire(wait).await?;
        let started = Instant::now();
        let conn =
            lease.start_query(declined.map_or_else(|| started + self.budgets.statement, |(until, _)| until), &sql.text);
        let rows = bind_sqlite(sqlx::query(&sql.text), &sql.binds).fetch_all(&mut *conn).await;
        lease.done();
        if let Some((_, inline)) = declined {
            // Timed from the lease: waiting for a connection says nothing of the text.
            inline.ran_on_pool(&sql.text, started.elapsed());
        }
        rows.map_err(|e| classify(e, self.budgets))?.iter().map(decode_sqlite).collect()
    }

    /// One read on a connection of `read`, each row handed to `add` as it arrives. A
    /// connection that had been idle and turns out to be gone (the server restarted, the
    /// network dropped it) before any row came is replaced once: a read may run again.
    async fn on_postgres(
        &self,
        read: &pg::Pool,
        sql: &Sql,
        mut add: impl FnMut(Vec<SqlValue>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;
        let text = sql.driver_text();
        let mut fresh = false;
        loop {
            let mut lease = read.acquire(self.budgets.pool_wait, fresh).await?;
            let mut rows = bind_pg(sqlx::query(&text), &sql.binds).fetch(lease.conn());
            let mut any = false;
            let mut failed = None;
            // The first row (or the end) by the statement's budget and a grace (`pg::answered`),
            // then each next within a grace of the last: the server's `statement_timeout` ends
            // its work, not this side's reading of rows it sent in time. One timer for the
            // whole read, moved only once the rows run past the first deadline.
            let silence = tokio::time::sleep(self.budgets.statement + pg::ANSWER_GRACE);
            tokio::pin!(silence);
            loop {
                let next = tokio::select! {
                    biased;
                    next = rows.next() => next,
                    () = &mut silence => {
                        failed = Some(pg::unanswered());
                        break;
                    }
                };
                let later = tokio::time::Instant::now() + pg::ANSWER_GRACE;
                if later > silence.deadline() {
                    silence.as_mut().reset(later);
                }
                let Some(row) = next else { break };
                let done = match row {
                    Ok(r) => decode_pg(&r).and_then(&mut add),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                any = true;
                // Stopped early (`?`): the lease is dropped with its statement's leftovers.
                done?;
            }
            drop(rows);
            let Some(e) = failed else {
                lease.give_back();
                return Ok(());
            };
            self.run_again(lease, e, !any)?;
            fresh = true;
        }
    }

    /// The first statement on `lease` failed with `e`: `Ok` when it is to run again on a new
    /// connection, because the one it had been idle and turned out gone (a server restart)
    /// and nothing of it reached the caller (`untouched`); the error otherwise, the connection
    /// given back when the server answered (it is ready for the next statement). Only a
    /// reused connection is replaced, so a statement runs at most twice.
    fn run_again(&self, lease: pg::Lease, e: sqlx::Error, untouched: bool) -> Result<(), StoreError> {
        if !connection_lost(&e) {
            lease.give_back();
            return Err(classify(e, self.budgets));
        }
        if !untouched || !lease.reused() {
            return Err(classify(e, self.budgets));
        }
        tracing::debug!("an idle PostgreSQL connection was gone ({e}): the statement runs on a new one");
        Ok(())
    }

    /// Start a write transaction (SQLite: the writer connection, `BEGIN IMMEDIATE`).
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.count();
        let deadline = Instant::now() + self.budgets.write;
        let inner = match &self.backend {
            Backend::Sqlite { write, .. } => {
                let mut lease = write.acquire(self.budgets.pool_wait).await?;
                let conn = lease.start(deadline.min(Instant::now() + self.budgets.statement));
                let begun = sqlx::Executor::execute(&mut *conn, "BEGIN IMMEDIATE").await;
                if begun.is_ok() {
                    // Before `done`: the file stays held from `BEGIN` to the transaction's end
                    // (one begin and one end for the inline readers, not two of each).
                    lease.begin_transaction();
                }
                lease.done();
                begun.map_err(|e| classify(e, self.budgets))?;
                TxInner::Sqlite(lease)
            }
            Backend::Postgres { conns, .. } => TxInner::Postgres(self.begin_postgres(conns).await?),
        };
        Ok(WriteTx {
            inner,
            statements: self.statements.clone(),
            budgets: self.budgets,
            deadline,
            commits: self.commits.clone(),
            changed: 0,
            store: self.clone(),
        })
    }

    /// `BEGIN` on a connection of `conns`. A connection that had been idle and turns out to be
    /// gone is replaced once (nothing ran on it), as for a read.
    async fn begin_postgres(&self, conns: &pg::Pool) -> Result<pg::Tx, StoreError> {
        let writer = conns.writer(self.budgets.pool_wait).await?;
        let mut fresh = false;
        loop {
            let mut lease = conns.acquire(self.budgets.pool_wait, fresh).await?;
            match pg::answered(self.budgets.statement, sqlx::Executor::execute(lease.conn(), "BEGIN")).await {
                Ok(_) => return Ok(pg::Tx::new(lease, writer, self.budgets.statement)),
                Err(e) => self.run_again(lease, e, true)?,
            }
            fresh = true;
        }
    }

    fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Refresh SQLite's planner statistics where the data moved much since the last time
    /// (`PRAGMA optimize`), and make every connection load them. PostgreSQL: nothing
    /// (autovacuum analyzes tables as they change).
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        let Backend::Sqlite { write, .. } = &self.backend else { return Ok(()) };
        self.statistics.written.store(0, Ordering::Relaxed);
        self.on_sqlite(write, &system::optimize(self.dialect()), self.budgets.pool_wait, None).await?;
        self.statistics_changed();
        Ok(())
    }

    /// SQLite: every reader reloads the planner's statistics before its next read.
    fn statistics_changed(&self) {
        if let Backend::Sqlite { read, inline, .. } = &self.backend {
            read.statistics_changed();
            inline.statistics_changed();
        }
    }

    /// PostgreSQL: connections open and idle in the pool now (`None` on SQLite).
    pub fn idle_connections(&self) -> Option<usize> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres { conns, .. } => Some(conns.idle()),
        }
    }

    /// How SQLite's reads were answered: on the calling thread or on the pool's (`None` on
    /// PostgreSQL).
    pub fn read_figures(&self) -> Option<ReadFigures> {
        match &self.backend {
            Backend::Sqlite { inline, .. } => Some(inline.figures()),
            Backend::Postgres { .. } => None,
        }
    }

    /// `n` objects were written: past [`REFRESH_AFTER`] since the last refresh, refresh the
    /// statistics in the background (one refresh at a time).
    fn written(&self, n: u64) {
        if n == 0 || !matches!(self.backend, Backend::Sqlite { .. }) {
            return;
        }
        let total = self.statistics.written.fetch_add(n, Ordering::Relaxed) + n;
        if total < REFRESH_AFTER || self.statistics.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.statistics.refreshing.store(false, Ordering::Release);
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            if let Err(e) = store.refresh_statistics().await {
                tracing::warn!("refreshing the planner's statistics failed: {e}");
            }
            store.statistics.refreshing.store(false, Ordering::Release);
        });
    }

    /// The plan of a read as each connection that may run it would run it (SQLite: `EXPLAIN
    /// QUERY PLAN` on every reader; PostgreSQL: `EXPLAIN`, once), one line per step.
    pub async fn query_plans(&self, sql: &Sql) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite { read, inline, .. } => {
                let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
                let explain = Sql::with_binds(Dialect::Sqlite, &text, sql.binds.clone());
                let mut plans = Vec::new();
                for steps in inline.with_each(|c| inline::plan(c, &explain)) {
                    plans.push(steps.map_err(|e| StoreError::Check(format!("EXPLAIN QUERY PLAN failed: {e}")))?);
                }
                for mut lease in read.acquire_all(self.budgets.pool_wait).await? {
                    let conn = lease.start(Instant::now() + self.budgets.statement);
                    let rows = bind_sqlite(sqlx::query(&text), &sql.binds).fetch_all(&mut *conn).await;
                    lease.done();
                    let rows = rows.map_err(|e| classify(e, self.budgets))?;
                    let steps: Vec<String> =
                        rows.iter().filter_map(|r| r.try_get::<String, _>("detail").ok()).collect();
                    plans.push(steps.join("\n"));
                }
                Ok(plans)
            }
            Backend::Postgres { .. } => {
                let text = format!("EXPLAIN {}", sql.text);
                let rows = self.fetch_rows(&Sql::with_binds(Dialect::Postgres, &text, sql.binds.clone())).await?;
                let steps: Vec<String> =
                    rows.iter().filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string)).collect();
                Ok(vec![steps.join("\n")])
            }
        }
    }

    /// The same database with a statement count of its own: for background work (the hyper
    /// services' workers and the bridge), so that the count of a request's statements is not
    /// disturbed by a timer.
    pub fn with_own_count(&self) -> Store {
        Store { statements: Arc::new(AtomicU64::new(0)), ..self.clone() }
    }

    /// Woken after each write transaction of this process commits.
    pub fn commits(&self) -> Arc<tokio::sync::Notify> {
        self.commits.clone()
    }

    /// A listener on the PostgreSQL channel `channel` (`None` on SQLite, whose writers are all
    /// in this process).
    pub async fn listen(&self, channel: &str) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(None),
            Backend::Postgres { listeners, .. } => {
                let mut l =
                    sqlx::postgres::PgListener::connect_with(listeners).await.map_err(|e| classify(e, self.budgets))?;
                pg::answered(self.budgets.statement, l.listen(channel)).await.map_err(|e| classify(e, self.budgets))?;
                Ok(Some(l))
            }
        }
    }

    /// How many statements this store has executed (reads, writes, BEGIN, COMMIT).
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// The time budgets.
    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    /// Run any statement outside a transaction (tests and maintenance); returns its rows.
    pub async fn execute(&self, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = tx_fetch(&mut tx, sql).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Close the pools (SQLite: checkpointing the WAL).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write, inline } => {
                inline.close();
                read.close().await;
                write.close().await;
            }
            Backend::Postgres { conns, listeners } => {
                conns.close().await;
                listeners.close().await;
            }
        }
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Bind every value in order (one body for both drivers: their query types differ).
macro_rules! bind_values {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                SqlValue::Null => q.bind(None::<String>),
                SqlValue::Bool(v) => q.bind(*v),
                SqlValue::Int(v) => q.bind(*v),
                SqlValue::Real(v) => q.bind(*v),
                SqlValue::Text(v) => q.bind(v.as_str()),
            };
        }
        q
    }};
}

fn bind_sqlite<'q>(q: SqliteQuery<'q>, binds: &'q [SqlValue]) -> SqliteQuery<'q> {
    bind_values!(q, binds)
}

fn bind_pg<'q>(q: PgQuery<'q>, binds: &'q [SqlValue]) -> PgQuery<'q> {
    bind_values!(q, binds)
}

/// Execute a statement in `tx`, returning the rows it produced (for `RETURNING`).
pub async fn tx_fetch(tx: &mut Tx, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    tx.statements.fetch_add(1, Ordering::Relaxed);
    let until = tx.until()?;
    let budgets = tx.budgets;
    match &mut tx.inner {
        TxInner::Sqlite(lease) => {
            let conn = lease.start(until);
            let rows = bind_sqlite(sqlx::query(&sql.text), &sql.binds).fetch_all(&mut *conn).await;
            lease.done();
            rows.map_err(|e| classify(e, budgets))?.iter().map(decode_sqlite).collect()
        }
        TxInner::Postgres(t) => {
            let text = sql.driver_text();
            let rows =
                pg::answered(budgets.statement, bind_pg(sqlx::query(&text), &sql.binds).fetch_all(t.start())).await;
            t.done(&rows);
            rows.map_err(|e| classify(e, budgets))?.iter().map(decode_pg).collect()
        }
    }
}

/// Execute a statement in `tx`, returning the number of rows it changed.
pub async fn tx_execute(tx: &mut Tx, sql: &Sql) -> Result<u64, StoreError> {
    tx.statements.fetch_add(1, Ordering::Relaxed);
    let until = tx.until()?;
    let budgets = tx.budgets;
    let done = match &mut tx.inner {
        TxInner::Sqlite(lease) => {
            let conn = lease.start(until);
            let r = bind_sqlite(sqlx::query(&sql.text), &sql.binds).execute(&mut *conn).await;
            lease.done();
            r.map_err(|e| classify(e, budgets))?.rows_affected()
        }
        TxInner::Postgres(t) => {
            let text = sql.driver_text();
            let r = pg::answered(budgets.statement, bind_pg(sqlx::query(&text), &sql.binds).execute(t.start())).await;
            t.done(&r);
            r.map_err(|e| classify(e, budgets))?.rows_affected()
        }
    };
    Ok(done)
}

/// A permit of a pool's semaphore within `wait`: past it the store is overloaded (the caller
/// is told so instead of queueing without end); closed, the pool is.
async fn permit(
    permits: &Arc<tokio::sync::Semaphore>,
    wait: Duration,
) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
    match tokio::time::timeout(wait, permits.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(_)) => Err(StoreError::Closed),
        Err(_) => Err(StoreError::Overloaded),
    }
}

/// The connection cannot serve another statement: its socket failed, or the server said it is
/// ending it (class 08, connection exception; 57P01-57P03, shutdown or restart).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        _ => false,
    }
}

/// The store's reading of a driver error: a unique violation, a statement stopped by its
/// budget (SQLite: interrupted by the progress handler; PostgreSQL: `statement_timeout`), a
/// pool that had no connection in time, or anything else.
fn classify(e: sqlx::Error, budgets: Budgets) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                let detail = match db.constraint() {
                    Some(c) => c.to_string(),
                    None => db.message().to_string(),
                };
                return StoreError::Unique { detail };
            }
            let code = db.code();
            // SQLITE_INTERRUPT (9); PostgreSQL query_canceled (57014).
            if matches!(code.as_deref(), Some("9") | Some("57014")) || db.message() == "interrupted" {
                return StoreError::Timeout(budgets.statement.as_millis() as u64);
            }
            // deadlock_detected, serialization_failure (PostgreSQL): the transaction is gone.
            if matches!(code.as_deref(), Some("40P01") | Some("40001")) {
                return StoreError::Contention;
            }
            // numeric_value_out_of_range (PostgreSQL).
            if code.as_deref() == Some("22003") {
                return StoreError::OutOfRange;
            }
            StoreError::Db(e)
        }
        sqlx::Error::PoolTimedOut => StoreError::Overloaded,
        // No answer by the statement's budget and its grace (`pg::answered`): to the caller,
        // the statement ran out of its budget.
        _ if pg::is_unanswered(&e) => StoreError::Timeout(budgets.statement.as_millis() as u64),
        _ => StoreError::Db(e),
    }
}

fn decode_sqlite(row: &SqliteRow) -> Result<Vec<SqlValue>, StoreError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for i in 0..row.columns().len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(SqlValue::Null);
            continue;
        }
        let v = match raw.type_info().name() {
            "INTEGER" | "BOOLEAN" => SqlValue::Int(row.try_get(i)?),
            "REAL" => SqlValue::Real(row.try_get(i)?),
            _ => SqlValue::Text(row.try_get(i)?),
        };
        out.push(v);
    }
    Ok(out)
}

fn decode_pg(row: &PgRow) -> Result<Vec<SqlValue>, StoreError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for i in 0..row.columns().len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(SqlValue::Null);
            continue;
        }
        let v = match raw.type_info().name() {
            "INT8" => SqlValue::Int(row.try_get(i)?),
            "INT4" => SqlValue::Int(i64::from(row.try_get::<i32, _>(i)?)),
            "INT2" => SqlValue::Int(i64::from(row.try_get::<i16, _>(i)?)),
            "FLOAT8" => SqlValue::Real(row.try_get(i)?),
            "FLOAT4" => SqlValue::Real(f64::from(row.try_get::<f32, _>(i)?)),
            "BOOL" => SqlValue::Bool(row.try_get(i)?),
            "JSONB" | "JSON" => {
                // Binary jsonb is a version byte followed by the JSON text.
                let binary = raw.format() == sqlx::postgres::PgValueFormat::Binary;
                let bytes = raw.as_bytes().map_err(|e| StoreError::Check(format!("undecodable JSON column: {e}")))?;
                let text =
                    if binary && raw.type_info().name() == "JSONB" { &bytes[1.min(bytes.len())..] } else { bytes };
                SqlValue::Text(String::from_utf8_lossy(text).into_owned())
            }
            "INT8[]" | "TEXT[]" => return Err(StoreError::Check("array columns are not expected".into())),
            _ => SqlValue::Text(row.try_get(i)?),
        };
        out.push(v);
    }
    Ok(out)
}
