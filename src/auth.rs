//! Accounts' credentials: argon2id password hashes and HS256 session tokens bound to their
//! instance.
//!
//! A token's claims are `sub` (the account id), `ins` (the instance id), `aud` (`arcbase`),
//! `iat`, `nbf` and `exp`. Verification accepts only HS256 (so `alg: none` and key-confusion
//! tokens fail), checks `exp`/`nbf` with [`LEEWAY_SECS`] of leeway, the audience, and that the
//! token was issued by the instance it is used on.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, Block, Params};
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
    let mut blocks = vec![Block::default(); Params::default().block_count()];
    hash_with(password, &mut blocks)
}

/// Check a password against a stored hash. With `None` (no such account) a dummy hash is
/// checked anyway, so a login for an unknown username takes as long as a wrong password.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let mut blocks = vec![Block::default(); Params::default().block_count()];
    verify_with(password, stored, &mut blocks)
}

/// [`hash_password`] in the memory `blocks` (at least the default parameters' block count).
fn hash_with(password: &str, blocks: &mut [Block]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut out = vec![0u8; Params::DEFAULT_OUTPUT_LEN];
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
    let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params.clone());
    let need = params.block_count();
    a.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, &mut blocks[..need])
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// [`verify_password`] in the memory `blocks`; a stored hash whose parameters need more
/// memory than `blocks` holds is checked with memory of its own.
fn verify_with(password: &str, stored: Option<&str>, blocks: &mut [Block]) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default());
    let text = stored.unwrap_or(dummy);
    let Ok(phc) = PasswordHash::new(text) else { return false };
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else { return false };
    let Ok(params) = Params::try_from(&phc) else { return false };
    let Ok(algorithm) = argon2::Algorithm::try_from(phc.algorithm) else { return false };
    let version = phc.version.and_then(|v| argon2::Version::try_from(v).ok()).unwrap_or_default();
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(algorithm, version, params.clone());
    let need = params.block_count();
    let mut own;
    let memory = if need <= blocks.len() {
        &mut blocks[..need]
    } else {
        own = vec![Block::default(); need];
        &mut own[..]
    };
    if a.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, memory).is_err() {
        return false;
    }
    // Constant time over the output.
    let same = out.iter().zip(expected.as_bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    same && stored.is_some()
}

/// Password hashing on a few long-lived threads, each with its argon2 memory allocated once (at its first hash)
/// and reused: however many requests check passwords, hashing holds `threads × 19 MiB` (a
/// hash allocated per request is freed into per-thread allocator arenas that keep growing).
/// Callers bound how many jobs wait (the server's hashing slots).
#[derive(Debug)]
pub struct Hasher {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

enum Job {
    Hash(String, tokio::sync::oneshot::Sender<Result<String, String>>),
    Verify(String, Option<String>, tokio::sync::oneshot::Sender<bool>),
}

impl Hasher {
    /// `threads` hashing threads.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("arcbase-hash-{i}")).spawn(move || {
                // Allocated at the thread's first hash and kept: a server whose callers never log
                // in (admin keys, anonymous reads) does not carry the 19 MiB per thread.
                let mut blocks: Vec<Block> = Vec::new();
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    if blocks.is_empty() && job.is_ok() {
                        blocks = vec![Block::default(); Params::default().block_count()];
                    }
                    match job {
                        Ok(Job::Hash(p, reply)) => {
                            let _ = reply.send(hash_with(&p, &mut blocks));
                        }
                        Ok(Job::Verify(p, stored, reply)) => {
                            let _ = reply.send(verify_with(&p, stored.as_deref(), &mut blocks));
                        }
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        Hasher { jobs: std::sync::Mutex::new(tx) }
    }

    fn send(&self, job: Job) -> Result<(), String> {
        let jobs = self.jobs.lock().map_err(|_| "the hasher is gone".to_string())?;
        jobs.send(job).map_err(|_| "the hashing threads are gone".to_string())
    }

    /// [`hash_password`] on a hashing thread.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Hash(password, tx))?;
        rx.await.map_err(|_| "the hashing thread failed".to_string())?
    }

    /// [`verify_password`] on a hashing thread.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Verify(password, stored, tx))?;
        rx.await.map_err(|_| "the hashing thread failed".to_string())
    }
}

/// The server's secret: `ARCBASE_JWT_SECRET`, else one generated once and kept in the
/// database. It signs session tokens and signed storage URLs, and derives hyper app keys'
/// secrets; every process on one database (servers, `arcbase key create`) must see the same.
pub async fn server_secret(store: &crate::store::Store) -> Result<String, crate::store::StoreError> {
    match std::env::var("ARCBASE_JWT_SECRET").ok().filter(|s| !s.is_empty()) {
        Some(s) => Ok(s),
        None => store.setting_or_insert("jwt_secret", &random_secret()).await,
    }
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
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        // The standard PHC verifier agrees with ours, both ways.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify_password("correct horse", Some(&theirs)));
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
