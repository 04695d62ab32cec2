//! Operation results (JSON, already in the model's types) + the request's selection sets →
//! the response's `data`, written straight into the response's bytes, following the GraphQL
//! spec: fields collected per object type (fragments, type conditions, `@skip`/`@include`),
//! aliases, `__typename`, `null` anywhere a type allows it, and a `null` that a non-null type
//! does not allow propagating to the nearest nullable parent with an error.
//!
//! No tree of the response is built and serialized again: each key and scalar is written by
//! serde_json's own serializer, in the order of the collected fields, so the bytes are exactly
//! what serializing the equivalent `serde_json::Value` (with `preserve_order`) would give. A
//! null that propagates truncates what was written for the positions it nulls (each position
//! that may absorb it remembers where it started). The error path of a value is kept as
//! borrowed keys and indexes, and becomes owned only when an error is recorded.
//!
//! An encoder collects each (object type, selection) once and reuses the fields, with their
//! shapes, member keys and named types' kinds resolved, for every object of that shape (the 25 nodes of a page),
//! so encoding a list costs a walk of its values, not of the document again.
//!
//! The JSON of an object holds each field's value under the field's name or, for fields whose
//! value depends on arguments or sub-selection, under `&<response key>` ([`Key`]). A value of
//! a union type names its concrete type in the member [`CONCRETE`].

use std::rc::Rc;

use async_graphql::parser::types::SelectionSet;
use serde_json::Value as Json;

use super::collect::Env;
use super::raw;
use super::response::{GqlError, PathSegment};
use super::schema::{Key, Ty};
use crate::ops::read::{Doc, Edge};
use crate::plan::read::ref_key;

/// The member of a union-typed value that names its concrete type. `#` starts no GraphQL
/// name, so it never meets a field's key.
pub const CONCRETE: &str = "#type";

/// A position turned out null where its type does not allow it (the error is already
/// recorded): the null propagates to the nearest position whose type allows it.
pub struct Null;

/// A step of the path being encoded, borrowed from the document.
#[derive(Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The owned form of a path, for an error.
pub fn owned_path(path: &[Step<'_>]) -> Vec<PathSegment> {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => PathSegment::Key((*k).to_string()),
            Step::Index(i) => PathSegment::Index(*i),
        })
        .collect()
}

/// Write `v` as JSON (serde_json's compact form, as serializing a tree holding it would).
pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Writing into a Vec cannot fail, and the values written here (JSON values and strings)
    // always serialize.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Absorb a propagating null at a position of type `ty` that started at `start`, if `ty`
/// allows null: what was written for the position becomes `null`.
pub fn absorb(ty: &Ty, start: usize, out: &mut Vec<u8>, r: Result<(), Null>) -> Result<(), Null> {
    match (ty, r) {
        (Ty::NonNull(_), Err(Null)) => Err(Null),
        (_, Err(Null)) => {
            out.truncate(start);
            out.extend_from_slice(b"null");
            Ok(())
        }
        (_, ok) => ok,
    }
}

/// One collected field of an object type, resolved once for every object of that shape.
struct Slot<'a> {
    /// The response key.
    key: &'a str,
    what: What<'a>,
}

enum What<'a> {
    /// `__typename`.
    Typename,
    /// A field of the shape: its type and what its named type is, the member of the object's
    /// JSON that holds its value, and its merged sub-selections.
    Field { ty: &'a Ty, kind: Kind<'a>, member: String, sets: Vec<&'a SelectionSet> },
}

/// What a named type is, looked up once per collected field rather than once per value.
#[derive(Clone, Copy)]
enum Kind<'a> {
    /// A scalar or enum: its value is already in its output form.
    Leaf,
    Object,
    /// A union and its member types.
    Union(&'a [String]),
}

/// The fields of an object type under some selection sets; `known` is false for a type
/// without a shape (its objects are null).
struct Fields<'a> {
    known: bool,
    slots: Vec<Slot<'a>>,
}

