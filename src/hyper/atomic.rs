//! `@hyper(mode: ATOMIC)` (or `modes: {search: ATOMIC, ...}`): the mutation waits for those
//! services and fails, rolled back, when one cannot take the write.
//!
//! [`commit`] runs at the end of every write that changed objects of such a type, with the
//! write's transaction still open. It reads the objects as the transaction leaves them and:
//!
//! - **built-in target**: writes their copies (data, search, cache, notify jobs) with the
//!   ports' own statements in that same transaction: one commit for everything;
//! - **remote target**: sends them (through the bridge's [`send_objects`], the one place that
//!   knows how) under a deadline (`ARCBASE_HYPER_ATOMIC_TIMEOUT_MS`, 5 s by default). Any
//!   failure, refusal or timeout rolls the local write back (no object, no change row) and the
//!   mutation answers `HYPER_UNAVAILABLE`; the remote copies already written are then
//!   compensated: the objects' committed state is sent again to those services and the notify
//!   jobs are cancelled. A compensation that fails too queues the objects for the bridge's
//!   resync, which repairs them when the remote answers again.
//!
//! The bridge still follows every change afterwards (sends are idempotent), except notify in
//! ATOMIC mode, whose jobs the mutation enqueued itself. On SQLite the write holds the database's
//! write lock while it waits for a remote, so other writes wait up to the deadline too.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::bridge::{self, Target};
use super::{HyperError, Scope, StoreName};
use crate::access::Viewer;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::{HyperMode, HyperService};
use crate::ops::commit::AtomicChange;
use crate::ops::{Caller, Engine};
use crate::store::Tx;

/// What one type's objects need before the commit.
struct Plan {
    type_idx: usize,
    /// Each changed object once, in the order of their first change.
    ids: Vec<String>,
    /// The services of the type in ATOMIC mode, notify aside.
    services: Vec<HyperService>,
    /// The notify jobs, when notify is ATOMIC.
    notices: Vec<Value>,
    /// The objects as the write leaves them (a missing id: gone or trashed).
    current: HashMap<String, Value>,
}

