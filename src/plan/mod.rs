//! Typed plans: what a request wants, checked against the model, with no SQL in it.
//!
//! `graphql` builds plans from a request's selection set and arguments; `sql` renders them.
//! Invariants: no I/O, not async; every index in a plan is valid for the model it was built
//! against.

pub mod aggregate;
pub mod filter;
pub mod filter_cache;
pub mod read;
pub mod write;
