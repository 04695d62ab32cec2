//! Automatic persisted queries, as Apollo's clients speak them: a request may carry
//! `extensions.persistedQuery = {version: 1, sha256Hash}` in place of its `query` text (POST
//! body or GET parameter), so that a long text crosses the network once and a GET request's URL
//! stays short enough for HTTP caches.
//!
//! - hash and text: the text's SHA-256 must be the hash (else a VALIDATION error); the text is
//!   kept under its hash and the request runs;
//! - hash only, text known: the request runs with the kept text;
//! - hash only, text unknown: the request is refused with the error Apollo's link looks for
//!   (`message: "PersistedQueryNotFound"`, `extensions.code: "PERSISTED_QUERY_NOT_FOUND"`);
//!   the client sends the text with the hash and goes on.
//!
//! The texts are kept per node (bounded by entries and bytes, least recently used evicted):
//! a node that has not seen a hash answers PersistedQueryNotFound and learns it from the retry,
//! so nodes need not share them. The text then goes through the operation cache like any other
//! ([`super::compiled`]): a persisted query costs one more lookup, no parse.

use std::sync::Arc;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::bounded::Bounded;
use crate::error::{ApiError, ErrorCode};

/// The bytes an entry is charged: its text, its key and the entry.
fn cost(text: &str) -> usize {
    text.len() + 64 + 128
}

/// Texts by the SHA-256 of each (hex, lower case).
pub struct PersistedQueries {
    texts: Bounded<String, Arc<str>>,
}

pub use crate::bounded::Figures;

/// What a request said about persisting its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// The SHA-256 of the text, lower-case hex.
    pub hash: String,
}

/// The `persistedQuery` member of a request's `extensions`, if any, checked.
pub fn from_extensions(extensions: Option<&Json>) -> Result<Option<Persisted>, ApiError> {
    let Some(pq) = extensions.and_then(|e| e.get("persistedQuery")) else { return Ok(None) };
    if pq.is_null() {
        return Ok(None);
    }
    let Some(o) = pq.as_object() else {
        return Err(ApiError::validation("'extensions.persistedQuery' must be an object"));
    };
    match o.get("version").and_then(Json::as_u64) {
        Some(1) => {}
        _ => {
            return Err(ApiError::validation(
                "'extensions.persistedQuery.version' must be 1 (the only version of persisted queries)",
            ))
        }
    }
    match o.get("sha256Hash").and_then(Json::as_str) {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(Persisted { hash: h.to_ascii_lowercase() }))
        }
        _ => Err(ApiError::validation(
            "'extensions.persistedQuery.sha256Hash' must be the SHA-256 of the query text in 64 hex digits",
        )),
    }
}

/// The SHA-256 of `text`, lower-case hex.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// The error a client's persisted-query link retries on (with the text).
pub fn not_found() -> ApiError {
    ApiError::new(ErrorCode::PersistedQueryNotFound, "PersistedQueryNotFound")
}

impl PersistedQueries {
    /// At most `max_entries` texts and `max_bytes`; either 0: none kept (every hash-only
    /// request is answered PersistedQueryNotFound and clients send their texts).
    pub fn new(max_entries: usize, max_bytes: usize) -> PersistedQueries {
        PersistedQueries { texts: Bounded::new(max_entries, max_bytes) }
    }

    /// The query text of a request: its own (checked against the hash and kept), or the one
    /// kept under its hash.
    pub fn resolve(&self, query: Option<String>, persisted: &Persisted) -> Result<String, ApiError> {
        match query {
            Some(text) => {
                if sha256_hex(&text) != persisted.hash {
                    return Err(ApiError::validation(
                        "'extensions.persistedQuery.sha256Hash' is not the SHA-256 of the query text",
                    ));
                }
                self.texts.put(persisted.hash.clone(), Arc::from(text.as_str()), cost(&text));
                Ok(text)
            }
            None => match self.texts.get(&persisted.hash, |_| true) {
                Some(t) => Ok(t.to_string()),
                None => Err(not_found()),
            },
        }
    }

    pub fn figures(&self) -> Figures {
        self.texts.figures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_of_a_text_is_its_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn extensions_are_checked() {
        let h = sha256_hex("{ a }");
        let ok = from_extensions(Some(&json!({"persistedQuery": {"version": 1, "sha256Hash": h.to_uppercase()}})));
        assert_eq!(ok.unwrap(), Some(Persisted { hash: h.clone() }));
        assert_eq!(from_extensions(None).unwrap(), None);
        assert_eq!(from_extensions(Some(&json!({"other": 1}))).unwrap(), None);
        for bad in [
            json!({"persistedQuery": {"version": 2, "sha256Hash": h}}),
            json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}),
            json!({"persistedQuery": {"version": 1}}),
            json!({"persistedQuery": "x"}),
        ] {
            let e = from_extensions(Some(&bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::Validation, "{bad}");
        }
    }

    #[test]
    fn a_text_is_learnt_from_its_hash_and_evicted_in_lru_order() {
        let p = PersistedQueries::new(2, 1 << 20);
        let pa = Persisted { hash: sha256_hex("{ a }") };
        assert_eq!(p.resolve(None, &pa).unwrap_err().code, ErrorCode::PersistedQueryNotFound);
        assert_eq!(p.resolve(Some("{ b }".into()), &pa).unwrap_err().code, ErrorCode::Validation);
        assert_eq!(p.resolve(Some("{ a }".into()), &pa).unwrap(), "{ a }");
        assert_eq!(p.resolve(None, &pa).unwrap(), "{ a }");
        for t in ["{ b }", "{ c }"] {
            p.resolve(Some(t.into()), &Persisted { hash: sha256_hex(t) }).unwrap();
        }
        assert!(p.resolve(None, &pa).is_err(), "the least recently used text went first");
        let f = p.figures();
        assert_eq!((f.entries, f.hits, f.misses, f.bytes), (2, 1, 2, 2 * cost("{ b }")));
    }
}
