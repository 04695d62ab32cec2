//! The remote adapters: the data, search, cache, queue and storage services of another hyper server, over its REST
//! API, behind the same traits as the built-in ones. A connection string as the official
//! clients take it, `http(s)://key:secret@host[:port]/<app>` or `cloud://key:secret@host/<app>`
//! (HTTPS), names the server, the app (the store and index of the default instance; another
//! instance's are `<app>-<instance>`) and the credentials: each request carries a fresh HS256
//! token (`sub` = key, `exp` in five minutes), as the clients mint them.
//!
//! Statuses come back as they are (`HyperError` with the remote's status and message), so the
//! caller can tell what to retry (network errors are 503, a timeout 504).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::cache::{CacheService, Pattern};
use super::data::{BulkOp, BulkResult, Cond, DataService, FindQuery, IndexSpec, ListQuery, Selector};
use super::queue::{JobInfo, JobStatus, QueueConfig, QueueService};
use super::search::{IndexConfig, Match, SearchQuery, SearchService};
use super::storage::{ByteStream, Object, ObjectInfo, StorageService};
use super::{HyperError, HyperResult, Scope, StoreName};

/// A remote hyper server, from its connection string.
#[derive(Clone)]
pub struct Remote {
    /// `scheme://host[:port]`, no credentials, no trailing slash.
    base: String,
    app: String,
    key: Option<String>,
    secret: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("base", &self.base).field("app", &self.app).finish_non_exhaustive()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode one path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Remote {
    /// Parse a connection string; the error names what is wrong with it.
    pub fn parse(url: &str, timeout: Duration) -> Result<Remote, String> {
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| format!("'{}' is not a hyper connection string", redact(url)))?;
        let scheme = match scheme {
            "http" => "http",
            "https" | "cloud" => "https",
            other => return Err(format!("a hyper connection string is http://, https:// or cloud://, not {other}://")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("'{}' names no host", redact(url)));
        }
        let app = path.trim_matches('/').to_string();
        StoreName::parse(&app).map_err(|e| format!("the app of '{}': {}", redact(url), e.msg))?;
        let (key, secret) = match userinfo {
            Some(u) => {
                let (k, s) = u.split_once(':').unwrap_or((u, ""));
                (Some(percent_decode(k)).filter(|k| !k.is_empty()), Some(percent_decode(s)).filter(|s| !s.is_empty()))
            }
            None => (None, None),
        };
        if key.is_some() != secret.is_some() {
            return Err(format!("'{}': give both a key and a secret (key:secret@host)", redact(url)));
        }
        // reqwest is built without a TLS provider of its own: ring, as the queue worker uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Remote { base: format!("{scheme}://{host}"), app, key, secret, client })
    }

    /// The server and app, without credentials (what logs and `hyper status` show).
    pub fn describe(&self) -> String {
        format!("{}/{}", self.base, self.app)
    }

    /// The store of `scope` on the remote: the app for the default instance, else
    /// `<app>-<instance>`.
    pub fn store_for(&self, scope: &Scope) -> HyperResult<StoreName> {
        if scope.instance == "default" {
            return StoreName::parse(&self.app);
        }
        StoreName::parse(&format!("{}-{}", self.app, scope.instance))
    }

    fn token(&self) -> Option<String> {
        let (key, secret) = (self.key.as_ref()?, self.secret.as_ref()?);
        let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 300;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({ "sub": key, "exp": exp }),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .ok()
    }

    fn url(&self, service: &str, store: &StoreName, rest: &[&str]) -> String {
        let mut u = format!("{}/{service}/{}", self.base, encode_segment(store.as_str()));
        for r in rest {
            u.push('/');
            u.push_str(&encode_segment(r));
        }
        u
    }

