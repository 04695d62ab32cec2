//! Upsert input → a validated tree of objects to write.
//!
//! Everything that can be checked without the database is checked here, before a transaction
//! starts: value types and ranges, enum values, DateTimes, nulls on required fields, string
//! sizes and the per-call object cap. Errors name the object (`values.Author[2].bestbook`) and
//! the field (`Author.age`).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::{ApiError, ApiResult};
use crate::model::{Base, Field, Model, Scalar, Storage};
use crate::value::SqlValue;

/// Limits that apply while planning writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Top-level objects per upsert call.
    pub max_objects: usize,
    /// Bytes per string value.
    pub max_string: usize,
    /// Objects per call, nested ones included.
    pub max_total_objects: usize,
    /// List elements per call (scalar-list values and list references).
    pub max_values: usize,
}

/// What one call has planned so far, against [`WriteLimits`].
#[derive(Default)]
struct Tally {
    objects: usize,
    values: usize,
}

impl Tally {
    fn object(&mut self, limits: WriteLimits) -> ApiResult<()> {
        self.objects += 1;
        if self.objects > limits.max_total_objects {
            return Err(ApiError::limit(format!(
                "one upsert writes at most {} objects, nested ones included",
                limits.max_total_objects
            )));
        }
        Ok(())
    }

    fn values(&mut self, n: usize, limits: WriteLimits) -> ApiResult<()> {
        self.values = self.values.saturating_add(n);
        if self.values > limits.max_values {
            return Err(ApiError::limit(format!(
                "one upsert writes at most {} list elements (scalar-list values and list references)",
                limits.max_values
            )));
        }
        Ok(())
    }
}

/// One object to insert or update, with what to do to its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteObject {
    pub type_idx: usize,
    /// `hypi.id` when given: update if it exists, else insert with it.
    pub id: Option<String>,
    /// Scalar and enum columns, explicit nulls included.
    pub columns: Vec<(usize, SqlValue)>,
    /// One-to-one references: `None` clears the reference.
    pub refs: Vec<(usize, Option<WriteObject>)>,
    /// List references: elements to append.
    pub ref_lists: Vec<(usize, Vec<WriteObject>)>,
    /// Scalar lists: values to append.
    pub value_lists: Vec<(usize, Vec<SqlValue>)>,
    /// Lists (of either kind) sent as `null`: emptied before anything is appended.
    pub cleared: Vec<usize>,
    /// Where the object is in the input, for error messages.
    pub location: String,
}

impl WriteObject {
    /// A nested object that only names an existing object: link it, write nothing to it.
    pub fn is_link_only(&self) -> bool {
        self.id.is_some()
            && self.columns.is_empty()
            && self.refs.is_empty()
            && self.ref_lists.is_empty()
            && self.value_lists.is_empty()
            && self.cleared.is_empty()
    }

    /// Whether field `f` is given at all (a value or an explicit null).
    pub fn has_field(&self, f: usize) -> bool {
        self.columns.iter().any(|(i, _)| *i == f)
            || self.refs.iter().any(|(i, _)| *i == f)
            || self.ref_lists.iter().any(|(i, _)| *i == f)
            || self.value_lists.iter().any(|(i, _)| *i == f)
            || self.cleared.contains(&f)
    }
}

