//! `get` and `find`: reads of objects as JSON documents shaped by a read plan.
//!
//! `get` is one statement. `find` is keyset paging over a filter with the exact page info of
//! contract §3. The first page beyond one cursor, the way clients page, is one statement in the
//! default order (by id): the cursor's existence, the page and the far side's `has...Page`
//! (`FindRenderer::page_beyond_cursor`); with a `SORT` it is two, the cursor row's sort keys
//! read first (an unknown cursor is an error, and the keys are bound into the seek so the index
//! can seek to them), then the page with the far side. Otherwise (two cursors, `page: n`, the
//! sentinels) its statements: one per cursor to read its row, one for the page, one per side to
//! decide the opposite-direction `has...Page`; and one per offsets list, only when asked for.

use serde_json::Value as Json;

use super::{Caller, Engine, Paging};
use crate::error::{ApiError, ApiResult};
use crate::plan::filter::{plan_query_within, FilterPlan, Visibility};
use crate::plan::read::ObjectSelection;
use crate::sql::find::{FindRenderer, Output, Seek, Select, Trashed};
use crate::sql::read::{GetTemplate, ReadRenderer};
use crate::value::SqlValue;

/// An object as a read gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// The read statement's JSON document, still in storage forms: [`Doc::into_json`] decodes
    /// it; the GraphQL encoder writes its selected members from the text itself
    /// (`graphql::raw`), undoing the same forms, so that no tree of it is built only to be
    /// written out again.
    Text(String),
    /// Already in the model's types (from the object cache).
    Json(Json),
}

impl Doc {
    /// The document in the model's types ([`crate::sql::read::decode`]), read with `selection`.
    pub fn into_json(self, model: &crate::model::Model, selection: &ObjectSelection) -> ApiResult<Json> {
        match self {
            Doc::Text(text) => crate::sql::read::decode(model, selection, &text),
            Doc::Json(v) => Ok(v),
        }
    }
}

/// Cursor sentinels Hypi returns and its clients send back.
pub const FIRST: &str = "FIRST";
pub const LAST: &str = "LAST";

/// `get(type, id, includeTrashed)`.
#[derive(Debug, Clone)]
pub struct GetArgs {
    pub type_idx: usize,
    pub id: String,
    pub include_trashed: bool,
    /// What to read of the object (and of the objects it references); shared with the
    /// operation cache's plans.
    pub selection: std::sync::Arc<ObjectSelection>,
    /// The statements of `selection` rendered so far, kept with the plan in the operation
    /// cache; `None`: rendered for this request only.
    pub statements: Option<std::sync::Arc<GetStatements>>,
}

/// `get`'s statement for one plan, rendered once for each kind of request that needs another
/// text (trashed objects included or not; the viewer an admin, anonymous or an account, which
/// the access rules' SQL depends on: six kinds) and bound to each request's values
/// (`sql::read::GetTemplate`).
#[derive(Debug, Default)]
pub struct GetStatements([std::sync::OnceLock<GetTemplate>; 6]);

impl GetStatements {
    fn template(&self, r: &ReadRenderer<'_>, sel: &ObjectSelection, include_trashed: bool) -> &GetTemplate {
        let viewer = match r.viewer {
            crate::access::Viewer::Admin => 0,
            crate::access::Viewer::Anonymous => 1,
            crate::access::Viewer::Account(_) => 2,
        };
        self.0[usize::from(include_trashed) * 3 + viewer].get_or_init(|| r.get_template(sel, include_trashed))
    }
}

