//! The built-in search service: documents in `hyper_search_docs`, their words in the
//! database's own full-text index (SQLite FTS5, PostgreSQL tsvector + GIN), written in the
//! same transaction as the document.

use async_trait::async_trait;
use serde_json::Value;

use super::{missing, parse, Base, StoreRow};
use crate::hyper::search::{words, IndexConfig, Match, SearchQuery, SearchService};
use crate::hyper::{HyperError, HyperResult, Scope, Service, StoreName};
use crate::sql::hyper::{self as sql, search as ssql};
use crate::store::{tx_execute, Tx};

pub struct Search {
    pub(crate) base: Base,
}

fn config(row: &StoreRow) -> IndexConfig {
    IndexConfig::from_json(&row.config).unwrap_or_default()
}

impl Search {
    /// The index row in `tx`, created (searching every top-level string field) when missing.
    pub(super) async fn ensure(&self, tx: &mut Tx, scope: &Scope, index: &StoreName) -> HyperResult<StoreRow> {
        let (row, created) =
            self.base.ensure(tx, scope, Service::Search, index, &IndexConfig::default().to_json()).await?;
        if created {
            if let Some(ddl) = ssql::create_index(self.base.dialect(), row.id) {
                tx_execute(tx, &ddl).await?;
            }
        }
        Ok(row)
    }

    /// Write the words of `doc` under `key` (after removing the old ones).
    pub(super) async fn index_words(
        &self,
        tx: &mut Tx,
        row: &StoreRow,
        key: &str,
        doc: &Value,
        replace: bool,
    ) -> HyperResult<()> {
        let d = self.base.dialect();
        if replace {
            tx_execute(tx, &ssql::delete_words(d, row.id, key)).await?;
        }
        let fields: Vec<(String, String)> =
            config(row).texts(doc).into_iter().map(|(f, t)| (f, words(&t))).filter(|(_, w)| !w.is_empty()).collect();
        if fields.len() as i64 > ssql::FIELDS_PER_DOC {
            return Err(HyperError::invalid(format!(
                "a search document has at most {} searched fields",
                ssql::FIELDS_PER_DOC
            )));
        }
        if let Some(stmt) = ssql::insert_words(d, row.id, key, &fields) {
            tx_execute(tx, &stmt).await?;
        }
        Ok(())
    }

    fn check_doc(doc: &Value) -> HyperResult<()> {
        match doc {
            Value::Object(m) if m.is_empty() => Err(HyperError::bad_request("empty document")),
            Value::Object(_) => Ok(()),
            _ => Err(HyperError::invalid("a document is a JSON object")),
        }
    }

    async fn put(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value, replace: bool) -> HyperResult<()> {
        crate::hyper::data::check_id(key)?;
        Self::check_doc(&doc)?;
        let d = self.base.dialect();
        let body = doc.to_string();
        let mut tx = self.base.store.begin_write().await?;
        let row = self.ensure(&mut tx, scope, index).await?;
        if replace {
            tx_execute(&mut tx, &ssql::upsert_doc(d, row.id, key, &body)).await?;
        } else if tx_execute(&mut tx, &ssql::insert_doc(d, row.id, key, &body)).await? == 0 {
            return Err(HyperError::conflict(format!("a document with key '{key}' exists")));
        }
        self.index_words(&mut tx, &row, key, &doc, replace).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl SearchService for Search {
    async fn create(&self, scope: &Scope, index: &StoreName, config: &IndexConfig) -> HyperResult<()> {
        let mut tx = self.base.store.begin_write().await?;
        let Some(id) = self.base.insert(&mut tx, scope, Service::Search, index, &config.to_json()).await? else {
            return Err(HyperError::conflict(format!("the search index '{index}' exists")));
        };
        if let Some(ddl) = ssql::create_index(self.base.dialect(), id) {
            tx_execute(&mut tx, &ddl).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn destroy(&self, scope: &Scope, index: &StoreName) -> HyperResult<()> {
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        let row = self
            .base
            .row_in(&mut tx, scope, Service::Search, index)
            .await?
            .ok_or_else(|| missing(Service::Search, index))?;
        if let Some(ddl) = ssql::drop_index(d, row.id) {
            tx_execute(&mut tx, &ddl).await?;
        }
        tx_execute(&mut tx, &sql::delete_store(d, row.id)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value) -> HyperResult<()> {
        self.put(scope, index, key, doc, false).await
    }

    async fn get(&self, scope: &Scope, index: &StoreName, key: &str) -> HyperResult<Value> {
        let row = self.base.existing(scope, Service::Search, index).await?;
        match self.base.store.fetch_rows(&ssql::get_doc(self.base.dialect(), row.id, key)).await?.first() {
            Some(r) => parse(r[0].as_str()),
            None => Err(HyperError::not_found(format!("no document with key '{key}'"))),
        }
    }

    async fn update(&self, scope: &Scope, index: &StoreName, key: &str, doc: Value) -> HyperResult<()> {
        self.put(scope, index, key, doc, true).await
    }

    async fn remove(&self, scope: &Scope, index: &StoreName, key: &str) -> HyperResult<()> {
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        let row = self
            .base
            .row_in(&mut tx, scope, Service::Search, index)
            .await?
            .ok_or_else(|| missing(Service::Search, index))?;
        let mut removed = 0;
        for stmt in ssql::remove_doc(d, row.id, key) {
            removed = tx_execute(&mut tx, &stmt).await?;
        }
        if removed == 0 {
            return Err(HyperError::not_found(format!("no document with key '{key}'")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query(&self, scope: &Scope, index: &StoreName, q: &SearchQuery) -> HyperResult<Vec<Match>> {
        let row = self.base.existing(scope, Service::Search, index).await?;
        let cfg = config(&row);
        let stmt = ssql::query(self.base.dialect(), row.id, &q.terms, q.fields.as_deref(), q.filter.as_ref(), q.limit);
        let rows = self.base.store.fetch_rows_within(&stmt, self.base.limits.response_bytes).await?;
        rows.iter()
            .map(|r| {
                let doc = parse(r[2].as_str())?;
                let score = match &r[1] {
                    crate::value::SqlValue::Real(f) => *f,
                    crate::value::SqlValue::Int(i) => *i as f64,
                    crate::value::SqlValue::Text(t) => t.parse().unwrap_or(0.0),
                    _ => 0.0,
                };
                Ok(Match {
                    key: r[0].as_str().unwrap_or_default().to_string(),
                    score,
                    doc: Value::Object(cfg.stored(&doc)),
                })
            })
            .collect()
    }

    async fn load(&self, scope: &Scope, index: &StoreName, docs: Vec<(String, Value)>) -> HyperResult<Vec<String>> {
        if docs.len() > self.base.limits.bulk {
            return Err(HyperError::invalid(format!("a load writes at most {} documents", self.base.limits.bulk)));
        }
        for (key, doc) in &docs {
            crate::hyper::data::check_id(key)?;
            Self::check_doc(doc)?;
        }
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        let row = self.ensure(&mut tx, scope, index).await?;
        for i in super::lock_order(&docs, |(key, _)| key.as_str()) {
            let (key, doc) = &docs[i];
            tx_execute(&mut tx, &ssql::upsert_doc(d, row.id, key, &doc.to_string())).await?;
            self.index_words(&mut tx, &row, key, doc, true).await?;
        }
        tx.commit().await?;
        Ok(docs.into_iter().map(|(key, _)| key).collect())
    }
}
