//! Subscriptions: the changes of the feed a subscriber may see, as events with the objects'
//! state after each change. Transport-free: `graphql` decodes a subscription into
//! [`StreamArgs`] and encodes [`Event`]s; `realtime` drives the replay and the live tail.
//!
//! - `changes(type, arcql, ids, ops, after, previous, includeCurrent)`: every operation on one
//!   type; `subscribe(id)` (Hypi's shape): inserts and updates of every type (of one object
//!   with `id`).
//! - An event is delivered only when the subscriber may read the object now (the read rule is
//!   in the statement that reads it, as for `get`) and, with `arcql`, when the object's state
//!   after the change matches. Objects are read once per batch of changes, one statement per
//!   type.
//! - A DELETE has no state left to check: its feed row names the object's owner, so it is
//!   delivered when the subscriber could read the object (every object of the type, or its own)
//!   and either gave no `arcql` or saw the object match before (an earlier event or
//!   `includeCurrent`). A change to an object deleted before its event was read is delivered the
//!   same way, without `node`.
//! - `node` is the object as it is when the event is read (never older than the change; events
//!   read together show the latest state).
//! - Cursors are feed positions (as text). A cursor before what the feed keeps is
//!   `CURSOR_EXPIRED`, never a silent gap.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::{Caller, Engine};
use crate::access::Allowed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::feed::{Change, ChangeOp};
use crate::plan::filter::FilterPlan;
use crate::plan::read::ObjectSelection;
use crate::value::SqlValue;

/// Objects a subscription remembers having shown (for its DELETE events); beyond it the
/// oldest half is forgotten.
const SEEN_MAX: usize = 100_000;

/// What a subscription asks for, decoded by a front door.
#[derive(Debug, Clone)]
pub struct StreamArgs {
    /// `changes(type: ...)`: that type; `subscribe`: `None` (every type selected).
    pub type_idx: Option<usize>,
    pub arcql: Option<String>,
    pub ids: Option<Vec<String>>,
    /// Which operations (`None`: all; `subscribe`: insert and update).
    pub ops: Option<Vec<ChangeOp>>,
    pub after: Option<String>,
    pub previous: Option<i64>,
    pub include_current: bool,
    /// What to read of the objects, per type.
    pub selections: Vec<(usize, ObjectSelection)>,
}

/// One change as a subscriber sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub change: Change,
    /// The object after the change (`None` for a DELETE).
    pub node: Option<Json>,
    pub type_idx: usize,
    /// Sent by `includeCurrent` (the object as it is), not by a change.
    pub current: bool,
    /// The object is gone (a DELETE, or a change to an object deleted since): judged by its
    /// owner, recorded with the DELETE.
    pub gone: Option<Option<String>>,
}

/// A subscription's state between batches.
#[derive(Debug)]
pub struct Stream {
    args: StreamArgs,
    /// Per selected type: the ArcQL filter with the caller's read rule.
    filters: HashMap<usize, FilterPlan>,
    ids: Option<HashSet<String>>,
    seen: HashSet<String>,
    /// Per selected type: whose objects the caller may read (`None`: all; `Some(a)`: those of
    /// account `a`); a type missing here: none.
    readers: HashMap<usize, Option<String>>,
    /// No `arcql` was given (every object matches).
    unfiltered: bool,
}

/// The position a cursor names.
fn cursor(text: &str) -> ApiResult<i64> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ApiError::validation(format!("'after': '{text}' is not a cursor (an event's cursor)")))
}

