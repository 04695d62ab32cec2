//! The built-in data service: documents in `hyper_docs`, `_index` as partial expression
//! indexes over the same JSON paths the queries read.

use async_trait::async_trait;
use serde_json::Value;

use super::{missing, parse, Base};
use crate::hyper::data::*;
use crate::hyper::{HyperError, HyperResult, Scope, Service, StoreName};
use crate::sql::hyper::{self as sql, data as dsql};
use crate::store::{tx_execute, tx_fetch, Tx};

/// Indexes one store may have.
const MAX_INDEXES: usize = 16;

pub struct Data {
    pub(crate) base: Base,
}

impl Data {
    /// Run a document write `stmt` in `tx`, creating the store when it is missing (the
    /// statement changes nothing then) and running it again; rows changed.
    async fn write(&self, tx: &mut Tx, scope: &Scope, store: &StoreName, stmt: &crate::sql::Sql) -> HyperResult<u64> {
        let n = tx_execute(tx, stmt).await?;
        if n > 0 {
            return Ok(n);
        }
        let (_, created) =
            self.base.ensure(tx, scope, Service::Data, store, &Value::Object(Default::default())).await?;
        if !created {
            return Ok(0);
        }
        Ok(tx_execute(tx, stmt).await?)
    }

    /// The store's indexes: `(name, fields, seq)`.
    async fn indexes_in(&self, tx: Option<&mut Tx>, store_id: i64) -> HyperResult<Vec<(String, Vec<String>, i64)>> {
        let stmt = dsql::indexes(self.base.dialect(), store_id);
        let rows = match tx {
            Some(tx) => tx_fetch(tx, &stmt).await?,
            None => self.base.store.fetch_rows(&stmt).await?,
        };
        Ok(rows
            .iter()
            .map(|r| {
                let fields: Vec<String> = r[1].as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
                (r[0].as_str().unwrap_or_default().to_string(), fields, r[2].as_i64().unwrap_or_default())
            })
            .collect())
    }

    fn decode_docs(rows: Vec<Vec<crate::value::SqlValue>>) -> HyperResult<Vec<Value>> {
        rows.iter().map(|r| parse(r[0].as_str())).collect()
    }
}

#[async_trait]
impl DataService for Data {
    async fn create(&self, scope: &Scope, store: &StoreName) -> HyperResult<()> {
        self.base.create_plain(scope, Service::Data, store).await
    }

