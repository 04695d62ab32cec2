//! Statements of the registry: releases, instances and shared settings.

use super::{Dialect, Sql, SqlValue};

const RELEASE_COLUMNS: &str = "SELECT app, name, sdl, created_at, seq FROM arcbase_releases";

/// Releases of `app` (or of every app), oldest first: `app, name, sdl, created_at, seq`.
pub fn releases(dialect: Dialect, app: Option<&str>) -> Sql {
    let mut sql = Sql::raw(dialect, RELEASE_COLUMNS);
    if let Some(app) = app {
        sql.push(" WHERE app = ").bind(app);
    }
    sql.push(" ORDER BY app, seq");
    sql
}

/// One release, by app and name (same columns as [`releases`]).
pub fn release(dialect: Dialect, app: &str, name: &str) -> Sql {
    let mut sql = Sql::raw(dialect, RELEASE_COLUMNS);
    sql.push(" WHERE app = ").bind(app).push(" AND name = ").bind(name);
    sql
}

/// `1` if the release name is taken.
pub fn release_exists(dialect: Dialect, app: &str, name: &str) -> Sql {
    let mut sql = Sql::raw(dialect, "SELECT 1 FROM arcbase_releases WHERE app = ");
    sql.bind(app).push(" AND name = ").bind(name);
    sql
}

/// Record a release as the newest of its app.
pub fn insert_release(dialect: Dialect, app: &str, name: &str, sdl: &str, now: &str) -> Sql {
    let mut sql = Sql::raw(dialect, "INSERT INTO arcbase_releases (app, name, sdl, created_at, seq) SELECT ");
    sql.bind(app).push(", ").bind(name).push(", ").bind(sdl).push(", ").bind(now);
    sql.push(", COALESCE(MAX(seq), 0) + 1 FROM arcbase_releases WHERE app = ").bind(app);
    sql
}

/// Every instance: `id, domain, app, release_name, anonymous_requests,
/// anonymous_registrations, version`.
pub fn instances(dialect: Dialect) -> Sql {
    Sql::raw(
        dialect,
        "SELECT id, domain, app, release_name, anonymous_requests, anonymous_registrations, version FROM arcbase_instances ORDER BY domain",
    )
}

/// A new instance; nothing when the id or domain is taken.
#[allow(clippy::too_many_arguments)]
pub fn insert_instance(
    dialect: Dialect,
    id: &str,
    domain: &str,
    app: &str,
    release: Option<&str>,
    anonymous_requests: bool,
    anonymous_registrations: bool,
    now: &str,
) -> Sql {
    let mut sql = Sql::raw(
        dialect,
        "INSERT INTO arcbase_instances (id, domain, app, created_at, release_name, anonymous_requests, anonymous_registrations, version) VALUES (",
    );
    sql.bind(id).push(", ").bind(domain).push(", ").bind(app);
    sql.push(", ").bind(now).push(", ").value(release.map(str::to_string).into());
    sql.push(", ").bind(SqlValue::Bool(anonymous_requests)).push(", ").bind(SqlValue::Bool(anonymous_registrations));
    sql.push(", 1) ON CONFLICT DO NOTHING");
    sql
}

/// Point an instance at a release and bump its version (so every node notices).
pub fn set_instance_release(dialect: Dialect, domain: &str, release: &str) -> Sql {
    let mut sql = Sql::raw(dialect, "UPDATE arcbase_instances SET release_name = ");
    sql.bind(release).push(", version = version + 1 WHERE domain = ").bind(domain);
    sql
}

/// Insert a shared setting unless it exists.
pub fn insert_setting(dialect: Dialect, key: &str, value: &str) -> Sql {
    let mut sql = Sql::raw(dialect, "INSERT INTO arcbase_settings (key, value) VALUES (");
    sql.bind(key).push(", ").bind(value).push(") ON CONFLICT DO NOTHING");
    sql
}

/// A shared setting's value.
pub fn setting(dialect: Dialect, key: &str) -> Sql {
    let mut sql = Sql::raw(dialect, "SELECT value FROM arcbase_settings WHERE key = ");
    sql.bind(key);
    sql
}

/// A number that changes whenever a release is published or an instance changes.
pub fn version(dialect: Dialect) -> Sql {
    Sql::raw(
        dialect,
        "SELECT CAST((SELECT COALESCE(SUM(version), 0) + COUNT(*) * 1000003 FROM arcbase_instances) \
         + (SELECT COUNT(*) FROM arcbase_releases) AS BIGINT)",
    )
}
