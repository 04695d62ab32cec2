//! The query plans behind the speed claims of `find`: a selective indexed filter searches the
//! index (it never scans the table), and a cursor seek starts at the cursor in the primary key,
//! so a page deep into a result costs what the first page costs. Shown with SQLite's
//! `EXPLAIN QUERY PLAN` over 100,000 objects.
#![allow(clippy::unwrap_used)]

mod common;
use arcbase::plan::filter::plan_query;
use arcbase::sql::find::{FindRenderer, Output, Seek, Select, Trashed};
use arcbase::sql::{Sql, SqlValue};
use common::rng::Rng;
use common::*;
use sqlx::Row;

/// The first 25 objects of `type_idx` under `filter` (and one more, for `hasNextPage`).
fn first_page(type_idx: usize, filter: &arcbase::plan::filter::FilterPlan) -> Select<'_> {
    Select::forward(type_idx, filter, "default", Trashed::Hide, Some(26))
}

async fn plan(conn: &mut sqlx::SqliteConnection, sql: &Sql) -> String {
    let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
    let mut q = sqlx::query(&text);
    for b in &sql.binds {
        q = match b {
            SqlValue::Null => q.bind(None::<String>),
            SqlValue::Bool(v) => q.bind(*v),
            SqlValue::Int(v) => q.bind(*v),
            SqlValue::Real(v) => q.bind(*v),
            SqlValue::Text(v) => q.bind(v.clone()),
        };
    }
    let rows = q.fetch_all(conn).await.unwrap();
    rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
}

/// A server over the example schema on SQLite (these are SQLite's plans, so whatever the
/// suite's backend) with 100,000 books inserted directly (the upsert path is tested
/// elsewhere): ids `00000001`..., titles `title <i>`, prices `i % 100`, ratings alternating.
async fn books() -> (TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plans.db").display());
    let t = TestApp::at(EXAMPLE, None, arcbase::config::Limits::default(), dir, &url).await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO \"default__Book\" (hypi_instance, hypi_id, hypi_created, hypi_updated, title, price, rating)
         SELECT 'default', printf('%08d', i), '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',
                'title ' || i, i % 100, CASE i % 2 WHEN 0 THEN 'GOOD' ELSE 'BAD' END FROM n",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    (t, url)
}

