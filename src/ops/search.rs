//! `search(type, query, filter, first, after)`: the objects of a type with
//! `@hyper(search: [...])` whose searched fields hold the query's words, best first.
//!
//! The ranking comes from the search service the type follows into (built in or remote,
//! [`crate::hyper::bridge`]): up to `hyper_page` ranked keys of that type. The objects are
//! then read in one statement, which keeps only those that exist, are not trashed, pass the
//! ArcQL `filter` and that the caller may see (the access rule is in the SQL, as for `find`);
//! the page is taken from what is left, in score order. A cursor is the position in that
//! ranked list (`after: "3"` starts at the fourth), so a page is stable while the index is.

use serde_json::Value as Json;

use super::{Caller, Engine};
use crate::error::{ApiError, ApiResult};
use crate::hyper::data::{Cond as DocCond, FieldPath, Selector};
use crate::hyper::search::{terms, SearchQuery, SearchService};
use crate::hyper::{Scope, StoreName};
use crate::plan::read::ObjectSelection;

/// `search(...)`.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    pub type_idx: usize,
    pub query: String,
    /// ArcQL over the objects.
    pub filter: Option<String>,
    pub first: Option<i64>,
    pub after: Option<String>,
    pub selection: std::sync::Arc<ObjectSelection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchEdge {
    pub cursor: String,
    pub score: f64,
    pub node: Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub edges: Vec<SearchEdge>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
    pub page_limit: u64,
}

pub async fn search(
    engine: &Engine,
    caller: &Caller,
    service: &dyn SearchService,
    args: &SearchArgs,
) -> ApiResult<SearchPage> {
    let ty = &engine.model.types[args.type_idx];
    let searched = match &ty.hyper {
        Some(spec) if !spec.search.is_empty() => &spec.search,
        _ => {
            return Err(ApiError::validation(format!(
                "'{}' is not searched: declare the fields to search with @hyper(search: [...]) on the type",
                ty.name
            )))
        }
    };
    let words = terms(&args.query).map_err(|e| ApiError::validation(format!("query: {}", e.msg)))?;
    let limits = &engine.limits;
    let size = match args.first {
        None => u64::from(limits.page_default),
        Some(n) if n >= 0 => (n as u64).min(u64::from(limits.page_max)),
        Some(_) => return Err(ApiError::validation("'first' must be a non-negative Int")),
    };
    let start: usize = match args.after.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map(|p| p + 1)
            .map_err(|_| ApiError::validation(format!("cursor '{c}' is not a search cursor (an edge's cursor)")))?,
    };
    let fields: Vec<String> = searched.iter().map(|&i| ty.fields[i].name.clone()).collect();
    let type_path = FieldPath::parse("type").map_err(|e| ApiError::internal(e.msg))?;
    let q = SearchQuery {
        terms: words,
        fields: Some(fields),
        filter: Some(Selector::Field(type_path, DocCond::Eq(Json::String(ty.name.clone())))),
        limit: limits.hyper_page,
    };
    let scope = Scope { instance: caller.instance.clone() };
    let store = StoreName::parse(&engine.app)
        .or_else(|_| StoreName::parse("arcbase"))
        .map_err(|e| ApiError::internal(e.msg))?;
    let matches = match service.query(&scope, &store, &q).await {
        Ok(m) => m,
        // Nothing indexed yet.
        Err(e) if e.status == 404 => Vec::new(),
        Err(e) if e.status < 500 => return Err(ApiError::validation(e.msg)),
        Err(e) => return Err(ApiError::internal(format!("search service: {} {}", e.status, e.msg))),
    };
    if matches.is_empty() {
        return Ok(SearchPage { edges: Vec::new(), has_previous_page: false, has_next_page: false, page_limit: size });
    }

    // The objects behind the keys, filtered and access-checked in one statement.
    let filter = super::read::filter_for(engine, caller, args.type_idx, args.filter.as_deref().unwrap_or("*"), false)?;
    let keys: Vec<String> = matches.iter().map(|m| m.key.clone()).collect();
    let hide = crate::sql::find::Trashed::Hide;
    let docs =
        super::read::documents_among(engine, caller, args.type_idx, filter, &keys, &args.selection, hide).await?;
    let visible: Vec<(usize, &crate::hyper::search::Match)> =
        matches.iter().filter(|m| docs.contains_key(&m.key)).enumerate().collect();
    let mut edges = Vec::new();
    for (pos, m) in visible.iter().skip(start).take(size as usize) {
        let doc = &docs[&m.key];
        edges.push(SearchEdge { cursor: pos.to_string(), score: m.score, node: doc.clone() });
    }
    Ok(SearchPage {
        has_previous_page: start > 0 && !visible.is_empty(),
        has_next_page: visible.len() > start + edges.len(),
        page_limit: size,
        edges,
    })
}
