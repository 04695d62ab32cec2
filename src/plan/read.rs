//! Read plans: the shape of the JSON a read statement must produce.
//!
//! A read of an object and everything nested under it is one [`ObjectSelection`], rendered as
//! one SQL statement that returns one JSON document per object. Scalar columns and `hypi`
//! fields are keyed by field name (they take no arguments, so every alias reads the same
//! value); references and lists are keyed by [`ref_key`] of their response key, because two
//! aliases of one list may ask for different pages or sub-selections.

/// A system field of `Hypi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HypiField {
    Id,
    Impl,
    Created,
    Updated,
    Trashed,
    CreatedBy,
    InstanceId,
    /// The object's version (not a field of `Hypi`: read for the hyper mirror's `_v`).
    Version,
}

impl HypiField {
    pub const ALL: [HypiField; 7] = [
        HypiField::Id,
        HypiField::Impl,
        HypiField::Created,
        HypiField::Updated,
        HypiField::Trashed,
        HypiField::CreatedBy,
        HypiField::InstanceId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HypiField::Id => "id",
            HypiField::Impl => "impl",
            HypiField::Created => "created",
            HypiField::Updated => "updated",
            HypiField::Trashed => "trashed",
            HypiField::CreatedBy => "createdBy",
            HypiField::InstanceId => "instanceId",
            HypiField::Version => "version",
        }
    }

    pub fn from_name(name: &str) -> Option<HypiField> {
        HypiField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The JSON key under which a reference or list field with response key `key` is stored.
/// The `&` cannot start a GraphQL name, so these keys never meet a column's key.
pub fn ref_key(key: &str) -> String {
    format!("&{key}")
}

/// Which elements of a list field to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// `arcql:` of the list field: which elements, in which order. Without a SORT the
    /// elements keep their list order.
    pub filter: crate::plan::filter::FilterPlan,
    /// How many elements at most.
    pub limit: u32,
    /// Count from the end (`last`) instead of the start.
    pub from_end: bool,
    /// Start after this element id (`after`).
    pub after: Option<String>,
    /// Stop before this element id (`before`).
    pub before: Option<String>,
}

/// What one selected item reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A scalar or enum column, by field index.
    Column(usize),
    /// `hypi { ... }`: the system fields asked for.
    Hypi(Vec<HypiField>),
    /// A one-to-one reference.
    Ref { field: usize, key: String, sub: ObjectSelection },
    /// A list reference.
    RefList { field: usize, key: String, page: ListPage, sub: ObjectSelection },
    /// A scalar list.
    ValueList { field: usize, key: String, page: ListPage },
    /// `attachments` of a type with `@hyper(attachments: true)`: its files, by name (at most
    /// [`crate::ops::attachments::MAX_LISTED`]).
    Attachments,
}

/// The selected items of one object type.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSelection {
    pub type_idx: usize,
    pub items: Vec<Item>,
}

impl ObjectSelection {
    pub fn new(type_idx: usize) -> Self {
        ObjectSelection { type_idx, items: Vec::new() }
    }

    /// Add a column once, however often it is selected.
    pub fn add_column(&mut self, field: usize) {
        if !self.items.contains(&Item::Column(field)) {
            self.items.push(Item::Column(field));
        }
    }

    /// Add `hypi` fields, merged with any already selected.
    pub fn add_hypi(&mut self, fields: &[HypiField]) {
        for item in &mut self.items {
            if let Item::Hypi(existing) = item {
                for f in fields {
                    if !existing.contains(f) {
                        existing.push(*f);
                    }
                }
                return;
            }
        }
        self.items.push(Item::Hypi(fields.to_vec()));
    }

    /// How many objects (and list values) a read of one such object may return, at most: one,
    /// plus each reference's own, plus each list's page size times its elements'. What a
    /// nested read multiplies, known before it runs.
    pub fn estimate(&self) -> u64 {
        let mut n: u64 = 1;
        for item in &self.items {
            let more = match item {
                Item::Column(_) | Item::Hypi(_) => 0,
                Item::Ref { sub, .. } => sub.estimate(),
                Item::RefList { page, sub, .. } => u64::from(page.limit).saturating_mul(sub.estimate()),
                Item::ValueList { page, .. } => u64::from(page.limit),
                Item::Attachments => u64::from(crate::ops::attachments::MAX_LISTED),
            };
            n = n.saturating_add(more);
        }
        n
    }

    /// The sub-selection already planned under response key `key`, if any.
    pub fn keyed_mut(&mut self, key: &str) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| match i {
            Item::Ref { key: k, .. } | Item::RefList { key: k, .. } | Item::ValueList { key: k, .. } => k == key,
            _ => false,
        })
    }
}

/// The paging arguments of a list field, as given (`arcql`, `first`, `after`, `last`,
/// `before`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub arcql: Option<String>,
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
}

impl ListPage {
    /// The checked page of list field `field` of `type_idx` (a list reference or a scalar
    /// list): the same rules as `find`'s paging (no `first` with `last`, no negative sizes,
    /// sizes clamped to the cap), and scalar lists, whose elements have no ids or fields,
    /// take neither cursors nor a filter.
    pub fn new(
        model: &crate::model::Model,
        type_idx: usize,
        field: usize,
        args: &ListArgs,
        limits: &crate::config::Limits,
    ) -> crate::error::ApiResult<ListPage> {
        use crate::error::ApiError;
        let ty = &model.types[type_idx];
        let f = &ty.fields[field];
        let qualified = format!("{}.{}", ty.name, f.name);
        let elements = match f.storage() {
            crate::model::Storage::LinkTable(target) => Some(target),
            _ => None,
        };
        let size = |name: &str, v: Option<i64>| -> crate::error::ApiResult<Option<u32>> {
            match v {
                None => Ok(None),
                Some(i) if i >= 0 => Ok(Some(u32::try_from(i).unwrap_or(u32::MAX).min(limits.page_max))),
                Some(_) => Err(ApiError::validation(format!("{qualified}: '{name}' must be a non-negative Int"))),
            }
        };
        let first = size("first", args.first)?;
        let last = size("last", args.last)?;
        if first.is_some() && last.is_some() {
            return Err(ApiError::validation(format!("{qualified}: 'first' and 'last' cannot be used together")));
        }
        if elements.is_none() && (args.after.is_some() || args.before.is_some()) {
            return Err(ApiError::validation(format!(
                "{qualified}: a scalar list has no element ids to use as cursors; page it with 'first' or 'last'"
            )));
        }
        let filter = match (args.arcql.as_deref(), elements) {
            (None, _) => crate::plan::filter::FilterPlan::default(),
            (Some(q), Some(target)) => {
                crate::plan::filter::plan_query(model, target, q).map_err(|e| e.at(&qualified))?
            }
            (Some(q), None) if q.trim() == "*" || q.trim().is_empty() => crate::plan::filter::FilterPlan::default(),
            (Some(_), None) => {
                return Err(ApiError::validation(format!(
                    "{qualified}: a scalar list has no fields to filter on; page it with 'first' or 'last'"
                )))
            }
        };
        Ok(ListPage {
            filter,
            limit: first.or(last).unwrap_or(limits.page_default.min(limits.page_max)),
            from_end: last.is_some(),
            after: args.after.clone(),
            before: args.before.clone(),
        })
    }
}
