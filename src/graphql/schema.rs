//! The generated API of contract §2 and §3, built once per release, in two forms from one
//! description so they cannot disagree:
//!
//! - an async-graphql dynamic [`Schema`]: what requests are validated against, what
//!   introspection describes and what `schema build` prints. Its resolvers never run: arcbase
//!   executes operations itself (`exec`).
//! - [`Shapes`]: for each output type, where each field's value sits in the JSON that the
//!   operations return (by field name, or, for fields whose value depends on the field's
//!   arguments or sub-selection, by response key) and its type, which is all the encoder
//!   needs.

use std::collections::HashMap;

use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, InputObject, InputValue, Object, Scalar, Schema, SchemaError, Type, TypeRef,
    Union,
};

use crate::config::Limits;
use crate::model::{Base, Model, ObjectType, Scalar as S, Storage, ACCOUNT, HYPI_FLAT_FIELDS};

/// The name of the union every object type belongs to.
pub const ROOT_UNION: &str = "HypiRootAggregate";

/// An output type reference: wrappers around a named type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    NonNull(Box<Ty>),
    List(Box<Ty>),
    Named(String),
}

impl Ty {
    /// Parse `[Book!]!`-style text (as TypeRef prints it).
    pub fn parse(s: &str) -> Ty {
        if let Some(inner) = s.strip_suffix('!') {
            return Ty::NonNull(Box::new(Ty::parse(inner)));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            return Ty::List(Box::new(Ty::parse(inner)));
        }
        Ty::Named(s.to_string())
    }

    /// The named type at the bottom.
    pub fn name(&self) -> &str {
        match self {
            Ty::NonNull(t) | Ty::List(t) => t.name(),
            Ty::Named(n) => n,
        }
    }
}

/// Where a field's value sits in its parent's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Under the field's name: it takes no arguments and has no sub-selection that could
    /// differ between aliases (scalar columns, `hypi`, the parts of a connection).
    Name,
    /// Under `&<response key>` (`plan::read::ref_key`): references, lists, aggregates.
    Alias,
}

#[derive(Debug, Clone)]
pub struct OutField {
    pub key: Key,
    pub ty: Ty,
}

/// The output types' fields, by type name.
#[derive(Debug, Default)]
pub struct Shapes {
    pub objects: HashMap<String, HashMap<String, OutField>>,
    /// Union name → member type names.
    pub unions: HashMap<String, Vec<String>>,
}

impl Shapes {
    /// Does the type condition `cond` apply to an object of type `ty`?
    pub fn applies(&self, cond: &str, ty: &str) -> bool {
        cond == ty || self.unions.get(cond).is_some_and(|members| members.iter().any(|m| m == ty))
    }
}

/// Both forms, built together.
struct Builder {
    types: Vec<Type>,
    shapes: Shapes,
}

/// A field of an output object, recorded in both forms. Its resolver never runs.
struct Out {
    field: Field,
    name: String,
    shape: OutField,
}

fn out(name: &str, ty: TypeRef, key: Key) -> Out {
    let shape = OutField { key, ty: Ty::parse(&ty.to_string()) };
    Out { field: Field::new(name, ty, |_| FieldFuture::Value(None)), name: name.to_string(), shape }
}

impl Out {
    fn arg(mut self, arg: InputValue) -> Self {
        self.field = self.field.argument(arg);
        self
    }
    fn describe(mut self, d: Option<&str>) -> Self {
        if let Some(d) = d {
            self.field = self.field.description(d);
        }
        self
    }
}