/// The object, or `None` when it does not exist, is trashed, or the caller may not see it
/// (the three are indistinguishable).
///
/// For a `@hyper(cache: true)` type and a plain selection, answered from
/// [`super::read_cache`] when it holds the document (see there for why that is never stale).
pub async fn get(engine: &Engine, caller: &Caller, args: &GetArgs) -> ApiResult<Option<Doc>> {
    check_estimate(engine, args.selection.estimate())?;
    let ty = &engine.model.types[args.selection.type_idx];
    // The object cache, for a cached type's plain selection read by someone it may answer.
    let lookup = if engine.read_cache.enabled()
        && ty.hyper.as_ref().is_some_and(|h| h.cache)
        && super::read_cache::cacheable(&args.selection)
    {
        let viewer = match caller.viewer.allowed(&engine.model, args.selection.type_idx, false) {
            crate::access::Allowed::All => Some(None),
            crate::access::Allowed::CreatedBy(id) => Some(Some(id)),
            crate::access::Allowed::Nothing => None,
        };
        viewer.map(|viewer| super::read_cache::Lookup {
            app: &engine.app,
            instance: &caller.instance,
            type_name: &ty.name,
            id: &args.id,
            release: engine.release_tag,
            include_trashed: args.include_trashed,
            viewer,
            selection: &args.selection,
        })
    } else {
        None
    };
    let ticket = match &lookup {
        Some(l) => match engine.read_cache.get(l) {
            Ok(doc) => return Ok(Some(Doc::Json(doc))),
            Err(ticket) => Some(ticket),
        },
        None => None,
    };
    let r = reader(engine, caller);
    let sql = match &args.statements {
        Some(kept) => {
            kept.template(&r, &args.selection, args.include_trashed).bind(&caller.instance, &args.id, &caller.viewer)
        }
        None => r.get_by_id(&args.selection, &caller.instance, &args.id, args.include_trashed),
    };
    let rows = engine.store.fetch_rows_within(&sql, engine.limits.response_bytes).await?;
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(SqlValue::Text(text)) => match (&lookup, ticket) {
            (Some(l), Some(t)) => {
                let doc = r.decode(&args.selection, &text)?;
                engine.read_cache.put(t, l, &doc, text.len());
                Ok(Some(Doc::Json(doc)))
            }
            _ => Ok(Some(Doc::Text(text))),
        },
        _ => Ok(None),
    }
}

/// The objects among `ids` that exist, are not trashed and the caller may see, in one
/// statement (at most `limits.objects_per_call * 20` ids: background readers batch).
pub async fn get_many(
    engine: &Engine,
    caller: &Caller,
    selection: &ObjectSelection,
    ids: &[String],
) -> ApiResult<Vec<Json>> {
    check_estimate(engine, selection.estimate().saturating_mul(ids.len() as u64))?;
    let r = reader(engine, caller);
    let sql = r.get_by_ids(selection, &caller.instance, ids, false);
    let rows = engine.store.fetch_rows_within(&sql, engine.limits.response_bytes).await?;
    rows.into_iter()
        .filter_map(|row| row.into_iter().next())
        .filter_map(|v| match v {
            SqlValue::Text(text) => Some(r.decode(selection, &text)),
            _ => None,
        })
        .collect()
}

/// [`get_many`] read in `tx` (so it sees that transaction's own writes).
pub(crate) async fn get_many_in(
    tx: &mut crate::store::Tx,
    engine: &Engine,
    caller: &Caller,
    selection: &ObjectSelection,
    ids: &[String],
) -> ApiResult<Vec<Json>> {
    let r = reader(engine, caller);
    let sql = r.get_by_ids(selection, &caller.instance, ids, false);
    crate::store::tx_fetch(tx, &sql)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .filter_map(|v| match v {
            SqlValue::Text(text) => Some(r.decode(selection, &text)),
            _ => None,
        })
        .collect()
}

