//! The generated types of contract §2, and the resolvers that read object fields out of the
//! JSON document a root operation fetched.

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, Scalar, Type, TypeRef, Union,
};
use async_graphql::{Name, Value};
use serde_json::Value as Json;

use crate::model::{Base, Model, ObjectType, Scalar as S, Storage, HYPI_FLAT_FIELDS};
use crate::plan::read::ref_key;

use super::selection::ROOT_UNION;

/// How a stored JSON value becomes a GraphQL value.
#[derive(Clone, Copy)]
enum Conv {
    Plain,
    /// SQLite stores Booleans as 0/1.
    Bool,
    Enum,
    /// Float output is always a float, whatever the database printed (PostgreSQL's jsonb
    /// prints 3.0 as 3), so both backends answer alike.
    Float,
}

fn convert(v: &Json, conv: Conv) -> Value {
    match (conv, v) {
        (_, Json::Null) => Value::Null,
        (Conv::Bool, Json::Number(n)) => Value::Boolean(n.as_i64() != Some(0)),
        (Conv::Enum, Json::String(s)) => Value::Enum(Name::new(s)),
        (Conv::Float, Json::Number(n)) => {
            n.as_f64().and_then(async_graphql::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
        }
        (_, v) => Value::from_json(v.clone()).unwrap_or(Value::Null),
    }
}

fn scalar_type_name(model: &Model, base: &Base) -> String {
    match base {
        Base::Scalar(s) => s.name().to_string(),
        Base::Enum(e) => model.enums[*e].name.clone(),
        Base::Object(t) => model.types[*t].name.clone(),
    }
}

fn conv_of(base: &Base) -> Conv {
    match base {
        Base::Scalar(S::Boolean) => Conv::Bool,
        Base::Enum(_) => Conv::Enum,
        Base::Scalar(S::Float) => Conv::Float,
        _ => Conv::Plain,
    }
}

/// A field that reads `key` of the parent JSON object as a scalar.
fn scalar_field(name: &str, ty: TypeRef, conv: Conv) -> Field {
    let key = name.to_string();
    Field::new(name, ty, move |ctx| {
        let v = ctx.parent_value.downcast_ref::<Json>().and_then(|p| p.get(&key));
        FieldFuture::Value(v.map(|v| FieldValue::value(convert(v, conv))))
    })
}

/// A scalar keyed by response key (aggregate functions: `c: count, d: count(distinct: true)`).
fn aliased_scalar_field(name: &str, ty: TypeRef) -> Field {
    let conv = if ty.type_name() == TypeRef::FLOAT { Conv::Float } else { Conv::Plain };
    Field::new(name, ty, move |ctx| {
        let key = ref_key(ctx.ctx.item.node.response_key().node.as_str());
        let v = ctx.parent_value.downcast_ref::<Json>().and_then(|p| p.get(&key));
        FieldFuture::Value(v.map(|v| FieldValue::value(convert(v, conv))))
    })
}

/// A field that reads the parent JSON's `key` as a nested object (borrowed, not copied).
fn object_field(name: &str, ty: TypeRef, keyed_by_alias: bool) -> Field {
    let name_owned = name.to_string();
    Field::new(name, ty, move |ctx| {
        let key =
            if keyed_by_alias { ref_key(ctx.ctx.item.node.response_key().node.as_str()) } else { name_owned.clone() };
        let v = ctx.parent_value.downcast_ref::<Json>().and_then(|p| p.get(&key));
        FieldFuture::Value(match v {
            None | Some(Json::Null) => None,
            Some(v) => Some(FieldValue::borrowed_any(v)),
        })
    })
}

/// A list field: references (objects) or scalar values. Fields with arguments are keyed by
/// alias (each alias may ask for a different page); the others by name.
fn list_field(name: &str, ty: TypeRef, elements: Option<Conv>, keyed_by_alias: bool) -> Field {
    let name_owned = name.to_string();
    Field::new(name, ty, move |ctx| {
        let key =
            if keyed_by_alias { ref_key(ctx.ctx.item.node.response_key().node.as_str()) } else { name_owned.clone() };
        let v = ctx.parent_value.downcast_ref::<Json>().and_then(|p| p.get(&key));
        FieldFuture::Value(match v {
            Some(Json::Array(items)) => Some(match elements {
                None => FieldValue::list(items.iter().map(|x| FieldValue::borrowed_any(x))),
                Some(conv) => FieldValue::list(items.iter().map(move |x| FieldValue::value(convert(x, conv)))),
            }),
            _ => None,
        })
    })
}

fn list_args(field: Field) -> Field {
    field
        .argument(InputValue::new("arcql", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("last", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
}

fn wrap(name: String, list: bool, required: bool, item_required: bool) -> TypeRef {
    match (list, required, item_required) {
        (false, false, _) => TypeRef::named(name),
        (false, true, _) => TypeRef::named_nn(name),
        (true, false, false) => TypeRef::named_list(name),
        (true, false, true) => TypeRef::named_nn_list(name),
        (true, true, false) => TypeRef::named_list_nn(name),
        (true, true, true) => TypeRef::named_nn_list_nn(name),
    }
}

fn describe<T>(x: T, d: &Option<String>, f: impl FnOnce(T, String) -> T) -> T {
    match d {
        Some(d) => f(x, d.clone()),
        None => x,
    }
}

/// The object type `X` itself, plus `hypi: Hypi`.
fn object_type(model: &Model, ty: &ObjectType) -> Object {
    let mut obj = describe(Object::new(&ty.name), &ty.description, |o, d| o.description(d));
    obj = obj.field(object_field("hypi", TypeRef::named("Hypi"), false));
    for f in &ty.fields {
        let tn = scalar_type_name(model, &f.base);
        let tref = wrap(tn, f.list, f.required, f.item_required);
        let field = match f.storage() {
            Storage::Column => scalar_field(&f.name, tref, conv_of(&f.base)),
            Storage::RefColumn(_) => object_field(&f.name, tref, true),
            Storage::LinkTable(_) => list_args(list_field(&f.name, tref, None, true)),
            Storage::ValueTable => list_args(list_field(&f.name, tref, Some(conv_of(&f.base)), true)),
        };
        obj = obj.field(describe(field, &f.description, |x, d| x.description(d)));
    }
    obj
}

/// `XInput` (markers kept) or `XInputOpt` (everything optional).
fn input_type(model: &Model, ty: &ObjectType, opt: bool) -> InputObject {
    let suffix = if opt { "InputOpt" } else { "Input" };
    let mut input = InputObject::new(format!("{}{suffix}", ty.name));
    for f in &ty.fields {
        let base = match &f.base {
            Base::Object(t) => format!("{}{suffix}", model.types[*t].name),
            b => scalar_type_name(model, b),
        };
        let tref = if opt {
            if f.list && f.is_reference() {
                TypeRef::named_list(base)
            } else if f.list {
                wrap(base, true, false, f.item_required)
            } else {
                TypeRef::named(base)
            }
        } else if f.list && f.is_reference() {
            wrap(base, true, f.required, true)
        } else {
            wrap(base, f.list, f.required, f.item_required)
        };
        input = input.field(InputValue::new(&f.name, tref));
    }
    if ty.builtin && !opt {
        // Only `createAccount` takes a password; `upsert` never writes one.
        input = input.field(InputValue::new("password", TypeRef::named_nn(TypeRef::STRING)));
    }
    input.field(InputValue::new("hypi", TypeRef::named(if opt { "HypiInputOpt" } else { "HypiInput" })))
}

fn aggs_type(ty: &ObjectType) -> Object {
    let mut o = Object::new(format!("{}Aggs", ty.name));
    for f in &ty.fields {
        if f.is_reference() {
            continue;
        }
        let agg = match (&f.base, f.list) {
            (Base::Scalar(S::Int), false) => "AggInt",
            (Base::Scalar(S::Float), false) => "AggFloat",
            _ => "AggOtherScalar",
        };
        o = o.field(object_field(&f.name, TypeRef::named(agg), true));
    }
    for h in HYPI_FLAT_FIELDS {
        o = o.field(object_field(h, TypeRef::named("AggOtherScalar"), true));
    }
    o
}

fn fields_enum(name: String, names: impl IntoIterator<Item = String>) -> Enum {
    names.into_iter().fold(Enum::new(name), |e, n| e.item(EnumItem::new(n)))
}

fn agg_type(name: &str, num: Option<(&str, &str)>) -> Object {
    let distinct = || InputValue::new("distinct", TypeRef::named(TypeRef::BOOLEAN));
    let f = aliased_scalar_field;
    let mut o = Object::new(name).field(f("count", TypeRef::named(TypeRef::INT)).argument(distinct()));
    if let Some((sum, minmax)) = num {
        o = o
            .field(f("sum", TypeRef::named(sum)).argument(distinct()))
            .field(f("avg", TypeRef::named(TypeRef::FLOAT)).argument(distinct()))
            .field(f("min", TypeRef::named(minmax)))
            .field(f("max", TypeRef::named(minmax)));
    }
    o.field(list_field("groupValues", TypeRef::named_list("Pair"), None, false))
}

/// Every generated type except the root operation types.
pub fn all_types(model: &Model) -> Vec<Type> {
    let mut out: Vec<Type> = Vec::new();
    for s in [S::DateTime, S::Long, S::Json] {
        let desc = match s {
            S::DateTime => "An instant, ISO-8601 in UTC with milliseconds: 2026-11-22T10:15:00.000Z",
            S::Long => "A 64-bit integer",
            _ => "Any JSON value",
        };
        out.push(Scalar::new(s.name()).description(desc).into());
    }
    for e in &model.enums {
        let en = e.values.iter().fold(Enum::new(&e.name), |en, v| en.item(EnumItem::new(v)));
        out.push(describe(en, &e.description, |x, d| x.description(d)).into());
    }
    let hypi_fields: [(&str, &str); 7] = [
        ("id", TypeRef::ID),
        ("impl", TypeRef::STRING),
        ("created", "DateTime"),
        ("updated", "DateTime"),
        ("trashed", "DateTime"),
        ("createdBy", TypeRef::ID),
        ("instanceId", TypeRef::STRING),
    ];
    let hypi = hypi_fields
        .iter()
        .fold(Object::new("Hypi"), |o, (n, t)| o.field(scalar_field(n, TypeRef::named(*t), Conv::Plain)));
    out.push(hypi.into());
    out.push(InputObject::new("HypiInput").field(InputValue::new("id", TypeRef::named(TypeRef::ID))).into());
    out.push(InputObject::new("HypiInputOpt").field(InputValue::new("id", TypeRef::named(TypeRef::ID))).into());

    let mut mutation_type = Enum::new("HypiMutationType");
    let mut upsert_union = InputObject::new("HypiUpsertInputUnion");
    let mut root_union = Union::new(ROOT_UNION);
    let mut agg_root = Object::new("HypiAggregationType");
    for (type_idx, ty) in model.types.iter().enumerate() {
        mutation_type = mutation_type.item(EnumItem::new(&ty.name));
        upsert_union =
            upsert_union.field(InputValue::new(&ty.name, TypeRef::named_nn_list(format!("{}InputOpt", ty.name))));
        root_union = root_union.possible_type(&ty.name);
        let lower = Model::lower_first(&ty.name);
        agg_root = agg_root
            .field(super::ops::aggregate_field(&lower, type_idx, &ty.name, false))
            .field(super::ops::aggregate_field(&format!("{lower}With"), type_idx, &ty.name, true));

        out.push(object_type(model, ty).into());
        out.push(input_type(model, ty, false).into());
        out.push(input_type(model, ty, true).into());
        out.push(aggs_type(ty).into());
        let flat = || HYPI_FLAT_FIELDS.iter().map(|s| s.to_string());
        out.push(
            fields_enum(format!("{}Fields", ty.name), ty.fields.iter().map(|f| f.name.clone()).chain(flat())).into(),
        );
        let scalar_names = ty.fields.iter().filter(|f| !f.is_reference()).map(|f| f.name.clone());
        out.push(fields_enum(format!("{}ScalarFields", ty.name), scalar_names.chain(flat())).into());
        let numeric: Vec<String> = ty
            .fields
            .iter()
            .filter(|f| !f.list && matches!(f.base, Base::Scalar(S::Int | S::Float | S::Long)))
            .map(|f| f.name.clone())
            .collect();
        if !numeric.is_empty() {
            out.push(fields_enum(format!("{}NumericFields", ty.name), numeric).into());
        }
        out.push(
            InputObject::new(format!("{}GroupByOptions", ty.name))
                .field(InputValue::new("field", TypeRef::named_nn(format!("{}ScalarFields", ty.name))))
                .field(InputValue::new("order", TypeRef::named("AggOrder")))
                .field(InputValue::new("dateGranularity", TypeRef::named("TimeUnit")))
                .into(),
        );
    }
    out.push(mutation_type.into());
    out.push(upsert_union.into());
    out.push(root_union.into());
    out.push(agg_root.into());

    out.push(
        Object::new("HypiFilterConnection")
            .field(list_field("edges", TypeRef::named_nn_list("HypiResultEdge"), None, false))
            .field(object_field("pageInfo", TypeRef::named_nn("PageInfo"), false))
            .into(),
    );
    out.push(
        Object::new("HypiResultEdge")
            .field(Field::new("node", TypeRef::named_nn(ROOT_UNION), |ctx| {
                let edge = ctx.parent_value.downcast_ref::<Json>();
                let node = edge.and_then(|e| e.get("node"));
                let ty = edge.and_then(|e| e.get("__type")).and_then(Json::as_str).map(str::to_string);
                FieldFuture::Value(match (node, ty) {
                    (Some(n), Some(t)) => Some(FieldValue::borrowed_any(n).with_type(t)),
                    _ => None,
                })
            }))
            .field(scalar_field("cursor", TypeRef::named_nn(TypeRef::ID), Conv::Plain))
            .into(),
    );
    out.push(
        Object::new("PageInfo")
            .field(scalar_field("hasPreviousPage", TypeRef::named_nn(TypeRef::BOOLEAN), Conv::Plain))
            .field(scalar_field("hasNextPage", TypeRef::named_nn(TypeRef::BOOLEAN), Conv::Plain))
            .field(scalar_field("startCursor", TypeRef::named_nn(TypeRef::ID), Conv::Plain))
            .field(scalar_field("endCursor", TypeRef::named_nn(TypeRef::ID), Conv::Plain))
            .field(scalar_field("pageLimit", TypeRef::named(TypeRef::INT), Conv::Plain))
            .field(scalar_field("previousOffsets", TypeRef::named_nn_list(TypeRef::STRING), Conv::Plain))
            .field(scalar_field("nextOffsets", TypeRef::named_nn_list(TypeRef::STRING), Conv::Plain))
            .into(),
    );
    out.push(agg_type("AggInt", Some((TypeRef::INT, TypeRef::INT))).into());
    out.push(agg_type("AggFloat", Some((TypeRef::FLOAT, TypeRef::FLOAT))).into());
    out.push(agg_type("AggOtherScalar", None).into());
    out.push(
        Object::new("Pair")
            .field(scalar_field("key", TypeRef::named(TypeRef::STRING), Conv::Plain))
            .field(scalar_field("value", TypeRef::named(TypeRef::STRING), Conv::Plain))
            .into(),
    );
    out.push(Enum::new("AggOrder").item(EnumItem::new("ASC")).item(EnumItem::new("DESC")).into());
    out.push(
        ["SECONDS", "MINUTES", "HOURS", "DAYS"]
            .iter()
            .fold(Enum::new("TimeUnit"), |e, v| e.item(EnumItem::new(*v)))
            .into(),
    );
    out
}