/// `@hyper(...)` as the generated SDL shows it: every option, defaults written out.
fn hyper_directive(ty: &ObjectType, h: &crate::model::HyperSpec) -> async_graphql::dynamic::Directive {
    use async_graphql::{Name, Value};
    let names = |idx: &[usize]| Value::List(idx.iter().map(|&i| Value::String(ty.fields[i].name.clone())).collect());
    let mut d = async_graphql::dynamic::Directive::new("hyper")
        .argument("data", Value::Boolean(h.data))
        .argument("search", names(&h.search))
        .argument("store", names(&h.store));
    for (name, on) in [("cache", h.cache), ("count", h.count), ("notify", h.notify), ("attachments", h.attachments)] {
        d = d.argument(name, Value::Boolean(on));
    }
    d = d.argument("mode", Value::Enum(Name::new(h.mode.as_str())));
    if !h.modes.is_empty() {
        let modes = h.modes.iter().map(|(s, m)| (Name::new(s.as_str()), Value::Enum(Name::new(m.as_str())))).collect();
        d = d.argument("modes", Value::Object(modes));
    }
    d
}

/// An output object in both forms.
struct Obj {
    object: Object,
    name: String,
    fields: HashMap<String, OutField>,
}

impl Obj {
    fn new(name: &str) -> Self {
        Obj { object: Object::new(name), name: name.to_string(), fields: HashMap::new() }
    }
    fn describe(mut self, d: Option<&str>) -> Self {
        if let Some(d) = d {
            self.object = self.object.description(d);
        }
        self
    }
    fn field(mut self, f: Out) -> Self {
        self.fields.insert(f.name, f.shape);
        self.object = self.object.field(f.field);
        self
    }
}

impl Builder {
    fn object(&mut self, o: Obj) {
        self.shapes.objects.insert(o.name, o.fields);
        self.types.push(o.object.into());
    }
    fn push(&mut self, t: impl Into<Type>) {
        self.types.push(t.into());
    }
}

fn scalar_type_name(model: &Model, base: &Base) -> String {
    match base {
        Base::Scalar(s) => s.name().to_string(),
        Base::Enum(e) => model.enums[*e].name.clone(),
        Base::Object(t) => model.types[*t].name.clone(),
    }
}