    /// One request; the JSON answer of a 2xx, else the remote's status and message.
    async fn send(&self, method: reqwest::Method, url: String, body: Option<&Value>) -> HyperResult<Value> {
        let mut req = self.client.request(method, &url).header("accept", "application/json");
        if let Some(t) = self.token() {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            let status = if e.is_timeout() { 504 } else { 503 };
            HyperError::new(status, format!("hyper server {}: {}", self.base, e.without_url()))
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let text = resp
            .text()
            .await
            .map_err(|e| HyperError::new(503, format!("hyper server {}: the answer was cut: {e}", self.base)))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            if v.get("ok") == Some(&Value::Bool(false)) {
                let msg = v["msg"].as_str().unwrap_or("not ok").to_string();
                return Err(HyperError::new(v["status"].as_u64().map_or(502, |s| s as u16), msg));
            }
            return Ok(v);
        }
        let msg = v["msg"].as_str().map(str::to_string).unwrap_or_else(|| text.chars().take(200).collect());
        let mut e = HyperError::new(status, format!("hyper server {}: {msg}", self.base));
        e.retry_after = retry_after;
        Err(e)
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &url[..s + 3], &url[a..]),
        _ => url.to_string(),
    }
}

/// A selector as hyper's JSON.
pub fn selector_json(s: &Selector) -> Value {
    match s {
        Selector::All => json!({}),
        Selector::And(xs) => json!({ "$and": xs.iter().map(selector_json).collect::<Vec<_>>() }),
        Selector::Or(xs) => json!({ "$or": xs.iter().map(selector_json).collect::<Vec<_>>() }),
        Selector::Nor(xs) => json!({ "$nor": xs.iter().map(selector_json).collect::<Vec<_>>() }),
        Selector::Not(x) => json!({ "$not": selector_json(x) }),
        Selector::Field(p, c) => {
            let cond = match c {
                Cond::Eq(v) => json!({ "$eq": v }),
                Cond::Ne(v) => json!({ "$ne": v }),
                Cond::Gt(v) => json!({ "$gt": v }),
                Cond::Gte(v) => json!({ "$gte": v }),
                Cond::Lt(v) => json!({ "$lt": v }),
                Cond::Lte(v) => json!({ "$lte": v }),
                Cond::In(v) => json!({ "$in": v }),
                Cond::Nin(v) => json!({ "$nin": v }),
                Cond::Exists(b) => json!({ "$exists": b }),
            };
            let mut m = serde_json::Map::new();
            m.insert(p.dotted(), cond);
            Value::Object(m)
        }
    }
}