/// Plan `upsert(values: ...)`: the top-level objects in input order. `values` is an object
/// keyed by type name, each holding a list of objects (or one object: GraphQL's input
/// coercion reads a single value as a list of one); enum values are strings.
pub fn plan_upsert(model: &Model, values: &Value, limits: WriteLimits) -> ApiResult<Vec<WriteObject>> {
    let Value::Object(by_type) = values else {
        return Err(ApiError::validation("values must be an object keyed by type name"));
    };
    // GraphQL input coercion accepts a single object where a list is expected: it counts as
    // a list of one, for the cap too.
    let total: usize = by_type.values().map(|v| list_items(v).len()).sum();
    if total > limits.max_objects {
        return Err(ApiError::limit(format!(
            "upsert takes at most {} objects per call, got {total}",
            limits.max_objects
        )));
    }
    let mut out = Vec::with_capacity(total);
    let mut tally = Tally::default();
    for (type_name, items) in by_type {
        let Some((type_idx, _)) = model.type_by_name(type_name) else {
            return Err(ApiError::validation(format!("unknown type '{type_name}'")));
        };
        for (i, item) in list_items(items).into_iter().enumerate() {
            let location = format!("values.{type_name}[{i}]");
            out.push(plan_object(model, type_idx, item, location, limits, &mut tally)?);
        }
    }
    Ok(out)
}

fn plan_object(
    model: &Model,
    type_idx: usize,
    value: &Value,
    location: String,
    limits: WriteLimits,
    tally: &mut Tally,
) -> ApiResult<WriteObject> {
    tally.object(limits)?;
    let ty = &model.types[type_idx];
    let Value::Object(fields) = value else {
        return Err(ApiError::validation(format!("{location}: expected an object of type {}", ty.name)));
    };
    let mut obj = WriteObject {
        type_idx,
        id: None,
        columns: Vec::new(),
        refs: Vec::new(),
        ref_lists: Vec::new(),
        value_lists: Vec::new(),
        cleared: Vec::new(),
        location,
    };
    for (name, v) in fields {
        if name.as_str() == "hypi" {
            obj.id = plan_hypi(v, &obj.location, limits)?;
            continue;
        }
        let Some((fi, field)) = ty.field(name) else {
            return Err(ApiError::new(
                crate::error::ErrorCode::UnknownField,
                format!("{}: unknown field '{}.{}'", obj.location, ty.name, name),
            ));
        };
        let qualified = format!("{}.{}", ty.name, field.name);
        if matches!(v, Value::Null) && field.required {
            return Err(ApiError::validation(format!("{}: {qualified} is required and cannot be null", obj.location)));
        }
        match field.storage() {
            Storage::Column => {
                let sv = if matches!(v, Value::Null) {
                    SqlValue::Null
                } else {
                    scalar_value(model, field, &qualified, v, limits).map_err(|e| e.at(&obj.location))?
                };
                obj.columns.push((fi, sv));
            }
            Storage::RefColumn(target) => {
                let nested = match v {
                    Value::Null => None,
                    v => Some(plan_object(model, target, v, format!("{}.{}", obj.location, name), limits, tally)?),
                };
                obj.refs.push((fi, nested));
            }
            // `null` clears a list, as it clears any field (contract: "a field sent as null
            // is cleared"); a list given with values appends them.
            Storage::LinkTable(_) | Storage::ValueTable if matches!(v, Value::Null) => obj.cleared.push(fi),
            Storage::LinkTable(target) => {
                let items = list_items(v);
                tally.values(items.len(), limits)?;
                let mut nested = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if matches!(item, Value::Null) {
                        return Err(ApiError::validation(format!(
                            "{}.{}[{i}]: a list element cannot be null",
                            obj.location, name
                        )));
                    }
                    let at = format!("{}.{}[{i}]", obj.location, name);
                    nested.push(plan_object(model, target, item, at, limits, tally)?);
                }
                obj.ref_lists.push((fi, nested));
            }
            Storage::ValueTable => {
                let items = list_items(v);
                tally.values(items.len(), limits)?;
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if matches!(item, Value::Null) {
                        if field.item_required {
                            return Err(ApiError::validation(format!(
                                "{}.{}[{i}]: {qualified} elements cannot be null",
                                obj.location, name
                            )));
                        }
                        values.push(SqlValue::Null);
                        continue;
                    }
                    let at = format!("{}.{}[{i}]", obj.location, name);
                    values.push(scalar_value(model, field, &qualified, item, limits).map_err(|e| e.at(&at))?);
                }
                obj.value_lists.push((fi, values));
            }
        }
    }
    Ok(obj)
}