impl Stream {
    /// Check the arguments and compile the filters; the position to start after (`None`:
    /// from now on).
    pub async fn open(engine: &Engine, caller: &Caller, mut args: StreamArgs) -> ApiResult<(Stream, Option<i64>)> {
        use crate::plan::read::HypiField;
        for (_, s) in &mut args.selections {
            s.add_hypi(&[HypiField::Id, HypiField::Version, HypiField::Updated]);
        }
        if args.after.is_some() && args.previous.is_some() {
            return Err(ApiError::validation("'after' and 'previous' cannot be used together"));
        }
        if let Some(ids) = &args.ids {
            if ids.len() > engine.limits.objects_per_call.max(100) {
                return Err(ApiError::limit(format!(
                    "'ids' names at most {} objects",
                    engine.limits.objects_per_call.max(100)
                )));
            }
        }
        let mut filters = HashMap::new();
        let mut readers = HashMap::new();
        let unfiltered = args.arcql.as_deref().is_none_or(|a| a.trim().is_empty() || a.trim() == "*");
        for (type_idx, _) in &args.selections {
            let text = args.arcql.as_deref().unwrap_or("*");
            let plan = super::read::filter_for(engine, caller, *type_idx, text, false)?;
            match caller.viewer.allowed(&engine.model, *type_idx, false) {
                Allowed::All => {
                    readers.insert(*type_idx, None);
                }
                Allowed::CreatedBy(a) => {
                    readers.insert(*type_idx, Some(a.to_string()));
                }
                Allowed::Nothing => {}
            }
            filters.insert(*type_idx, plan);
        }
        let d = engine.store.dialect();
        let pruned = engine
            .store
            .fetch_rows(&crate::sql::changes::pruned(d))
            .await?
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0);
        let start = match (&args.after, args.previous) {
            (Some(c), _) => {
                let p = cursor(c)?;
                if p < pruned {
                    return Err(ApiError::new(
                        ErrorCode::CursorExpired,
                        format!("cursor {p} is older than the retained change feed (it starts after {pruned}); subscribe without 'after', or with includeCurrent"),
                    ));
                }
                Some(p)
            }
            (None, Some(n)) if n < 0 => return Err(ApiError::validation("'previous' cannot be negative")),
            (None, Some(0)) | (None, None) => None,
            (None, Some(n)) => {
                let n = u32::try_from(n.min(i64::from(engine.limits.page_max) * 10)).unwrap_or(u32::MAX);
                let type_name = args.type_idx.map(|t| engine.model.types[t].name.as_str());
                let sql = crate::sql::changes::before_nth_newest(d, &caller.instance, type_name, n);
                let rows = engine.store.fetch_rows(&sql).await?;
                Some(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(pruned).max(pruned))
            }
        };
        let ids = args.ids.as_ref().map(|v| v.iter().cloned().collect());
        Ok((Stream { args, filters, ids, seen: HashSet::new(), readers, unfiltered }, start))
    }

    /// Was the subscription asked to start with the current objects?
    pub fn include_current(&self) -> bool {
        self.args.include_current
    }

    fn wanted(&self, engine: &Engine, caller: &Caller, c: &Change) -> Option<usize> {
        if c.instance != caller.instance {
            return None;
        }
        let (type_idx, _) = engine.model.type_by_name(&c.type_name)?;
        if !self.filters.contains_key(&type_idx) {
            return None;
        }
        let op_ok = match &self.args.ops {
            Some(ops) => ops.contains(&c.op),
            None => true,
        };
        let id_ok = self.ids.as_ref().is_none_or(|ids| ids.contains(&c.id));
        (op_ok && id_ok).then_some(type_idx)
    }

    /// The events of `changes` (in feed order) for this subscriber: one read per type.
    pub async fn events(&self, engine: &Engine, caller: &Caller, changes: &[Change]) -> ApiResult<Vec<Event>> {
        let mut by_type: HashMap<usize, Vec<String>> = HashMap::new();
        let mut kept = Vec::new();
        for c in changes {
            let Some(t) = self.wanted(engine, caller, c) else { continue };
            if c.op != ChangeOp::Delete {
                let ids = by_type.entry(t).or_default();
                if !ids.contains(&c.id) {
                    ids.push(c.id.clone());
                }
            }
            kept.push((t, c));
        }
        let mut docs: HashMap<(usize, String), Json> = HashMap::new();
        for (t, ids) in by_type {
            let Some(selection) = self.selection(t) else { continue };
            let filter = self.filters[&t].clone();
            // A TRASH event carries the object as trashed.
            let all = crate::sql::find::Trashed::Include;
            for (id, doc) in super::read::documents_among(engine, caller, t, filter, &ids, selection, all).await? {
                docs.insert((t, id), doc);
            }
        }
        // Objects missing although no DELETE in this batch: deleted since (look for the DELETE
        // in the feed), or not readable by the subscriber (then nothing is sent).
        let mut later: HashMap<(usize, String), Option<String>> = HashMap::new();
        let mut missing: HashMap<usize, (Vec<String>, i64)> = HashMap::new();
        for (i, (t, c)) in kept.iter().enumerate() {
            let gone_here = kept[i + 1..].iter().any(|(t2, d)| t2 == t && d.id == c.id && d.op == ChangeOp::Delete);
            if c.op != ChangeOp::Delete && !gone_here && !docs.contains_key(&(*t, c.id.clone())) {
                let e = missing.entry(*t).or_insert_with(|| (Vec::new(), c.seq));
                if !e.0.contains(&c.id) {
                    e.0.push(c.id.clone());
                }
                e.1 = e.1.min(c.seq);
            }
        }
        for (t, (ids, after)) in missing {
            let name = &engine.model.types[t].name;
            let sql = crate::sql::changes::deletes_of(engine.store.dialect(), &caller.instance, name, &ids, after);
            for row in engine.store.fetch_rows(&sql).await? {
                if let Some(id) = row.first().and_then(SqlValue::as_str) {
                    later.insert((t, id.to_string()), row.get(1).and_then(SqlValue::as_str).map(str::to_string));
                }
            }
        }
        let mut out = Vec::new();
        for (i, (t, c)) in kept.iter().enumerate() {
            let (t, c) = (*t, *c);
            if c.op == ChangeOp::Delete {
                out.push(Event {
                    change: c.clone(),
                    node: None,
                    type_idx: t,
                    current: false,
                    gone: Some(c.owner.clone()),
                });
            } else if let Some(doc) = docs.get(&(t, c.id.clone())) {
                out.push(Event { change: c.clone(), node: Some(doc.clone()), type_idx: t, current: false, gone: None });
            } else if let Some((_, d)) =
                kept[i + 1..].iter().find(|(t2, d)| *t2 == t && d.id == c.id && d.op == ChangeOp::Delete)
            {
                // Deleted later in the batch: shown without its state, judged by its owner.
                out.push(Event {
                    change: c.clone(),
                    node: None,
                    type_idx: t,
                    current: false,
                    gone: Some(d.owner.clone()),
                });
            } else if let Some(owner) = later.get(&(t, c.id.clone())) {
                out.push(Event {
                    change: c.clone(),
                    node: None,
                    type_idx: t,
                    current: false,
                    gone: Some(owner.clone()),
                });
            }
        }
        Ok(out)
    }

    /// Does this subscription deliver an event of object `id` of `type_idx` (`gone`: the
    /// object is gone, with its owner; `delete`: the event is its DELETE)? The rule for gone
    /// objects is in the module documentation; it remembers the objects it shows.
    pub fn admit(&mut self, gone: Option<&Option<String>>, delete: bool, id: &str, type_idx: usize) -> bool {
        if let Some(owner) = gone {
            let readable = match self.readers.get(&type_idx) {
                Some(None) => true,
                Some(Some(account)) => owner.as_deref() == Some(account.as_str()),
                None => false,
            };
            let matched = if delete { self.seen.remove(id) } else { self.seen.contains(id) };
            return readable && (self.unfiltered || matched);
        }
        if self.seen.len() >= SEEN_MAX {
            let keep: HashSet<String> = self.seen.iter().take(SEEN_MAX / 2).cloned().collect();
            self.seen = keep;
        }
        self.seen.insert(id.to_string());
        true
    }

    /// `includeCurrent`: the objects that match now (at most the read limit's worth, in id
    /// order), as events at position `at`.
    pub async fn current(&self, engine: &Engine, caller: &Caller, at: i64) -> ApiResult<Vec<Event>> {
        let mut out = Vec::new();
        for (t, selection) in &self.args.selections {
            let ty = &engine.model.types[*t];
            let arcql = self.args.arcql.clone().unwrap_or_else(|| "*".into());
            let a = super::read::FindArgs {
                type_idx: *t,
                arcql,
                paging: super::Paging { first: Some(i64::from(engine.limits.page_max)), ..Default::default() },
                include_trashed: false,
                selection: std::sync::Arc::new(selection.clone()),
                want_next_offsets: false,
                want_previous_offsets: false,
                want_has_previous: false,
                want_has_next: false,
            };
            for edge in super::read::find(engine, caller, &a).await?.edges {
                let node = edge.node.into_json(&engine.model, &a.selection)?;
                let id = node["hypi"]["id"].as_str().unwrap_or_default().to_string();
                if self.ids.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                    continue;
                }
                let change = Change {
                    seq: at,
                    instance: caller.instance.clone(),
                    type_name: ty.name.clone(),
                    id,
                    op: ChangeOp::Update,
                    version: node["hypi"]["version"].as_i64().unwrap_or(0),
                    at: node["hypi"]["updated"].as_str().unwrap_or_default().to_string(),
                    owner: None,
                };
                out.push(Event { change, node: Some(node), type_idx: *t, current: true, gone: None });
            }
        }
        Ok(out)
    }

    fn selection(&self, type_idx: usize) -> Option<&ObjectSelection> {
        self.args.selections.iter().find(|(t, _)| *t == type_idx).map(|(_, s)| s)
    }
}
