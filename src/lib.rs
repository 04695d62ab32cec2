//! arcbase: write a GraphQL SDL schema, get a complete GraphQL CRUD API for it.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! SDL ──model::parse_sdl──▶ Model ──graphql::build_schema──▶ dynamic Schema (once per model)
//! request ──server (limits, auth)──▶ graphql resolver ──plan──▶ typed plan
//!         ──sql (render)──▶ SQL text + bound values ──store (execute)──▶ JSON ──▶ response
//! ```
//!
//! - [`model`]: SDL → validated app model; every identifier that reaches SQL passes here.
//! - [`plan`]: GraphQL arguments and selections → typed read/write plans (no SQL).
//! - [`sql`]: plans → SQL text with bound values, per dialect; the only place SQL is written.
//! - [`store`]: pools, migrations, DDL, transactions; the only place SQL is executed.
//! - [`graphql`]: model → async-graphql dynamic schema; one function per root operation.
//! - [`server`]: axum router, request limits, authentication, playground, health.
//! - [`error`]: the public error codes (`extensions.code`).

pub mod access;
pub mod arcql;
pub mod auth;
pub mod config;
pub mod error;
pub mod feed;
pub mod graphql;
pub mod model;
pub mod ops;
pub mod plan;
pub mod server;
pub mod sql;
pub mod store;
pub mod tasks;
pub mod tenancy;
pub mod value;
