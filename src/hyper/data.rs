//! The data service: schemaless JSON documents per store, keyed by `_id`.
//!
//! The rules every implementation shares live here: what a document and its id are, the
//! list options, and the query language (a Mango-style selector, fields, sort, limit,
//! skip), parsed into typed values so that an adapter only translates them.
//!
//! Selector semantics (the decisions, written down):
//! - `{field: value}` and `$eq` match a field of the same JSON type and value (numbers by
//!   value: `2` equals `2.0`); arrays and objects compare whole. A missing field matches
//!   nothing but `$exists: false`, `$ne` and `$nin`.
//! - `$gt $gte $lt $lte` compare within one type: strings by code point, numbers by value,
//!   booleans `false < true`; `{"$gt": "2000"}` never matches the number 2001.
//! - `{a: {b: 1}}` (an object without `$` keys) means the nested field `a.b`; `"a.b"` too.
//! - Sorting orders types as CouchDB does (missing, null, false, true, numbers, strings,
//!   arrays, objects), then by the document id in the direction of the first key.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{HyperError, HyperResult, Scope, StoreName};

/// A path into a document: `a.b` is `["a", "b"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    /// Parse a dotted path: 1 to 16 segments of 1 to 128 bytes, without `"` or control
    /// characters (they cannot be written in a JSON path).
    pub fn parse(text: &str) -> HyperResult<FieldPath> {
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        let bad = text.is_empty()
            || segments.len() > 16
            || segments.iter().any(|s| s.is_empty() || s.len() > 128 || s.chars().any(|c| c == '"' || c.is_control()));
        if bad {
            return Err(HyperError::invalid(format!(
                "invalid field '{}': use dot-separated names of 1 to 128 characters, without '\"'",
                text.chars().take(80).collect::<String>()
            )));
        }
        Ok(FieldPath(segments))
    }

    /// Is every segment a plain name (`[A-Za-z_][A-Za-z0-9_]*`)? Such paths are written into
    /// statements as literals (so that an index over the path serves the query); any other
    /// path is bound as a value.
    pub fn is_plain(&self) -> bool {
        self.0.iter().all(|s| {
            let mut b = s.bytes();
            b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        })
    }

    pub fn dotted(&self) -> String {
        self.0.join(".")
    }

    /// The value at this path in `doc`, if there is one.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(doc, |v, k| v.as_object()?.get(k))
    }
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// Every document (`{}`).
    All,
    And(Vec<Selector>),
    Or(Vec<Selector>),
    Nor(Vec<Selector>),
    Not(Box<Selector>),
    Field(FieldPath, Cond),
}

/// Bounds of one parse: conditions counted, nesting bounded.
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn take(&mut self, n: usize) -> HyperResult<()> {
        if n > self.left {
            return Err(HyperError::invalid(format!("the selector has more than {} conditions", self.limit)));
        }
        self.left -= n;
        Ok(())
    }
}

impl Selector {
    /// Parse a selector object, with at most `max_conditions` conditions (each `$in` value
    /// counts as one).
    pub fn parse(v: &Value, max_conditions: usize) -> HyperResult<Selector> {
        let mut budget = Budget { left: max_conditions, limit: max_conditions };
        Self::parse_obj(v, &[], &mut budget, 0)
    }