/// GraphQL coerces a single value where a list is expected into a one-element list.
fn list_items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn plan_hypi(v: &Value, location: &str, limits: WriteLimits) -> ApiResult<Option<String>> {
    let Value::Object(h) = v else {
        return Ok(None);
    };
    match h.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let id = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(ApiError::validation(format!("{location}: hypi.id must be a string"))),
            };
            validate_id(&id, limits).map_err(|e| e.at(location))?;
            Ok(Some(id))
        }
    }
}

/// Longest object id accepted from a client.
pub const MAX_ID_LEN: usize = 256;

/// Client-supplied ids: non-empty, bounded, no control characters.
pub fn validate_id(id: &str, _limits: WriteLimits) -> ApiResult<()> {
    if id.is_empty() {
        return Err(ApiError::validation("hypi.id cannot be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(ApiError::validation(format!("hypi.id is longer than {MAX_ID_LEN} bytes")));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::validation("hypi.id cannot contain control characters"));
    }
    Ok(())
}

/// One value of a scalar or enum field, checked and converted to its stored form.
pub fn scalar_value(
    model: &Model,
    field: &Field,
    qualified: &str,
    v: &Value,
    limits: WriteLimits,
) -> ApiResult<SqlValue> {
    let bad = |what: &str| ApiError::validation(format!("{qualified}: {} is not {what}", short(v)));
    let text = |s: &str| -> ApiResult<SqlValue> {
        if s.len() > limits.max_string {
            return Err(ApiError::limit(format!(
                "{qualified}: string of {} bytes is longer than the limit of {} bytes",
                s.len(),
                limits.max_string
            )));
        }
        Ok(SqlValue::Text(s.to_string()))
    };
    match &field.base {
        Base::Enum(e) => {
            let en = &model.enums[*e];
            let name = match v {
                Value::String(s) => s.as_str(),
                _ => return Err(bad(&format!("a value of enum {}", en.name))),
            };
            if en.values.iter().any(|x| x == name) {
                Ok(SqlValue::Text(name.to_string()))
            } else {
                Err(ApiError::validation(format!(
                    "{qualified}: '{name}' is not a value of enum {} ({})",
                    en.name,
                    en.values.join(", ")
                )))
            }
        }
        Base::Object(_) => Err(ApiError::validation(format!("{qualified} is a reference, not a scalar"))),
        Base::Scalar(s) => match (s, v) {
            (Scalar::String, Value::String(x)) if field.normalized => text(&fold(x)),
            (Scalar::String, Value::String(x)) => text(x),
            (Scalar::Id, Value::String(x)) => text(x),
            (Scalar::Id, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(SqlValue::Text(n.to_string())),
            (Scalar::Int, Value::Number(n)) => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => Ok(SqlValue::Int(i)),
                _ => Err(bad("an Int (32-bit integer)")),
            },
            (Scalar::Long, Value::Number(n)) => {
                n.as_i64().map(SqlValue::Int).ok_or_else(|| bad("a Long (64-bit integer)"))
            }
            (Scalar::Long, Value::String(x)) => {
                x.trim().parse::<i64>().map(SqlValue::Int).map_err(|_| bad("a Long (64-bit integer)"))
            }
            (Scalar::Float, Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(SqlValue::Real(f)),
                _ => Err(bad("a finite Float")),
            },
            (Scalar::Boolean, Value::Bool(b)) => Ok(SqlValue::Bool(*b)),
            (Scalar::DateTime, Value::String(x)) => normalize_datetime(x)
                .map(SqlValue::Text)
                .ok_or_else(|| bad("a DateTime (ISO-8601, e.g. 2026-11-22T10:15:00Z)")),
            (Scalar::Json, v) => text(&v.to_string()),
            (Scalar::String, _) => Err(bad("a String")),
            (Scalar::Id, _) => Err(bad("an ID")),
            (Scalar::Int, _) => Err(bad("an Int")),
            (Scalar::Long, _) => Err(bad("a Long")),
            (Scalar::Float, _) => Err(bad("a Float")),
            (Scalar::Boolean, _) => Err(bad("a Boolean")),
            (Scalar::DateTime, _) => Err(bad("a DateTime")),
        },
    }
}

/// A string in the form of a [`Field::normalized`] field: trimmed, NFKC, lower case. (Email
/// addresses: `Ann@Example.com` and `ann@example.com` are one address.)
pub fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.trim().nfkc().collect::<String>().to_lowercase()
}

/// A value given as text (as `deleteScalars` takes them) in the stored form of `field`.
pub fn scalar_from_text(
    model: &Model,
    field: &Field,
    qualified: &str,
    s: &str,
    limits: WriteLimits,
) -> ApiResult<SqlValue> {
    let v = match field.base {
        Base::Scalar(Scalar::Int | Scalar::Long) => match s.trim().parse::<i64>() {
            Ok(i) => Value::Number(i.into()),
            Err(_) => return Err(ApiError::validation(format!("{qualified}: '{s}' is not an integer"))),
        },
        Base::Scalar(Scalar::Float) => match s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Value::Number(n),
            None => return Err(ApiError::validation(format!("{qualified}: '{s}' is not a Float"))),
        },
        Base::Scalar(Scalar::Boolean) => match s.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(ApiError::validation(format!("{qualified}: '{s}' is not a Boolean"))),
        },
        Base::Scalar(Scalar::Json) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(j) => j,
            Err(_) => return Err(ApiError::validation(format!("{qualified}: '{s}' is not JSON"))),
        },
        _ => Value::String(s.to_string()),
    };
    scalar_value(model, field, qualified, &v, limits)
}