#[tokio::test]
async fn indexed_filters_and_cursor_seeks_do_not_scan() {
    let (t, url) = books().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    // Statistics, as `PRAGMA optimize` at start-up gathers them; loaded by this connection.
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();

    let engine = t.engine();
    let (book, _) = engine.model.type_by_name("Book").unwrap();
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let select = |filter| first_page(book, filter);

    // A selective filter on an @indices field: an index search, no table scan.
    let filter = plan_query(&engine.model, book, "title = 'title 77777'").unwrap();
    let sql = r.select(&select(&filter), Output::Ids);
    let p = plan(&mut conn, &sql).await;
    assert!(p.contains("SEARCH t0 USING INDEX"), "{p}\n{}", sql.text);
    assert!(!p.contains("SCAN t0"), "{p}");

    // A page deep into everything: the seek starts in the primary key at the cursor.
    let filter = plan_query(&engine.model, book, "*").unwrap();
    let mut s = select(&filter);
    s.seeks = vec![Seek { values: &[], id: "00090000", backward: false, negate: false }];
    let sql = r.select(&s, Output::Ids);
    let p = plan(&mut conn, &sql).await;
    assert!(p.contains("SEARCH t0 USING PRIMARY KEY (hypi_instance=? AND hypi_id>?)"), "{p}\n{}", sql.text);
    assert!(!p.contains("TEMP B-TREE"), "no sort of the whole result: {p}");

    // A sorted page beyond a cursor, with the far side's probe in the same statement: the
    // page seeks the sort key's index at the cursor's key (bound), it does not walk to it.
    // Both directions of a walk that moves to larger titles: ASC forward (`after`), DESC
    // backward (`before`, the page read in reverse).
    let key = [SqlValue::Text("title 90000".into())];
    let selection = arcbase::plan::read::ObjectSelection::new(book);
    for (order, backward) in [("ASC", false), ("DESC", true)] {
        let filter = plan_query(&engine.model, book, &format!("* SORT title {order}")).unwrap();
        let at = |negate| vec![Seek { values: &key, id: "00090000", backward, negate }];
        let mut page = first_page(book, &filter);
        (page.seeks, page.reverse) = (at(false), backward);
        let mut probe = first_page(book, &filter);
        (probe.seeks, probe.limit) = (at(true), Some(1));
        let sql = r.page_beyond_cursor(&page, &selection, None, Some(&probe));
        let p = plan(&mut conn, &sql).await;
        assert!(p.contains("SEARCH t0 USING INDEX") && p.contains("title>?"), "{order}: {p}\n{}", sql.text);
        assert!(!p.contains("SCAN t0"), "{order}: {p}\n{}", sql.text);
    }
    drop(conn);

    // A prefix and a wildcard with a literal start: a range of the index on every connection
    // that serves reads, the inline ones included (whose planner, keeping the stability
    // guarantee, makes no range out of a bound GLOB pattern by itself), and the right rows.
    t.app.store.refresh_statistics().await.unwrap();
    for (arcql, expected) in [("title ^ 'title 7777'", 11), ("title * 'title 7777?'", 10)] {
        let filter = plan_query(&engine.model, book, arcql).unwrap();
        let sql = r.select(&first_page(book, &filter), Output::Ids);
        let plans = t.app.store.query_plans(&sql).await.unwrap();
        assert!(plans.len() >= 2, "{plans:?}");
        for p in &plans {
            assert!(p.contains("USING INDEX") && p.contains("title>? AND title<?"), "{arcql}: {p}\n{}", sql.text);
        }
        let data = t
            .ok(
                &format!("{{ find(type: Book, arcql: \"{}\", first: 20) {{ edges {{ cursor }} }} }}", arcql),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(data["find"]["edges"].as_array().unwrap().len(), expected, "{arcql}");
    }

    // And the page after that cursor really is the next 25 ids.
    let data = t
        .ok(
            "{ find(type: Book, arcql: \"*\", first: 3, after: \"00090000\") { edges { cursor } } }",
            serde_json::json!({}),
        )
        .await;
    let ids: Vec<&str> =
        data["find"]["edges"].as_array().unwrap().iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(ids, ["00090001", "00090002", "00090003"]);
}

/// The statistics tests' `find` by member over the bench schema, first 25 (with `probe`: the
/// far side of cursor `m`, one row), rendered for `t`'s app.
fn by_member(t: &TestApp, probe: bool) -> Sql {
    let engine = t.engine();
    let (message, _) = engine.model.type_by_name("Message").unwrap();
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let filter = plan_query(&engine.model, message, "account.hypi.id = 'a0007' AND score > 5").unwrap();
    let mut select = first_page(message, &filter);
    if !probe {
        return r.select(&select, Output::Ids);
    }
    (select.seeks, select.limit) = (vec![Seek { values: &[], id: "m", backward: false, negate: true }], Some(1));
    r.select(&select, Output::Exists)
}

/// SQLite's planner statistics follow the data as it grows, without a restart: messages
/// loaded through upserts after the table was first analyzed (with a handful of rows, all of
/// one member) get a `find` by member the index, on every connection that serves reads.
/// Before the refresh the stale statistics pick the primary-key walk (checked first, so the
/// test shows the problem it guards against).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_follow_a_bulk_load_without_a_restart() {
    const SDL: &str = include_str!("../bench/schema.graphql");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stats.db").display());
    let limits = arcbase::config::Limits { objects_per_call: 1000, write_objects: 2000, ..Default::default() };
    let t = TestApp::at(SDL, None, limits, dir, &url).await;
    let members: Vec<String> = (0..500).map(|i| format!("a{i:04}")).collect();
    let values: Vec<_> = members.iter().map(|m| serde_json::json!({ "hypi": { "id": m }, "name": m })).collect();
    t.upsert(serde_json::json!({ "Member": values })).await;
    // The first rows: 30 messages of one member, analyzed as they are.
    let first: Vec<_> =
        (0..30).map(|i| serde_json::json!({ "score": i % 10, "account": { "hypi": { "id": "a0000" } } })).collect();
    t.upsert(serde_json::json!({ "Message": first })).await;
    t.app.store.refresh_statistics().await.unwrap();

    let sql = by_member(&t, false);
    let uses_index = |p: &str| p.contains("INDEX") && p.contains("account=?");
    let plans = t.app.store.query_plans(&sql).await.unwrap();
    assert!(plans.iter().all(|p| !uses_index(p)), "the stale statistics walk the primary key: {plans:?}");

    // 20,000 messages over 500 members, through upserts, while the server runs.
    for batch in 0..20 {
        let values: Vec<_> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                serde_json::json!({ "score": n % 10, "account": { "hypi": { "id": members[n % 500] } } })
            })
            .collect();
        t.upsert(serde_json::json!({ "Message": values })).await;
    }
    // The refresh runs in the background after the writes that cross its threshold.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let plans = t.app.store.query_plans(&sql).await.unwrap();
        if plans.iter().all(|p| uses_index(p)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still not the index after the load: {plans:?}\n{}", sql.text);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The far side of a cursor (`hasPreviousPage`) is a range of the same index, not a walk
    // over every row of the member before the cursor.
    let plans = t.app.store.query_plans(&by_member(&t, true)).await.unwrap();
    assert!(plans.iter().all(|p| p.contains("account=? AND hypi_id<")), "{plans:?}");
    let data = t
        .ok(
            "{ find(type: Message, arcql: \"account.hypi.id = 'a0007' AND score > 5\", first: 25) { edges { cursor } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 25);
}

/// The names of the indexes of `table`, in order.
async fn indexes(conn: &mut sqlx::SqliteConnection, table: &str) -> Vec<String> {
    let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name")
        .bind(table)
        .fetch_all(conn)
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<String, _>("name")).collect()
}

