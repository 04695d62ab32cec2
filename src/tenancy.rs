//! Apps, releases and instances: the rules. A release is an SDL that passed the build step,
//! published under a name; a new release of an app may only add. An instance runs one
//! release of one app and owns its data; upgrading it migrates its app's tables in place.
//!
//! Used by the command line (`release ...`, `instance ...`), by the `/admin/` endpoints and by
//! `serve --schema`, so all three behave the same.

use crate::model::{compat::breaking_changes, parse_sdl, Diagnostic, Model};
use crate::store::tenancy::{InstanceRow, ReleaseRow};
use crate::store::{Store, StoreError};

/// Why a registry operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("invalid {what} '{name}': use 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName { what: &'static str, name: String },
    #[error("the SDL is invalid:\n{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Sdl(Vec<Diagnostic>),
    #[error("release {app}/{name} already exists with a different SDL")]
    ReleaseExists { app: String, name: String },
    #[error("release {app}/{name} is not compatible with {app}/{previous}:\n{}", .changes.iter().map(|c| format!("- {c}")).collect::<Vec<_>>().join("\n"))]
    Breaking { app: String, name: String, previous: String, changes: Vec<String> },
    #[error("unknown release {app}/{name}")]
    UnknownRelease { app: String, name: String },
    #[error("unknown instance '{0}'")]
    UnknownInstance(String),
    #[error("an instance with domain '{0}' already exists")]
    InstanceExists(String),
    #[error("the stored release {app}/{name} no longer builds: {why}")]
    Corrupt { app: String, name: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TenancyError {
    /// Refusals caused by the request (HTTP 4xx); the rest are the server's problem.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, TenancyError::Store(_) | TenancyError::Corrupt { .. })
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TenancyError::BadName { what, name: name.to_string() })
    }
}

/// App names become part of table names: lower-case letters, digits and single inner `_`,
/// at most 16 (SQLite ignores case in names, and `__` separates the parts of a storage name).
fn check_app(app: &str) -> Result<(), TenancyError> {
    let ok = !app.is_empty()
        && app.len() <= 16
        && app.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !app.contains("__")
        && !app.starts_with('_')
        && !app.ends_with('_');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::BadName {
            what: "app name (1-16 lower-case letters, digits or inner single '_')",
            name: app.to_string(),
        })
    }
}

/// The model of a stored release.
pub fn release_model(r: &ReleaseRow) -> Result<Model, TenancyError> {
    parse_sdl(&r.sdl).map_err(|d| TenancyError::Corrupt {
        app: r.app.clone(),
        name: r.name.clone(),
        why: d.first().map(|d| d.to_string()).unwrap_or_default(),
    })
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Created,
    /// The same name and SDL were already published.
    Unchanged,
}

/// Publish `sdl` as release `name` of `app`: valid, additive relative to the app's newest
/// release, and its tables created before the release becomes visible.
pub async fn publish(store: &Store, app: &str, name: &str, sdl: &str) -> Result<Published, TenancyError> {
    check_app(app)?;
    check_name("release name", name)?;
    let model = parse_sdl(sdl).map_err(TenancyError::Sdl)?;
    if let Some(existing) = store.release(app, name).await? {
        return if existing.sdl == sdl {
            Ok(Published::Unchanged)
        } else {
            Err(TenancyError::ReleaseExists { app: app.into(), name: name.into() })
        };
    }
    if let Some(previous) = store.latest_release(app).await? {
        let changes = breaking_changes(&release_model(&previous)?, &model);
        if !changes.is_empty() {
            return Err(TenancyError::Breaking {
                app: app.into(),
                name: name.into(),
                previous: previous.name,
                changes,
            });
        }
    }
    store.apply_model(app, &model).await?;
    if !store.insert_release(app, name, sdl).await? {
        // Published concurrently by another node: fine if it is the same SDL.
        return match store.release(app, name).await? {
            Some(r) if r.sdl == sdl => Ok(Published::Unchanged),
            _ => Err(TenancyError::ReleaseExists { app: app.into(), name: name.into() }),
        };
    }
    Ok(Published::Created)
}

/// Settings of a new instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceSettings {
    pub anonymous_requests: bool,
    pub anonymous_registrations: bool,
}

/// Create instance `domain` running `app`/`release`. The instance id is its domain.
pub async fn create_instance(
    store: &Store,
    domain: &str,
    app: &str,
    release: &str,
    settings: InstanceSettings,
) -> Result<InstanceRow, TenancyError> {
    check_name("domain", domain)?;
    let Some(r) = store.release(app, release).await? else {
        return Err(TenancyError::UnknownRelease { app: app.into(), name: release.into() });
    };
    store.apply_model(app, &release_model(&r)?).await?;
    let row = InstanceRow {
        id: domain.to_string(),
        domain: domain.to_string(),
        app: app.to_string(),
        release: Some(release.to_string()),
        anonymous_requests: settings.anonymous_requests,
        anonymous_registrations: settings.anonymous_registrations,
        version: 1,
    };
    if !store.insert_instance(&row).await? {
        return Err(TenancyError::InstanceExists(domain.into()));
    }
    Ok(row)
}

/// Move instance `domain` to `release` of its app: only forward (the new release must be
/// additive relative to the current one); tables are migrated in place, no data is lost.
pub async fn upgrade_instance(store: &Store, domain: &str, release: &str) -> Result<InstanceRow, TenancyError> {
    let Some(mut inst) = store.instance_rows().await?.into_iter().find(|i| i.domain == domain) else {
        return Err(TenancyError::UnknownInstance(domain.into()));
    };
    let Some(target) = store.release(&inst.app, release).await? else {
        return Err(TenancyError::UnknownRelease { app: inst.app.clone(), name: release.into() });
    };
    let target_model = release_model(&target)?;
    if let Some(current) = &inst.release {
        if let Some(cur) = store.release(&inst.app, current).await? {
            let changes = breaking_changes(&release_model(&cur)?, &target_model);
            if !changes.is_empty() {
                return Err(TenancyError::Breaking {
                    app: inst.app.clone(),
                    name: release.into(),
                    previous: cur.name,
                    changes,
                });
            }
        }
    }
    store.apply_model(&inst.app, &target_model).await?;
    store.set_instance_release(domain, release).await?;
    inst.release = Some(release.to_string());
    Ok(inst)
}

/// `serve --schema FILE`: publish the SDL as a release of app `default` (named after its
/// content, so an unchanged file publishes nothing) and run it on instance `default`.
pub async fn serve_default(store: &Store, sdl: &str) -> Result<(), TenancyError> {
    let name = format!("sdl-{}", content_hash(sdl));
    publish(store, "default", &name, sdl).await?;
    let default = store.instance_rows().await?.into_iter().find(|i| i.domain == "default");
    match default {
        Some(i) if i.release.as_deref() == Some(name.as_str()) => Ok(()),
        Some(_) => upgrade_instance(store, "default", &name).await.map(|_| ()),
        None => create_instance(store, "default", "default", &name, InstanceSettings::default()).await.map(|_| ()),
    }
}

/// 12 hex digits of FNV-1a over the text: a stable release name for an SDL file.
fn content_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}