fn plans(engine: &Engine, changes: &[AtomicChange], now: &str) -> Vec<Plan> {
    let mut out: Vec<Plan> = Vec::new();
    for c in changes {
        let ty = &engine.model.types[c.type_idx];
        let Some(spec) = &ty.hyper else { continue };
        let i = match out.iter().position(|p| p.type_idx == c.type_idx) {
            Some(i) => i,
            None => {
                let services = spec
                    .services()
                    .into_iter()
                    .filter(|s| matches!(s, HyperService::Data | HyperService::Search | HyperService::Cache))
                    .filter(|s| spec.mode_of(*s) == HyperMode::Atomic)
                    .collect();
                out.push(Plan {
                    type_idx: c.type_idx,
                    ids: Vec::new(),
                    services,
                    notices: Vec::new(),
                    current: HashMap::new(),
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        if !p.ids.contains(&c.id) {
            p.ids.push(c.id.clone());
        }
        if spec.notify && spec.mode_of(HyperService::Notify) == HyperMode::Atomic {
            p.notices
                .push(json!({ "action": c.op.as_str(), "type": ty.name, "id": c.id, "version": c.version, "at": now }));
        }
    }
    out
}

fn unavailable(target: &Target, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::HyperUnavailable,
        format!("the write was rolled back: the hyper services at {} (ATOMIC) could not take it: {why}", target.name),
    )
}

fn stop_text(stop: &bridge::Stop) -> String {
    match stop {
        bridge::Stop::Retry(m, _) | bridge::Stop::Pause(m) | bridge::Stop::Local(m) => m.clone(),
    }
}

/// Send the ATOMIC services of `changes`, then commit `tx` (see the module documentation).
pub(crate) async fn commit(
    engine: &Engine,
    caller: &Caller,
    mut tx: Tx,
    changes: &[AtomicChange],
    now: &str,
) -> ApiResult<()> {
    let Some(target) = caller.hyper.clone() else {
        tx.commit().await?;
        return Ok(());
    };
    let admin = Caller { viewer: Viewer::Admin, ..caller.clone() };
    let scope = Scope { instance: caller.instance.clone() };
    let store = bridge::store_name(engine).map_err(|e| ApiError::internal(e.msg))?;
    let mut plans = plans(engine, changes, now);
    for p in &mut plans {
        let ty = &engine.model.types[p.type_idx];
        let selection = bridge::mirror_selection(ty, p.type_idx);
        for doc in crate::ops::read::get_many_in(&mut tx, engine, &admin, &selection, &p.ids).await? {
            if let Some(id) = doc["hypi"]["id"].as_str() {
                p.current.insert(id.to_string(), bridge::mirror_doc(ty, &doc));
            }
        }
    }
    if let Some(b) = &target.builtin {
        let index = bridge::index_config(engine).map_err(|e| ApiError::internal(e.msg))?;
        for p in &plans {
            let ty = &engine.model.types[p.type_idx];
            b.apply_in(&mut tx, &scope, &store, ty, &p.services, &p.ids, &p.current, &index, &p.notices)
                .await
                .map_err(|e: HyperError| match e.is_contention() {
                    // The whole write's transaction is gone, not the service: `ops::retrying`
                    // runs the write again.
                    true => ApiError::from(crate::store::StoreError::Contention),
                    false => unavailable(&target, &format!("{} {}", e.status, e.msg)),
                })?;
        }
        tx.commit().await?;
        return Ok(());
    }
    let jobs: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let send = async {
        bridge::provision(&target, engine, &scope, &store).await.map_err(|s| stop_text(&s))?;
        for p in &plans {
            let ty = &engine.model.types[p.type_idx];
            let sent = bridge::send_objects(&target, &scope, &store, ty, &p.services, &p.ids, &p.current)
                .await
                .map_err(|s| stop_text(&s))?;
            if let Some(r) = sent.refused.first() {
                return Err(format!(
                    "{} refused {} '{}': {} {}",
                    r.service.as_str(),
                    ty.name,
                    r.id,
                    r.status,
                    r.reason
                ));
            }
            for n in &p.notices {
                let id = target
                    .queue
                    .enqueue(&scope, &store, n.clone())
                    .await
                    .map_err(|e| format!("notify: {} {}", e.status, e.msg))?;
                jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
            }
        }
        Ok::<(), String>(())
    };
    let outcome = match tokio::time::timeout(target.atomic_timeout, send).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", target.atomic_timeout.as_millis())),
    };
    let failure = match outcome {
        Ok(()) => match tx.commit().await {
            Ok(()) => return Ok(()),
            Err(e) => ApiError::from(e),
        },
        Err(why) => {
            drop(tx);
            tracing::warn!(target = %target.name, "ATOMIC hyper write rolled back: {why}");
            unavailable(&target, &why)
        }
    };
    let jobs = std::mem::take(&mut *jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    compensate(engine, &admin, &target, &scope, &store, &plans, &jobs).await;
    Err(failure)
}

/// Undo what the remote took of a rolled-back write: cancel its notify jobs and send the
/// committed state of its objects again; what cannot be sent is queued for the bridge's resync.
async fn compensate(
    engine: &Engine,
    admin: &Caller,
    target: &Target,
    scope: &Scope,
    store: &StoreName,
    plans: &[Plan],
    jobs: &[String],
) {
    for id in jobs {
        if let Err(e) = target.queue.cancel(scope, store, id).await {
            tracing::warn!(target = %target.name, job = %id, "could not cancel the notify job of a rolled-back write: {} {}", e.status, e.msg);
        }
    }
    for p in plans.iter().filter(|p| !p.services.is_empty()) {
        let ty = &engine.model.types[p.type_idx];
        let selection = bridge::mirror_selection(ty, p.type_idx);
        let repaired = async {
            let docs = crate::ops::read::get_many(engine, admin, &selection, &p.ids).await.map_err(|e| e.message)?;
            let current: HashMap<String, Value> = docs
                .iter()
                .filter_map(|d| Some((d["hypi"]["id"].as_str()?.to_string(), bridge::mirror_doc(ty, d))))
                .collect();
            let sent = bridge::send_objects(target, scope, store, ty, &p.services, &p.ids, &current)
                .await
                .map_err(|s| stop_text(&s))?;
            if sent.refused.is_empty() {
                Ok(())
            } else {
                Err("refused".to_string())
            }
        };
        let done =
            tokio::time::timeout(target.atomic_timeout, repaired).await.unwrap_or_else(|_| Err("timed out".into()));
        if let Err(why) = done {
            tracing::warn!(target = %target.name, type_name = %ty.name, "compensation failed ({why}): the objects are queued for resync");
            let sql = crate::sql::hyper::sync::resync_add(
                engine.store.dialect(),
                &target.name,
                &scope.instance,
                &ty.name,
                &p.ids,
            );
            let _ = engine.store.execute(&sql).await;
        }
    }
}
