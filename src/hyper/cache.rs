//! The cache service: JSON values under keys, per cache, each with an optional time to live.
//!
//! A key is what hyper allows: a lower-case letter, then lower-case letters, digits and
//! `- ~ _ / $ +` (at most 512 bytes). A TTL is a number with a unit (`10s`, `2h`, `1d`,
//! `1w`, `500ms`, `1.5h`, `2 days`; a bare number is milliseconds, as hyper reads it). An
//! expired entry is never answered: reads compare the expiry with the clock, and a sweeper
//! deletes expired rows in the background. Pattern queries take `*` as "any characters".

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{HyperError, HyperResult, Scope, StoreName};

/// A valid cache key.
pub fn check_key(key: &str) -> HyperResult<()> {
    let mut b = key.bytes();
    let ok = key.len() <= 512
        && b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-~_/$+".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(HyperError::invalid(format!(
            "invalid key '{}': start with a lower-case letter, then lower-case letters, digits or - ~ _ / $ + (at most 512)",
            key.chars().take(80).collect::<String>()
        )))
    }
}

/// The longest TTL: ten years.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parse a TTL (`10s`, `2h`, `1d`, `1w`, `100ms`, `1.5 hours`, a bare number of
/// milliseconds). Zero, negative and over ten years are refused.
pub fn parse_ttl(text: &str) -> HyperResult<Duration> {
    let bad = || {
        HyperError::invalid(format!(
            "invalid ttl '{}': use a number and a unit, e.g. 10s, 2h, 1d, 1w (a bare number is milliseconds)",
            text.chars().take(40).collect::<String>()
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let ms_per: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600e3,
        "d" | "day" | "days" => 86_400e3,
        "w" | "week" | "weeks" => 604_800e3,
        "y" | "yr" | "yrs" | "year" | "years" => 31_557_600e3,
        _ => return Err(bad()),
    };
    let ms = n * ms_per;
    if !ms.is_finite() || ms < 1.0 {
        return Err(HyperError::invalid(format!("invalid ttl '{t}': it must be at least 1 ms")));
    }
    let d = Duration::from_millis(ms as u64);
    if d > MAX_TTL {
        return Err(HyperError::invalid(format!("invalid ttl '{t}': at most ten years")));
    }
    Ok(d)
}

/// A key pattern: `*` matches any characters (`movie*`, `*-movie`, `a*b`); without `*`
/// the pattern is the key itself. 1 to 512 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl Pattern {
    pub fn parse(text: Option<&str>) -> HyperResult<Pattern> {
        let p = text.map(str::trim).filter(|p| !p.is_empty()).unwrap_or("*");
        if p.len() > 512 || p.chars().any(char::is_control) {
            return Err(HyperError::invalid("a pattern is 1 to 512 characters"));
        }
        Ok(Pattern(p.to_string()))
    }

    /// The literal pieces between the `*`s.
    pub fn pieces(&self) -> Vec<&str> {
        self.0.split('*').collect()
    }

    /// Does `key` match (the in-memory reading of the same rule)?
    pub fn matches(&self, key: &str) -> bool {
        let pieces = self.pieces();
        if pieces.len() == 1 {
            return key == self.0;
        }
        let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
        if !key.starts_with(first) || key.len() < first.len() + last.len() || !key.ends_with(last) {
            return false;
        }
        let mut rest = &key[first.len()..key.len() - last.len()];
        for p in &pieces[1..pieces.len() - 1] {
            match rest.find(p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The cache service port.
#[async_trait]
pub trait CacheService: Send + Sync {
    /// Create a cache (409 when it exists).
    async fn create(&self, scope: &Scope, cache: &StoreName) -> HyperResult<()>;
    /// Remove a cache and its keys (404 when missing).
    async fn destroy(&self, scope: &Scope, cache: &StoreName) -> HyperResult<()>;
    /// Add a key (the cache created when missing); 409 when it holds an unexpired value.
    async fn add(
        &self,
        scope: &Scope,
        cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()>;
    /// The value of a key (404 when missing or expired).
    async fn get(&self, scope: &Scope, cache: &StoreName, key: &str) -> HyperResult<Value>;
    /// Set a key, whether or not it exists (the cache created when missing).
    async fn set(
        &self,
        scope: &Scope,
        cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()>;
    /// Remove a key (404 when missing or expired).
    async fn remove(&self, scope: &Scope, cache: &StoreName, key: &str) -> HyperResult<()>;
    /// The unexpired keys matching a pattern, in key order, at most `limit`, with values.
    async fn query(
        &self,
        scope: &Scope,
        cache: &StoreName,
        pattern: &Pattern,
        limit: u32,
    ) -> HyperResult<Vec<(String, Value)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["movie-1", "a", "a~b_c/d$e+f", "x9"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Movie", "1a", "-a", "a b", "a*", "é", &format!("a{}", "b".repeat(512))] {
            assert_eq!(check_key(bad).unwrap_err().status, 422, "{bad}");
        }
    }

    #[test]
    fn ttls() {
        let ms = |t: &str| parse_ttl(t).unwrap().as_millis();
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("2h"), 7_200_000);
        assert_eq!(ms("1d"), 86_400_000);
        assert_eq!(ms("1w"), 604_800_000);
        assert_eq!(ms("1.5h"), 5_400_000);
        assert_eq!(ms("2 days"), 172_800_000);
        assert_eq!(ms("250"), 250);
        assert_eq!(ms("1M"), 60_000);
        for bad in ["", "s", "-1s", "0s", "1x", "1e3s", "11y", "1.2.3s"] {
            assert_eq!(parse_ttl(bad).unwrap_err().status, 422, "{bad}");
        }
    }

    #[test]
    fn patterns() {
        let m = |p: &str, k: &str| Pattern::parse(Some(p)).unwrap().matches(k);
        assert!(m("movie*", "movie-1") && m("movie*", "movie"));
        assert!(m("*-movie", "a-movie") && !m("*-movie", "a-movies"));
        assert!(m("a*b*c", "axxbyyc") && !m("a*b*c", "acb"));
        assert!(m("*", "anything") && m("exact", "exact") && !m("exact", "exactly"));
        assert!(!m("ab*ba", "aba"));
        assert_eq!(Pattern::parse(None).unwrap().0, "*");
    }
}
