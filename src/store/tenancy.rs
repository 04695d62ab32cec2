//! The registry tables: releases, instances, settings. Plain rows; the rules (compatibility,
//! names) live in `crate::tenancy`.

use super::{tx_execute, tx_fetch, Store, StoreError};
use crate::sql::{Sql, SqlValue};

/// A published release of an app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseRow {
    pub app: String,
    pub name: String,
    #[serde(skip)]
    pub sdl: String,
    pub created_at: String,
    pub seq: i64,
}

/// An instance (tenant).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub domain: String,
    pub app: String,
    pub release: Option<String>,
    #[serde(rename = "enableAnonymousRequests")]
    pub anonymous_requests: bool,
    #[serde(rename = "enableAnonymousRegistrations")]
    pub anonymous_registrations: bool,
    pub version: i64,
}

fn text(v: &SqlValue) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn flag(v: &SqlValue) -> bool {
    match v {
        SqlValue::Bool(b) => *b,
        SqlValue::Int(i) => *i != 0,
        _ => false,
    }
}

fn release_row(r: &[SqlValue]) -> ReleaseRow {
    ReleaseRow {
        app: text(&r[0]),
        name: text(&r[1]),
        sdl: text(&r[2]),
        created_at: text(&r[3]),
        seq: r[4].as_i64().unwrap_or(0),
    }
}

impl Store {
    fn q(&self, text: &str) -> Sql {
        Sql::raw(self.dialect(), text)
    }

    /// Releases of `app` (or of every app), oldest first.
    pub async fn releases(&self, app: Option<&str>) -> Result<Vec<ReleaseRow>, StoreError> {
        let mut sql = self.q("SELECT app, name, sdl, created_at, seq FROM arcbase_releases");
        if let Some(app) = app {
            sql.push(" WHERE app = ").bind(app);
        }
        sql.push(" ORDER BY app, seq");
        Ok(self.fetch_rows(&sql).await?.iter().map(|r| release_row(r)).collect())
    }

    pub async fn release(&self, app: &str, name: &str) -> Result<Option<ReleaseRow>, StoreError> {
        let mut sql = self.q("SELECT app, name, sdl, created_at, seq FROM arcbase_releases WHERE app = ");
        sql.bind(app).push(" AND name = ").bind(name);
        Ok(self.fetch_rows(&sql).await?.first().map(|r| release_row(r)))
    }

    pub async fn latest_release(&self, app: &str) -> Result<Option<ReleaseRow>, StoreError> {
        Ok(self.releases(Some(app)).await?.pop())
    }

    /// Record a release as the newest of its app. `false` when the name is taken.
    pub async fn insert_release(&self, app: &str, name: &str, sdl: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_ddl().await?;
        let mut exists = self.q("SELECT 1 FROM arcbase_releases WHERE app = ");
        exists.bind(app).push(" AND name = ").bind(name);
        if !tx_fetch(&mut tx, &exists).await?.is_empty() {
            return Ok(false);
        }
        let mut sql = self.q("INSERT INTO arcbase_releases (app, name, sdl, created_at, seq) SELECT ");
        sql.bind(app).push(", ").bind(name).push(", ").bind(sdl).push(", ").bind(crate::plan::write::now());
        sql.push(", COALESCE(MAX(seq), 0) + 1 FROM arcbase_releases WHERE app = ").bind(app);
        tx_execute(&mut tx, &sql).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn instance_rows(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let sql = self.q(
            "SELECT id, domain, app, release_name, anonymous_requests, anonymous_registrations, version FROM arcbase_instances ORDER BY domain",
        );
        Ok(self
            .fetch_rows(&sql)
            .await?
            .iter()
            .map(|r| InstanceRow {
                id: text(&r[0]),
                domain: text(&r[1]),
                app: text(&r[2]),
                release: r[3].as_str().map(str::to_string),
                anonymous_requests: flag(&r[4]),
                anonymous_registrations: flag(&r[5]),
                version: r[6].as_i64().unwrap_or(0),
            })
            .collect())
    }

    /// Create an instance; `false` when the domain is taken.
    pub async fn insert_instance(&self, row: &InstanceRow) -> Result<bool, StoreError> {
        let mut sql = self.q(
            "INSERT INTO arcbase_instances (id, domain, app, created_at, release_name, anonymous_requests, anonymous_registrations, version) VALUES (",
        );
        sql.bind(row.id.as_str()).push(", ").bind(row.domain.as_str()).push(", ").bind(row.app.as_str());
        sql.push(", ").bind(crate::plan::write::now()).push(", ").value(row.release.clone().into());
        sql.push(", ")
            .bind(SqlValue::Bool(row.anonymous_requests))
            .push(", ")
            .bind(SqlValue::Bool(row.anonymous_registrations));
        sql.push(", 1) ON CONFLICT DO NOTHING");
        let mut tx = self.begin_write().await?;
        let n = tx_execute(&mut tx, &sql).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Point an instance at a release (and bump its version so every node notices).
    pub async fn set_instance_release(&self, domain: &str, release: &str) -> Result<bool, StoreError> {
        let mut sql = self.q("UPDATE arcbase_instances SET release_name = ");
        sql.bind(release).push(", version = version + 1 WHERE domain = ").bind(domain);
        let mut tx = self.begin_write().await?;
        let n = tx_execute(&mut tx, &sql).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// A shared setting, created with `value` by whichever node asks first.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut ins = self.q("INSERT INTO arcbase_settings (key, value) VALUES (");
        ins.bind(key).push(", ").bind(value).push(") ON CONFLICT DO NOTHING");
        let mut tx = self.begin_write().await?;
        tx_execute(&mut tx, &ins).await?;
        let mut get = self.q("SELECT value FROM arcbase_settings WHERE key = ");
        get.bind(key);
        let rows = tx_fetch(&mut tx, &get).await?;
        tx.commit().await?;
        Ok(rows.first().map(|r| text(&r[0])).unwrap_or_default())
    }

    /// A number that changes whenever a release is published or an instance changes: nodes
    /// poll it to pick up the change.
    pub async fn registry_version(&self) -> Result<i64, StoreError> {
        let sql = self.q("SELECT CAST((SELECT COALESCE(SUM(version), 0) + COUNT(*) * 1000003 FROM arcbase_instances) \
             + (SELECT COUNT(*) FROM arcbase_releases) AS BIGINT)");
        Ok(self.fetch_rows(&sql).await?.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
    }
}
