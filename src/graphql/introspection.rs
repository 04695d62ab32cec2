//! `__schema` and `__type(name:)`, answered from the validated schema's registry.
//!
//! Every type of the generated API is listed, including those no root field reaches
//! (`XInput`, `XFields`, a `Json` scalar no field uses): the spec's `__schema.types` is "all
//! named types", and introspection must describe what `arcbase schema build` prints.

use async_graphql::parser::types::SelectionSet;
use async_graphql::registry::{MetaDirective, MetaEnumValue, MetaField, MetaInputValue, MetaType, Registry};
use serde_json::{Map, Value as Json};

use super::collect::Env;
use super::decode::Args;
use crate::error::ApiResult;

/// A value of the introspection schema.
#[derive(Clone)]
enum Node<'r> {
    Schema,
    Type(TypeRef<'r>),
    Field(&'r MetaField),
    Input(&'r MetaInputValue),
    Enum(&'r MetaEnumValue),
    Directive(&'r MetaDirective),
}

#[derive(Clone)]
enum TypeRef<'r> {
    Named(&'r MetaType),
    List(Box<TypeRef<'r>>),
    NonNull(Box<TypeRef<'r>>),
}

pub struct Introspection<'r> {
    pub registry: &'r Registry,
    pub env: &'r Env<'r>,
}

impl<'r> Introspection<'r> {
    /// `__schema { ... }`.
    pub fn schema(&self, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        self.node(&Node::Schema, sets)
    }

    /// `__type(name: ...) { ... }`: null for an unknown name.
    pub fn type_named(&self, name: &str, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        match self.registry.types.get(name) {
            Some(t) => self.node(&Node::Type(TypeRef::Named(t)), sets),
            None => Ok(Json::Null),
        }
    }

    fn type_ref(&self, s: &str) -> Option<TypeRef<'r>> {
        if let Some(inner) = s.strip_suffix('!') {
            return Some(TypeRef::NonNull(Box::new(self.type_ref(inner)?)));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            return Some(TypeRef::List(Box::new(self.type_ref(inner)?)));
        }
        self.registry.types.get(s).map(TypeRef::Named)
    }

    fn type_name(node: &Node<'_>) -> &'static str {
        match node {
            Node::Schema => "__Schema",
            Node::Type(_) => "__Type",
            Node::Field(_) => "__Field",
            Node::Input(_) => "__InputValue",
            Node::Enum(_) => "__EnumValue",
            Node::Directive(_) => "__Directive",
        }
    }

    fn list(&self, nodes: Vec<Node<'r>>, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        nodes.iter().map(|n| self.node(n, sets)).collect::<ApiResult<Vec<_>>>().map(Json::Array)
    }

    fn node(&self, node: &Node<'r>, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        let type_name = Self::type_name(node);
        let mut out = Map::new();
        for group in self.env.collect(type_name, sets)? {
            let name = group.name();
            let sub = group.sets();
            let args = Args { env: self.env, field: &group.first().node };
            let text = |s: Option<&str>| s.map_or(Json::Null, |s| Json::String(s.to_string()));
            let v = if name == "__typename" {
                Json::String(type_name.to_string())
            } else {
                match node {
                    Node::Schema => match name {
                        "description" => Json::Null,
                        "types" => {
                            let types: Vec<Node<'r>> =
                                self.registry.types.values().map(|t| Node::Type(TypeRef::Named(t))).collect();
                            self.list(types, &sub)?
                        }
                        "queryType" => self.maybe_type(Some(&self.registry.query_type), &sub)?,
                        "mutationType" => self.maybe_type(self.registry.mutation_type.as_ref(), &sub)?,
                        "subscriptionType" => self.maybe_type(self.registry.subscription_type.as_ref(), &sub)?,
                        "directives" => {
                            let ds: Vec<Node<'r>> = self.registry.directives.values().map(Node::Directive).collect();
                            self.list(ds, &sub)?
                        }
                        _ => Json::Null,
                    },
                    Node::Type(t) => self.type_field(t, name, &args, &sub)?,
                    Node::Field(f) => match name {
                        "name" => Json::String(f.name.clone()),
                        "description" => text(f.description.as_deref()),
                        "args" => self.list(f.args.values().map(Node::Input).collect(), &sub)?,
                        "type" => self.type_value(&f.ty, &sub)?,
                        "isDeprecated" => Json::Bool(f.deprecation.is_deprecated()),
                        "deprecationReason" => text(f.deprecation.reason()),
                        _ => Json::Null,
                    },
                    Node::Input(iv) => match name {
                        "name" => Json::String(iv.name.clone()),
                        "description" => text(iv.description.as_deref()),
                        "type" => self.type_value(&iv.ty, &sub)?,
                        "defaultValue" => text(iv.default_value.as_deref()),
                        "isDeprecated" => Json::Bool(iv.deprecation.is_deprecated()),
                        "deprecationReason" => text(iv.deprecation.reason()),
                        _ => Json::Null,
                    },
                    Node::Enum(ev) => match name {
                        "name" => Json::String(ev.name.clone()),
                        "description" => text(ev.description.as_deref()),
                        "isDeprecated" => Json::Bool(ev.deprecation.is_deprecated()),
                        "deprecationReason" => text(ev.deprecation.reason()),
                        _ => Json::Null,
                    },
                    Node::Directive(d) => match name {
                        "name" => Json::String(d.name.clone()),
                        "description" => text(d.description.as_deref()),
                        "locations" => {
                            Json::Array(d.locations.iter().map(|l| Json::String(format!("{l:?}"))).collect())
                        }
                        "args" => self.list(d.args.values().map(Node::Input).collect(), &sub)?,
                        "isRepeatable" => Json::Bool(d.is_repeatable),
                        _ => Json::Null,
                    },
                }
            };
            out.insert(group.key.to_string(), v);
        }
        Ok(Json::Object(out))
    }

    fn maybe_type(&self, name: Option<&String>, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        match name.and_then(|n| self.registry.types.get(n)) {
            Some(t) => self.node(&Node::Type(TypeRef::Named(t)), sets),
            None => Ok(Json::Null),
        }
    }

    fn type_value(&self, ty: &str, sets: &[&'r SelectionSet]) -> ApiResult<Json> {
        match self.type_ref(ty) {
            Some(t) => self.node(&Node::Type(t), sets),
            None => Ok(Json::Null),
        }
    }

    fn type_field(&self, t: &TypeRef<'r>, name: &str, args: &Args<'_>, sub: &[&'r SelectionSet]) -> ApiResult<Json> {
        let include_deprecated = args.flag("includeDeprecated");
        let named = match t {
            TypeRef::Named(m) => Some(*m),
            _ => None,
        };
        let str_or_null = |s: Option<&str>| s.map_or(Json::Null, |s| Json::String(s.to_string()));
        Ok(match name {
            "kind" => Json::String(
                match t {
                    TypeRef::List(_) => "LIST",
                    TypeRef::NonNull(_) => "NON_NULL",
                    TypeRef::Named(MetaType::Scalar { .. }) => "SCALAR",
                    TypeRef::Named(MetaType::Object { .. }) => "OBJECT",
                    TypeRef::Named(MetaType::Interface { .. }) => "INTERFACE",
                    TypeRef::Named(MetaType::Union { .. }) => "UNION",
                    TypeRef::Named(MetaType::Enum { .. }) => "ENUM",
                    TypeRef::Named(MetaType::InputObject { .. }) => "INPUT_OBJECT",
                }
                .to_string(),
            ),
            "name" => str_or_null(named.map(MetaType::name)),
            "description" => str_or_null(named.and_then(|m| match m {
                MetaType::Scalar { description, .. }
                | MetaType::Object { description, .. }
                | MetaType::Interface { description, .. }
                | MetaType::Union { description, .. }
                | MetaType::Enum { description, .. }
                | MetaType::InputObject { description, .. } => description.as_deref(),
            })),
            "fields" => match named {
                Some(MetaType::Object { fields, .. } | MetaType::Interface { fields, .. }) => {
                    let fs = fields
                        .values()
                        .filter(|f| !f.name.starts_with("__"))
                        .filter(|f| include_deprecated || !f.deprecation.is_deprecated())
                        .map(Node::Field)
                        .collect();
                    self.list(fs, sub)?
                }
                _ => Json::Null,
            },
            "interfaces" => match named {
                Some(MetaType::Object { name, .. }) => {
                    let is: Vec<Node<'r>> = self
                        .registry
                        .implements
                        .get(name)
                        .into_iter()
                        .flatten()
                        .filter_map(|i| self.registry.types.get(i).map(|t| Node::Type(TypeRef::Named(t))))
                        .collect();
                    self.list(is, sub)?
                }
                Some(MetaType::Interface { .. }) => Json::Array(Vec::new()),
                _ => Json::Null,
            },
            "possibleTypes" => match named {
                Some(MetaType::Union { possible_types, .. } | MetaType::Interface { possible_types, .. }) => {
                    let ps: Vec<Node<'r>> = possible_types
                        .iter()
                        .filter_map(|p| self.registry.types.get(p).map(|t| Node::Type(TypeRef::Named(t))))
                        .collect();
                    self.list(ps, sub)?
                }
                _ => Json::Null,
            },
            "enumValues" => match named {
                Some(MetaType::Enum { enum_values, .. }) => {
                    let vs = enum_values
                        .values()
                        .filter(|v| include_deprecated || !v.deprecation.is_deprecated())
                        .map(Node::Enum)
                        .collect();
                    self.list(vs, sub)?
                }
                _ => Json::Null,
            },
            "inputFields" => match named {
                Some(MetaType::InputObject { input_fields, .. }) => {
                    let fs = input_fields
                        .values()
                        .filter(|f| include_deprecated || !f.deprecation.is_deprecated())
                        .map(Node::Input)
                        .collect();
                    self.list(fs, sub)?
                }
                _ => Json::Null,
            },
            "ofType" => match t {
                TypeRef::List(inner) | TypeRef::NonNull(inner) => self.node(&Node::Type((**inner).clone()), sub)?,
                TypeRef::Named(_) => Json::Null,
            },
            "specifiedByURL" => match named {
                Some(MetaType::Scalar { specified_by_url, .. }) => str_or_null(specified_by_url.as_deref()),
                _ => Json::Null,
            },
            "isOneOf" => match named {
                Some(MetaType::InputObject { oneof, .. }) => Json::Bool(*oneof),
                _ => Json::Null,
            },
            _ => Json::Null,
        })
    }
}