    fn parse_obj(v: &Value, prefix: &[String], budget: &mut Budget, depth: usize) -> HyperResult<Selector> {
        if depth > 32 {
            return Err(HyperError::invalid("the selector nests deeper than 32 levels"));
        }
        let Value::Object(m) = v else {
            return Err(HyperError::invalid("a selector is a JSON object"));
        };
        let mut parts = Vec::new();
        for (k, v) in m {
            match k.as_str() {
                "$and" | "$or" | "$nor" => {
                    let Value::Array(xs) = v else {
                        return Err(HyperError::invalid(format!("'{k}' takes an array of selectors")));
                    };
                    if xs.is_empty() {
                        return Err(HyperError::invalid(format!("'{k}' takes at least one selector")));
                    }
                    let subs = xs
                        .iter()
                        .map(|x| Self::parse_obj(x, prefix, budget, depth + 1))
                        .collect::<HyperResult<Vec<_>>>()?;
                    parts.push(match k.as_str() {
                        "$and" => Selector::And(subs),
                        "$or" => Selector::Or(subs),
                        _ => Selector::Nor(subs),
                    });
                }
                "$not" => parts.push(Selector::Not(Box::new(Self::parse_obj(v, prefix, budget, depth + 1)?))),
                op if op.starts_with('$') => {
                    if prefix.is_empty() {
                        return Err(HyperError::invalid(format!("unknown selector operator '{op}'")));
                    }
                    parts.push(Self::parse_op(FieldPath(prefix.to_vec()), op, v, budget, depth)?);
                }
                name => {
                    let path = FieldPath::parse(name)?;
                    let mut full = prefix.to_vec();
                    full.extend(path.0);
                    if full.len() > 16 {
                        return Err(HyperError::invalid("a field path has more than 16 segments"));
                    }
                    parts.push(Self::parse_field(full, v, budget, depth + 1)?);
                }
            }
        }
        Ok(match parts.len() {
            0 => Selector::All,
            1 => parts.pop().unwrap_or(Selector::All),
            _ => Selector::And(parts),
        })
    }

