//! The GraphQL spec's CollectFields: a selection set (through fragments, honouring type
//! conditions and `@skip`/`@include`) → the fields of one object type, grouped by response
//! key in the order they first appear. The read planner and the encoder both walk selections
//! through this one function, so what is read is exactly what is answered.

use async_graphql::parser::types::{Directive, ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Value};

use super::schema::Shapes;
use crate::error::{ApiError, ApiResult};

/// Deepest chain of fragments followed (the request guard has already bounded fragments; this
/// only keeps a cycle from recursing if it were ever bypassed).
const MAX_FRAGMENT_DEPTH: usize = 64;

/// What collecting needs from the request.
pub struct Env<'a> {
    pub doc: &'a ExecutableDocument,
    pub variables: &'a async_graphql::Variables,
    pub shapes: &'a Shapes,
}

/// The fields of one response key, in document order.
pub struct Group<'a> {
    pub key: &'a str,
    pub fields: Vec<&'a Positioned<Field>>,
}

impl<'a> Group<'a> {
    /// The field's name (every field of a group has the same one: validation guarantees it).
    pub fn name(&self) -> &'a str {
        self.fields[0].node.name.node.as_str()
    }

    /// The first field (its arguments are those of the group: validation makes them agree).
    pub fn first(&self) -> &'a Positioned<Field> {
        self.fields[0]
    }

    /// The sub-selection sets of every field of the group, merged in order.
    pub fn sets(&self) -> Vec<&'a SelectionSet> {
        self.fields.iter().map(|f| &f.node.selection_set.node).collect()
    }
}

impl<'a> Env<'a> {
    /// Collect the fields of `sets` for an object of type `ty`.
    pub fn collect(&self, ty: &str, sets: &[&'a SelectionSet]) -> ApiResult<Vec<Group<'a>>> {
        let mut out: Vec<Group<'a>> = Vec::new();
        for set in sets {
            self.walk(ty, set, &mut out, 0)?;
        }
        Ok(out)
    }

    fn walk(&self, ty: &str, set: &'a SelectionSet, out: &mut Vec<Group<'a>>, depth: usize) -> ApiResult<()> {
        if depth > MAX_FRAGMENT_DEPTH {
            return Err(ApiError::limit("fragments nest too deeply"));
        }
        for item in &set.items {
            if self.skipped(item.node.directives())? {
                continue;
            }
            match &item.node {
                Selection::Field(f) => {
                    let key = f.node.response_key().node.as_str();
                    match out.iter_mut().find(|g| g.key == key) {
                        Some(g) => g.fields.push(f),
                        None => out.push(Group { key, fields: vec![f] }),
                    }
                }
                Selection::InlineFragment(frag) => {
                    let applies = match &frag.node.type_condition {
                        None => true,
                        Some(c) => self.shapes.applies(c.node.on.node.as_str(), ty),
                    };
                    if applies {
                        self.walk(ty, &frag.node.selection_set.node, out, depth + 1)?;
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let Some(frag) = self.doc.fragments.get(&spread.node.fragment_name.node) else { continue };
                    if self.shapes.applies(frag.node.type_condition.node.on.node.as_str(), ty) {
                        self.walk(ty, &frag.node.selection_set.node, out, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `@skip(if: true)` or `@include(if: false)`.
    fn skipped(&self, directives: &[Positioned<Directive>]) -> ApiResult<bool> {
        for d in directives {
            let name = d.node.name.node.as_str();
            if name != "skip" && name != "include" {
                continue;
            }
            let cond = match d.node.get_argument("if") {
                Some(v) => matches!(v.node.clone().into_const_with(|n: Name| self.var(&n)), Ok(Value::Boolean(true))),
                None => false,
            };
            if (name == "skip") == cond {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The value of argument `name` of `field`, variables substituted; `None` when it is
    /// absent, is `null`, or is a variable that was not given.
    pub fn argument(&self, field: &Field, name: &str) -> Option<Value> {
        let v = field.get_argument(name)?;
        // A variable that was not given reads as null, like an argument left out (defaults
        // of optional arguments are applied by the decoders).
        let value = v.node.clone().into_const_with(|n: Name| self.var(&n)).ok()?;
        if value == Value::Null {
            None
        } else {
            Some(value)
        }
    }

    fn var(&self, name: &Name) -> Result<Value, std::convert::Infallible> {
        Ok(self.variables.get(name).cloned().unwrap_or(Value::Null))
    }
}
