//! The registry tables: releases, instances, settings. Plain rows; the rules (compatibility,
//! names) live in `crate::tenancy`.

use super::{tx_execute, tx_fetch, Store, StoreError};
use crate::sql::{registry, SqlValue};

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
    /// Releases of `app` (or of every app), oldest first.
    pub async fn releases(&self, app: Option<&str>) -> Result<Vec<ReleaseRow>, StoreError> {
        Ok(self.fetch_rows(&registry::releases(self.dialect(), app)).await?.iter().map(|r| release_row(r)).collect())
    }

    pub async fn release(&self, app: &str, name: &str) -> Result<Option<ReleaseRow>, StoreError> {
        Ok(self.fetch_rows(&registry::release(self.dialect(), app, name)).await?.first().map(|r| release_row(r)))
    }

    pub async fn latest_release(&self, app: &str) -> Result<Option<ReleaseRow>, StoreError> {
        Ok(self.releases(Some(app)).await?.pop())
    }

    /// Record a release as the newest of its app. `false` when the name is taken.
    pub async fn insert_release(&self, app: &str, name: &str, sdl: &str) -> Result<bool, StoreError> {
        let d = self.dialect();
        let mut tx = self.begin_ddl().await?;
        if !tx_fetch(&mut tx, &registry::release_exists(d, app, name)).await?.is_empty() {
            return Ok(false);
        }
        tx_execute(&mut tx, &registry::insert_release(d, app, name, sdl, &crate::plan::write::now())).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn instance_rows(&self) -> Result<Vec<InstanceRow>, StoreError> {
        Ok(self
            .fetch_rows(&registry::instances(self.dialect()))
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
        let sql = registry::insert_instance(
            self.dialect(),
            &row.id,
            &row.domain,
            &row.app,
            row.release.as_deref(),
            row.anonymous_requests,
            row.anonymous_registrations,
            &crate::plan::write::now(),
        );
        let mut tx = self.begin_write().await?;
        let n = tx_execute(&mut tx, &sql).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Point an instance at a release (and bump its version so every node notices).
    pub async fn set_instance_release(&self, domain: &str, release: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = tx_execute(&mut tx, &registry::set_instance_release(self.dialect(), domain, release)).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// A shared setting, created with `value` by whichever node asks first.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        tx_execute(&mut tx, &registry::insert_setting(self.dialect(), key, value)).await?;
        let rows = tx_fetch(&mut tx, &registry::setting(self.dialect(), key)).await?;
        tx.commit().await?;
        Ok(rows.first().map(|r| text(&r[0])).unwrap_or_default())
    }

    /// A number that changes whenever a release is published or an instance changes: nodes
    /// poll it to pick up the change.
    pub async fn registry_version(&self) -> Result<i64, StoreError> {
        Ok(self.fetch_rows(&registry::version(self.dialect())).await?.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
    }
}