    /// `field: value` or `field: {$op: value, ...}` or `field: {nested: ...}`.
    fn parse_field(path: Vec<String>, v: &Value, budget: &mut Budget, depth: usize) -> HyperResult<Selector> {
        match v {
            Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')) => {
                let mut parts = Vec::new();
                for (op, arg) in m {
                    parts.push(Self::parse_op(FieldPath(path.clone()), op, arg, budget, depth)?);
                }
                Ok(if parts.len() == 1 { parts.pop().unwrap_or(Selector::All) } else { Selector::And(parts) })
            }
            Value::Object(m) if !m.is_empty() && m.keys().any(|k| k.starts_with('$')) => Err(HyperError::invalid(
                format!("the selector of '{}' mixes operators and fields", FieldPath(path).dotted()),
            )),
            Value::Object(m) if !m.is_empty() => Self::parse_obj(v, &path, budget, depth),
            _ => {
                budget.take(1)?;
                Ok(Selector::Field(FieldPath(path), Cond::Eq(v.clone())))
            }
        }
    }

    fn parse_op(path: FieldPath, op: &str, arg: &Value, budget: &mut Budget, depth: usize) -> HyperResult<Selector> {
        let name = path.dotted();
        let range = |arg: &Value| -> HyperResult<Value> {
            match arg {
                Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(arg.clone()),
                _ => Err(HyperError::invalid(format!(
                    "'{op}' on '{name}' compares a string, a number, a boolean or null, not an array or object"
                ))),
            }
        };
        let list = |arg: &Value| -> HyperResult<Vec<Value>> {
            match arg {
                Value::Array(xs) => Ok(xs.clone()),
                _ => Err(HyperError::invalid(format!("'{op}' on '{name}' takes an array"))),
            }
        };
        let cond = match op {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" => Cond::Gt(range(arg)?),
            "$gte" => Cond::Gte(range(arg)?),
            "$lt" => Cond::Lt(range(arg)?),
            "$lte" => Cond::Lte(range(arg)?),
            "$in" => {
                let xs = list(arg)?;
                budget.take(xs.len().max(1))?;
                return Ok(Selector::Field(path, Cond::In(xs)));
            }
            "$nin" => {
                let xs = list(arg)?;
                budget.take(xs.len().max(1))?;
                return Ok(Selector::Field(path, Cond::Nin(xs)));
            }
            "$exists" => match arg {
                Value::Bool(b) => Cond::Exists(*b),
                _ => return Err(HyperError::invalid(format!("'$exists' on '{name}' takes true or false"))),
            },
            "$not" => {
                let inner = Self::parse_field(path.0, arg, budget, depth + 1)?;
                return Ok(Selector::Not(Box::new(inner)));
            }
            other => {
                return Err(HyperError::invalid(format!(
                    "unknown selector operator '{other}' (use $eq $ne $gt $gte $lt $lte $in $nin $exists $not $and $or $nor)"
                )))
            }
        };
        budget.take(1)?;
        Ok(Selector::Field(path, cond))
    }

    /// The fields every match constrains (the conditions at the top level, or under `$and`):
    /// what an index could serve.
    pub fn constrained_fields(&self) -> Vec<&FieldPath> {
        match self {
            Selector::Field(_, Cond::Ne(_) | Cond::Nin(_) | Cond::Exists(false)) => Vec::new(),
            Selector::Field(p, _) => vec![p],
            Selector::And(xs) => xs.iter().flat_map(Selector::constrained_fields).collect(),
            _ => Vec::new(),
        }
    }

    /// Does `doc` match? (The in-memory reading of the same rules: search filters and the
    /// tests' model.)
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Selector::All => true,
            Selector::And(xs) => xs.iter().all(|x| x.matches(doc)),
            Selector::Or(xs) => xs.iter().any(|x| x.matches(doc)),
            Selector::Nor(xs) => !xs.iter().any(|x| x.matches(doc)),
            Selector::Not(x) => !x.matches(doc),
            Selector::Field(path, cond) => {
                let v = path.get(doc);
                match cond {
                    Cond::Eq(want) => v.is_some_and(|v| same(v, want)),
                    Cond::Ne(want) => !v.is_some_and(|v| same(v, want)),
                    Cond::In(xs) => v.is_some_and(|v| xs.iter().any(|x| same(v, x))),
                    Cond::Nin(xs) => !v.is_some_and(|v| xs.iter().any(|x| same(v, x))),
                    Cond::Exists(b) => v.is_some() == *b,
                    Cond::Gt(w) => v.and_then(|v| compare(v, w)).is_some_and(|o| o.is_gt()),
                    Cond::Gte(w) => v.and_then(|v| compare(v, w)).is_some_and(|o| o.is_ge()),
                    Cond::Lt(w) => v.and_then(|v| compare(v, w)).is_some_and(|o| o.is_lt()),
                    Cond::Lte(w) => v.and_then(|v| compare(v, w)).is_some_and(|o| o.is_le()),
                }
            }
        }
    }
}

/// Equal as the selector means it: same type and value, numbers by value.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// Order within one type (`None` across types, and for arrays and objects).
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub path: FieldPath,
    pub descending: bool,
}

/// `POST /data/{store}/_query`.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    pub selector: Selector,
    /// The fields to return (all when `None`).
    pub fields: Option<Vec<FieldPath>>,
    pub sort: Vec<SortKey>,
    pub limit: u32,
    pub skip: u64,
    /// The index the client asks for: it must exist; the database chooses how to use it.
    pub use_index: Option<String>,
}

