//! Model → async-graphql dynamic schema, built once per model and shared by every request.
//!
//! `types` declares the generated types of contract §2; `ops` holds the root operations, one
//! function each; `selection` turns a request's selection set into a read plan. Object fields
//! resolve from the JSON document their root operation read, so nested fields never query.
//!
//! Invariant: this module never touches sqlx; it calls `store` with rendered plans.

mod aggregate;
mod auth;
mod find;
mod ops;
pub mod selection;
mod types;

use std::sync::Arc;

use async_graphql::dynamic::{Schema, SchemaError};

use crate::config::Limits;
use crate::model::Model;
use crate::store::Store;

/// Everything a resolver needs that lives as long as the schema.
pub struct Engine {
    pub model: Arc<Model>,
    pub store: Store,
    /// The app whose tables this schema reads and writes.
    pub app: String,
    pub limits: Limits,
}

/// Per-request facts, put into each request's data by the server.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The instance (tenant) the request is for.
    pub instance: String,
    /// The caller's account id; `None` for admin and anonymous callers.
    pub account: Option<String>,
    /// Who is asking: decides what the generated SQL lets them see and change.
    pub viewer: crate::sql::Viewer,
    /// The instance lets callers without an account register (`createAccount`).
    pub anonymous_registrations: bool,
    /// The key that signs session tokens.
    pub jwt_secret: Arc<[u8]>,
}

/// Build the executable schema for `model`. With `engine = None` the schema can only be
/// printed (the build step); resolvers then report an internal error.
pub fn build_schema(model: &Model, engine: Option<Arc<Engine>>, limits: &Limits) -> Result<Schema, SchemaError> {
    let mut builder = Schema::build("Query", Some("Mutation"), None);
    for ty in types::all_types(model) {
        builder = builder.register(ty);
    }
    builder = builder.register(auth::access_token_type());
    builder = builder.register(ops::query(model)).register(ops::mutation(model));
    if let Some(engine) = engine {
        builder = builder.data(engine);
    }
    builder
        // The request guard bounds depth first (data and introspection apart); this is the
        // backstop for anything that bypassed it.
        .limit_depth(limits.depth.max(limits.introspection_depth) + 2)
        .limit_directives(limits.directives)
        .limit_recursive_depth(limits.nesting)
        .finish()
}

/// The generated SDL of `model`: what `arcbase schema build` prints. Deterministic: types
/// are printed in name order.
pub fn generated_sdl(model: &Model) -> Result<String, SchemaError> {
    let schema = build_schema(model, None, &Limits::default())?;
    Ok(schema.sdl())
}
