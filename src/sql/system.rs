//! Statements of the store's own upkeep: the settings it checks at start, the migration
//! ledger, the advisory lock that serializes DDL between nodes, table introspection for
//! in-place migrations, and statistics upkeep. Rendered here like every other statement so
//! that `store` only executes.

use super::{Dialect, Sql};

/// A setting the store checks at start: SQLite's journal mode, `synchronous` and foreign
/// keys; PostgreSQL's `statement_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    JournalMode,
    Synchronous,
    ForeignKeys,
    StatementTimeout,
}

/// Read a setting.
pub fn setting(dialect: Dialect, s: Setting) -> Sql {
    Sql::raw(
        dialect,
        match s {
            Setting::JournalMode => "PRAGMA journal_mode",
            Setting::Synchronous => "PRAGMA synchronous",
            Setting::ForeignKeys => "PRAGMA foreign_keys",
            Setting::StatementTimeout => "SHOW statement_timeout",
        },
    )
}

/// Take the transaction-scoped advisory lock `key` (PostgreSQL).
pub fn advisory_lock(dialect: Dialect, key: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT pg_advisory_xact_lock(").bind(key).push(")");
    sql
}

/// Create the migration ledger when it is missing.
pub fn create_ledger(dialect: Dialect) -> Sql {
    let version = match dialect {
        Dialect::Sqlite => "INTEGER",
        Dialect::Postgres => "BIGINT",
    };
    Sql::raw(
        dialect,
        &format!(
            "CREATE TABLE IF NOT EXISTS arcbase_migrations (version {version} PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        ),
    )
}

/// Is migration `version` applied?
pub fn migration_applied(dialect: Dialect, version: i64) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT version FROM arcbase_migrations WHERE version = ").bind(version);
    sql
}

/// Record migration `version` as applied.
pub fn record_migration(dialect: Dialect, version: i64, name: &str, now: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO arcbase_migrations (version, name, applied_at) VALUES (").bind(version);
    sql.push(", ").bind(name).push(", ").bind(now).push(")");
    sql
}

/// The column names of `table` (empty when it does not exist).
pub fn table_columns(dialect: Dialect, table: &str) -> Sql {
    let mut q = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => q.push("SELECT name FROM pragma_table_info(").bind(table).push(")"),
        Dialect::Postgres => q
            .push("SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ")
            .bind(table),
    };
    q
}

/// Which of the indexes `names` exist (in this schema, on PostgreSQL).
pub fn existing_indexes(dialect: Dialect, names: &[String]) -> Sql {
    let mut q = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => q.push("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ("),
        Dialect::Postgres => {
            q.push("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN (")
        }
    };
    q.bind_list(names).push(")");
    q
}

/// A lock wait bounded within the transaction (PostgreSQL: `SET LOCAL lock_timeout`).
pub fn local_lock_timeout(dialect: Dialect, millis: u64) -> Option<Sql> {
    match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some(Sql::raw(dialect, &format!("SET LOCAL lock_timeout = {millis}"))),
    }
}

/// Refresh the query planner's statistics where they are stale (SQLite; PostgreSQL's
/// autovacuum does it by itself).
pub fn optimize(dialect: Dialect) -> Sql {
    Sql::raw(dialect, "PRAGMA optimize=0x10002")
}
