//! The queue service: jobs (JSON objects) delivered by POST to the queue's target.
//!
//! A job is READY until it is delivered (then it is gone) or until its last attempt failed
//! (then it is ERROR, with the reason, until it is cancelled). A delivery is a POST of the
//! job as JSON; with a queue secret it carries `X-HYPER-SIGNATURE: t=<ms>,sig=<hex>`, the
//! HMAC-SHA256 under the secret of `"<t>.<body>"`. The body is written as JavaScript's
//! `JSON.stringify` writes it (compact; numbers as JavaScript prints them), because that is
//! what the hyper clients' verifier recomputes from the parsed body. Any 2xx answer is a
//! delivery; anything else (or no answer within the timeout) is retried with growing
//! pauses, up to the attempt limit.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{HyperError, HyperResult, Scope, StoreName};

/// Where a queue delivers, and the secret it signs with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueConfig {
    /// An `http://` or `https://` URL; `None` for a queue made implicitly by an enqueue
    /// (its jobs wait until a target is set with `PUT /queue/{name}`).
    pub target: Option<String>,
    pub secret: Option<String>,
}

impl QueueConfig {
    /// `PUT /queue/{name}` `{target, secret?}`.
    pub fn from_json(body: &Value) -> HyperResult<QueueConfig> {
        let target = match body.get("target") {
            Some(Value::String(t)) => t.trim().to_string(),
            _ => return Err(HyperError::invalid("a queue needs a 'target': the URL its jobs are posted to")),
        };
        let scheme_ok = target.starts_with("http://") || target.starts_with("https://");
        if !scheme_ok || target.len() > 2048 || reqwest::Url::parse(&target).is_err() {
            return Err(HyperError::invalid(format!(
                "invalid target '{}': an http:// or https:// URL",
                target.chars().take(100).collect::<String>()
            )));
        }
        let secret = match body.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Some(s.clone()),
            Some(_) => return Err(HyperError::invalid("'secret' is a string of 1 to 1024 characters")),
        };
        Ok(QueueConfig { target: Some(target), secret })
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({ "target": self.target, "secret": self.secret })
    }

    pub fn from_stored(v: &Value) -> QueueConfig {
        QueueConfig {
            target: v.get("target").and_then(Value::as_str).map(str::to_string),
            secret: v.get("secret").and_then(Value::as_str).map(str::to_string),
        }
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Ready,
    Error,
}

impl JobStatus {
    pub fn parse(s: &str) -> HyperResult<JobStatus> {
        match s.to_ascii_uppercase().as_str() {
            "READY" => Ok(JobStatus::Ready),
            "ERROR" => Ok(JobStatus::Error),
            _ => Err(HyperError::invalid("'status' is READY or ERROR")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ready => "READY",
            JobStatus::Error => "ERROR",
        }
    }
}

/// A job as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    pub id: String,
    pub status: JobStatus,
    pub job: Value,
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub created_at: String,
}

/// The `X-HYPER-SIGNATURE` value for `body` sent at `t_ms`.
pub fn signature(secret: &str, t_ms: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t_ms},sig={}", super::storage::hex(&mac.finalize().into_bytes()))
}

/// `v` as JavaScript's `JSON.stringify` writes it.
pub fn js_json(v: &Value) -> String {
    let mut out = String::new();
    write_js(v, &mut out);
    out
}

fn write_js(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) if i.unsigned_abs() < 1 << 53 => out.push_str(&i.to_string()),
            (None, Some(u), _) if u < 1 << 53 => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&js_number(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(xs) => {
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_js(x, out);
            }
            out.push('}');
        }
        // Strings, booleans and null are written alike (serde_json escapes what
        // JSON.stringify escapes).
        other => out.push_str(&other.to_string()),
    }
}

/// A double as JavaScript's `Number.prototype.toString` prints it: the shortest digits that
/// read back as the same double, in fixed notation for exponents -7 to 20, else `1e+21`.
pub fn js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    if !f.is_finite() {
        return "null".to_string();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32; // number of significant digits
    let n = exp + 1; // position of the decimal point relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 { format!("+{e}") } else { e.to_string() };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

/// The queue service port.
#[async_trait]
pub trait QueueService: Send + Sync {
    /// Create a queue, or set the target of one made implicitly (409 when it has one).
    async fn create(&self, scope: &Scope, queue: &StoreName, config: &QueueConfig) -> HyperResult<()>;
    /// Remove a queue and its jobs (404 when missing).
    async fn destroy(&self, scope: &Scope, queue: &StoreName) -> HyperResult<()>;
    /// Add a job (the queue created when missing); its id.
    async fn enqueue(&self, scope: &Scope, queue: &StoreName, job: Value) -> HyperResult<String>;
    /// Jobs in one state, oldest first, at most `limit` (404 when the queue is missing).
    async fn list(&self, scope: &Scope, queue: &StoreName, status: JobStatus, limit: u32) -> HyperResult<Vec<JobInfo>>;
    /// Remove a job that is READY or ERROR (404 when there is none).
    async fn cancel(&self, scope: &Scope, queue: &StoreName, id: &str) -> HyperResult<()>;
    /// Make an ERROR job READY again, its attempts reset (404 when there is none).
    async fn retry(&self, scope: &Scope, queue: &StoreName, id: &str) -> HyperResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (1.5, "1.5"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (-2.5e300, "-2.5e+300"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            (9007199254740993.0, "9007199254740992"),
        ];
        for (f, want) in cases {
            assert_eq!(js_number(*f), *want, "{f:e}");
        }
        let v: Value = serde_json::from_str(r#"{"a": 1.0, "b": [2.50, "x\ny", true, null], "c": {"d": 1e2}}"#).unwrap();
        assert_eq!(js_json(&v), r#"{"a":1,"b":[2.5,"x\ny",true,null],"c":{"d":100}}"#);
    }

    #[test]
    fn signature_is_hmac_of_time_and_body() {
        // Recomputed independently: HMAC-SHA256("secret", "1700000000000.{\"a\":1}").
        let s = signature("secret", 1_700_000_000_000, r#"{"a":1}"#);
        assert_eq!(s, "t=1700000000000,sig=4ef2732b0d632a6897af3a6d02a6de287f60d6c5f15dabdb0ceb045a34e3c5a7");
        assert_ne!(s, signature("secret", 1_700_000_000_000, r#"{"a":2}"#));
    }

    #[test]
    fn configs() {
        let c = QueueConfig::from_json(&json!({"target": "http://127.0.0.1:9/job", "secret": "s"})).unwrap();
        assert_eq!(QueueConfig::from_stored(&c.to_json()), c);
        for bad in
            [json!({}), json!({"target": "ftp://x"}), json!({"target": "http://"}), json!({"target": "x", "secret": 1})]
        {
            assert_eq!(QueueConfig::from_json(&bad).unwrap_err().status, 422, "{bad}");
        }
    }
}