/// The objects among `ids` (of `type_idx`; trashed ones as `trashed` says) that `filter` (the caller's read rule
/// included, from [`filter_for`]) matches, read with `selection` in one statement, by id.
pub(crate) async fn documents_among(
    engine: &Engine,
    caller: &Caller,
    type_idx: usize,
    mut filter: crate::plan::filter::FilterPlan,
    ids: &[String],
    selection: &ObjectSelection,
    trashed: crate::sql::find::Trashed,
) -> ApiResult<std::collections::HashMap<String, Json>> {
    use crate::plan::filter::{Col, Cond, Leaf, Target, Test};
    use crate::sql::find::{FindRenderer, Output, Select};
    let mut docs = std::collections::HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(docs);
    }
    let among = Cond::Leaf(Leaf {
        hops: Vec::new(),
        target: Target::Column { column: Col::System("hypi_id"), scalar: crate::model::Scalar::Id },
        test: Test::In(ids.iter().map(|id| SqlValue::Text(id.clone())).collect()),
    });
    filter.cond = Some(match filter.cond.take() {
        Some(c) => Cond::And(vec![among, c]),
        None => among,
    });
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let select = Select::forward(type_idx, &filter, &caller.instance, trashed, None);
    let sql = r.select(&select, Output::Documents(selection));
    let rows = engine.store.fetch_rows_within(&sql, engine.limits.response_bytes).await?;
    let reader = reader(engine, caller);
    for row in rows {
        let mut it = row.into_iter();
        let (Some(SqlValue::Text(doc)), Some(SqlValue::Text(id))) = (it.next(), it.next()) else {
            return Err(ApiError::internal("a document row without its document and id"));
        };
        docs.insert(id, reader.decode(selection, &doc)?);
    }
    Ok(docs)
}

/// Refuse a read that could return more objects than allowed, before it runs.
fn check_estimate(engine: &Engine, estimate: u64) -> ApiResult<()> {
    let max = engine.limits.read_objects;
    if estimate > max {
        return Err(ApiError::limit(format!(
            "this read could return {estimate} objects and values (page sizes multiply along nested lists); \
             the limit is {max}: ask for smaller pages of the nested lists"
        )));
    }
    Ok(())
}

/// `find(type, arcql, first, after, last, before, page, includeTrashed)`.
#[derive(Debug, Clone)]
pub struct FindArgs {
    pub type_idx: usize,
    /// The ArcQL query (`*` or empty: everything).
    pub arcql: String,
    pub paging: Paging,
    pub include_trashed: bool,
    /// What to read of each object.
    pub selection: std::sync::Arc<ObjectSelection>,
    /// Compute `nextOffsets` / `previousOffsets` (one statement each).
    pub want_next_offsets: bool,
    pub want_previous_offsets: bool,
    /// Compute `hasPreviousPage` / `hasNextPage` where that reads rows of its own: what lies on
    /// a cursor's far side, or in the pages an offset skips. A flag not asked for reads nothing
    /// and may be answered `false`, so a front door that shows a flag asks for it (GraphQL:
    /// when the selection has it). The flag in the page's own direction (the extra row of the
    /// page's read) is always exact.
    pub want_has_previous: bool,
    pub want_has_next: bool,
}

/// One page of `find`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub edges: Vec<Edge>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The object's id.
    pub cursor: String,
    pub node: Doc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    pub has_previous_page: bool,
    pub has_next_page: bool,
    /// The first edge's cursor ([`FIRST`] on an empty page).
    pub start_cursor: String,
    /// The last edge's cursor ([`LAST`] on an empty page).
    pub end_cursor: String,
    /// The page size used.
    pub page_limit: u64,
    /// The `after` cursors opening each of up to the next 5 pages, when asked for.
    pub next_offsets: Option<Vec<String>>,
    /// The `before` cursors opening each of up to the previous 5 pages, when asked for.
    pub previous_offsets: Option<Vec<String>>,
}

struct Cursor {
    values: Vec<SqlValue>,
    id: String,
}

fn reader<'a>(engine: &'a Engine, caller: &'a Caller) -> ReadRenderer<'a> {
    ReadRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect(), viewer: &caller.viewer }
}

/// The filter of an ArcQL text, planned for `type_idx` and limited to what `caller` may read
/// (or, with `write`, change).
pub fn filter_for(
    engine: &Engine,
    caller: &Caller,
    type_idx: usize,
    arcql: &str,
    write: bool,
) -> ApiResult<FilterPlan> {
    let plan = || plan_query_within(&engine.model, type_idx, arcql, &engine.limits.arcql());
    let mut filter = engine.filters.plan(engine.release_tag, type_idx, arcql, caller.fresh, plan)?;
    filter.visibility = Visibility { viewer: caller.viewer.clone(), write };
    Ok(filter)
}

