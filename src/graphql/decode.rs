//! GraphQL → the operations' argument types: argument values (variables substituted) and
//! selection sets turned into read plans and aggregate selections. The rules of each
//! operation are not here but in `ops` and `plan`; this only reads the GraphQL form.

use async_graphql::parser::types::{Field, SelectionSet};
use async_graphql::Value;
use serde_json::Value as Json;

use super::collect::Env;
use crate::config::Limits;
use crate::error::{ApiError, ApiResult};
use crate::model::{Model, Storage};
use crate::plan::aggregate::{agg_target, check_call, AggCall, AggField, AggFn};
use crate::plan::read::{HypiField, Item, ListArgs, ListPage, ObjectSelection};

/// The arguments of one field.
pub struct Args<'a> {
    pub env: &'a Env<'a>,
    pub field: &'a Field,
}

impl Args<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        self.env.argument(self.field, name)
    }

    /// A String (or ID) argument; `None` when absent or null.
    pub fn string(&self, name: &str) -> ApiResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::validation(format!("argument '{name}': {other} is not a String"))),
        }
    }

    /// A required String argument.
    pub fn required(&self, name: &str) -> ApiResult<String> {
        self.string(name)?.ok_or_else(|| ApiError::validation(format!("argument '{name}' is required")))
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| ApiError::validation(format!("argument '{name}' must be an Int")))
            }
            Some(_) => Err(ApiError::validation(format!("argument '{name}' must be an Int"))),
        }
    }

    /// A Boolean argument, `false` when absent.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Value::Boolean(true)))
    }

    /// An enum (or String) argument's name.
    pub fn name(&self, name: &str) -> ApiResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Enum(n)) => Ok(Some(n.to_string())),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::validation(format!("argument '{name}': {other} is not a name"))),
        }
    }

    /// An input value as JSON (enum values become strings).
    pub fn json(&self, name: &str) -> ApiResult<Json> {
        match self.get(name) {
            None => Err(ApiError::validation(format!("argument '{name}' is required"))),
            Some(v) => v.into_json().map_err(|e| ApiError::validation(format!("argument '{name}': {e}"))),
        }
    }

    /// A list of Strings.
    pub fn strings(&self, name: &str) -> ApiResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(ApiError::validation(format!("{name}: {other} is not a String"))),
                })
                .collect(),
            // Input coercion: a single value where a list is expected is a list of one.
            Some(Value::String(s)) => Ok(vec![s]),
            Some(other) => Err(ApiError::validation(format!("argument '{name}': {other} is not a list of Strings"))),
        }
    }

    /// The raw value (for nested input objects such as `groupBy`).
    pub fn value(&self, name: &str) -> Option<Value> {
        self.get(name)
    }
}

/// The read plan of `type_idx` for the selection sets `sets` (merged, as one field's
/// selection and its repeats under the same response key are).
pub fn read_plan(
    env: &Env<'_>,
    model: &Model,
    limits: &Limits,
    type_idx: usize,
    sets: &[&SelectionSet],
) -> ApiResult<ObjectSelection> {
    let ty = &model.types[type_idx];
    let mut sel = ObjectSelection::new(type_idx);
    for group in env.collect(&ty.name, sets)? {
        let name = group.name();
        if name == "hypi" {
            let mut fields = Vec::new();
            for g in env.collect("Hypi", &group.sets())? {
                if let Some(h) = HypiField::from_name(g.name()) {
                    fields.push(h);
                }
            }
            sel.add_hypi(&fields);
            continue;
        }
        if name == "attachments" && ty.hyper.as_ref().is_some_and(|h| h.attachments) {
            if !sel.items.contains(&Item::Attachments) {
                sel.items.push(Item::Attachments);
            }
            continue;
        }
        let Some((fi, field)) = ty.field(name) else { continue };
        let key = group.key.to_string();
        match field.storage() {
            Storage::Column => sel.add_column(fi),
            Storage::RefColumn(target) => {
                let sub = read_plan(env, model, limits, target, &group.sets())?;
                sel.items.push(Item::Ref { field: fi, key, sub });
            }
            Storage::LinkTable(target) => {
                let page = ListPage::new(model, type_idx, fi, &list_args(env, &group.first().node)?, limits)?;
                let sub = read_plan(env, model, limits, target, &group.sets())?;
                sel.items.push(Item::RefList { field: fi, key, page, sub });
            }
            Storage::ValueTable => {
                let page = ListPage::new(model, type_idx, fi, &list_args(env, &group.first().node)?, limits)?;
                sel.items.push(Item::ValueList { field: fi, key, page });
            }
        }
    }
    Ok(sel)
}

/// The paging arguments of `find` and of a grouped aggregate.
pub fn paging(args: &Args<'_>) -> ApiResult<crate::ops::Paging> {
    Ok(crate::ops::Paging {
        first: args.int("first")?,
        after: args.string("after")?,
        last: args.int("last")?,
        before: args.string("before")?,
        page: args.int("page")?,
    })
}

fn list_args(env: &Env<'_>, field: &Field) -> ApiResult<ListArgs> {
    let a = Args { env, field };
    Ok(ListArgs {
        arcql: a.string("arcql")?,
        first: a.int("first")?,
        after: a.string("after")?,
        last: a.int("last")?,
        before: a.string("before")?,
    })
}

/// The `XAggs` selection → the fields and functions to compute, keyed by response key.
pub fn agg_fields(env: &Env<'_>, model: &Model, type_idx: usize, sets: &[&SelectionSet]) -> ApiResult<Vec<AggField>> {
    let ty = &model.types[type_idx];
    let aggs = format!("{}Aggs", ty.name);
    let mut out = Vec::new();
    for group in env.collect(&aggs, sets)? {
        let name = group.name();
        if name == "__typename" {
            continue;
        }
        let target = agg_target(model, type_idx, name)?;
        let agg_type = env
            .shapes
            .objects
            .get(&aggs)
            .and_then(|o| o.get(name))
            .map_or("AggOtherScalar", |f| f.ty.name())
            .to_string();
        let mut field = AggField { key: group.key.to_string(), target, calls: Vec::new(), group_values: false };
        for call in env.collect(&agg_type, &group.sets())? {
            let fname = call.name();
            if fname == "groupValues" {
                field.group_values = true;
                continue;
            }
            let Some(func) = AggFn::from_name(fname) else { continue };
            let distinct = Args { env, field: &call.first().node }.flag("distinct");
            check_call(model, type_idx, name, target, func, distinct)?;
            field.calls.push(AggCall { key: call.key.to_string(), func, distinct });
        }
        out.push(field);
    }
    Ok(out)
}