/// The fields of one object type under some selection sets (known by their addresses).
type Collected<'a> = (&'a str, Vec<*const SelectionSet>, Rc<Fields<'a>>);

pub struct Encoder<'a> {
    env: &'a Env<'a>,
    errors: &'a mut Vec<GqlError>,
    /// The fields collected for each (object type, selection sets) met so far: the objects of
    /// a list share them, so a page of 25 nodes collects its selection once, not 25 times.
    collected: Vec<Collected<'a>>,
}

impl<'a> Encoder<'a> {
    pub fn new(env: &'a Env<'a>, errors: &'a mut Vec<GqlError>) -> Self {
        Encoder { env, errors, collected: Vec::new() }
    }

    /// [`Env::collect`] of `sets` for `ty`, resolved against its shape, once per encoder.
    fn collect(&mut self, ty: &'a str, sets: &[&'a SelectionSet]) -> crate::error::ApiResult<Rc<Fields<'a>>> {
        let same =
            |s: &[*const SelectionSet]| s.len() == sets.len() && s.iter().zip(sets).all(|(a, b)| std::ptr::eq(*a, *b));
        if let Some((_, _, g)) = self.collected.iter().find(|(t, s, _)| *t == ty && same(s)) {
            return Ok(g.clone());
        }
        let env = self.env;
        let shape = env.shapes.objects.get(ty);
        let mut slots = Vec::new();
        for group in env.collect(ty, sets)? {
            let name = group.name();
            let what = if name == "__typename" {
                What::Typename
            } else {
                // A field the shape does not know is left out (validation keeps them away).
                let Some(field) = shape.and_then(|s| s.get(name)) else { continue };
                let member = match field.key {
                    Key::Name => name.to_string(),
                    Key::Alias => ref_key(group.key),
                };
                What::Field { ty: &field.ty, kind: self.kind(field.ty.name()), member, sets: group.sets() }
            };
            slots.push(Slot { key: group.key, what });
        }
        let fields = Rc::new(Fields { known: shape.is_some(), slots });
        self.collected.push((ty, sets.iter().map(|s| *s as *const SelectionSet).collect(), fields.clone()));
        Ok(fields)
    }

    /// What the named type `name` is.
    fn kind(&self, name: &str) -> Kind<'a> {
        let shapes = self.env.shapes;
        match shapes.unions.get(name) {
            Some(members) => Kind::Union(members),
            None if shapes.objects.contains_key(name) => Kind::Object,
            None => Kind::Leaf,
        }
    }

    /// Write `v` (absent: `None`) as a value of type `ty` with the sub-selections `sets`.
    pub fn value(
        &mut self,
        ty: &'a Ty,
        v: Option<In<'_>>,
        sets: &[&'a SelectionSet],
        path: &mut Vec<Step<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Null> {
        let kind = self.kind(ty.name());
        self.write(ty, kind, v, sets, path, out)
    }

    /// Record that the statement's text at `path` is not JSON (a fault of the database, never
    /// of the request): the position is null, as a field that failed.
    fn malformed(&mut self, path: &[Step<'a>]) -> Result<(), Null> {
        self.errors
            .push(GqlError::internal_at("a read statement's document is not JSON".to_string(), owned_path(path)));
        Err(Null)
    }

    /// [`Encoder::value`], with what the named type of `ty` is already looked up.
    fn write(
        &mut self,
        ty: &'a Ty,
        kind: Kind<'a>,
        v: Option<In<'_>>,
        sets: &[&'a SelectionSet],
        path: &mut Vec<Step<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Null> {
        match ty {
            Ty::NonNull(inner) => {
                let start = out.len();
                self.write(inner, kind, v, sets, path, out)?;
                if &out[start..] == b"null" {
                    self.errors.push(GqlError::internal_at(
                        format!("a value of the non-null type {} is missing", inner.name()),
                        owned_path(path),
                    ));
                    return Err(Null);
                }
                Ok(())
            }
            Ty::List(inner) => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    out.extend_from_slice(b"null");
                    return Ok(());
                };
                let mut raw = Vec::new();
                let items: Vec<In<'_>> = match v {
                    In::Json(Json::Array(items)) => items.iter().map(In::Json).collect(),
                    In::Raw(text) if text.starts_with('[') => {
                        if raw::elements(text, &mut raw).is_none() {
                            return self.malformed(path);
                        }
                        raw.iter().map(|e| In::Raw(e)).collect()
                    }
                    In::Edges(edges, concrete) => edges.iter().map(|e| In::Edge(e, concrete)).collect(),
                    // Result coercion: a single value where a list is expected is a list of one.
                    one => {
                        out.push(b'[');
                        let start = out.len();
                        let r = self.write(inner, kind, Some(one), sets, path, out);
                        absorb(inner, start, out, r)?;
                        out.push(b']');
                        return Ok(());
                    }
                };
                out.push(b'[');
                for (i, item) in items.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let start = out.len();
                    path.push(Step::Index(i));
                    let r = self.write(inner, kind, Some(item), sets, path, out);
                    path.pop();
                    // An element that may not be null makes the whole list null.
                    absorb(inner, start, out, r)?;
                }
                out.push(b']');
                Ok(())
            }
            Ty::Named(name) => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    out.extend_from_slice(b"null");
                    return Ok(());
                };
                match kind {
                    Kind::Union(members) => {
                        let concrete =
                            v.concrete().and_then(|c| members.iter().find(|m| **m == *c)).map(String::as_str);
                        match concrete {
                            Some(c) => self.object(c, v, sets, path, out),
                            None => {
                                self.errors.push(GqlError::internal_at(
                                    format!("a value of the union {name} names no member type"),
                                    owned_path(path),
                                ));
                                out.extend_from_slice(b"null");
                                Ok(())
                            }
                        }
                    }
                    Kind::Object => self.object(name, v, sets, path, out),
                    // Scalars and enums are in their output form, or (a statement's text)
                    // put into it here.
                    Kind::Leaf => match v {
                        In::Json(v) => {
                            write_json(out, v);
                            Ok(())
                        }
                        In::Str(s) => {
                            write_json(out, s);
                            Ok(())
                        }
                        In::Raw(text) => match raw::write_leaf(out, text, name) {
                            Some(()) => Ok(()),
                            None => self.malformed(path),
                        },
                        In::Object(..) | In::Edges(..) | In::Edge(..) | In::Page(..) => {
                            out.extend_from_slice(b"null");
                            Ok(())
                        }
                    },
                }
            }
        }
    }

    /// An object of type `ty`: its collected fields in order; a propagating null when a
    /// non-null field of it is null.
    pub fn object(
        &mut self,
        ty: &'a str,
        v: In<'_>,
        sets: &[&'a SelectionSet],
        path: &mut Vec<Step<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Null> {
        let fields = match self.collect(ty, sets) {
            Ok(g) => g,
            Err(e) => {
                self.errors.push(GqlError::from_api(e, owned_path(path), None));
                return Err(Null);
            }
        };
        if !fields.known {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        // A statement's object: its members found once, for every field to look up.
        let v = v.resolved();
        let mut members = Vec::with_capacity(if matches!(v, In::Raw(_)) { fields.slots.len() + 1 } else { 0 });
        if let In::Raw(text) = v {
            if text.starts_with('{') && raw::members(text, &mut members).is_none() {
                return self.malformed(path);
            }
        }
        out.push(b'{');
        for (i, slot) in fields.slots.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(out, slot.key);
            out.push(b':');
            match &slot.what {
                What::Typename => write_json(out, ty),
                What::Field { ty: fty, kind, member, sets } => {
                    let start = out.len();
                    path.push(Step::Key(slot.key));
                    let value = match v {
                        In::Raw(_) => raw::member(&members, member).map(In::Raw),
                        v => v.member(member),
                    };
                    let r = self.write(fty, *kind, value, sets, path, out);
                    path.pop();
                    absorb(fty, start, out, r)?;
                }
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// A value to encode: JSON already in the model's types, or an object as a read statement
/// wrote it (no tree of it is built: [`raw`] reads it where it lies), or the parts of a `find`
/// page around such objects.
#[derive(Clone, Copy)]
pub enum In<'v> {
    Json(&'v Json),
    /// A JSON value in a read statement's text, in storage forms.
    Raw(&'v str),
    /// A string.
    Str(&'v str),
    /// An object read, and the name of its type (the member of a union it is).
    Object(&'v Doc, &'v str),
    /// A `find` page: its edges, its page info and the type of its nodes.
    Page(&'v [Edge], &'v Json, &'v str),
    Edges(&'v [Edge], &'v str),
    Edge(&'v Edge, &'v str),
}

impl<'v> In<'v> {
    fn is_null(&self) -> bool {
        match self {
            In::Json(v) => v.is_null(),
            In::Raw(text) => raw::is_null(text),
            In::Object(Doc::Json(v), _) => v.is_null(),
            In::Object(Doc::Text(text), _) => raw::is_null(raw::trim(text)),
            In::Str(_) | In::Page(..) | In::Edges(..) | In::Edge(..) => false,
        }
    }

    /// The name of the concrete type of a union-typed value. Only the root fields `get` and
    /// `find` have union types, and their objects come as [`In::Object`] with the type beside
    /// them (JSON tagged with [`CONCRETE`]: search, subscriptions); no member of a statement's
    /// document is union-typed, so its text names none.
    fn concrete(&self) -> Option<&'v str> {
        match self {
            In::Json(v) => v.get(CONCRETE).and_then(Json::as_str),
            In::Object(_, c) => Some(c),
            In::Raw(_) | In::Str(_) | In::Page(..) | In::Edges(..) | In::Edge(..) => None,
        }
    }

    /// An object read as the value it holds.
    fn resolved(self) -> In<'v> {
        match self {
            In::Object(Doc::Json(v), _) => In::Json(v),
            In::Object(Doc::Text(text), _) => In::Raw(raw::trim(text)),
            v => v,
        }
    }

    /// Member `key` of an object value that is not a statement's text.
    fn member(self, key: &str) -> Option<In<'v>> {
        match self {
            In::Json(v) => v.get(key).map(In::Json),
            In::Page(edges, page_info, c) => match key {
                "edges" => Some(In::Edges(edges, c)),
                "pageInfo" => Some(In::Json(page_info)),
                _ => None,
            },
            In::Edge(e, c) => match key {
                "node" => Some(In::Object(&e.node, c)),
                "cursor" => Some(In::Str(&e.cursor)),
                _ => None,
            },
            In::Object(..) => self.resolved().member(key),
            In::Raw(_) | In::Str(_) | In::Edges(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
    use serde_json::json;

    use super::*;
    use crate::graphql::schema::{OutField, Shapes};

    /// `Root { items: [Item], strict: [Item!], one: Item!, pick: Pick }`,
    /// `Item { name: String!, tags: [String], note: String }`, `union Pick = Item`.
    fn shapes() -> Shapes {
        let f = |ty: &str| OutField { key: Key::Name, ty: Ty::parse(ty) };
        let mut objects = HashMap::new();
        objects.insert(
            "Root".to_string(),
            HashMap::from([
                ("items".to_string(), f("[Item]")),
                ("strict".to_string(), f("[Item!]")),
                ("one".to_string(), f("Item!")),
                ("pick".to_string(), f("Pick")),
            ]),
        );
        objects.insert(
            "Item".to_string(),
            HashMap::from([
                ("name".to_string(), f("String!")),
                ("tags".to_string(), f("[String]")),
                ("note".to_string(), f("String")),
            ]),
        );
        Shapes { objects, unions: HashMap::from([("Pick".to_string(), vec!["Item".to_string()])]) }
    }

    /// Encode `value` as a `Root` under the query's selection: the bytes (or `None` when the
    /// null reached the root) and the errors' paths.
    fn encode(query: &str, value: serde_json::Value) -> (Option<String>, Vec<serde_json::Value>) {
        let doc: ExecutableDocument = async_graphql::parser::parse_query(query).expect("parses");
        let set = match &doc.operations {
            DocumentOperations::Single(op) => &op.node.selection_set.node,
            DocumentOperations::Multiple(_) => unreachable!(),
        };
        let (shapes, variables) = (shapes(), async_graphql::Variables::default());
        let env = Env { doc: &doc, variables: &variables, shapes: &shapes };
        let mut errors = Vec::new();
        let mut out = Vec::new();
        let root = Ty::parse("Root");
        let r = Encoder::new(&env, &mut errors).value(&root, Some(In::Json(&value)), &[set], &mut Vec::new(), &mut out);
        let paths = errors.iter().map(|e| serde_json::to_value(&e.path).expect("path")).collect();
        (r.ok().map(|()| String::from_utf8(out).expect("utf-8")), paths)
    }

    #[test]
    fn the_bytes_are_those_of_the_serialized_tree() {
        let value = json!({
            "items": [{"name": "a \"quoted\"\n\u{1}é", "tags": ["x", null], "note": 1.5}, null],
            "one": {"name": "b", "tags": "single"},
        });
        let (out, errors) = encode("{ items { n: name tags __typename note } one { tags name } }", value);
        let expected = json!({
            "items": [{"n": "a \"quoted\"\n\u{1}é", "tags": ["x", null], "__typename": "Item", "note": 1.5}, null],
            "one": {"tags": ["single"], "name": "b"},
        });
        assert_eq!(out.as_deref(), Some(serde_json::to_string(&expected).unwrap().as_str()));
        assert!(errors.is_empty());
    }

    #[test]
    fn a_missing_non_null_field_nulls_the_nearest_nullable_position_only() {
        // The second item lacks its non-null `name`: that item becomes null (its list
        // elements may be null), and what was written of it is gone.
        let value = json!({"items": [{"name": "a", "note": "n"}, {"note": "written first"}], "one": {"name": "b"}});
        let (out, errors) = encode("{ items { note name } one { name } }", value);
        assert_eq!(out.as_deref(), Some(r#"{"items":[{"note":"n","name":"a"},null],"one":{"name":"b"}}"#));
        assert_eq!(errors, vec![json!(["items", 1, "name"])]);
    }

    #[test]
    fn a_null_element_of_a_non_null_list_type_nulls_the_list() {
        let value = json!({"strict": [{"name": "a"}, {"note": "x"}], "one": {"name": "b"}});
        let (out, errors) = encode("{ strict { name } one { name } }", value);
        assert_eq!(out.as_deref(), Some(r#"{"strict":null,"one":{"name":"b"}}"#));
        assert_eq!(errors, vec![json!(["strict", 1, "name"])]);
    }

    #[test]
    fn a_null_that_no_position_absorbs_reaches_the_root() {
        let (out, errors) = encode("{ items { name } one { name } }", json!({"items": [], "one": {}}));
        assert_eq!(out, None);
        assert_eq!(errors, vec![json!(["one", "name"])]);
    }

    #[test]
    fn a_union_value_is_encoded_as_its_concrete_member() {
        let value = json!({"pick": {"#type": "Item", "name": "p"}, "one": {"name": "b"}});
        let (out, _) = encode("{ pick { ... on Item { __typename name } } one { name } }", value);
        assert_eq!(out.as_deref(), Some(r#"{"pick":{"__typename":"Item","name":"p"},"one":{"name":"b"}}"#));
        let (out, errors) = encode("{ pick { __typename } }", json!({"pick": {"#type": "Other"}}));
        assert_eq!(out.as_deref(), Some(r#"{"pick":null}"#));
        assert_eq!(errors, vec![json!(["pick"])]);
    }
}
