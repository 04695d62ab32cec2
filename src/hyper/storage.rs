//! The storage service: buckets of objects (files), streamed in and out.
//!
//! An object's name is the rest of its path (`docs/a b.pdf`): 1 to 1024 bytes of non-control
//! characters, segments neither empty nor `.` or `..`. Names are metadata only: the bytes are
//! kept in files named by the server (see `builtin::storage`), so no name can reach outside
//! the storage directory. The content type of a download comes from the name's extension
//! (`application/octet-stream` when it has none that is known).
//!
//! A signed URL (`?useSignedUrl=true`) lets whoever holds it download (or upload) one object
//! for a short time without a token: `?expires=<unix seconds>&signature=<hex>` where the
//! signature is HMAC-SHA256 under the server's secret of the method, instance, bucket, name
//! and expiry.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{HyperError, HyperResult, Scope, StoreName};

/// Bytes arriving or leaving, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A valid object name.
pub fn check_name(name: &str) -> HyperResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 1024
        && !name.chars().any(char::is_control)
        && name.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if ok {
        Ok(())
    } else {
        Err(HyperError::invalid(format!(
            "invalid object name '{}': 1 to 1024 characters, no control characters, no empty, '.' or '..' segments",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The content type of a name, from its extension.
pub fn content_type(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => {
            mime_guess::from_path(last).first_raw().unwrap_or("application/octet-stream").to_string()
        }
        _ => "application/octet-stream".to_string(),
    }
}

/// An object being read.
pub struct Object {
    pub size: u64,
    pub content_type: String,
    pub body: ByteStream,
}

/// An object's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Sign access to one object until `expires` (Unix seconds).
pub fn sign(secret: &[u8], method: &str, scope: &Scope, bucket: &StoreName, name: &str, expires: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in [method, &scope.instance, bucket.as_str(), name, &expires.to_string()] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    hex(&mac.finalize().into_bytes())
}

/// Is `signature` valid for this access, and not expired at `now` (Unix seconds)?
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &[u8],
    method: &str,
    scope: &Scope,
    bucket: &StoreName,
    name: &str,
    expires: u64,
    signature: &str,
    now: u64,
) -> bool {
    let want = sign(secret, method, scope, bucket, name, expires);
    now <= expires
        && want.len() == signature.len()
        && want.bytes().zip(signature.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The storage service port.
#[async_trait]
pub trait StorageService: Send + Sync {
    /// Create a bucket (409 when it exists).
    async fn create(&self, scope: &Scope, bucket: &StoreName) -> HyperResult<()>;
    /// Remove a bucket and every object in it (404 when missing).
    async fn destroy(&self, scope: &Scope, bucket: &StoreName) -> HyperResult<()>;
    /// Store an object from `body` (the bucket created when missing), replacing one of the
    /// same name; visible only once it is complete. 413 past the size limit (nothing kept).
    async fn put(&self, scope: &Scope, bucket: &StoreName, name: &str, body: ByteStream) -> HyperResult<ObjectInfo>;
    /// Read an object (404).
    async fn get(&self, scope: &Scope, bucket: &StoreName, name: &str) -> HyperResult<Object>;
    /// Remove an object (404 when missing).
    async fn remove(&self, scope: &Scope, bucket: &StoreName, name: &str) -> HyperResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        for ok in ["remix", "foo.png", "a/b/c.txt", "a b é.pdf"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a//b", "../x", "a/./b", "a/", "x\u{0}y", &"x".repeat(1025)] {
            assert_eq!(check_name(bad).unwrap_err().status, 422, "{bad:?}");
        }
        assert_eq!(content_type("foo.png"), "image/png");
        assert_eq!(content_type("a/b.TXT"), "text/plain");
        assert_eq!(content_type("remix"), "application/octet-stream");
        assert_eq!(content_type(".bashrc"), "application/octet-stream");
        assert_eq!(content_type("x.unknownext"), "application/octet-stream");
    }

    #[test]
    fn signatures() {
        let s = Scope { instance: "i".into() };
        let b = StoreName::parse("b").unwrap();
        let sig = sign(b"k", "GET", &s, &b, "a.png", 100);
        assert!(verify(b"k", "GET", &s, &b, "a.png", 100, &sig, 99));
        assert!(!verify(b"k", "GET", &s, &b, "a.png", 100, &sig, 101));
        assert!(!verify(b"k", "POST", &s, &b, "a.png", 100, &sig, 99));
        assert!(!verify(b"k", "GET", &s, &b, "b.png", 100, &sig, 99));
        assert!(!verify(b"other", "GET", &s, &b, "a.png", 100, &sig, 99));
        let other = Scope { instance: "j".into() };
        assert!(!verify(b"k", "GET", &other, &b, "a.png", 100, &sig, 99));
    }
}