/// A reference that starts an `@indices` set gets no index of its own (the set's index serves
/// the clearing of references when a target is deleted, and a second one would cost every
/// write); one an earlier release made is dropped when the model is applied again, and when a
/// server first serves the release (a restart, nothing published). A reference
/// without such a set keeps its own index. Both are checked by the plan of the statement that
/// clears references.
#[tokio::test]
async fn a_reference_that_starts_an_index_set_has_no_second_index() {
    const SDL: &str = "type Member { name: String }
        type Message @indices(sets: [[\"account\"]]) { text: String account: Member editor: Member }";
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("refs.db").display());
    let t = TestApp::at(SDL, None, arcbase::config::Limits::default(), dir, &url).await;
    let engine = t.engine();
    let (message, ty) = engine.model.type_by_name("Message").unwrap();
    let table = arcbase::sql::names::object_table(&engine.app, ty);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let names = indexes(&mut conn, &table).await;
    assert!(names.iter().any(|n| n.ends_with("idx__account")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("ref__editor")), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("ref__account")), "{names:?}");

    // A database an earlier release made has the second index; applying the model drops it.
    let old = arcbase::sql::names::index_name(&table, "ref__account");
    sqlx::query(&format!("CREATE INDEX \"{old}\" ON \"{table}\" (hypi_instance, account)"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(indexes(&mut conn, &table).await.contains(&old));
    t.app.store.apply_model(&engine.app, &engine.model).await.unwrap();
    assert_eq!(indexes(&mut conn, &table).await, names);
    // So does a server's first serving of the release, with nothing published: a database made
    // before the change sheds the index at the next start.
    sqlx::query(&format!("CREATE INDEX \"{old}\" ON \"{table}\" (hypi_instance, account)"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(indexes(&mut conn, &table).await.contains(&old));
    let no_cache = std::sync::Arc::new(arcbase::ops::read_cache::ReadCache::new(false, 0, 0));
    arcbase::server::registry::Registry::load(t.app.store.clone(), arcbase::config::Limits::default(), no_cache)
        .await
        .unwrap();
    assert_eq!(indexes(&mut conn, &table).await, names);

    // Clearing the references to a deleted member searches an index for each field.
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    for field in ["account", "editor"] {
        let fi = ty.fields.iter().position(|f| f.name == field).unwrap();
        let sql = r.clear_refs(message, fi, "default", &["m1".to_string()], "2026-01-01T00:00:00.000Z");
        let p = plan(&mut conn, &sql).await;
        assert!(p.contains("SEARCH") && p.contains("INDEX"), "{field}: {p}\n{}", sql.text);
        assert!(p.contains(&format!("{field}=?")), "{field}: {p}");
    }
    drop(conn);

    // And the references really are cleared.
    t.upsert(serde_json::json!({ "Member": [{ "hypi": { "id": "m1" } }] })).await;
    t.upsert(serde_json::json!({ "Message": [{ "hypi": { "id": "x" }, "account": { "hypi": { "id": "m1" } }, "editor": { "hypi": { "id": "m1" } } }] }))
        .await;
    t.ok("mutation { delete(type: Member, arcql: \"hypi.id = 'm1'\") }", serde_json::json!({})).await;
    let data = t
        .ok(
            "{ get(type: Message, id: \"x\") { ... on Message { account { hypi { id } } editor { hypi { id } } } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(data["get"], serde_json::json!({ "account": null, "editor": null }));
}

/// A reader connection's reload of the planner's statistics takes the write lock for a moment;
/// an inline reader, which never waits for a lock, meets the writer's and must try again at its
/// next read rather than count itself up to date with the old statistics.
#[tokio::test]
async fn a_reload_that_meets_the_writers_lock_is_tried_again() {
    const SDL: &str = include_str!("../bench/schema.graphql");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reload.db").display());
    let t = TestApp::at(SDL, None, arcbase::config::Limits::default(), dir, &url).await;
    // Written beside the store: 500 members, and 30 messages of one of them, analyzed as they are.
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let messages = |from: u32, to: u32, members: u32| {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
             INSERT INTO \"default__Message\" (hypi_instance, hypi_id, hypi_created, hypi_updated, score, account)
             SELECT 'default', printf('m%06d', i), '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',
                    i % 10, printf('a%04d', i % {members}) FROM n"
        )
    };
    for text in [
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499)
         INSERT INTO \"default__Member\" (hypi_instance, hypi_id, hypi_created, hypi_updated, name)
         SELECT 'default', printf('a%04d', i), '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'm' FROM n"
            .to_string(),
        messages(1, 30, 1),
    ] {
        sqlx::query(&text).execute(&mut raw).await.unwrap();
    }
    t.app.store.refresh_statistics().await.unwrap();
    let sql = by_member(&t, false);
    let uses_index = |p: &str| p.contains("INDEX") && p.contains("account=?");
    let plans = t.app.store.query_plans(&sql).await.unwrap();
    assert!(plans.iter().all(|p| !uses_index(p)), "the stale statistics walk the primary key: {plans:?}");

    // 20,000 messages over 500 members, then the store's refresh.
    sqlx::query(&messages(31, 20_030, 500)).execute(&mut raw).await.unwrap();
    t.app.store.refresh_statistics().await.unwrap();
    // A read while another connection holds the write lock: the inline reader's reload fails.
    sqlx::query("BEGIN IMMEDIATE").execute(&mut raw).await.unwrap();
    let before = t.app.store.read_figures().unwrap();
    t.app.store.fetch_rows(&Sql::raw(arcbase::sql::Dialect::Sqlite, "SELECT 1")).await.unwrap();
    assert_eq!(t.app.store.read_figures().unwrap().inline, before.inline + 1, "the read ran inline");
    sqlx::query("ROLLBACK").execute(&mut raw).await.unwrap();
    // The lock gone, every reader has the new statistics.
    let plans = t.app.store.query_plans(&sql).await.unwrap();
    assert!(plans.iter().all(|p| uses_index(p)), "a reader kept the old statistics: {plans:?}\n{}", sql.text);
}

/// `ARCBASE_LIMIT_SQLITE_MMAP_BYTES` reaches SQLite's reader connections as `PRAGMA mmap_size`,
/// both the inline ones and the pool's (inline reads off: `ARCBASE_LIMIT_SQLITE_INLINE_US=0`),
/// and the default leaves the map off (SQLite's own default is 0 too, so a setting that never
/// reached a connection would read 0 in both stores).
#[tokio::test]
async fn the_memory_map_setting_reaches_the_sqlite_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mmap_size = Sql::with_binds(arcbase::sql::Dialect::Sqlite, "PRAGMA mmap_size", Vec::new());
    for inline in ["2000", "0"] {
        for (setting, expected) in [(None, 0), (Some("1048576"), 1_048_576)] {
            let limits = arcbase::config::Limits::from_env(|k| match k {
                "ARCBASE_LIMIT_SQLITE_MMAP_BYTES" => setting.map(String::from),
                "ARCBASE_LIMIT_SQLITE_INLINE_US" => Some(inline.to_string()),
                _ => None,
            })
            .unwrap();
            let url = format!("sqlite://{}/m{expected}-{inline}.db", dir.path().display());
            let store =
                arcbase::store::Store::open_with(&url, arcbase::store::Budgets::from_limits(&limits)).await.unwrap();
            // Several at once, so that more than one reader answers.
            let reads = futures_util::future::join_all((0..8).map(|_| store.fetch_rows(&mmap_size))).await;
            for rows in reads {
                assert_eq!(rows.unwrap()[0][0], SqlValue::Int(expected), "setting {setting:?}, inline {inline}");
            }
            let f = store.read_figures().unwrap();
            if inline == "0" {
                assert_eq!((f.inline, f.pool), (0, 8), "{f:?}");
            } else {
                assert_eq!(f.inline, 8, "{f:?}");
            }
            store.close().await;
        }
    }
}

/// A filter that keeps at most a few dozen of the 100,000 books through the `title` index or
/// the primary key, in one of the forms ArcQL has for it.
fn selective(rng: &mut Rng) -> String {
    let n = 1 + rng.below(99_999);
    let n4 = 1000 + rng.below(9000);
    match rng.below(9) {
        0 => format!("title = 'title {n}'"),
        1 => format!("title ^ 'title {n4}'"),
        2 => format!("title * 'title {n4}?'"),
        3 => format!("title * 'title {n4}*'"),
        4 => format!("title IN ('title {n}', 'title {}',)", 1 + rng.below(99_999)),
        5 => format!("title IN ['title {n4}0', 'title {n4}5']"),
        6 => format!("title >= 'title {n4}1' AND title < 'title {n4}2'"),
        7 => format!("hypi.id = '{n:08}'"),
        _ => format!("hypi.id ^ '{:07}'", n / 10),
    }
}

/// A condition no index narrows much (or none can serve).
fn broad(rng: &mut Rng) -> String {
    let k = rng.below(100);
    match rng.below(6) {
        0 => format!("price > {k}"),
        1 => format!("price <= {k}.5"),
        2 => format!("rating = '{}'", rng.pick(&["GOOD", "BAD"])),
        3 => "NOT rating = 'BAD'".to_string(),
        4 => format!("price IN ({k}, {},)", rng.below(100)),
        _ => "EXISTS price".to_string(),
    }
}

/// Generated filters, each with a selective part on an indexed field joined by AND to broad
/// conditions in any place and shape, under any order the index can serve or a sort of the
/// few rows found: on every connection that serves reads (the inline ones keep the planner
/// stability guarantee, which drops ranges SQLite would otherwise derive from bound values),
/// the plan searches an index or the primary key and never scans the table. A hand-written
/// case per form would have missed the lost GLOB range until someone thought of that form.
#[tokio::test]
async fn generated_selective_filters_search_an_index_on_every_read_connection() {
    let (t, _) = books().await;
    t.app.store.refresh_statistics().await.unwrap();
    let engine = t.engine();
    let (book, _) = engine.model.type_by_name("Book").unwrap();
    let r = FindRenderer { model: &engine.model, app: &engine.app, dialect: engine.store.dialect() };
    let selection = arcbase::plan::read::ObjectSelection::new(book);
    let seed = 0x005e_ed0f_91a4_u64;
    let mut rng = Rng(seed);
    for case in 0..150 {
        let sel = selective(&mut rng);
        let cond = match rng.below(5) {
            0 => sel,
            1 => format!("{sel} AND {}", broad(&mut rng)),
            2 => format!("{} AND ({sel})", broad(&mut rng)),
            3 => format!("({sel}) AND ({} OR {})", broad(&mut rng), broad(&mut rng)),
            _ => format!("{} AND {sel} AND NOT ({})", broad(&mut rng), broad(&mut rng)),
        };
        let sort = rng.pick(&["", " SORT title", " SORT title DESC", " SORT hypi.id DESC", " SORT pages, title"]);
        let arcql = format!("{cond}{sort}");
        let filter = plan_query(&engine.model, book, &arcql).unwrap_or_else(|e| panic!("{arcql}: {e:?}"));
        let sql = r.select(&first_page(book, &filter), Output::Documents(&selection));
        let plans = t.app.store.query_plans(&sql).await.unwrap();
        assert!(plans.len() >= 2, "the inline and the pool's connections: {plans:?}");
        for p in &plans {
            // `(hypi_instance=? AND title>? ...)`: a key range past the instance, whose rows
            // are all the type's (a SEARCH on `hypi_instance=?` alone walks the whole index).
            let narrowed = p.lines().any(|l| {
                l.contains("SEARCH t0 USING")
                    && l.split_once("(hypi_instance=? AND ").is_some_and(|(_, r)| !r.is_empty())
            });
            assert!(
                narrowed && !p.contains("SCAN t0"),
                "case {case} (seed {seed:#x}): `{arcql}` does not search an index:\n{p}\n{}",
                sql.text
            );
        }
    }
}
