//! Operation results (JSON, already in the model's types) + the request's selection sets →
//! the response's `data`, following the GraphQL spec: fields collected per object type
//! (fragments, type conditions, `@skip`/`@include`), aliases, `__typename`, `null` anywhere a
//! type allows it, and a `null` that a non-null type does not allow propagating to the
//! nearest nullable parent with an error.
//!
//! An encoder collects each (object type, selection) once and reuses the fields for every
//! object of that shape (the 25 nodes of a page), so encoding a list costs a walk of its values,
//! not of the document again.
//!
//! The JSON of an object holds each field's value under the field's name or, for fields whose
//! value depends on arguments or sub-selection, under `&<response key>` ([`Key`]). A value of
//! a union type names its concrete type in the member [`CONCRETE`].

use std::rc::Rc;

use async_graphql::parser::types::SelectionSet;
use serde_json::{Map, Value as Json};

use super::collect::{Env, Group};
use super::response::{GqlError, PathSegment};
use super::schema::{Key, Ty};
use crate::plan::read::ref_key;

/// The member of a union-typed value that names its concrete type. `#` starts no GraphQL
/// name, so it never meets a field's key.
pub const CONCRETE: &str = "#type";

/// A position turned out null where its type does not allow it (the error is already
/// recorded): the null propagates to the nearest position whose type allows it.
pub struct Null;

/// Absorb a propagating null at a position of type `ty`, if `ty` allows null.
pub fn absorb(ty: &Ty, r: Result<Json, Null>) -> Result<Json, Null> {
    match (ty, r) {
        (Ty::NonNull(_), Err(Null)) => Err(Null),
        (_, Err(Null)) => Ok(Json::Null),
        (_, ok) => ok,
    }
}

pub struct Encoder<'a> {
    env: &'a Env<'a>,
    errors: &'a mut Vec<GqlError>,
    /// The fields collected for each (object type, selection sets) met so far: the objects of
    /// a list share them, so a page of 25 nodes collects its selection once, not 25 times.
    collected: Vec<Collected<'a>>,
}

/// The fields of one object type under some selection sets (known by their addresses).
type Collected<'a> = (&'a str, Vec<*const SelectionSet>, Rc<Vec<Group<'a>>>);

impl<'a> Encoder<'a> {
    pub fn new(env: &'a Env<'a>, errors: &'a mut Vec<GqlError>) -> Self {
        Encoder { env, errors, collected: Vec::new() }
    }

    /// [`Env::collect`] of `sets` for `ty`, once per encoder.
    fn collect(&mut self, ty: &'a str, sets: &[&'a SelectionSet]) -> crate::error::ApiResult<Rc<Vec<Group<'a>>>> {
        let same =
            |s: &[*const SelectionSet]| s.len() == sets.len() && s.iter().zip(sets).all(|(a, b)| std::ptr::eq(*a, *b));
        if let Some((_, _, g)) = self.collected.iter().find(|(t, s, _)| *t == ty && same(s)) {
            return Ok(g.clone());
        }
        let groups = Rc::new(self.env.collect(ty, sets)?);
        self.collected.push((ty, sets.iter().map(|s| *s as *const SelectionSet).collect(), groups.clone()));
        Ok(groups)
    }

    /// Encode `v` (absent: `None`) as a value of type `ty` with the sub-selections `sets`.
    pub fn value(
        &mut self,
        ty: &'a Ty,
        v: Option<&Json>,
        sets: &[&'a SelectionSet],
        path: &mut Vec<PathSegment>,
    ) -> Result<Json, Null> {
        match ty {
            Ty::NonNull(inner) => {
                let out = self.value(inner, v, sets, path)?;
                if out.is_null() {
                    self.errors.push(GqlError::internal_at(
                        format!("a value of the non-null type {} is missing", inner.name()),
                        path.clone(),
                    ));
                    return Err(Null);
                }
                Ok(out)
            }
            Ty::List(inner) => match v {
                Some(Json::Array(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        path.push(PathSegment::Index(i));
                        let r = self.value(inner, Some(item), sets, path);
                        path.pop();
                        // An element that may not be null makes the whole list null.
                        out.push(absorb(inner, r)?);
                    }
                    Ok(Json::Array(out))
                }
                None | Some(Json::Null) => Ok(Json::Null),
                // Result coercion: a single value where a list is expected is a list of one.
                Some(one) => Ok(Json::Array(vec![absorb(inner, self.value(inner, Some(one), sets, path))?])),
            },
            Ty::Named(name) => match v {
                None | Some(Json::Null) => Ok(Json::Null),
                Some(v) => {
                    let env = self.env;
                    if let Some(members) = env.shapes.unions.get(name) {
                        let concrete = v
                            .get(CONCRETE)
                            .and_then(Json::as_str)
                            .and_then(|c| members.iter().find(|m| *m == c))
                            .map(String::as_str);
                        match concrete {
                            Some(c) => self.object(c, v, sets, path),
                            None => {
                                self.errors.push(GqlError::internal_at(
                                    format!("a value of the union {name} names no member type"),
                                    path.clone(),
                                ));
                                Ok(Json::Null)
                            }
                        }
                    } else if env.shapes.objects.contains_key(name.as_str()) {
                        self.object(name, v, sets, path)
                    } else {
                        // Scalars and enums are already in their output form.
                        Ok(v.clone())
                    }
                }
            },
        }
    }

    /// An object of type `ty`: its collected fields in order; a propagating null when a
    /// non-null field of it is null.
    pub fn object(
        &mut self,
        ty: &'a str,
        v: &Json,
        sets: &[&'a SelectionSet],
        path: &mut Vec<PathSegment>,
    ) -> Result<Json, Null> {
        let groups = match self.collect(ty, sets) {
            Ok(g) => g,
            Err(e) => {
                self.errors.push(GqlError::from_api(e, path.clone(), None));
                return Err(Null);
            }
        };
        let env = self.env;
        let Some(shape) = env.shapes.objects.get(ty) else { return Ok(Json::Null) };
        let mut out = Map::with_capacity(groups.len());
        for group in groups.iter() {
            let name = group.name();
            if name == "__typename" {
                out.insert(group.key.to_string(), Json::String(ty.to_string()));
                continue;
            }
            let Some(field) = shape.get(name) else { continue };
            let member = match field.key {
                Key::Name => v.get(name),
                Key::Alias => v.get(ref_key(group.key).as_str()),
            };
            path.push(PathSegment::Key(group.key.to_string()));
            let r = self.value(&field.ty, member, &group.sets(), path);
            path.pop();
            out.insert(group.key.to_string(), absorb(&field.ty, r)?);
        }
        Ok(Json::Object(out))
    }
}