impl FindQuery {
    /// Parse the body of `_query` (`{selector, fields?, sort?, limit?, skip?, use_index?}`);
    /// nulls count as absent.
    pub fn from_json(body: &Value, limits: &super::HyperLimits) -> HyperResult<FindQuery> {
        let Value::Object(m) = body else {
            return Err(HyperError::invalid("the query is a JSON object: {selector, fields, sort, limit, skip}"));
        };
        let get = |k: &str| m.get(k).filter(|v| !v.is_null());
        let selector = match get("selector") {
            Some(s) => Selector::parse(s, limits.conditions)?,
            None => Selector::All,
        };
        let fields = match get("fields") {
            None => None,
            Some(Value::Array(xs)) => Some(
                xs.iter()
                    .map(|x| match x {
                        Value::String(s) => FieldPath::parse(s),
                        _ => Err(HyperError::invalid("'fields' is an array of field names")),
                    })
                    .collect::<HyperResult<Vec<_>>>()?,
            ),
            Some(_) => return Err(HyperError::invalid("'fields' is an array of field names")),
        };
        let sort = match get("sort") {
            None => Vec::new(),
            Some(Value::Array(xs)) => xs.iter().map(sort_key).collect::<HyperResult<Vec<_>>>()?,
            Some(_) => {
                return Err(HyperError::invalid(
                    "'sort' is an array of field names or {\"field\": \"ASC\" | \"DESC\"} objects",
                ))
            }
        };
        if sort.len() > 8 {
            return Err(HyperError::invalid("'sort' has more than 8 keys"));
        }
        let limit = match get("limit") {
            None => limits.page,
            Some(v) => page_size(v, limits.page)?,
        };
        let skip = match get("skip") {
            None => 0,
            Some(v) => v.as_u64().ok_or_else(|| HyperError::invalid("'skip' is a whole number, 0 or more"))?,
        };
        let use_index = match get("use_index").or_else(|| get("useIndex")) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            // CouchDB also accepts ["design doc", "name"]: the last element is the index name.
            Some(Value::Array(xs)) if xs.iter().all(Value::is_string) && !xs.is_empty() => {
                xs.last().and_then(Value::as_str).map(str::to_string)
            }
            Some(_) => return Err(HyperError::invalid("'use_index' is the name of an index")),
        };
        Ok(FindQuery { selector, fields, sort, limit, skip, use_index })
    }
}

fn sort_key(v: &Value) -> HyperResult<SortKey> {
    match v {
        Value::String(s) => Ok(SortKey { path: FieldPath::parse(s)?, descending: false }),
        Value::Object(m) if m.len() == 1 => {
            let (k, dir) = m.iter().next().ok_or_else(|| HyperError::invalid("empty sort key"))?;
            let descending = match dir.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("ASC") => false,
                Some("DESC") => true,
                _ => return Err(HyperError::invalid(format!("sort direction of '{k}' is \"ASC\" or \"DESC\""))),
            };
            Ok(SortKey { path: FieldPath::parse(k)?, descending })
        }
        _ => Err(HyperError::invalid("a sort key is a field name or {\"field\": \"ASC\" | \"DESC\"}")),
    }
}

/// A page size: a whole number from 1 to `max` (a number or its text).
pub fn page_size(v: &Value, max: u32) -> HyperResult<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= 1 && n <= u64::from(max) => Ok(n as u32),
        Some(n) if n > u64::from(max) => Err(HyperError::invalid(format!("'limit' is at most {max}, not {n}"))),
        _ => Err(HyperError::invalid(format!("'limit' is a whole number from 1 to {max}"))),
    }
}

/// `GET /data/{store}?limit&startkey&endkey&keys&descending`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    pub limit: u32,
    pub startkey: Option<String>,
    pub endkey: Option<String>,
    /// Exactly these ids, in this order (the others are ignored then).
    pub keys: Option<Vec<String>>,
    pub descending: bool,
}