fn list_args(f: Out) -> Out {
    f.arg(InputValue::new("arcql", TypeRef::named(TypeRef::STRING)))
        .arg(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .arg(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .arg(InputValue::new("last", TypeRef::named(TypeRef::INT)))
        .arg(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
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

/// The object type `X` itself, plus `hypi: Hypi`.
fn object_type(model: &Model, ty: &ObjectType) -> Obj {
    let mut obj = Obj::new(&ty.name).describe(ty.description.as_deref());
    if let Some(h) = &ty.hyper {
        obj.object = obj.object.directive(hyper_directive(ty, h));
    }
    obj = obj.field(out("hypi", TypeRef::named("Hypi"), Key::Name));
    for f in &ty.fields {
        let tref = wrap(scalar_type_name(model, &f.base), f.list, f.required, f.item_required);
        let field = match f.storage() {
            Storage::Column => out(&f.name, tref, Key::Name),
            Storage::RefColumn(_) => out(&f.name, tref, Key::Alias),
            Storage::LinkTable(_) | Storage::ValueTable => list_args(out(&f.name, tref, Key::Alias)),
        };
        obj = obj.field(field.describe(f.description.as_deref()));
    }
    if ty.hyper.as_ref().is_some_and(|h| h.attachments) {
        let files = out("attachments", TypeRef::named_nn_list("Attachment"), Key::Name);
        obj = obj.field(files.describe(Some(
            "The object's files (@hyper(attachments: true)), by name; upload and download at their url.",
        )));
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

fn aggs_type(ty: &ObjectType) -> Obj {
    let mut o = Obj::new(&format!("{}Aggs", ty.name));
    for f in &ty.fields {
        if f.is_reference() {
            continue;
        }
        let agg = match (&f.base, f.list) {
            (Base::Scalar(S::Int), false) => "AggInt",
            (Base::Scalar(S::Float), false) => "AggFloat",
            _ => "AggOtherScalar",
        };
        o = o.field(out(&f.name, TypeRef::named(agg), Key::Alias));
    }
    for h in HYPI_FLAT_FIELDS {
        o = o.field(out(h, TypeRef::named("AggOtherScalar"), Key::Alias));
    }
    o
}

fn fields_enum(name: String, names: impl IntoIterator<Item = String>) -> Enum {
    names.into_iter().fold(Enum::new(name), |e, n| e.item(EnumItem::new(n)))
}

fn agg_type(name: &str, num: Option<(&str, &str)>) -> Obj {
    let distinct = || InputValue::new("distinct", TypeRef::named(TypeRef::BOOLEAN));
    let f = |n: &str, t: &str| out(n, TypeRef::named(t), Key::Alias);
    let mut o = Obj::new(name).field(f("count", TypeRef::INT).arg(distinct()));
    if let Some((sum, minmax)) = num {
        o = o
            .field(f("sum", sum).arg(distinct()))
            .field(f("avg", TypeRef::FLOAT).arg(distinct()))
            .field(f("min", minmax))
            .field(f("max", minmax));
    }
    o.field(out("groupValues", TypeRef::named_list("Pair"), Key::Name))
}

fn aggregate_field(name: &str, type_name: &str, grouped: bool) -> Out {
    let aggs = format!("{type_name}Aggs");
    let ty = if grouped { TypeRef::named_list(aggs) } else { TypeRef::named(aggs) };
    let f = out(name, ty, Key::Alias).arg(InputValue::new("where", TypeRef::named(TypeRef::STRING)));
    if !grouped {
        return f;
    }
    f.arg(InputValue::new("groupBy", TypeRef::named_nn_list_nn(format!("{type_name}GroupByOptions"))))
        .arg(InputValue::new("having", TypeRef::named(TypeRef::STRING)))
        .arg(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .arg(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .arg(InputValue::new("last", TypeRef::named(TypeRef::INT)))
        .arg(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
        .arg(InputValue::new("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)))
        .arg(InputValue::new("page", TypeRef::named(TypeRef::INT)))
}

fn root_query() -> Obj {
    let arg = InputValue::new;
    let find = out("find", TypeRef::named_nn("HypiFilterConnection"), Key::Alias)
        .arg(arg("type", TypeRef::named_nn("HypiMutationType")))
        .arg(arg("arcql", TypeRef::named_nn(TypeRef::STRING)))
        .arg(arg("first", TypeRef::named(TypeRef::INT)))
        .arg(arg("after", TypeRef::named(TypeRef::STRING)))
        .arg(arg("last", TypeRef::named(TypeRef::INT)))
        .arg(arg("before", TypeRef::named(TypeRef::STRING)))
        .arg(arg("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
        .arg(arg("page", TypeRef::named(TypeRef::INT)))
        .describe(Some("Objects matching an ArcQL query, paged by cursor."));
    let get = out("get", TypeRef::named(ROOT_UNION), Key::Alias)
        .arg(arg("type", TypeRef::named_nn("HypiMutationType")))
        .arg(arg("id", TypeRef::named_nn(TypeRef::STRING)))
        .arg(arg("includeTrashed", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
        .describe(Some("One object by id, or null when it does not exist, is trashed, or is not visible."));
    let login = out("login", TypeRef::named("AccessToken"), Key::Alias)
        .arg(arg("username", TypeRef::named_nn(TypeRef::STRING)))
        .arg(arg("password", TypeRef::named_nn(TypeRef::STRING)))
        .describe(Some("A session token for an account of this instance."));
    let by_email = out("loginByEmail", TypeRef::named("AccessToken"), Key::Alias)
        .arg(arg("email", TypeRef::named_nn(TypeRef::STRING)))
        .arg(arg("password", TypeRef::named_nn(TypeRef::STRING)))
        .describe(Some("A session token for the account listing this email address."));
    let aggregate = out("aggregate", TypeRef::named("HypiAggregationType"), Key::Alias)
        .describe(Some("Counts, sums, averages, minima and maxima, optionally grouped."));
    Obj::new("Query").field(find).field(login).field(by_email).field(aggregate).field(get)
}

fn root_mutation() -> Obj {
    let arg = InputValue::new;
    let link = |name: &str, doc: &str| {
        out(name, TypeRef::named_nn(TypeRef::BOOLEAN), Key::Alias)
            .arg(arg("from", TypeRef::named_nn("HypiMutationType")))
            .arg(arg("to", TypeRef::named_nn("HypiMutationType")))
            .arg(arg("via", TypeRef::named_nn(TypeRef::STRING)))
            .arg(arg("whereFromID", TypeRef::named_nn(TypeRef::STRING)))
            .arg(arg("andToID", TypeRef::named_nn(TypeRef::STRING)))
            .describe(Some(doc))
    };
    let bulk = |name: &str, doc: &str, clear: bool| {
        let f = out(name, TypeRef::named_nn(TypeRef::INT), Key::Alias)
            .arg(arg("type", TypeRef::named_nn("HypiMutationType")))
            .arg(arg("arcql", TypeRef::named_nn(TypeRef::STRING)))
            .describe(Some(doc));
        if clear {
            f.arg(arg("clearArrayReferences", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
        } else {
            f
        }
    };
    Obj::new("Mutation")
        .field(
            out("upsert", TypeRef::named_nn_list_nn("Hypi"), Key::Alias)
                .arg(arg("values", TypeRef::named_nn("HypiUpsertInputUnion")))
                .describe(Some("Insert or partially update objects, nested ones included, in one transaction.")),
        )
        .field(bulk("trash", "Mark matching objects trashed; returns how many changed.", false))
        .field(bulk("untrash", "Restore matching trashed objects; returns how many changed.", false))
        .field(bulk("delete", "Delete matching objects permanently; returns how many.", true))
        .field(
            out("deleteScalars", TypeRef::named_nn(TypeRef::INT), Key::Alias)
                .arg(arg("type", TypeRef::named_nn("HypiMutationType")))
                .arg(arg("field", TypeRef::named_nn(TypeRef::STRING)))
                .arg(arg("values", TypeRef::named_nn_list_nn(TypeRef::STRING)))
                .arg(arg("arcql", TypeRef::named_nn(TypeRef::STRING)))
                .describe(Some(
                    "Remove values from a scalar list of matching objects; returns how many objects changed.",
                )),
        )
        .field(
            out("createAccount", TypeRef::named("Hypi"), Key::Alias)
                .arg(arg("value", TypeRef::named_nn(format!("{ACCOUNT}Input"))))
                .describe(Some("Register an account (anonymously only where the instance allows registrations).")),
        )
        .field(link("link", "Add `andToID` to the reference `via` of `whereFromID`."))
        .field(link("unlink", "Remove `andToID` from the reference `via` of `whereFromID`."))
}

/// Every generated type, the root operation types included.
fn build(model: &Model) -> Builder {
    let mut b = Builder { types: Vec::new(), shapes: Shapes::default() };
    for s in [S::DateTime, S::Long, S::Json] {
        let desc = match s {
            S::DateTime => "An instant, ISO-8601 in UTC with milliseconds: 2026-11-22T10:15:00.000Z",
            S::Long => "A 64-bit integer",
            _ => "Any JSON value",
        };
        b.push(Scalar::new(s.name()).description(desc));
    }
    for e in &model.enums {
        let mut en = e.values.iter().fold(Enum::new(&e.name), |en, v| en.item(EnumItem::new(v)));
        if let Some(d) = &e.description {
            en = en.description(d);
        }
        b.push(en);
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
    let hypi = hypi_fields.iter().fold(Obj::new("Hypi"), |o, (n, t)| o.field(out(n, TypeRef::named(*t), Key::Name)));
    b.object(hypi);
    b.push(InputObject::new("HypiInput").field(InputValue::new("id", TypeRef::named(TypeRef::ID))));
    b.push(InputObject::new("HypiInputOpt").field(InputValue::new("id", TypeRef::named(TypeRef::ID))));

    let mut mutation_type = Enum::new("HypiMutationType");
    let mut upsert_union = InputObject::new("HypiUpsertInputUnion");
    let mut root_union = Union::new(ROOT_UNION);
    let mut members = Vec::new();
    let mut agg_root = Obj::new("HypiAggregationType");
    for ty in &model.types {
        mutation_type = mutation_type.item(EnumItem::new(&ty.name));
        upsert_union =
            upsert_union.field(InputValue::new(&ty.name, TypeRef::named_nn_list(format!("{}InputOpt", ty.name))));
        root_union = root_union.possible_type(&ty.name);
        members.push(ty.name.clone());
        let lower = Model::lower_first(&ty.name);
        agg_root = agg_root.field(aggregate_field(&lower, &ty.name, false)).field(aggregate_field(
            &format!("{lower}With"),
            &ty.name,
            true,
        ));

        b.object(object_type(model, ty));
        b.push(input_type(model, ty, false));
        b.push(input_type(model, ty, true));
        b.object(aggs_type(ty));
        let flat = || HYPI_FLAT_FIELDS.iter().map(|s| s.to_string());
        b.push(fields_enum(format!("{}Fields", ty.name), ty.fields.iter().map(|f| f.name.clone()).chain(flat())));
        let scalar_names = ty.fields.iter().filter(|f| !f.is_reference()).map(|f| f.name.clone());
        b.push(fields_enum(format!("{}ScalarFields", ty.name), scalar_names.chain(flat())));
        let numeric: Vec<String> = ty
            .fields
            .iter()
            .filter(|f| !f.list && matches!(f.base, Base::Scalar(S::Int | S::Float | S::Long)))
            .map(|f| f.name.clone())
            .collect();
        if !numeric.is_empty() {
            b.push(fields_enum(format!("{}NumericFields", ty.name), numeric));
        }
        b.push(
            InputObject::new(format!("{}GroupByOptions", ty.name))
                .field(InputValue::new("field", TypeRef::named_nn(format!("{}ScalarFields", ty.name))))
                .field(InputValue::new("order", TypeRef::named("AggOrder")))
                .field(InputValue::new("dateGranularity", TypeRef::named("TimeUnit"))),
        );
    }
    b.push(mutation_type);
    b.push(upsert_union);
    b.push(root_union);
    b.shapes.unions.insert(ROOT_UNION.to_string(), members);
    b.object(agg_root);

    b.object(
        Obj::new("HypiFilterConnection")
            .field(out("edges", TypeRef::named_nn_list("HypiResultEdge"), Key::Name))
            .field(out("pageInfo", TypeRef::named_nn("PageInfo"), Key::Name)),
    );
    b.object(Obj::new("HypiResultEdge").field(out("node", TypeRef::named_nn(ROOT_UNION), Key::Name)).field(out(
        "cursor",
        TypeRef::named_nn(TypeRef::ID),
        Key::Name,
    )));
    b.object(
        Obj::new("PageInfo")
            .field(out("hasPreviousPage", TypeRef::named_nn(TypeRef::BOOLEAN), Key::Name))
            .field(out("hasNextPage", TypeRef::named_nn(TypeRef::BOOLEAN), Key::Name))
            .field(out("startCursor", TypeRef::named_nn(TypeRef::ID), Key::Name))
            .field(out("endCursor", TypeRef::named_nn(TypeRef::ID), Key::Name))
            .field(out("pageLimit", TypeRef::named(TypeRef::INT), Key::Name))
            .field(out("previousOffsets", TypeRef::named_nn_list(TypeRef::STRING), Key::Name))
            .field(out("nextOffsets", TypeRef::named_nn_list(TypeRef::STRING), Key::Name)),
    );
    b.object(agg_type("AggInt", Some((TypeRef::INT, TypeRef::INT))));
    b.object(agg_type("AggFloat", Some((TypeRef::FLOAT, TypeRef::FLOAT))));
    b.object(agg_type("AggOtherScalar", None));
    b.object(Obj::new("Pair").field(out("key", TypeRef::named(TypeRef::STRING), Key::Name)).field(out(
        "value",
        TypeRef::named(TypeRef::STRING),
        Key::Name,
    )));
    b.push(Enum::new("AggOrder").item(EnumItem::new("ASC")).item(EnumItem::new("DESC")));
    b.push(
        ["SECONDS", "MINUTES", "HOURS", "DAYS"].iter().fold(Enum::new("TimeUnit"), |e, v| e.item(EnumItem::new(*v))),
    );
    b.object(
        Obj::new("AccessToken")
            .field(out("sessionToken", TypeRef::named(TypeRef::STRING), Key::Name))
            .field(out("sessionExpires", TypeRef::named("Long"), Key::Name))
            .field(out("errorCode", TypeRef::named(TypeRef::STRING), Key::Name))
            .field(out("errorMsg", TypeRef::named(TypeRef::STRING), Key::Name)),
    );
    let mut query = root_query();
    if model.types.iter().any(|t| t.hyper.as_ref().is_some_and(|h| !h.search.is_empty())) {
        let arg = InputValue::new;
        query = query.field(
            out("search", TypeRef::named_nn("HypiSearchConnection"), Key::Alias)
                .arg(arg("type", TypeRef::named_nn("HypiMutationType")))
                .arg(arg("query", TypeRef::named_nn(TypeRef::STRING)))
                .arg(arg("filter", TypeRef::named(TypeRef::STRING)))
                .arg(arg("first", TypeRef::named(TypeRef::INT)))
                .arg(arg("after", TypeRef::named(TypeRef::STRING)))
                .describe(Some(
                    "Objects of a type with @hyper(search: [...]) whose searched fields hold the query's words, best first; filter is ArcQL over the objects.",
                )),
        );
        b.object(
            Obj::new("HypiSearchConnection")
                .field(out("edges", TypeRef::named_nn_list_nn("HypiSearchEdge"), Key::Name))
                .field(out("pageInfo", TypeRef::named_nn("PageInfo"), Key::Name)),
        );
        b.object(
            Obj::new("HypiSearchEdge")
                .field(out("node", TypeRef::named_nn(ROOT_UNION), Key::Name))
                .field(out("cursor", TypeRef::named_nn(TypeRef::ID), Key::Name))
                .field(out("score", TypeRef::named_nn(TypeRef::FLOAT), Key::Name)),
        );
    }
    if model.types.iter().any(|t| t.hyper.as_ref().is_some_and(|h| h.count)) {
        query = query.field(
            out("count", TypeRef::named_nn(TypeRef::INT), Key::Alias)
                .arg(InputValue::new("type", TypeRef::named_nn("HypiMutationType")))
                .describe(Some(
                    "How many live objects of the type the caller can read: O(1) from the counter of a type with @hyper(count: true) when the caller may read all of them, else counted.",
                )),
        );
    }
    if model.types.iter().any(|t| t.hyper.as_ref().is_some_and(|h| h.attachments)) {
        b.object(
            Obj::new("Attachment")
                .field(out("name", TypeRef::named_nn(TypeRef::STRING), Key::Name))
                .field(out("size", TypeRef::named_nn("Long"), Key::Name))
                .field(out("contentType", TypeRef::named_nn(TypeRef::STRING), Key::Name))
                .field(out("url", TypeRef::named_nn(TypeRef::STRING), Key::Name)),
        );
    }
    b.object(query);
    b.object(root_mutation());
    subscription_types(&mut b, model);
    b
}

/// The operations of the change feed a subscription can ask for (`CURRENT`: an object sent by
/// `includeCurrent`, as it is).
pub const CHANGE_OPS: [&str; 8] = ["INSERT", "UPDATE", "TRASH", "UNTRASH", "DELETE", "LINK", "UNLINK", "CURRENT"];

/// `Subscription { subscribe changes }`, `Change`, `ChangeOp` and `HypiSubscriptionUnion` (one
/// field per type, Hypi's shape). The root's shape is recorded under `Subscription`; its type
/// is registered by [`build_schema`] (async-graphql wants a subscription type of its own).
fn subscription_types(b: &mut Builder, model: &Model) {
    b.push(CHANGE_OPS.iter().fold(Enum::new("ChangeOp"), |e, v| e.item(EnumItem::new(*v))));
    b.object(
        Obj::new("Change")
            .describe(Some("One change of an object, as the change feed recorded it."))
            .field(out("cursor", TypeRef::named_nn(TypeRef::STRING), Key::Name))
            .field(out("op", TypeRef::named_nn("ChangeOp"), Key::Name))
            .field(out("id", TypeRef::named_nn(TypeRef::STRING), Key::Name))
            .field(out("type", TypeRef::named_nn(TypeRef::STRING), Key::Name))
            .field(out("version", TypeRef::named_nn("Long"), Key::Name))
            .field(out("at", TypeRef::named_nn("DateTime"), Key::Name))
            .field(out("node", TypeRef::named(ROOT_UNION), Key::Name)),
    );
    let mut union = Obj::new("HypiSubscriptionUnion")
        .describe(Some("An inserted or updated object under the field of its type (the others are null)."));
    for ty in &model.types {
        union = union.field(out(&ty.name, TypeRef::named(&ty.name), Key::Name));
    }
    b.object(union);
    let mut root = HashMap::new();
    root.insert("changes".to_string(), OutField { key: Key::Alias, ty: Ty::parse("Change!") });
    root.insert("subscribe".to_string(), OutField { key: Key::Alias, ty: Ty::parse("HypiSubscriptionUnion!") });
    b.shapes.objects.insert("Subscription".to_string(), root);
}

fn never(_: async_graphql::dynamic::ResolverContext<'_>) -> async_graphql::dynamic::SubscriptionFieldFuture<'_> {
    async_graphql::dynamic::SubscriptionFieldFuture::new(async {
        Ok(futures_util::stream::empty::<async_graphql::Result<async_graphql::Value>>())
    })
}

/// The subscription root for validation and introspection (events come from `realtime`, not
/// from these resolvers).
fn subscription_root() -> async_graphql::dynamic::Subscription {
    use async_graphql::dynamic::{Subscription, SubscriptionField};
    let arg = InputValue::new;
    Subscription::new("Subscription")
        .field(
            SubscriptionField::new("changes", TypeRef::named_nn("Change"), never)
                .argument(arg("type", TypeRef::named_nn("HypiMutationType")))
                .argument(arg("arcql", TypeRef::named(TypeRef::STRING)))
                .argument(arg("ids", TypeRef::named_nn_list(TypeRef::STRING)))
                .argument(arg("ops", TypeRef::named_nn_list("ChangeOp")))
                .argument(arg("after", TypeRef::named(TypeRef::STRING)))
                .argument(arg("previous", TypeRef::named(TypeRef::INT)))
                .argument(arg("includeCurrent", TypeRef::named(TypeRef::BOOLEAN)).default_value(false))
                .description("Every change of one type's objects that the caller may read, filtered by arcql (the state after the change), ids and ops; after: a cursor to resume from, previous: the last n changes first, includeCurrent: the matching objects first."),
        )
        .field(
            SubscriptionField::new("subscribe", TypeRef::named_nn("HypiSubscriptionUnion"), never)
                .argument(arg("id", TypeRef::named(TypeRef::STRING)))
                .description("Hypi's shape: every insert and update (of the object with id), under the field of its type."),
        )
}

/// The validated, introspectable schema of `model`, and its shapes.
pub fn build_schema(model: &Model, limits: &Limits) -> Result<(Schema, Shapes), SchemaError> {
    let b = build(model);
    let mut builder = Schema::build("Query", Some("Mutation"), Some("Subscription"));
    for ty in b.types {
        builder = builder.register(ty);
    }
    builder = builder.register(subscription_root());
    let schema = builder
        .extension(super::exec::ValidateOnly)
        // The request guard bounds depth first (data and introspection apart); this is the
        // backstop for anything that bypassed it.
        .limit_depth(limits.depth.max(limits.introspection_depth) + 2)
        .limit_directives(limits.directives)
        .limit_recursive_depth(limits.nesting)
        .finish()?;
    Ok((schema, b.shapes))
}