pub async fn find(engine: &Engine, caller: &Caller, args: &FindArgs) -> ApiResult<Connection> {
    let filter = filter_for(engine, caller, args.type_idx, &args.arcql, false)?;
    let window = args.paging.window(&engine.limits)?;
    let (size, backward, page) = (window.size, window.backward, window.page);
    check_estimate(engine, size.max(1).saturating_mul(args.selection.estimate()))?;
    let type_idx = args.type_idx;
    let trashed = if args.include_trashed { Trashed::Include } else { Trashed::Hide };
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let type_name = engine.model.types[type_idx].name.clone();
    let instance = caller.instance.as_str();
    let filter = &filter;

    // The sentinels: `after: FIRST` / `before: LAST` are no bound; `after: LAST` and
    // `before: FIRST` are past the end, so the page is empty.
    let (after_arg, before_arg) = (args.paging.after.as_deref(), args.paging.before.as_deref());
    let past_end = after_arg == Some(LAST) || before_arg == Some(FIRST);
    let after = after_arg.filter(|c| *c != FIRST && *c != LAST);
    let before = before_arg.filter(|c| *c != FIRST && *c != LAST);
    let lookup = |id: &str| {
        let sql = r.cursor(type_idx, filter, instance, id, args.include_trashed);
        let id = id.to_string();
        let store = &engine.store;
        let type_name = type_name.clone();
        async move {
            let rows = store.fetch_rows(&sql).await?;
            let Some(mut row) = rows.into_iter().next() else {
                return Err(ApiError::not_found(format!("cursor '{id}' names no {type_name} object")));
            };
            row.pop();
            Ok::<_, ApiError>(Cursor { values: row, id })
        }
    };
    // One cursor, the first page beyond it: the page and the far side's page info in one
    // statement, which also checks the cursor in the order by id alone. With a `SORT`, the
    // cursor row is read first: its keys are bound into the seek (whose shape depends on which
    // of them are NULL), so the index can seek to the cursor.
    if page == 1 && !past_end && size > 0 && !args.want_next_offsets && !args.want_previous_offsets {
        let one = match (after, before) {
            (Some(c), None) => Some((c, false)),
            (None, Some(c)) => Some((c, true)),
            _ => None,
        };
        if let Some((cursor, before_side)) = one {
            let read = if filter.sort.is_empty() { None } else { Some(lookup(cursor).await?) };
            let at = Beyond { cursor, read: read.as_ref(), before_side };
            return find_beyond_cursor(engine, caller, args, filter, at, size, backward).await;
        }
    }
    let after_c = match after {
        Some(id) => Some(lookup(id).await?),
        None => None,
    };
    let before_c = match before {
        Some(id) => Some(lookup(id).await?),
        None => None,
    };
    let bounds = || -> Vec<Seek<'_>> {
        let mut s = seek(&after_c, false, false);
        s.extend(seek(&before_c, true, false));
        s
    };

    let mut rows = Vec::new();
    let mut more = false;
    if !past_end && size > 0 {
        let select = Select {
            type_idx,
            filter,
            instance,
            trashed,
            seeks: bounds(),
            reverse: backward,
            limit: Some(size + 1),
            offset: (page - 1).saturating_mul(size),
        };
        let sql = r.select(&select, Output::Documents(&args.selection));
        rows = engine.store.fetch_rows_within(&sql, engine.limits.response_bytes).await?;
        more = rows.len() as u64 > size;
        rows.truncate(size as usize);
        if backward {
            rows.reverse();
        }
    }
    let exists = |seeks: Vec<Seek<'_>>| {
        let select = Select { type_idx, filter, instance, trashed, seeks, reverse: false, limit: Some(1), offset: 0 };
        let sql = r.select(&select, Output::Exists);
        let store = &engine.store;
        async move { Ok::<bool, ApiError>(!store.fetch_rows(&sql).await?.is_empty()) }
    };
    // Is there anything on the far side of a cursor (at the cursor or beyond it)?
    let beyond = |c: &Option<Cursor>, backward_side: bool| {
        let s = seek(c, backward_side, true);
        let has_cursor = c.is_some();
        let fut = exists(s);
        async move {
            if has_cursor {
                fut.await
            } else {
                Ok(false)
            }
        }
    };
    // Only the flags asked for read anything (`FindArgs::want_has_previous`); offsets need
    // their side's flag.
    let want_prev = args.want_has_previous || args.want_previous_offsets;
    let want_next = args.want_has_next || args.want_next_offsets;
    let (has_previous, has_next) = if past_end {
        (
            want_prev && after_arg == Some(LAST) && exists(Vec::new()).await?,
            want_next && before_arg == Some(FIRST) && exists(Vec::new()).await?,
        )
    } else if backward {
        // Rows before the page: more of the window, or anything at or before `after`.
        (more || (want_prev && beyond(&after_c, false).await?), want_next && beyond(&before_c, true).await?)
    } else {
        // Rows before the page: anything at or before `after`, or (page > 1) the pages of
        // the window that the offset skipped.
        let prev = want_prev && (beyond(&after_c, false).await? || (page > 1 && exists(bounds()).await?));
        (prev, more || (want_next && beyond(&before_c, true).await?))
    };

    let edges = edges_of(rows, 0)?;
    let offsets_ctx = Offsets { engine, r: &r, instance, type_idx, filter, trashed, size };
    let next_offsets = if args.want_next_offsets {
        Some(match (has_next, edges.last()) {
            (true, Some(last)) => offsets_ctx.list(&lookup(&last.cursor).await?, false).await?,
            _ => Vec::new(),
        })
    } else {
        None
    };
    let previous_offsets = if args.want_previous_offsets {
        Some(match (has_previous, edges.first()) {
            (true, Some(first)) => offsets_ctx.list(&lookup(&first.cursor).await?, true).await?,
            _ => Vec::new(),
        })
    } else {
        None
    };
    Ok(connection(edges, has_previous, has_next, size, next_offsets, previous_offsets))
}