impl ListQuery {
    /// From query-string pairs. `undefined` and empty values count as absent (the JS client
    /// sends `limit=undefined`); `descending` is `true`/`True`/`false`/`False`; `keys` is a
    /// comma-separated list. With `descending`, `startkey` is the upper end, as in CouchDB.
    pub fn from_params(params: &[(String, String)], max: u32) -> HyperResult<ListQuery> {
        let mut q = ListQuery { limit: max, ..Default::default() };
        for (k, v) in params {
            if v.is_empty() || v == "undefined" || v == "null" {
                continue;
            }
            match k.as_str() {
                "limit" => q.limit = page_size(&Value::String(v.clone()), max)?,
                "startkey" | "start_key" => q.startkey = Some(v.clone()),
                "endkey" | "end_key" => q.endkey = Some(v.clone()),
                "keys" => {
                    let keys: Vec<String> = v.split(',').map(str::to_string).collect();
                    if keys.len() > max as usize {
                        return Err(HyperError::invalid(format!("'keys' lists more than {max} ids")));
                    }
                    q.keys = Some(keys);
                }
                "descending" => {
                    q.descending = match v.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(HyperError::invalid("'descending' is true or false")),
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The id range in ascending terms: `(low, high)`, both inclusive.
    pub fn range(&self) -> (Option<&str>, Option<&str>) {
        if self.descending {
            (self.endkey.as_deref(), self.startkey.as_deref())
        } else {
            (self.startkey.as_deref(), self.endkey.as_deref())
        }
    }
}

/// `POST /data/{store}/_index`: `{name, fields, type?}`; fields are names or
/// `{"field": "ASC"|"DESC"}` objects (the index serves both directions).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub fields: Vec<FieldPath>,
}

impl IndexSpec {
    pub fn from_json(body: &Value) -> HyperResult<IndexSpec> {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 128 && !n.chars().any(char::is_control))
            .ok_or_else(|| HyperError::invalid("an index needs a 'name' of 1 to 128 characters"))?;
        let Some(Value::Array(xs)) = body.get("fields") else {
            return Err(HyperError::invalid("an index needs 'fields': an array of field names"));
        };
        if xs.is_empty() || xs.len() > 8 {
            return Err(HyperError::invalid("an index has 1 to 8 fields"));
        }
        let fields = xs
            .iter()
            .map(|x| {
                let path = match x {
                    Value::String(s) => FieldPath::parse(s)?,
                    Value::Object(_) => sort_key(x)?.path,
                    _ => return Err(HyperError::invalid("an index field is a name or {\"field\": \"ASC\"}")),
                };
                if !path.is_plain() {
                    return Err(HyperError::invalid(format!(
                        "index fields are names of letters, digits and '_' (dot-separated): '{}'",
                        path.dotted()
                    )));
                }
                Ok(path)
            })
            .collect::<HyperResult<Vec<_>>>()?;
        match body.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => {}
            Some(other) => return Err(HyperError::invalid(format!("index type '{other}' is not supported: use json"))),
        }
        Ok(IndexSpec { name: name.to_string(), fields })
    }
}

/// One entry of `_bulk`.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOp {
    /// Write the document (replacing one with its id).
    Put { id: String, doc: Value },
    /// `_deleted: true`: remove it (done also when it is missing).
    Delete { id: String },
}

/// The outcome of one bulk entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult {
    pub ok: bool,
    pub id: String,
    pub msg: Option<String>,
}

/// The id a document names: `_id`, else `id` (a string or a whole number).
pub fn named_id(doc: &Map<String, Value>) -> HyperResult<Option<String>> {
    for key in ["_id", "id"] {
        match doc.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return check_id(s).map(Some),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(Some(n.to_string())),
            Some(_) => return Err(HyperError::invalid(format!("'{key}' is a string"))),
        }
    }
    Ok(None)
}

/// A document id: 1 to 512 bytes, no control characters.
pub fn check_id(id: &str) -> HyperResult<String> {
    if id.is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
        return Err(HyperError::invalid("a document id is 1 to 512 characters, without control characters"));
    }
    Ok(id.to_string())
}

/// A document ready to store: a non-empty object (400 when empty, 422 when not an object)
/// with `_id` set to `id` (first when it was not there, so a read shows it at the top).
pub fn with_id(doc: Value, id: &str) -> HyperResult<Value> {
    let Value::Object(m) = doc else {
        return Err(HyperError::invalid("a document is a JSON object"));
    };
    if m.is_empty() {
        return Err(HyperError::bad_request("empty document"));
    }
    if m.contains_key("_id") {
        let mut m = m;
        m.insert("_id".to_string(), Value::String(id.to_string()));
        return Ok(Value::Object(m));
    }
    let mut out = Map::with_capacity(m.len() + 1);
    out.insert("_id".to_string(), Value::String(id.to_string()));
    out.extend(m);
    Ok(Value::Object(out))
}

