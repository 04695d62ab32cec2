//! hyper app keys: what the clients' connection strings carry (`http://KEY:SECRET@host/app`)
//! and sign their tokens with.
//!
//! `arcbase key create --domain D` makes a key for instance D and prints its secret once. The
//! secret is never stored: it is HMAC-SHA256 of the key and a random salt under the server's
//! secret (`ARCBASE_JWT_SECRET`, else the one generated into the database), so a copy of
//! the database alone does not reveal it when `ARCBASE_JWT_SECRET` is set, and a revoked key
//! made again has a new secret.
//!
//! A request's `Authorization: Bearer <jwt>` is verified as the clients sign it: HS256 only
//! (`alg: none` and every other algorithm are refused), `exp` required (with 30 s of
//! leeway), `sub` naming a key that is not revoked; the token then acts for the key's
//! instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::sql::hyper::keys as sql;
use crate::store::{Store, StoreError};

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyRow {
    instance: String,
    salt: String,
    revoked: bool,
}

/// A new key and its secret (printed once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewKey {
    pub key: String,
    pub secret: String,
    pub instance: String,
}

/// The secret of `key` with `salt` under the server's secret: 64 hex digits (URL-safe, so
/// the clients' percent-encoding of the connection string leaves it as it is).
pub fn derive_secret(server_secret: &[u8], key: &str, salt: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(server_secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"arcbase hyper app key\n");
    mac.update(key.as_bytes());
    mac.update(b"\n");
    mac.update(salt.as_bytes());
    super::storage::hex(&mac.finalize().into_bytes())
}

/// Make a key for instance `instance` (an id).
pub async fn create(store: &Store, server_secret: &[u8], instance: &str) -> Result<NewKey, StoreError> {
    let key = format!("hk{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let salt = crate::auth::random_secret();
    store.execute(&sql::insert(store.dialect(), &key, instance, &salt, &crate::plan::write::now())).await?;
    Ok(NewKey { secret: derive_secret(server_secret, &key, &salt), key, instance: instance.to_string() })
}

/// Every key: `(key, instance, created_at, revoked_at)`.
pub async fn list(store: &Store) -> Result<Vec<serde_json::Value>, StoreError> {
    let rows = store.fetch_rows(&sql::list(store.dialect())).await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "key": r[0].as_str(), "instance": r[1].as_str(), "createdAt": r[2].as_str(), "revokedAt": r[3].as_str(),
            })
        })
        .collect())
}

/// Revoke a key; `false` when there is no such key that is not revoked.
pub async fn revoke(store: &Store, key: &str) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let n = crate::store::tx_execute(&mut tx, &sql::revoke(store.dialect(), key, &crate::plan::write::now())).await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Why a token was refused (for the log; the client hears only "not authorized").
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

/// How long a key read from the database is trusted (a revocation takes effect within it).
const KEY_TTL: Duration = Duration::from_secs(5);
/// Keys remembered at most (the memory is cleared when full).
const KEY_CACHE: usize = 10_000;

/// Verifies tokens, remembering keys for a few seconds.
pub struct Verifier {
    server_secret: std::sync::Arc<[u8]>,
    cache: Mutex<HashMap<String, (Instant, Option<KeyRow>)>>,
}

impl Verifier {
    pub fn new(server_secret: std::sync::Arc<[u8]>) -> Self {
        Verifier { server_secret, cache: Mutex::new(HashMap::new()) }
    }

    async fn key(&self, store: &Store, key: &str) -> Result<Option<KeyRow>, StoreError> {
        {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, row)) = cache.get(key) {
                if at.elapsed() < KEY_TTL {
                    return Ok(row.clone());
                }
            }
        }
        let rows = store.fetch_rows(&sql::get(store.dialect(), key)).await?;
        let row = rows.first().map(|r| KeyRow {
            instance: r[0].as_str().unwrap_or_default().to_string(),
            salt: r[1].as_str().unwrap_or_default().to_string(),
            revoked: r[2].as_str().is_some(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= KEY_CACHE {
            cache.clear();
        }
        cache.insert(key.to_string(), (Instant::now(), row.clone()));
        Ok(row)
    }

    /// The instance a token acts for.
    pub async fn verify(&self, store: &Store, token: &str) -> Result<String, Refused> {
        use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
        // First the claims without the signature, to learn which key signed it; then the
        // signature with that key's secret.
        let mut peek = Validation::new(Algorithm::HS256);
        peek.insecure_disable_signature_validation();
        peek.validate_exp = false;
        peek.validate_aud = false;
        peek.required_spec_claims.clear();
        let sub = decode::<Claims>(token, &DecodingKey::from_secret(b""), &peek)
            .map_err(|e| Refused::Invalid(format!("unreadable token: {e}")))?
            .claims
            .sub;
        let Some(row) = self.key(store, &sub).await? else {
            return Err(Refused::Invalid(format!("unknown key '{}'", sub.chars().take(64).collect::<String>())));
        };
        if row.revoked {
            return Err(Refused::Invalid(format!("key '{sub}' is revoked")));
        }
        let secret = derive_secret(&self.server_secret, &sub, &row.salt);
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 30;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| Refused::Invalid(format!("key '{sub}': {e}")))?;
        Ok(row.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_depend_on_server_key_and_salt() {
        let a = derive_secret(b"server", "hk1", "salt");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, derive_secret(b"other", "hk1", "salt"));
        assert_ne!(a, derive_secret(b"server", "hk2", "salt"));
        assert_ne!(a, derive_secret(b"server", "hk1", "salt2"));
        assert_eq!(a, derive_secret(b"server", "hk1", "salt"));
    }
}
