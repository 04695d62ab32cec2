//! The search service: full-text indexes of JSON documents, per index, ranked.
//!
//! An index declares the fields it searches (`fields`) and those it returns with each match
//! (`storeFields`). One created implicitly (by adding to an index that does not exist)
//! searches every top-level string field of each document and returns the whole document.
//! Matching is by words, case-insensitive: a query is split into words (letters and digits);
//! a document matches when any word occurs in a searched field; `word*` matches words that
//! start with `word`. More matching words, and rarer ones, rank higher. The score is
//! comparable within one answer only.

use async_trait::async_trait;
use serde_json::Value;

use super::data::{FieldPath, Selector};
use super::{HyperError, HyperResult, Scope, StoreName};

/// What an index searches and returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexConfig {
    /// The searched fields; `None`: every top-level string field.
    pub fields: Option<Vec<FieldPath>>,
    /// The fields returned with each match; `None`: the whole document.
    pub store_fields: Option<Vec<FieldPath>>,
}

impl IndexConfig {
    /// `PUT /search/{index}` `{fields, storeFields?}`.
    pub fn from_json(body: &Value) -> HyperResult<IndexConfig> {
        let list = |key: &str| -> HyperResult<Option<Vec<FieldPath>>> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(xs)) if xs.len() <= 64 => xs
                    .iter()
                    .map(|x| {
                        x.as_str().ok_or_else(|| HyperError::invalid(format!("'{key}' is an array of field names")))
                    })
                    .map(|s| s.and_then(FieldPath::parse))
                    .collect::<HyperResult<Vec<_>>>()
                    .map(Some),
                Some(_) => Err(HyperError::invalid(format!("'{key}' is an array of at most 64 field names"))),
            }
        };
        let fields = list("fields")?;
        if fields.as_ref().is_some_and(Vec::is_empty) {
            return Err(HyperError::invalid("'fields' names at least one field to search"));
        }
        Ok(IndexConfig { fields, store_fields: list("storeFields")? })
    }

    /// As stored with the index.
    pub fn to_json(&self) -> Value {
        let names = |f: &Option<Vec<FieldPath>>| {
            f.as_ref().map_or(Value::Null, |xs| Value::Array(xs.iter().map(|p| Value::String(p.dotted())).collect()))
        };
        serde_json::json!({ "fields": names(&self.fields), "storeFields": names(&self.store_fields) })
    }

    /// The text of each searched field of `doc`: `(field, text)`. Strings as they are,
    /// numbers and booleans as text, arrays of them joined by spaces; objects are not text.
    pub fn texts(&self, doc: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match &self.fields {
            Some(fields) => {
                for f in fields {
                    if let Some(t) = f.get(doc).and_then(text_of) {
                        out.push((f.dotted(), t));
                    }
                }
            }
            None => {
                if let Value::Object(m) = doc {
                    for (k, v) in m {
                        if let Value::String(s) = v {
                            out.push((k.clone(), s.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    /// What a match returns of `doc` besides its id and score.
    pub fn stored(&self, doc: &Value) -> serde_json::Map<String, Value> {
        match &self.store_fields {
            None => doc.as_object().cloned().unwrap_or_default(),
            Some(fields) => super::data::project(doc, fields).as_object().cloned().unwrap_or_default(),
        }
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(xs) => {
            let parts: Vec<String> = xs.iter().filter(|x| !x.is_array()).filter_map(text_of).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

/// The words of a text as an index keeps them: runs of letters and digits, lower-case,
/// separated by single spaces (the same split as [`terms`], so a query finds what was
/// indexed on both databases).
pub fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    }
    out
}

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower-case letters and digits.
    pub word: String,
    /// `word*`: any word starting with it.
    pub prefix: bool,
}

/// The words of a query (at most 32, each at most 64 characters); 422 when there are none.
pub fn terms(query: &str) -> HyperResult<Vec<Term>> {
    let mut out: Vec<Term> = Vec::new();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_alphanumeric() {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
        let prefix = chars.get(i) == Some(&'*');
        if word.chars().count() > 64 {
            return Err(HyperError::invalid("a query word is at most 64 characters"));
        }
        let t = Term { word, prefix };
        if !out.contains(&t) {
            out.push(t);
        }
        if out.len() > 32 {
            return Err(HyperError::invalid("a query has at most 32 words"));
        }
    }
    if out.is_empty() {
        return Err(HyperError::invalid("the query has no words to search for"));
    }
    Ok(out)
}

/// `POST /search/{index}/_query`: `{query, fields?, filter?, limit?}` (nulls are absent).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
    /// Search only these of the index's fields.
    pub fields: Option<Vec<String>>,
    /// Only documents matching this selector (equality on fields, as minisearch's filter,
    /// or any selector of the data service).
    pub filter: Option<Selector>,
    pub limit: u32,
}

impl SearchQuery {
    pub fn from_json(body: &Value, limits: &super::HyperLimits) -> HyperResult<SearchQuery> {
        let get = |k: &str| body.get(k).filter(|v| !v.is_null());
        let query = match get("query") {
            Some(Value::String(q)) => q,
            Some(_) => return Err(HyperError::invalid("'query' is a string")),
            None => return Err(HyperError::invalid("a search needs a 'query'")),
        };
        let fields = match get("fields") {
            None => None,
            Some(Value::Array(xs)) => Some(
                xs.iter()
                    .map(|x| {
                        x.as_str()
                            .ok_or_else(|| HyperError::invalid("'fields' is an array of field names"))
                            .and_then(FieldPath::parse)
                            .map(|p| p.dotted())
                    })
                    .collect::<HyperResult<Vec<_>>>()?,
            ),
            Some(_) => return Err(HyperError::invalid("'fields' is an array of field names")),
        };
        let filter = match get("filter") {
            None => None,
            Some(f) => Some(Selector::parse(f, limits.conditions)?),
        };
        let limit = match get("limit") {
            None => limits.page,
            Some(v) => super::data::page_size(v, limits.page)?,
        };
        Ok(SearchQuery { terms: terms(query)?, fields, filter, limit })
    }
}

/// One match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub key: String,
    pub score: f64,
    pub doc: Value,
}

/// The key a bulk-loaded document names: `id`, else `_id`, else `key`.
pub fn bulk_key(doc: &Value) -> HyperResult<String> {
    for k in ["id", "_id", "key"] {
        match doc.get(k) {
            Some(Value::String(s)) => return super::data::check_id(s),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
            _ => {}
        }
    }
    Err(HyperError::invalid("each document to load needs an 'id' (or '_id')"))
}

/// The search service port.
#[async_trait]
pub trait SearchService: Send + Sync {
    /// Create an index (409 when it exists).
    async fn create(&self, scope: &Scope, index: &StoreName, config: &IndexConfig) -> HyperResult<()>;
    /// Remove an index (404 when missing).
    async fn destroy(&self, scope: &Scope, index: &StoreName) -> HyperResult<()>;
    /// Index a document under `key` (the index created when missing); 409 when the key exists.
    async fn add(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value) -> HyperResult<()>;
    /// The document under `key` (404).
    async fn get(&self, scope: &Scope, index: &StoreName, key: &str) -> HyperResult<Value>;
    /// Replace (or add) the document under `key`.
    async fn update(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value) -> HyperResult<()>;
    /// Remove the document under `key` (404 when missing).
    async fn remove(&self, scope: &Scope, index: &StoreName, key: &str) -> HyperResult<()>;
    /// Matches, best first (404 when the index is missing).
    async fn query(&self, scope: &Scope, index: &StoreName, q: &SearchQuery) -> HyperResult<Vec<Match>>;
    /// Add or replace many documents in one transaction (the index created when missing).
    async fn load(&self, scope: &Scope, index: &StoreName, docs: Vec<(String, Value)>) -> HyperResult<Vec<String>>;
}

impl std::fmt::Debug for dyn SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchService")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_words() {
        let t = terms("Back to the FUTURE, futur* 2!").unwrap();
        let words: Vec<_> = t.iter().map(|t| (t.word.as_str(), t.prefix)).collect();
        assert_eq!(
            words,
            [("back", false), ("to", false), ("the", false), ("future", false), ("futur", true), ("2", false)]
        );
        assert_eq!(terms("  ,, ").unwrap_err().status, 422);
        assert_eq!(terms("Ünïcödé straße").unwrap()[0].word, "ünïcödé");
    }

    #[test]
    fn index_words() {
        assert_eq!(words("Back to the FUTURE, part-2!"), "back to the future part 2");
        assert_eq!(words("  "), "");
    }

    #[test]
    fn texts_and_stored_fields() {
        let doc = json!({"title": "Dune", "year": 2021, "tags": ["a", "b"], "n": {"x": "deep"}});
        let implicit = IndexConfig::default();
        assert_eq!(implicit.texts(&doc), vec![("title".to_string(), "Dune".to_string())]);
        let c = IndexConfig::from_json(&json!({"fields": ["title", "year", "tags", "n.x"], "storeFields": ["title"]}))
            .unwrap();
        assert_eq!(c.texts(&doc).len(), 4);
        assert_eq!(Value::Object(c.stored(&doc)), json!({"title": "Dune"}));
        assert_eq!(IndexConfig::from_json(&json!({"fields": []})).unwrap_err().status, 422);
        assert_eq!(IndexConfig::from_json(&c.to_json()).unwrap(), c);
    }
}
