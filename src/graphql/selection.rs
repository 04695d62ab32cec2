//! A field's selection set → a [`ObjectSelection`] read plan.
//!
//! This walks the parsed document itself (fragments included) rather than async-graphql's
//! look-ahead, because the look-ahead ignores type conditions: under a union, `... on Book`
//! must not add Book's fields to an Author read. Fields under `@skip`/`@include` are planned
//! regardless; reading a field that is then skipped costs a column, never a wrong answer.

use async_graphql::parser::types::{Selection, SelectionSet};
use async_graphql::{Context, Name, Value};

use crate::config::Limits;
use crate::error::{ApiError, ApiResult};
use crate::model::{Model, Storage};
use crate::plan::filter::{plan_query, FilterPlan};
use crate::plan::read::{HypiField, Item, ListPage, ObjectSelection};

/// The name of the union every object type belongs to.
pub const ROOT_UNION: &str = "HypiRootAggregate";

pub struct Planner<'a> {
    pub ctx: &'a Context<'a>,
    pub model: &'a Model,
    pub limits: &'a Limits,
}

impl Planner<'_> {
    /// Plan the read of `type_idx` for `set`.
    pub fn plan(&self, type_idx: usize, set: &SelectionSet) -> ApiResult<ObjectSelection> {
        let mut sel = ObjectSelection::new(type_idx);
        self.walk(&mut sel, set, 0)?;
        Ok(sel)
    }

    fn applies(&self, type_idx: usize, condition: Option<&Name>) -> bool {
        match condition {
            None => true,
            Some(c) => c.as_str() == self.model.types[type_idx].name || c.as_str() == ROOT_UNION,
        }
    }

    fn walk(&self, sel: &mut ObjectSelection, set: &SelectionSet, fragment_depth: usize) -> ApiResult<()> {
        // The request guard has already bounded fragment expansion; this bound only keeps a
        // cycle from recursing if the guard were ever bypassed.
        if fragment_depth > MAX_FRAGMENT_DEPTH {
            return Err(ApiError::limit("fragments nest too deeply"));
        }
        let ty = &self.model.types[sel.type_idx];
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    let key = f.response_key().node.as_str();
                    if name == "hypi" {
                        sel.add_hypi(&self.hypi_fields(&f.selection_set.node)?);
                        continue;
                    }
                    let Some((fi, field)) = ty.field(name) else { continue };
                    match field.storage() {
                        Storage::Column => sel.add_column(fi),
                        Storage::RefColumn(target) => {
                            if sel.keyed_mut(key).is_none() {
                                sel.items.push(Item::Ref {
                                    field: fi,
                                    key: key.to_string(),
                                    sub: ObjectSelection::new(target),
                                });
                            }
                            if let Some(Item::Ref { sub, .. }) = sel.keyed_mut(key) {
                                self.walk(sub, &f.selection_set.node, fragment_depth)?;
                            }
                        }
                        Storage::LinkTable(target) => {
                            if sel.keyed_mut(key).is_none() {
                                let page = self.list_page(f, Some(target), &format!("{}.{}", ty.name, field.name))?;
                                sel.items.push(Item::RefList {
                                    field: fi,
                                    key: key.to_string(),
                                    page,
                                    sub: ObjectSelection::new(target),
                                });
                            }
                            if let Some(Item::RefList { sub, .. }) = sel.keyed_mut(key) {
                                self.walk(sub, &f.selection_set.node, fragment_depth)?;
                            }
                        }
                        Storage::ValueTable => {
                            if sel.keyed_mut(key).is_none() {
                                let page = self.list_page(f, None, &format!("{}.{}", ty.name, field.name))?;
                                sel.items.push(Item::ValueList { field: fi, key: key.to_string(), page });
                            }
                        }
                    }
                }
                Selection::InlineFragment(frag) => {
                    let frag = &frag.node;
                    if self.applies(sel.type_idx, frag.type_condition.as_ref().map(|c| &c.node.on.node)) {
                        self.walk(sel, &frag.selection_set.node, fragment_depth + 1)?;
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let Some(frag) = self.ctx.query_env.fragments.get(&spread.node.fragment_name.node) else {
                        continue;
                    };
                    if self.applies(sel.type_idx, Some(&frag.node.type_condition.node.on.node)) {
                        self.walk(sel, &frag.node.selection_set.node, fragment_depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn hypi_fields(&self, set: &SelectionSet) -> ApiResult<Vec<HypiField>> {
        let mut out = Vec::new();
        for_each_field(self.ctx, set, &mut |f| {
            if let Some(h) = HypiField::from_name(f.name.node.as_str()) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The paging arguments of a list field.
    /// `elements` is the element type of a list reference; `None` for a scalar list.
    fn list_page(
        &self,
        f: &async_graphql::parser::types::Field,
        elements: Option<usize>,
        qualified: &str,
    ) -> ApiResult<ListPage> {
        let cursors = elements.is_some();
        let arg = |name: &str| argument(self.ctx, f, name);
        let int = |name: &str| -> ApiResult<Option<u32>> {
            match arg(name)? {
                None => Ok(None),
                Some(Value::Number(n)) => match n.as_i64() {
                    Some(i) if i >= 0 => Ok(Some(u32::try_from(i).unwrap_or(u32::MAX).min(self.limits.page_max))),
                    _ => Err(ApiError::validation(format!("{qualified}: '{name}' must be a non-negative Int"))),
                },
                Some(_) => Err(ApiError::validation(format!("{qualified}: '{name}' must be an Int"))),
            }
        };
        let string = |name: &str| -> ApiResult<Option<String>> {
            match arg(name)? {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(ApiError::validation(format!("{qualified}: '{name}' must be a String"))),
            }
        };
        let first = int("first")?;
        let last = int("last")?;
        if first.is_some() && last.is_some() {
            return Err(ApiError::validation(format!("{qualified}: 'first' and 'last' cannot be used together")));
        }
        let after = string("after")?;
        let before = string("before")?;
        if !cursors && (after.is_some() || before.is_some()) {
            return Err(ApiError::validation(format!(
                "{qualified}: a scalar list has no element ids to use as cursors; page it with 'first' or 'last'"
            )));
        }
        let filter = match (string("arcql")?, elements) {
            (None, _) => FilterPlan::default(),
            (Some(q), Some(target)) => plan_query(self.model, target, &q).map_err(|e| e.at(qualified))?,
            (Some(q), None) if q.trim() == "*" || q.trim().is_empty() => FilterPlan::default(),
            (Some(_), None) => {
                return Err(ApiError::validation(format!(
                    "{qualified}: a scalar list has no fields to filter on; page it with 'first' or 'last'"
                )))
            }
        };
        Ok(ListPage {
            filter,
            limit: first.or(last).unwrap_or(self.limits.page_default.min(self.limits.page_max)),
            from_end: last.is_some(),
            after,
            before,
        })
    }
}

/// Deepest chain of fragments followed while walking a selection set (the request guard has
/// already bounded fragments; this only keeps a cycle from recursing if it were bypassed).
const MAX_FRAGMENT_DEPTH: usize = 64;

/// Call `visit` for every field of `set`, following inline fragments and fragment spreads
/// whatever their type condition (for the non-union types whose selection this reads).
pub fn for_each_field<'a>(
    ctx: &'a Context<'a>,
    set: &'a SelectionSet,
    visit: &mut dyn FnMut(&'a async_graphql::parser::types::Field) -> ApiResult<()>,
) -> ApiResult<()> {
    fn walk<'a>(
        ctx: &'a Context<'a>,
        set: &'a SelectionSet,
        visit: &mut dyn FnMut(&'a async_graphql::parser::types::Field) -> ApiResult<()>,
        depth: usize,
    ) -> ApiResult<()> {
        if depth > MAX_FRAGMENT_DEPTH {
            return Err(ApiError::limit("fragments nest too deeply"));
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => visit(&f.node)?,
                Selection::InlineFragment(frag) => walk(ctx, &frag.node.selection_set.node, visit, depth + 1)?,
                Selection::FragmentSpread(spread) => {
                    if let Some(frag) = ctx.query_env.fragments.get(&spread.node.fragment_name.node) {
                        walk(ctx, &frag.node.selection_set.node, visit, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
    walk(ctx, set, visit, 0)
}

/// The value of argument `name` of a field in the query text, variables substituted; `None`
/// when absent or null.
pub fn argument(ctx: &Context<'_>, f: &async_graphql::parser::types::Field, name: &str) -> ApiResult<Option<Value>> {
    match f.get_argument(name) {
        None => Ok(None),
        Some(v) => {
            let v = v.node.clone().into_const_with(|var| {
                ctx.query_env
                    .variables
                    .get(&var)
                    .cloned()
                    .ok_or(ApiError::validation(format!("variable ${var} is not defined")))
            })?;
            Ok(if v == Value::Null { None } else { Some(v) })
        }
    }
}

/// The selection sets found under the field path `path` (through fragments of any type
/// condition: the connection types are not unions).
pub fn sets_at<'a>(
    ctx: &'a Context<'a>,
    set: &'a SelectionSet,
    path: &[&str],
    out: &mut Vec<&'a SelectionSet>,
) -> ApiResult<()> {
    let Some((head, rest)) = path.split_first() else {
        out.push(set);
        return Ok(());
    };
    for_each_field(ctx, set, &mut |f| {
        if f.name.node.as_str() == *head {
            sets_at(ctx, &f.selection_set.node, rest, out)?;
        }
        Ok(())
    })
}

impl Planner<'_> {
    /// Plan the read of `type_idx` for several selection sets merged.
    pub fn plan_all(&self, type_idx: usize, sets: &[&SelectionSet]) -> ApiResult<ObjectSelection> {
        let mut sel = ObjectSelection::new(type_idx);
        for set in sets {
            self.walk(&mut sel, set, 0)?;
        }
        Ok(sel)
    }
}
