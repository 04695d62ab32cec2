//! The GraphQL front door: the generated schema (built once per release), and requests run
//! against it, from text to response.
//!
//! | module | role |
//! |---|---|
//! | [`schema`] | the generated types of contract §2 and §3, as an async-graphql schema (validation, introspection, the printed SDL) and as [`schema::Shapes`] for the encoder |
//! | [`guard`] | limits checked on the document before anything else looks at it |
//! | [`exec`] | one request: guard, parse, validate, coerce variables, run each root field |
//! | [`compiled`] | the operation cache: each (release, text, operation name) parsed, guarded and validated once |
//! | [`collect`] | the spec's CollectFields, shared by the planner and the encoder |
//! | [`decode`] | arguments and selection sets → the operations' argument types |
//! | [`encode`] | operation results → `data`, per the selection, written straight into the response's bytes |
//! | [`raw`] | a read statement's JSON document read where it lies, for the encoder to write its members without a tree |
//! | [`persisted`] | automatic persisted queries: texts kept by their SHA-256 |
//! | [`introspection`] | `__schema` and `__type` from the validated schema |
//! | [`response`] | the response and its errors, classified once; its JSON text (`Response::to_json`) |
//!
//! Invariant: this module never touches sqlx or SQL; it calls `ops` with typed arguments.

pub mod collect;
pub mod compiled;
pub mod decode;
pub mod encode;
pub mod exec;
pub mod guard;
pub mod introspection;
pub mod persisted;
pub mod raw;
pub mod response;
pub mod schema;

pub use exec::{execute, Context, Request, Served};
pub use schema::ROOT_UNION;

use std::sync::Arc;

use async_graphql::dynamic::SchemaError;

use crate::config::Limits;
use crate::model::Model;
use crate::ops::Engine;

/// Build what serving `engine`'s release needs: its validated schema and shapes; its compiled
/// operations are kept in the node's `operations` cache.
pub fn serve(engine: Arc<Engine>, operations: Arc<compiled::OperationCache>) -> Result<Served, SchemaError> {
    let (schema, shapes) = schema::build_schema(&engine.model, &engine.limits)?;
    Ok(Served { engine, schema, shapes, operations })
}

/// Check that `model` builds a valid GraphQL schema (before anything is written for it).
pub fn check_schema(model: &Model, limits: &Limits) -> Result<(), SchemaError> {
    schema::build_schema(model, limits).map(|_| ())
}

/// The generated SDL of `model`: what `arcbase schema build` prints. Deterministic: types
/// are printed in name order.
pub fn generated_sdl(model: &Model) -> Result<String, SchemaError> {
    let (schema, _) = schema::build_schema(model, &Limits::default())?;
    Ok(schema.sdl())
}