fn results_of(v: &Value) -> Vec<BulkResult> {
    v["results"]
        .as_array()
        .map(|xs| {
            xs.iter()
                .map(|r| BulkResult {
                    ok: r["ok"].as_bool().unwrap_or(false),
                    id: r["id"].as_str().map(str::to_string).unwrap_or_default(),
                    msg: r["msg"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The remote data service.
pub struct RemoteData(pub Remote);

#[async_trait]
impl DataService for RemoteData {
    async fn create(&self, scope: &Scope, _store: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::PUT, r.url("data", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn destroy(&self, scope: &Scope, _store: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("data", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn add(&self, scope: &Scope, _store: &StoreName, doc: Value) -> HyperResult<String> {
        let r = &self.0;
        let v = r.send(reqwest::Method::POST, r.url("data", &r.store_for(scope)?, &[]), Some(&doc)).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }
    async fn get(&self, scope: &Scope, _store: &StoreName, id: &str) -> HyperResult<Value> {
        let r = &self.0;
        r.send(reqwest::Method::GET, r.url("data", &r.store_for(scope)?, &[id]), None).await
    }
    async fn update(&self, scope: &Scope, _store: &StoreName, id: &str, doc: Value) -> HyperResult<()> {
        // One document through _bulk: a single PUT is unreliable across hyper's adapters.
        let r = &self.0;
        let doc = super::data::with_id(doc, id)?;
        let v =
            r.send(reqwest::Method::POST, r.url("data", &r.store_for(scope)?, &["_bulk"]), Some(&json!([doc]))).await?;
        match results_of(&v).first() {
            Some(res) if res.ok => Ok(()),
            Some(res) => Err(HyperError::invalid(res.msg.clone().unwrap_or_else(|| "refused".into()))),
            None => Err(HyperError::new(502, "the hyper server answered no result")),
        }
    }
    async fn remove(&self, scope: &Scope, _store: &StoreName, id: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("data", &r.store_for(scope)?, &[id]), None).await.map(|_| ())
    }
    async fn list(&self, scope: &Scope, _store: &StoreName, q: &ListQuery) -> HyperResult<Vec<Value>> {
        let r = &self.0;
        let mut url = r.url("data", &r.store_for(scope)?, &[]);
        let mut params = vec![("limit".to_string(), q.limit.to_string())];
        if let Some(k) = &q.startkey {
            params.push(("startkey".into(), k.clone()));
        }
        if let Some(k) = &q.endkey {
            params.push(("endkey".into(), k.clone()));
        }
        if let Some(keys) = &q.keys {
            params.push(("keys".into(), keys.join(",")));
        }
        if q.descending {
            params.push(("descending".into(), "true".into()));
        }
        url.push('?');
        url.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish());
        let v = r.send(reqwest::Method::GET, url, None).await?;
        Ok(v["docs"].as_array().cloned().unwrap_or_default())
    }
    async fn query(&self, scope: &Scope, _store: &StoreName, q: &FindQuery) -> HyperResult<Vec<Value>> {
        let r = &self.0;
        let mut body = json!({ "selector": selector_json(&q.selector), "limit": q.limit });
        if let Some(f) = &q.fields {
            body["fields"] = f.iter().map(|p| Value::String(p.dotted())).collect();
        }
        if !q.sort.is_empty() {
            body["sort"] =
                q.sort.iter().map(|k| json!({ k.path.dotted(): if k.descending { "DESC" } else { "ASC" } })).collect();
        }
        if q.skip > 0 {
            body["skip"] = json!(q.skip);
        }
        if let Some(i) = &q.use_index {
            body["use_index"] = json!(i);
        }
        let v = r.send(reqwest::Method::POST, r.url("data", &r.store_for(scope)?, &["_query"]), Some(&body)).await?;
        Ok(v["docs"].as_array().cloned().unwrap_or_default())
    }
    async fn index(&self, scope: &Scope, _store: &StoreName, ix: &IndexSpec) -> HyperResult<()> {
        let r = &self.0;
        let fields: Vec<String> = ix.fields.iter().map(|f| f.dotted()).collect();
        let body = json!({ "name": ix.name, "fields": fields, "type": "JSON" });
        r.send(reqwest::Method::POST, r.url("data", &r.store_for(scope)?, &["_index"]), Some(&body)).await.map(|_| ())
    }
    async fn bulk(&self, scope: &Scope, _store: &StoreName, ops: Vec<BulkOp>) -> HyperResult<Vec<BulkResult>> {
        let r = &self.0;
        let docs: Vec<Value> = ops
            .into_iter()
            .map(|op| match op {
                BulkOp::Put { id, doc } => super::data::with_id(doc, &id),
                // `id` too: hyper's pouchdb adapter reads a bulk document's id from it.
                BulkOp::Delete { id } => Ok(json!({ "_id": id, "id": id, "_deleted": true })),
            })
            .collect::<HyperResult<_>>()?;
        let v = r
            .send(reqwest::Method::POST, r.url("data", &r.store_for(scope)?, &["_bulk"]), Some(&Value::Array(docs)))
            .await?;
        Ok(results_of(&v))
    }
}

/// The remote search service.
pub struct RemoteSearch(pub Remote);

#[async_trait]
impl SearchService for RemoteSearch {
    async fn create(&self, scope: &Scope, _index: &StoreName, config: &IndexConfig) -> HyperResult<()> {
        let r = &self.0;
        let mut body = config.to_json();
        if body["storeFields"].is_null() {
            body.as_object_mut().map(|m| m.remove("storeFields"));
        }
        r.send(reqwest::Method::PUT, r.url("search", &r.store_for(scope)?, &[]), Some(&body)).await.map(|_| ())
    }
    async fn destroy(&self, scope: &Scope, _index: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("search", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn add(&self, scope: &Scope, _index: &StoreName, key: &str, doc: Value) -> HyperResult<()> {
        let r = &self.0;
        let body = json!({ "key": key, "doc": doc });
        r.send(reqwest::Method::POST, r.url("search", &r.store_for(scope)?, &[]), Some(&body)).await.map(|_| ())
    }
    async fn get(&self, scope: &Scope, _index: &StoreName, key: &str) -> HyperResult<Value> {
        let r = &self.0;
        let v = r.send(reqwest::Method::GET, r.url("search", &r.store_for(scope)?, &[key]), None).await?;
        Ok(v.get("doc").cloned().unwrap_or(Value::Null))
    }
    /// As hyper-api.md says to write a search document safely: remove (404 is fine), then add;
    /// on 409 (another writer in between) once more. hyper's minisearch adapter answers 500,
    /// not 404, when removing a key it does not have: a failed remove is therefore judged by
    /// the add that follows (a 409 then means the remove really failed, and its error is given).
    async fn update(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value) -> HyperResult<()> {
        let mut removal = None;
        for attempt in 0..2 {
            match self.remove(scope, index, key).await {
                Ok(()) => {}
                Err(e) if e.status == 404 => {}
                Err(e) if e.status == 401 || e.status == 403 => return Err(e),
                Err(e) => removal = Some(e),
            }
            match self.add(scope, index, key, doc.clone()).await {
                Err(e) if e.status == 409 && attempt == 0 => continue,
                Err(e) if e.status == 409 => return Err(removal.unwrap_or(e)),
                other => return other,
            }
        }
        Ok(())
    }
    async fn remove(&self, scope: &Scope, _index: &StoreName, key: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("search", &r.store_for(scope)?, &[key]), None).await.map(|_| ())
    }
    async fn query(&self, scope: &Scope, _index: &StoreName, q: &SearchQuery) -> HyperResult<Vec<Match>> {
        let r = &self.0;
        let words: Vec<String> =
            q.terms.iter().map(|t| format!("{}{}", t.word, if t.prefix { "*" } else { "" })).collect();
        let mut body = json!({ "query": words.join(" "), "limit": q.limit });
        if let Some(f) = &q.fields {
            body["fields"] = json!(f);
        }
        if let Some(f) = &q.filter {
            body["filter"] = selector_json(f);
        }
        let v = r.send(reqwest::Method::POST, r.url("search", &r.store_for(scope)?, &["_query"]), Some(&body)).await?;
        Ok(v["matches"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        let mut doc = m.clone();
                        let key = doc["id"].as_str().map(str::to_string).unwrap_or_default();
                        let score = doc["score"].as_f64().unwrap_or(0.0);
                        if let Some(o) = doc.as_object_mut() {
                            o.remove("id");
                            o.remove("score");
                        }
                        Match { key, score, doc }
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
    async fn load(&self, scope: &Scope, index: &StoreName, docs: Vec<(String, Value)>) -> HyperResult<Vec<String>> {
        let mut keys = Vec::with_capacity(docs.len());
        for (key, doc) in docs {
            self.update(scope, index, &key, doc).await?;
            keys.push(key);
        }
        Ok(keys)
    }
}

/// A time to live as hyper writes it (whole seconds, at least one).
fn ttl_text(ttl: Duration) -> String {
    format!("{}s", ttl.as_secs().max(1))
}

/// The remote cache service.
pub struct RemoteCache(pub Remote);

#[async_trait]
impl CacheService for RemoteCache {
    async fn create(&self, scope: &Scope, _cache: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::PUT, r.url("cache", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn destroy(&self, scope: &Scope, _cache: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("cache", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn add(
        &self,
        scope: &Scope,
        _cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()> {
        let r = &self.0;
        let mut body = json!({ "key": key, "value": value });
        if let Some(t) = ttl {
            body["ttl"] = json!(ttl_text(t));
        }
        r.send(reqwest::Method::POST, r.url("cache", &r.store_for(scope)?, &[]), Some(&body)).await.map(|_| ())
    }
    async fn get(&self, scope: &Scope, _cache: &StoreName, key: &str) -> HyperResult<Value> {
        let r = &self.0;
        r.send(reqwest::Method::GET, r.url("cache", &r.store_for(scope)?, &[key]), None).await
    }
    async fn set(
        &self,
        scope: &Scope,
        _cache: &StoreName,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> HyperResult<()> {
        let r = &self.0;
        let mut url = r.url("cache", &r.store_for(scope)?, &[key]);
        if let Some(t) = ttl {
            url.push_str(&format!("?ttl={}", ttl_text(t)));
        }
        r.send(reqwest::Method::PUT, url, Some(&value)).await.map(|_| ())
    }
    async fn remove(&self, scope: &Scope, _cache: &StoreName, key: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("cache", &r.store_for(scope)?, &[key]), None).await.map(|_| ())
    }
    async fn query(
        &self,
        scope: &Scope,
        _cache: &StoreName,
        pattern: &Pattern,
        limit: u32,
    ) -> HyperResult<Vec<(String, Value)>> {
        let r = &self.0;
        let url =
            format!("{}?pattern={}", r.url("cache", &r.store_for(scope)?, &["_query"]), encode_segment(&pattern.0));
        let v = r.send(reqwest::Method::POST, url, None).await?;
        Ok(v["docs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| Some((d["key"].as_str()?.to_string(), d["value"].clone())))
            .take(limit as usize)
            .collect())
    }
}

/// The remote queue service.
pub struct RemoteQueue(pub Remote);

#[async_trait]
impl QueueService for RemoteQueue {
    async fn create(&self, scope: &Scope, _queue: &StoreName, config: &QueueConfig) -> HyperResult<()> {
        let r = &self.0;
        let mut body = json!({ "target": config.target });
        if let Some(s) = &config.secret {
            body["secret"] = json!(s);
        }
        r.send(reqwest::Method::PUT, r.url("queue", &r.store_for(scope)?, &[]), Some(&body)).await.map(|_| ())
    }
    async fn destroy(&self, scope: &Scope, _queue: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("queue", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn enqueue(&self, scope: &Scope, _queue: &StoreName, job: Value) -> HyperResult<String> {
        let r = &self.0;
        let v = r.send(reqwest::Method::POST, r.url("queue", &r.store_for(scope)?, &[]), Some(&job)).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }
    async fn list(
        &self,
        scope: &Scope,
        _queue: &StoreName,
        status: JobStatus,
        limit: u32,
    ) -> HyperResult<Vec<JobInfo>> {
        let r = &self.0;
        let url = format!("{}?status={}", r.url("queue", &r.store_for(scope)?, &[]), status.as_str());
        let v = r.send(reqwest::Method::GET, url, None).await?;
        Ok(v["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .take(limit as usize)
            .map(|j| JobInfo {
                id: j["id"].as_str().unwrap_or_default().to_string(),
                status,
                job: if j.get("job").is_some() { j["job"].clone() } else { j.clone() },
                attempts: j["attempts"].as_u64().unwrap_or(0) as u32,
                error: j["error"].as_str().map(str::to_string),
                created_at: j["createdAt"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
    async fn cancel(&self, scope: &Scope, _queue: &StoreName, id: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("queue", &r.store_for(scope)?, &[id]), None).await.map(|_| ())
    }
    async fn retry(&self, scope: &Scope, _queue: &StoreName, id: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::POST, r.url("queue", &r.store_for(scope)?, &[id, "_retry"]), None).await.map(|_| ())
    }
}

/// The remote storage service. Objects pass through memory (a hyper server takes an upload as
/// one request body), bounded by `max_bytes` (`ARCBASE_LIMIT_HYPER_OBJECT_BYTES`).
pub struct RemoteStorage(pub Remote, pub u64);

impl Remote {
    /// One request with raw bytes; the response's status, content type and body.
    async fn send_bytes(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Vec<u8>>,
    ) -> HyperResult<(String, bytes::Bytes)> {
        let mut req = self.client.request(method, &url);
        if let Some(t) = self.token() {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/octet-stream").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            let status = if e.is_timeout() { 504 } else { 503 };
            HyperError::new(status, format!("hyper server {}: {}", self.base, e.without_url()))
        })?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HyperError::new(503, format!("hyper server {}: the answer was cut: {e}", self.base)))?;
        if (200..300).contains(&status) {
            return Ok((ct, bytes));
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let msg = v["msg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        Err(HyperError::new(status, format!("hyper server {}: {msg}", self.base)))
    }

    /// `/storage/<bucket>/<name...>` with each segment of the name encoded.
    fn object_url(&self, store: &StoreName, name: &str) -> String {
        let segments: Vec<&str> = name.split('/').collect();
        self.url("storage", store, &segments)
    }
}

#[async_trait]
impl StorageService for RemoteStorage {
    async fn create(&self, scope: &Scope, _bucket: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::PUT, r.url("storage", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn destroy(&self, scope: &Scope, _bucket: &StoreName) -> HyperResult<()> {
        let r = &self.0;
        r.send(reqwest::Method::DELETE, r.url("storage", &r.store_for(scope)?, &[]), None).await.map(|_| ())
    }
    async fn put(
        &self,
        scope: &Scope,
        _bucket: &StoreName,
        name: &str,
        mut body: ByteStream,
    ) -> HyperResult<ObjectInfo> {
        use futures_util::StreamExt;
        super::storage::check_name(name)?;
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| HyperError::bad_request(format!("the upload was cut: {e}")))?;
            if (buf.len() + chunk.len()) as u64 > self.1 {
                return Err(HyperError::new(413, format!("an object is at most {} bytes", self.1)));
            }
            buf.extend_from_slice(&chunk);
        }
        let size = buf.len() as u64;
        let r = &self.0;
        r.send_bytes(reqwest::Method::POST, r.object_url(&r.store_for(scope)?, name), Some(buf)).await?;
        Ok(ObjectInfo { name: name.to_string(), size })
    }
    async fn get(&self, scope: &Scope, _bucket: &StoreName, name: &str) -> HyperResult<Object> {
        let r = &self.0;
        let (content_type, bytes) =
            r.send_bytes(reqwest::Method::GET, r.object_url(&r.store_for(scope)?, name), None).await?;
        let size = bytes.len() as u64;
        Ok(Object { size, content_type, body: Box::pin(futures_util::stream::once(async move { Ok(bytes) })) })
    }
    async fn remove(&self, scope: &Scope, _bucket: &StoreName, name: &str) -> HyperResult<()> {
        let r = &self.0;
        r.send_bytes(reqwest::Method::DELETE, r.object_url(&r.store_for(scope)?, name), None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let t = Duration::from_secs(5);
        let r = Remote::parse("http://k1:s%3Acret@127.0.0.1:6363/movies", t).unwrap();
        assert_eq!((r.base.as_str(), r.app.as_str()), ("http://127.0.0.1:6363", "movies"));
        assert_eq!((r.key.as_deref(), r.secret.as_deref()), (Some("k1"), Some("s:cret")));
        assert_eq!(r.describe(), "http://127.0.0.1:6363/movies");
        let c = Remote::parse("cloud://k:s@cloud.hyper.io/app-1", t).unwrap();
        assert_eq!(c.base, "https://cloud.hyper.io");
        let open = Remote::parse("http://localhost:4000/app/", t).unwrap();
        assert!(open.token().is_none());
        for bad in ["ftp://h/app", "http://h", "http://k@h/app", "no-scheme", "http:///app", "http://h/a%20b"] {
            let e = Remote::parse(bad, t).unwrap_err();
            assert!(!e.contains("s:cret"), "{e}");
        }
        let e = Remote::parse("http://key:topsecret@h/", t).unwrap_err();
        assert!(!e.contains("topsecret"), "credentials never in errors: {e}");
        let scope = Scope { instance: "shop.example".into() };
        assert_eq!(r.store_for(&scope).unwrap().as_str(), "movies-shop.example");
    }

    #[test]
    fn selectors_print_as_hyper_reads_them() {
        let s =
            Selector::parse(&json!({ "a": 1, "b.c": { "$gt": 2 }, "$or": [{ "x": { "$in": [1] } }] }), 100).unwrap();
        let back = Selector::parse(&selector_json(&s), 100).unwrap();
        assert_eq!(back, s);
    }
}
