//! ATOMIC `@hyper` services on the built-in target: the statements the ports run, run instead
//! in the object write's own transaction, so the object, its change row and its copies in
//! data, search, cache and the notify queue commit (or roll back) together.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{search, Builtin};
use crate::hyper::{HyperResult, Scope, Service, StoreName};
use crate::model::{HyperService, ObjectType};
use crate::sql::hyper::{cache as csql, data as dsql, queue as qsql, search as ssql};
use crate::store::{tx_execute, Tx};

impl Builtin {
    /// Bring the built-in copies of `ids` (of `ty`, whose `@hyper` spec it has) to `current`
    /// in `services` (an id missing from `current` is removed), and enqueue `notices`, all in
    /// `tx`. `index` is the app's search index configuration, used if the index is created here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn apply_in(
        &self,
        tx: &mut Tx,
        scope: &Scope,
        store: &StoreName,
        ty: &ObjectType,
        services: &[HyperService],
        ids: &[String],
        current: &HashMap<String, Value>,
        index: &crate::hyper::search::IndexConfig,
        notices: &[Value],
    ) -> HyperResult<()> {
        let Some(spec) = &ty.hyper else { return Ok(()) };
        let d = self.base.dialect();
        let (inst, name) = (scope.instance.as_str(), store.as_str());
        let empty = json!({});
        // In key order, as the bridge's bulk calls write these documents (`lock_order`).
        let ids: Vec<&String> = super::lock_order(ids, |id| id.as_str()).into_iter().map(|i| &ids[i]).collect();
        if services.contains(&HyperService::Data) && spec.data {
            self.base.ensure(tx, scope, Service::Data, store, &empty).await?;
            for &id in &ids {
                let stmt = match current.get(id) {
                    Some(doc) => {
                        dsql::upsert(d, inst, name, id, &crate::hyper::data::with_id(doc.clone(), id)?.to_string())
                    }
                    None => dsql::delete(d, inst, name, id),
                };
                tx_execute(tx, &stmt).await?;
            }
        }
        if services.contains(&HyperService::Search) && !spec.search.is_empty() {
            let search = search::Search { base: self.base.clone() };
            let (row, created) = self.base.ensure(tx, scope, Service::Search, store, &index.to_json()).await?;
            if created {
                if let Some(ddl) = ssql::create_index(d, row.id) {
                    tx_execute(tx, &ddl).await?;
                }
            }
            for &id in &ids {
                match current.get(id) {
                    Some(doc) => {
                        let sdoc = crate::hyper::bridge::search_doc(ty, spec, doc);
                        tx_execute(tx, &ssql::upsert_doc(d, row.id, id, &sdoc.to_string())).await?;
                        search.index_words(tx, &row, id, &sdoc, true).await?;
                    }
                    None => {
                        for stmt in ssql::remove_doc(d, row.id, id) {
                            tx_execute(tx, &stmt).await?;
                        }
                    }
                }
            }
        }
        if services.contains(&HyperService::Cache) && spec.cache {
            self.base.ensure(tx, scope, Service::Cache, store, &empty).await?;
            for &id in &ids {
                let Some(key) = crate::hyper::bridge::cache_key(&ty.name, id) else { continue };
                let stmt = match current.get(id) {
                    Some(doc) => csql::set(d, inst, name, &key, &doc.to_string(), None),
                    None => csql::delete(d, inst, name, &key),
                };
                tx_execute(tx, &stmt).await?;
            }
        }
        if !notices.is_empty() {
            self.base.ensure(tx, scope, Service::Queue, store, &empty).await?;
            let (now_ms, now) = (crate::hyper::now_ms(), crate::plan::write::now());
            for n in notices {
                let id = crate::ops::upsert::new_id();
                tx_execute(tx, &qsql::insert(d, inst, name, &id, &n.to_string(), now_ms, &now)).await?;
            }
            self.queue.wake.notify_one();
        }
        Ok(())
    }
}