/// Only `fields` of `doc` (nested paths kept nested; missing ones left out).
pub fn project(doc: &Value, fields: &[FieldPath]) -> Value {
    let mut out = Value::Object(Map::new());
    for f in fields {
        let Some(v) = f.get(doc) else { continue };
        let mut at = &mut out;
        for (i, seg) in f.0.iter().enumerate() {
            let Value::Object(m) = at else { break };
            if i + 1 == f.0.len() {
                m.insert(seg.clone(), v.clone());
                break;
            }
            at = m.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

/// The data service port.
#[async_trait]
pub trait DataService: Send + Sync {
    /// Create a store (409 when it exists).
    async fn create(&self, scope: &Scope, store: &StoreName) -> HyperResult<()>;
    /// Remove a store and every document and index of it (404 when missing).
    async fn destroy(&self, scope: &Scope, store: &StoreName) -> HyperResult<()>;
    /// Add a document (created with the store when missing); its id (409 when taken).
    async fn add(&self, scope: &Scope, store: &StoreName, doc: Value) -> HyperResult<String>;
    /// A document as stored (404).
    async fn get(&self, scope: &Scope, store: &StoreName, id: &str) -> HyperResult<Value>;
    /// Replace (or create) the document `id`.
    async fn update(&self, scope: &Scope, store: &StoreName, id: &str, doc: Value) -> HyperResult<()>;
    /// Remove a document (404 when missing).
    async fn remove(&self, scope: &Scope, store: &StoreName, id: &str) -> HyperResult<()>;
    /// Documents by id range or ids (404 when the store is missing).
    async fn list(&self, scope: &Scope, store: &StoreName, q: &ListQuery) -> HyperResult<Vec<Value>>;
    /// Documents matching a selector (404 when the store is missing).
    async fn query(&self, scope: &Scope, store: &StoreName, q: &FindQuery) -> HyperResult<Vec<Value>>;
    /// Create an index over document fields (409 when the name is taken by other fields).
    async fn index(&self, scope: &Scope, store: &StoreName, ix: &IndexSpec) -> HyperResult<()>;
    /// Write and remove many documents in one transaction (the store created when missing).
    async fn bulk(&self, scope: &Scope, store: &StoreName, ops: Vec<BulkOp>) -> HyperResult<Vec<BulkResult>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: Value) -> Selector {
        Selector::parse(&v, 200).unwrap()
    }

    #[test]
    fn selectors_parse_and_match_by_type() {
        let doc = json!({"_id": "a", "year": 2001, "title": "Dune", "tags": ["x"], "n": {"m": 1}, "z": null});
        assert!(sel(json!({"year": 2001.0})).matches(&doc));
        assert!(!sel(json!({"year": "2001"})).matches(&doc));
        assert!(!sel(json!({"year": {"$gt": "2000"}})).matches(&doc));
        assert!(sel(json!({"year": {"$gt": 2000, "$lte": 2001}})).matches(&doc));
        assert!(sel(json!({"n": {"m": 1}})).matches(&doc));
        assert!(sel(json!({"n.m": {"$in": [3, 1]}})).matches(&doc));
        assert!(sel(json!({"missing": {"$ne": 1}})).matches(&doc));
        assert!(!sel(json!({"missing": {"$gt": 1}})).matches(&doc));
        assert!(sel(json!({"z": null})).matches(&doc));
        assert!(!sel(json!({"missing": null})).matches(&doc));
        assert!(sel(json!({"missing": {"$exists": false}, "z": {"$exists": true}})).matches(&doc));
        assert!(sel(json!({"$or": [{"title": "x"}, {"title": "Dune"}]})).matches(&doc));
        assert!(sel(json!({"$nor": [{"title": "x"}]})).matches(&doc));
        assert!(sel(json!({"title": {"$not": {"$in": ["x"]}}})).matches(&doc));
        assert!(sel(json!({"tags": ["x"]})).matches(&doc));
        assert!(sel(json!({})).matches(&doc));
    }

    #[test]
    fn bad_selectors_name_what_is_wrong() {
        let err = |v: Value| Selector::parse(&v, 5).unwrap_err();
        assert!(err(json!({"a": {"$regex": "x"}})).msg.contains("$regex"));
        assert!(err(json!({"$where": "1"})).msg.contains("$where"));
        assert!(err(json!({"a": {"$in": 1}})).msg.contains("array"));
        assert!(err(json!({"a": {"$gt": [1]}})).msg.contains("not an array"));
        assert!(err(json!({"a": {"$in": [1, 2, 3, 4, 5, 6]}})).msg.contains("more than 5"));
        assert!(err(json!({"a\"b": 1})).msg.contains("invalid field"));
        assert!(err(json!([1])).msg.contains("object"));
        assert_eq!(err(json!({"a": {"$gt": 1, "b": 2}})).status, 422);
    }

    #[test]
    fn queries_and_lists() {
        let limits = crate::hyper::HyperLimits::from_limits(&crate::config::Limits::default());
        let q = FindQuery::from_json(
            &json!({"selector": {"type": "book"}, "fields": ["author"], "sort": [{"author": "DESC"}, "x"], "limit": 3, "use_index": "idx", "skip": null}),
            &limits,
        )
        .unwrap();
        assert_eq!(q.limit, 3);
        assert_eq!(q.sort.len(), 2);
        assert!(q.sort[0].descending && !q.sort[1].descending);
        assert_eq!(q.use_index.as_deref(), Some("idx"));
        for bad in [json!({"sort": 6}), json!({"limit": "foo"}), json!({"limit": 100000}), json!({"skip": -1})] {
            assert_eq!(FindQuery::from_json(&bad, &limits).unwrap_err().status, 422, "{bad}");
        }
        let p = |pairs: &[(&str, &str)]| {
            ListQuery::from_params(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>(), 1000)
        };
        let l = p(&[("limit", "undefined"), ("descending", "True"), ("keys", "a,b"), ("startkey", "z")]).unwrap();
        assert_eq!((l.limit, l.descending, l.keys.clone()), (1000, true, Some(vec!["a".into(), "b".into()])));
        assert_eq!(l.range(), (None, Some("z")));
        assert_eq!(p(&[("descending", "yes")]).unwrap_err().status, 422);
        assert_eq!(p(&[("limit", "0")]).unwrap_err().status, 422);
    }

    #[test]
    fn documents_get_their_id_first() {
        let d = with_id(json!({"type": "movie"}), "m1").unwrap();
        assert_eq!(d.to_string(), r#"{"_id":"m1","type":"movie"}"#);
        assert_eq!(with_id(json!({}), "x").unwrap_err().status, 400);
        assert_eq!(with_id(json!([1]), "x").unwrap_err().status, 422);
        let m = json!({"id": "game-1", "name": "x"});
        assert_eq!(named_id(m.as_object().unwrap()).unwrap().as_deref(), Some("game-1"));
        let m = json!({"_id": 7});
        assert_eq!(named_id(m.as_object().unwrap()).unwrap().as_deref(), Some("7"));
        let doc = json!({"a": {"b": 1, "c": 2}, "d": 3});
        let fields = [FieldPath::parse("a.b").unwrap(), FieldPath::parse("d").unwrap(), FieldPath::parse("x").unwrap()];
        assert_eq!(project(&doc, &fields), json!({"a": {"b": 1}, "d": 3}));
    }
}