/// The edges of a page's rows: `(document, id)` from column `skip` on; the documents as the
/// statement wrote them ([`Doc::Text`]).
fn edges_of(rows: Vec<Vec<SqlValue>>, skip: usize) -> ApiResult<Vec<Edge>> {
    let mut edges = Vec::with_capacity(rows.len());
    for row in rows {
        let mut it = row.into_iter().skip(skip);
        let (Some(SqlValue::Text(doc)), Some(SqlValue::Text(id))) = (it.next(), it.next()) else {
            return Err(ApiError::internal("find row without document and id"));
        };
        edges.push(Edge { node: Doc::Text(doc), cursor: id });
    }
    Ok(edges)
}

/// A page and its page info. Relay's rule for the cursors: those of the first and last edges
/// (Apollo's and Relay's caches copy them onto edges). An empty page has no edge: the
/// sentinels, which page on to empty pages.
fn connection(
    edges: Vec<Edge>,
    has_previous: bool,
    has_next: bool,
    size: u64,
    next_offsets: Option<Vec<String>>,
    previous_offsets: Option<Vec<String>>,
) -> Connection {
    let start = edges.first().map_or_else(|| FIRST.to_string(), |e| e.cursor.clone());
    let end = edges.last().map_or_else(|| LAST.to_string(), |e| e.cursor.clone());
    Connection {
        edges,
        page_info: PageInfo {
            has_previous_page: has_previous,
            has_next_page: has_next,
            start_cursor: start,
            end_cursor: end,
            page_limit: size,
            next_offsets,
            previous_offsets,
        },
    }
}

/// The one cursor of [`find_beyond_cursor`]: `after`, or `before` with `before_side`; `read`, its
/// row when the order needs the row's keys (a `SORT`).
struct Beyond<'a> {
    cursor: &'a str,
    read: Option<&'a Cursor>,
    before_side: bool,
}

