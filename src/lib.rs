//! arcbase: write a GraphQL SDL schema, get a complete data service for it.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! SDL ──model::parse_sdl──▶ Model ──once per release──▶ ops::Engine + graphql::Served
//! request ──server (HTTP, ids, caller)──▶ graphql::execute (guard, validate, decode)
//!         ──▶ ops (the operation's rules) ──▶ plan (typed) ──▶ sql (text + binds)
//!         ──▶ store (execute) ──▶ sql decode (model types) ──▶ graphql encode ──▶ response
//! ```
//!
//! - [`model`]: SDL → validated app model; every identifier that reaches SQL passes here.
//! - [`ops`]: the operations, transport-neutral: typed arguments, the caller, typed results.
//! - [`plan`]: operation arguments → typed read/write/filter plans (no SQL).
//! - [`sql`]: plans → SQL text with bound values, per dialect; the only place SQL is written.
//! - [`store`]: pools, migrations, DDL, transactions; the only place SQL is executed.
//! - [`graphql`]: the GraphQL front door: the generated schema, execution, introspection.
//! - [`server`]: HTTP: router, request ids, authentication, GraphQL over HTTP, admin, and
//!   hyper's REST API.
//! - [`hyper`]: hyper's data, cache, search, storage and queue services: one port (trait)
//!   each, built in over the store.
//! - [`access`], [`feed`], [`tasks`], [`error`]: viewers, the change feed's types, background
//!   tasks, the public error codes.

pub mod access;
pub mod arcql;
pub mod auth;
pub mod bounded;
pub mod config;
pub mod error;
pub mod feed;
pub mod graphql;
pub mod hyper;
pub mod model;
pub mod ops;
pub mod plan;
pub mod realtime;
pub mod server;
pub mod sql;
pub mod store;
pub mod tasks;
pub mod tenancy;
pub mod value;