    async fn destroy(&self, scope: &Scope, store: &StoreName) -> HyperResult<()> {
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        let row = self
            .base
            .row_in(&mut tx, scope, Service::Data, store)
            .await?
            .ok_or_else(|| missing(Service::Data, store))?;
        for (_, _, seq) in self.indexes_in(Some(&mut tx), row.id).await? {
            for name in dsql::index_names(d, row.id, seq) {
                tx_execute(&mut tx, &dsql::drop_index(d, &name)).await?;
            }
        }
        tx_execute(&mut tx, &sql::delete_store(d, row.id)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add(&self, scope: &Scope, store: &StoreName, doc: Value) -> HyperResult<String> {
        let Value::Object(m) = &doc else {
            return Err(HyperError::invalid("a document is a JSON object"));
        };
        if m.is_empty() {
            return Err(HyperError::bad_request("the document is empty"));
        }
        let id = named_id(m)?.unwrap_or_else(|| ulid::Ulid::new().to_string());
        let body = with_id(doc, &id)?.to_string();
        let stmt = dsql::insert(self.base.dialect(), &scope.instance, store.as_str(), &id, &body);
        let mut tx = self.base.store.begin_write().await?;
        if self.write(&mut tx, scope, store, &stmt).await? == 0 {
            return Err(HyperError::conflict("document conflict: a document with this id exists"));
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn get(&self, scope: &Scope, store: &StoreName, id: &str) -> HyperResult<Value> {
        let rows =
            self.base.store.fetch_rows(&dsql::get(self.base.dialect(), &scope.instance, store.as_str(), id)).await?;
        match rows.first() {
            Some(r) => parse(r[0].as_str()),
            None => Err(HyperError::not_found("document not found")),
        }
    }

    async fn update(&self, scope: &Scope, store: &StoreName, id: &str, doc: Value) -> HyperResult<()> {
        let id = check_id(id)?;
        let body = with_id(doc, &id)?.to_string();
        let stmt = dsql::upsert(self.base.dialect(), &scope.instance, store.as_str(), &id, &body);
        let mut tx = self.base.store.begin_write().await?;
        self.write(&mut tx, scope, store, &stmt).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove(&self, scope: &Scope, store: &StoreName, id: &str) -> HyperResult<()> {
        let mut tx = self.base.store.begin_write().await?;
        let n = tx_execute(&mut tx, &dsql::delete(self.base.dialect(), &scope.instance, store.as_str(), id)).await?;
        tx.commit().await?;
        if n == 0 {
            return Err(HyperError::not_found("document not found"));
        }
        Ok(())
    }

    async fn list(&self, scope: &Scope, store: &StoreName, q: &ListQuery) -> HyperResult<Vec<Value>> {
        let row = self.base.existing(scope, Service::Data, store).await?;
        let rows = self
            .base
            .store
            .fetch_rows_within(&dsql::list(self.base.dialect(), row.id, q), self.base.limits.response_bytes)
            .await?;
        let docs = Self::decode_docs(rows)?;
        let Some(keys) = &q.keys else { return Ok(docs) };
        // In the order asked, each once.
        let mut by_id: std::collections::HashMap<String, Value> = docs
            .into_iter()
            .filter_map(|d| d.get("_id").and_then(Value::as_str).map(str::to_string).map(|id| (id, d)))
            .collect();
        Ok(keys.iter().filter_map(|k| by_id.remove(k)).collect())
    }

    async fn query(&self, scope: &Scope, store: &StoreName, q: &FindQuery) -> HyperResult<Vec<Value>> {
        let row = self.base.existing(scope, Service::Data, store).await?;
        let d = self.base.dialect();
        // The planner chooses between walking the ids in order (a selector most documents
        // match) and an index (a selective one) from the statistics (`ANALYZE` after `_index`
        // and every 30 s). A query naming its index (`use_index`) gets it, when the selector
        // constrains the index's first field.
        let mut prefer_index = false;
        if let Some(name) = &q.use_index {
            let known = self.indexes_in(None, row.id).await?;
            let Some((_, fields, _)) = known.iter().find(|(n, _, _)| n == name) else {
                return Err(HyperError::invalid(format!("no index named '{name}' (create it with _index)")));
            };
            let constrained: Vec<String> = q.selector.constrained_fields().iter().map(|f| f.dotted()).collect();
            prefer_index = fields.first().is_some_and(|f| constrained.contains(f));
        }
        let rows = self
            .base
            .store
            .fetch_rows_within(&dsql::find(d, row.id, q, prefer_index), self.base.limits.response_bytes)
            .await?;
        let docs = Self::decode_docs(rows)?;
        Ok(match &q.fields {
            Some(fields) => docs.iter().map(|d| project(d, fields)).collect(),
            None => docs,
        })
    }

    async fn index(&self, scope: &Scope, store: &StoreName, ix: &IndexSpec) -> HyperResult<()> {
        let d = self.base.dialect();
        let fields: Vec<String> = ix.fields.iter().map(FieldPath::dotted).collect();
        let mut tx = self.base.store.begin_write().await?;
        let (row, _) =
            self.base.ensure(&mut tx, scope, Service::Data, store, &Value::Object(Default::default())).await?;
        let existing = self.indexes_in(Some(&mut tx), row.id).await?;
        if let Some((_, f, _)) = existing.iter().find(|(n, _, _)| *n == ix.name) {
            if *f == fields {
                return Ok(());
            }
            return Err(HyperError::conflict(format!("an index named '{}' exists over other fields", ix.name)));
        }
        if existing.len() >= MAX_INDEXES {
            return Err(HyperError::invalid(format!("a data store has at most {MAX_INDEXES} indexes")));
        }
        let fields_json = serde_json::to_string(&fields).map_err(HyperError::internal)?;
        let seq = tx_fetch(&mut tx, &dsql::insert_index(d, row.id, &ix.name, &fields_json))
            .await?
            .first()
            .and_then(|r| r[0].as_i64())
            .ok_or_else(|| HyperError::internal("no index sequence number"))?;
        for ddl in dsql::create_indexes(d, row.id, seq, &ix.fields) {
            tx_execute(&mut tx, &ddl).await?;
        }
        tx.commit().await?;
        // Statistics for the planner to weigh the new index (SQLite; PostgreSQL's autovacuum
        // analyzes on its own).
        if let Some(analyze) = dsql::analyze(d) {
            self.base.store.execute(&analyze).await?;
        }
        Ok(())
    }

    async fn bulk(&self, scope: &Scope, store: &StoreName, ops: Vec<BulkOp>) -> HyperResult<Vec<BulkResult>> {
        if ops.len() > self.base.limits.bulk {
            return Err(HyperError::invalid(format!("a bulk call writes at most {} documents", self.base.limits.bulk)));
        }
        let d = self.base.dialect();
        let mut tx = self.base.store.begin_write().await?;
        self.base.ensure(&mut tx, scope, Service::Data, store, &Value::Object(Default::default())).await?;
        fn id_of(op: &BulkOp) -> &str {
            match op {
                BulkOp::Put { id, .. } | BulkOp::Delete { id } => id,
            }
        }
        let results: Vec<BulkResult> =
            ops.iter().map(|op| BulkResult { ok: true, id: id_of(op).to_string(), msg: None }).collect();
        let mut ops = ops;
        for i in super::lock_order(&ops, id_of) {
            let stmt = match &mut ops[i] {
                BulkOp::Put { id, doc } => {
                    let body = with_id(std::mem::take(doc), id)?.to_string();
                    dsql::upsert(d, &scope.instance, store.as_str(), id, &body)
                }
                BulkOp::Delete { id } => dsql::delete(d, &scope.instance, store.as_str(), id),
            };
            tx_execute(&mut tx, &stmt).await?;
        }
        tx.commit().await?;
        // A load can change the shape of the store a lot: let the planner's statistics follow
        // (SQLite's `PRAGMA optimize` analyzes only what grew or shrank much since the last
        // time, so it costs next to nothing otherwise).
        if results.len() >= BULK_OPTIMIZE {
            self.base.store.refresh_statistics().await?;
        }
        Ok(results)
    }
}

/// Documents in one bulk call from which the statistics are refreshed after it.
const BULK_OPTIMIZE: usize = 50;
