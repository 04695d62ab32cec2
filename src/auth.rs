//! Accounts' credentials: argon2id password hashes and HS256 session tokens bound to their
//! instance.
//!
//! A token's claims are `sub` (the account id), `ins` (the instance id), `aud` (`arcbase`),
//! `iat`, `nbf` and `exp`. Verification accepts only HS256 (so `alg: none` and key-confusion
//! tokens fail), checks `exp`/`nbf` with [`LEEWAY_SECS`] of leeway, the audience, and that the
//! token was issued by the instance it is used on.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// How long a session lasts.
pub const SESSION_SECS: i64 = 24 * 3600;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
const AUDIENCE: &str = "arcbase";

/// Hash a password for storage (PHC string with its own salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Check a password against a stored hash. With `None` (no such account) a dummy hash is
/// checked anyway, so a login for an unknown username takes as long as a wrong password.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default());
    let hash = stored.unwrap_or(dummy);
    let ok = PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false);
    ok && stored.is_some()
}

/// A fresh random secret (hex), for a generated signing key.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub ins: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Issue a session token for `account` on `instance`; returns the token and its expiry (epoch
/// seconds).
pub fn issue(secret: &[u8], account: &str, instance: &str) -> Result<(String, i64), String> {
    let now = now_secs();
    let claims = Claims {
        sub: account.into(),
        ins: instance.into(),
        aud: AUDIENCE.into(),
        iat: now,
        nbf: now,
        exp: now + SESSION_SECS,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| e.to_string())?;
    Ok((token, claims.exp))
}

/// Verify a token for use on `instance`; the error says why it was refused (for the log).
pub fn verify(secret: &[u8], token: &str, instance: &str) -> Result<Claims, String> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "nbf", "sub", "aud"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &v).map_err(|e| e.to_string())?;
    if data.claims.ins != instance {
        return Err("the token belongs to another instance".into());
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong horse", Some(&h)));
        assert!(!verify_password("correct horse", None));
    }

    #[test]
    fn tokens_are_bound_to_key_instance_and_time() {
        let (t, exp) = issue(b"k1", "acc", "inst").unwrap();
        assert!(exp > now_secs());
        assert_eq!(verify(b"k1", &t, "inst").unwrap().sub, "acc");
        assert!(verify(b"k2", &t, "inst").is_err(), "wrong key");
        assert!(verify(b"k1", &t, "other").is_err(), "other instance");
        let mut parts: Vec<&str> = t.split('.').collect();
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        parts[0] = none_header;
        assert!(verify(b"k1", &format!("{}.{}.", parts[0], parts[1]), "inst").is_err(), "alg none");
        let expired =
            Claims { sub: "a".into(), ins: "inst".into(), aud: AUDIENCE.into(), iat: 0, nbf: 0, exp: now_secs() - 120 };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(b"k1")).unwrap();
        assert!(verify(b"k1", &t, "inst").is_err(), "expired beyond leeway");
        let future = Claims { nbf: now_secs() + 600, exp: now_secs() + 1200, ..expired.clone() };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &future, &EncodingKey::from_secret(b"k1")).unwrap();
        assert!(verify(b"k1", &t, "inst").is_err(), "not yet valid");
        let wrong_aud = Claims { aud: "someone-else".into(), exp: now_secs() + 100, ..expired };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &wrong_aud, &EncodingKey::from_secret(b"k1")).unwrap();
        assert!(verify(b"k1", &t, "inst").is_err(), "wrong audience");
    }
}