/// A value for an error message, cut to a readable length.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// Parse an ISO-8601 DateTime (RFC 3339 with any offset, a local time taken as UTC, or a
/// date) and return the stored form: UTC with milliseconds, `2026-11-22T10:15:00.000Z`.
/// Years outside 0000–9999 are refused so stored text sorts as instants do.
pub fn normalize_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    let dt = if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
        dt
    } else if let Ok(dt) =
        PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"))
    {
        dt.assume_utc()
    } else if let Ok(dt) =
        PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
    {
        dt.assume_utc()
    } else if let Ok(dt) = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]")) {
        dt.assume_utc()
    } else if let Ok(d) = time::Date::parse(s, format_description!("[year]-[month]-[day]")) {
        d.midnight().assume_utc()
    } else {
        return None;
    };
    format_datetime(dt)
}

/// The stored form of an instant, or `None` outside years 0000–9999.
pub fn format_datetime(dt: OffsetDateTime) -> Option<String> {
    let dt = dt.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&dt.year()) {
        return None;
    }
    dt.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z")).ok()
}

/// Now, in the stored form.
pub fn now() -> String {
    format_datetime(OffsetDateTime::now_utc()).unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

/// `ms` milliseconds after the Unix epoch, in the stored form.
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(format_datetime)
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_normalize_to_utc_millis() {
        assert_eq!(normalize_datetime("2020-07-09T10:00:00+02:00").as_deref(), Some("2020-07-09T08:00:00.000Z"));
        assert_eq!(normalize_datetime("2020-07-09").as_deref(), Some("2020-07-09T00:00:00.000Z"));
        assert_eq!(normalize_datetime("2020-07-09T10:00:00.123456Z").as_deref(), Some("2020-07-09T10:00:00.123Z"));
        assert_eq!(normalize_datetime("2020-07-09T10:00").as_deref(), Some("2020-07-09T10:00:00.000Z"));
        assert_eq!(normalize_datetime("yesterday"), None);
        assert_eq!(normalize_datetime("2020-13-01"), None);
    }
}
