//! Pools, migrations, DDL and the execution of rendered SQL. The only module that talks to
//! the database.
//!
//! SQLite runs in WAL mode with `synchronous = FULL` (checked at start-up), foreign keys on
//! and a busy timeout. Reads use a pool of connections; writes go through a single writer
//! connection and `BEGIN IMMEDIATE`, so a write transaction never has to upgrade a read lock
//! (the classic source of `SQLITE_BUSY` under concurrency) and writes in this process queue
//! in the pool instead of failing.

pub mod bulk;
pub mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool, TypeInfo, ValueRef};

use crate::error::ApiError;
use crate::model::{Model, Storage};
use crate::sql::{ddl, names, Dialect, Sql, SqlValue};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://PATH")]
    BadUrl(String),
    #[error("database check failed: {0}")]
    Check(String),
    /// A unique index refused a value; `detail` is the driver's text naming the columns.
    #[error("unique constraint failed: {detail}")]
    Unique { detail: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// Embedded migrations of the system tables: (version, name, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(1, "system", include_str!("../../migrations/sqlite/0001_system.sql"))];

/// The database behind one arcbase process.
#[derive(Clone)]
pub struct Store {
    read: SqlitePool,
    write: SqlitePool,
    /// Statements executed through this store, for tests that prove a read is one statement.
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A write transaction; rolled back when dropped without [`WriteTx::commit`].
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.tx.commit().await?)
    }
}

pub type Tx = WriteTx;

impl Store {
    /// Open (creating when missing) the database at `url`, check its settings and run the
    /// system migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .optimize_on_close(true, None);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(2, 16);
        let read = SqlitePoolOptions::new()
            .max_connections(readers as u32)
            .connect_with(opts.read_only(false))
            .await?;
        let store = Store { read, write, statements: Default::default() };
        store.check_settings().await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Durability depends on these settings; refuse to run without them.
    async fn check_settings(&self) -> Result<(), StoreError> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&self.write).await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Check(format!("journal_mode is {mode}, expected wal")));
        }
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&self.write).await?;
        if sync != 2 {
            return Err(StoreError::Check(format!("synchronous is {sync}, expected 2 (FULL)")));
        }
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&self.write).await?;
        if fk != 1 {
            return Err(StoreError::Check("foreign_keys is off".into()));
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS arcbase_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        for (version, name, text) in SQLITE_MIGRATIONS {
            let done: Option<i64> = sqlx::query_scalar("SELECT version FROM arcbase_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(text).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO arcbase_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                .bind(version)
                .bind(name)
                .bind(crate::plan::write::now())
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Create the tables and indexes of `model` for `app`, adding columns that a newer model
    /// introduced to tables that already exist. One transaction: all or nothing.
    pub async fn apply_model(&self, app: &str, model: &Model) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        for ty in &model.types {
            let table = names::object_table(app, ty);
            let existing: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&mut *tx)
                .await?;
            if existing.is_empty() {
                continue;
            }
            for field in &ty.fields {
                if matches!(field.storage(), Storage::Column | Storage::RefColumn(_))
                    && !existing.iter().any(|c| c == names::column(field))
                {
                    sqlx::query(&ddl::add_column(dialect, &table, field)).execute(&mut *tx).await?;
                }
            }
        }
        for stmt in ddl::create_statements(dialect, app, model) {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        // Refresh the planner's statistics where they are stale, so selective indexed filters
        // use their index; connections opened later load them.
        sqlx::query("PRAGMA optimize=0x10002").execute(&self.write).await?;
        Ok(())
    }

    /// Run a read that returns at most one row with one JSON text column.
    pub async fn fetch_json(&self, sql: &Sql) -> Result<Option<String>, StoreError> {
        self.count();
        let row = bind_all(sqlx::query(&sql.text), &sql.binds).fetch_optional(&self.read).await?;
        match row {
            Some(row) => Ok(row.try_get::<Option<String>, _>(0)?),
            None => Ok(None),
        }
    }

    /// Run a read returning rows of plain values.
    pub async fn fetch_rows(&self, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.count();
        let rows = bind_all(sqlx::query(&sql.text), &sql.binds)
            .fetch_all(&self.read)
            .await
            .map_err(classify)?;
        rows.iter().map(decode_row).collect()
    }

    /// Instance domain → instance id.
    pub async fn instances(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT domain, id FROM arcbase_instances")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Start a write transaction on the writer connection.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.count();
        Ok(WriteTx { tx: self.write.begin_with("BEGIN IMMEDIATE").await?, statements: self.statements.clone() })
    }

    fn count(&self) {
        self.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many statements this store has executed (reads, writes, BEGIN).
    pub fn statement_count(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The read pool, for tests and diagnostics.
    pub fn read_pool(&self) -> &SqlitePool {
        &self.read
    }

    /// Close both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_all<'q>(mut q: Query<'q>, binds: &'q [SqlValue]) -> Query<'q> {
    for b in binds {
        q = match b {
            SqlValue::Null => q.bind(None::<String>),
            SqlValue::Bool(v) => q.bind(*v),
            SqlValue::Int(v) => q.bind(*v),
            SqlValue::Real(v) => q.bind(*v),
            SqlValue::Text(v) => q.bind(v.as_str()),
        };
    }
    q
}

/// Execute a statement in `tx`, returning the rows it produced (for `RETURNING`).
pub async fn tx_fetch(tx: &mut Tx, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    tx.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let rows = bind_all(sqlx::query(&sql.text), &sql.binds)
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(classify)?;
    rows.iter().map(decode_row).collect()
}

/// Execute a statement in `tx`, returning the number of rows it changed.
pub async fn tx_execute(tx: &mut Tx, sql: &Sql) -> Result<u64, StoreError> {
    tx.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let done = bind_all(sqlx::query(&sql.text), &sql.binds)
        .execute(&mut *tx.tx)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected())
}

fn classify(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Unique { detail: db.message().to_string() };
        }
    }
    StoreError::Db(e)
}

fn decode_row(row: &SqliteRow) -> Result<Vec<SqlValue>, StoreError> {
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