/// [`find`]'s first page beyond one cursor in one statement
/// ([`FindRenderer::page_beyond_cursor`]): the page, whether anything lies on the cursor's far
/// side (the page info on that side), and, unless the cursor row was read already, whether it
/// exists.
async fn find_beyond_cursor(
    engine: &Engine,
    caller: &Caller,
    args: &FindArgs,
    filter: &FilterPlan,
    at: Beyond<'_>,
    size: u64,
    backward: bool,
) -> ApiResult<Connection> {
    let type_idx = args.type_idx;
    let instance = caller.instance.as_str();
    let trashed = if args.include_trashed { Trashed::Include } else { Trashed::Hide };
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let Beyond { cursor, read, before_side } = at;
    let values = read.map_or(&[][..], |c| &c.values[..]);
    let seeks = |negate| vec![Seek { values, id: cursor, backward: before_side, negate }];
    let page = Select {
        type_idx,
        filter,
        instance,
        trashed,
        seeks: seeks(false),
        reverse: backward,
        limit: Some(size + 1),
        offset: 0,
    };
    let probe =
        Select { type_idx, filter, instance, trashed, seeks: seeks(true), reverse: false, limit: Some(1), offset: 0 };
    // The far side of an `after` cursor is the previous page, of a `before` cursor the next:
    // probed only when its flag is asked for.
    let probe_wanted = if before_side { args.want_has_next } else { args.want_has_previous };
    let check = read.is_none().then(|| r.cursor(type_idx, filter, instance, cursor, args.include_trashed));
    let sql = r.page_beyond_cursor(&page, &args.selection, check, probe_wanted.then_some(&probe));
    let mut rows = engine.store.fetch_rows_within(&sql, engine.limits.response_bytes).await?.into_iter();
    let truthy = |v: Option<&SqlValue>| {
        matches!(v, Some(SqlValue::Bool(true))) || v.and_then(SqlValue::as_i64).is_some_and(|n| n != 0)
    };
    let Some(meta) = rows.next() else { return Err(ApiError::internal("a cursor page without its first row")) };
    if !truthy(meta.get(3)) {
        let type_name = &engine.model.types[type_idx].name;
        return Err(ApiError::not_found(format!("cursor '{cursor}' names no {type_name} object")));
    }
    let beyond = truthy(meta.get(4));
    let mut docs: Vec<Vec<SqlValue>> = rows.collect();
    let more = docs.len() as u64 > size;
    docs.truncate(size as usize);
    if backward {
        docs.reverse();
    }
    let edges = edges_of(docs, 1)?;
    // As the general path decides them for page 1: the far side of an `after` cursor is the
    // previous page, of a `before` cursor the next; the extra row is more in the walk's direction.
    let (has_previous, has_next) = match (backward, before_side) {
        (false, false) => (beyond, more),
        (false, true) => (false, more || beyond),
        (true, false) => (more || beyond, false),
        (true, true) => (more, beyond),
    };
    Ok(connection(edges, has_previous, has_next, size, None, None))
}

fn seek(c: &Option<Cursor>, backward: bool, negate: bool) -> Vec<Seek<'_>> {
    c.iter().map(|c| Seek { values: &c.values, id: &c.id, backward, negate }).collect()
}

/// What computing offsets needs.
struct Offsets<'a> {
    engine: &'a Engine,
    r: &'a FindRenderer<'a>,
    instance: &'a str,
    type_idx: usize,
    filter: &'a FilterPlan,
    trashed: Trashed,
    size: u64,
}

impl Offsets<'_> {
    /// The cursors opening each of up to 5 pages beyond the edge `c` (the page's last edge
    /// going forward, its first going backward).
    async fn list(&self, c: &Cursor, backward: bool) -> ApiResult<Vec<String>> {
        let select = Select {
            type_idx: self.type_idx,
            filter: self.filter,
            instance: self.instance,
            trashed: self.trashed,
            seeks: vec![Seek { values: &c.values, id: &c.id, backward, negate: false }],
            reverse: backward,
            limit: Some(4 * self.size + 1),
            offset: 0,
        };
        let ids: Vec<String> =
            crate::value::first_texts(self.engine.store.fetch_rows(&self.r.select(&select, Output::Ids)).await?);
        let mut out = vec![c.id.clone()];
        for k in 1..=4u64 {
            if ids.len() as u64 > k * self.size {
                out.push(ids[(k * self.size - 1) as usize].clone());
            }
        }
        Ok(out)
    }
}
