//! The operations layer called directly, with no HTTP and no GraphQL: what every front door
//! stands on. Paging rules, upsert validation and access are the operations' own; the change
//! feed is read in commit order, never skipping a transaction that commits late.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arcbase::access::Viewer;
use arcbase::error::ErrorCode;
use arcbase::feed::ChangeOp;
use arcbase::ops::changes::FeedReader;
use arcbase::ops::read::{FindArgs, GetArgs};
use arcbase::ops::upsert::UpsertArgs;
use arcbase::ops::{Caller, Paging};
use arcbase::plan::read::{HypiField, ObjectSelection};
use common::*;
use serde_json::json;

fn caller(viewer: Viewer) -> Caller {
    Caller {
        instance: "default".into(),
        viewer,
        anonymous_registrations: false,
        jwt_secret: Arc::from(&b"s"[..]),
        client: None,
        guards: Arc::new(arcbase::ops::throttle::Guards::new(&Default::default())),
        hyper: None,
        pending: Default::default(),
        fresh: false,
    }
}

fn ids_only(type_idx: usize) -> ObjectSelection {
    let mut s = ObjectSelection::new(type_idx);
    s.add_hypi(&[HypiField::Id]);
    s
}

#[tokio::test]
async fn find_pages_by_keyset_and_checks_its_arguments() {
    let t = TestApp::new(EXAMPLE).await;
    let engine = t.engine().clone();
    let admin = caller(Viewer::Admin);
    let values = json!({ "Book": (0..7).map(|i| json!({ "hypi": { "id": format!("b{i}") }, "title": format!("t{i}"), "price": i })).collect::<Vec<_>>() });
    arcbase::ops::upsert::upsert(&engine, &admin, &UpsertArgs { values }).await.unwrap();
    let book = engine.type_index("Book").unwrap();
    let args = |paging: Paging| FindArgs {
        type_idx: book,
        arcql: "price >= 1 SORT price ASC".into(),
        paging,
        include_trashed: false,
        selection: ids_only(book).into(),
        want_next_offsets: true,
        want_previous_offsets: false,
        want_has_previous: true,
        want_has_next: true,
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let c = arcbase::ops::read::find(
            &engine,
            &admin,
            &args(Paging { first: Some(2), after: after.clone(), ..Default::default() }),
        )
        .await
        .unwrap();
        assert_eq!(c.page_info.page_limit, 2);
        seen.extend(c.edges.iter().map(|e| e.cursor.clone()));
        let offsets = c.page_info.next_offsets.clone().unwrap();
        if c.page_info.has_next_page {
            assert_eq!(offsets.first(), Some(&c.page_info.end_cursor));
        } else {
            assert!(offsets.is_empty());
        }
        if !c.page_info.has_next_page {
            break;
        }
        after = Some(c.page_info.end_cursor.clone());
    }
    assert_eq!(seen, ["b1", "b2", "b3", "b4", "b5", "b6"]);
    for (paging, wants) in [
        (Paging { first: Some(1), last: Some(1), ..Default::default() }, "'first' and 'last'"),
        (Paging { last: Some(1), page: Some(2), ..Default::default() }, "'page' cannot be used with 'last'"),
        (Paging { page: Some(0), ..Default::default() }, "'page' counts from 1"),
        (Paging { after: Some("nope".into()), ..Default::default() }, "cursor 'nope' names no Book"),
    ] {
        let e = arcbase::ops::read::find(&engine, &admin, &args(paging.clone())).await.unwrap_err();
        assert!(e.message.contains(wants), "{paging:?}: {e:?}");
    }
}

#[tokio::test]
async fn upsert_validates_before_writing_and_access_hides_what_is_not_yours() {
    let t = TestApp::new("type Note { text: String!  n: Int }").await;
    let engine = t.engine().clone();
    let admin = caller(Viewer::Admin);
    let note = engine.type_index("Note").unwrap();
    for (values, code, wants) in [
        (json!({ "Note": [{ "n": 1 }] }), ErrorCode::Validation, "Note.text is required"),
        (json!({ "Note": [{ "text": "a", "n": "one" }] }), ErrorCode::Validation, "Note.n"),
        (json!({ "Note": [{ "text": "a", "zz": 1 }] }), ErrorCode::UnknownField, "Note.zz"),
        (
            json!({ "Note": (0..26).map(|_| json!({ "text": "a" })).collect::<Vec<_>>() }),
            ErrorCode::LimitExceeded,
            "at most 25",
        ),
        (json!({ "Nope": [{}] }), ErrorCode::Validation, "unknown type 'Nope'"),
    ] {
        let e =
            arcbase::ops::upsert::upsert(&engine, &admin, &UpsertArgs { values: values.clone() }).await.unwrap_err();
        assert_eq!(e.code, code, "{values}: {e:?}");
        assert!(e.message.contains(wants), "{values}: {e:?}");
    }
    assert_eq!(t.sql_int("SELECT COUNT(*) FROM \"default__Note\"").await, 0, "nothing was written");

    // Two accounts: each sees only its own notes (OWNER is the default).
    let ann = caller(Viewer::Account("ann".into()));
    let bob = caller(Viewer::Account("bob".into()));
    let r = arcbase::ops::upsert::upsert(
        &engine,
        &ann,
        &UpsertArgs { values: json!({ "Note": [{ "hypi": { "id": "n1" }, "text": "mine" }] }) },
    )
    .await
    .unwrap();
    assert_eq!(r[0].created_by.as_deref(), Some("ann"));
    let get = |id: &str| GetArgs {
        type_idx: note,
        id: id.into(),
        include_trashed: false,
        selection: ids_only(note).into(),
        statements: None,
    };
    assert!(arcbase::ops::read::get(&engine, &ann, &get("n1")).await.unwrap().is_some());
    assert!(arcbase::ops::read::get(&engine, &bob, &get("n1")).await.unwrap().is_none());
    // The same with the statements kept between requests (as the operation cache keeps them
    // for a plan): rendered for Ann first, bound for Bob, Ann again, an admin and no one.
    let kept = std::sync::Arc::new(arcbase::ops::read::GetStatements::default());
    let get_kept = |id: &str| GetArgs { statements: Some(kept.clone()), ..get(id) };
    for (who, sees) in [(&ann, true), (&bob, false), (&ann, true), (&admin, true), (&caller(Viewer::Anonymous), false)]
    {
        let found = arcbase::ops::read::get(&engine, who, &get_kept("n1")).await.unwrap();
        assert_eq!(found.is_some(), sees, "{:?}", who.viewer);
    }
    assert!(arcbase::ops::read::get(&engine, &ann, &get_kept("n2")).await.unwrap().is_none(), "another id is bound");
    // Bob cannot take the id over either.
    let e = arcbase::ops::upsert::upsert(
        &engine,
        &bob,
        &UpsertArgs { values: json!({ "Note": [{ "hypi": { "id": "n1" }, "text": "x" }] }) },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}");
    let anon = caller(Viewer::Anonymous);
    let e = arcbase::ops::upsert::upsert(&engine, &anon, &UpsertArgs { values: json!({ "Note": [{ "text": "x" }] }) })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn the_feed_reader_delivers_every_change_in_order() {
    let t = TestApp::new("type Note { text: String }").await;
    let engine = t.engine().clone();
    let admin = caller(Viewer::Admin);
    let mut reader = FeedReader::after(0);
    assert!(reader.next(&engine.store, 100).await.unwrap().is_empty());
    for i in 0..5 {
        arcbase::ops::upsert::upsert(
            &engine,
            &admin,
            &UpsertArgs { values: json!({ "Note": [{ "hypi": { "id": format!("n{i}") }, "text": "x" }] }) },
        )
        .await
        .unwrap();
    }
    arcbase::ops::bulk::trash(
        &engine,
        &admin,
        &arcbase::ops::bulk::TrashArgs {
            type_idx: engine.type_index("Note").unwrap(),
            arcql: "hypi.id = 'n0'".into(),
            restore: false,
        },
    )
    .await
    .unwrap();
    let got = reader.next(&engine.store, 3).await.unwrap();
    assert_eq!(got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["n0", "n1", "n2"]);
    let got = reader.next(&engine.store, 100).await.unwrap();
    assert_eq!(
        got.iter().map(|c| (c.id.as_str(), c.op)).collect::<Vec<_>>(),
        [("n3", ChangeOp::Insert), ("n4", ChangeOp::Insert), ("n0", ChangeOp::Trash)]
    );
    assert_eq!(got.last().unwrap().version, 2);
    assert!(reader.next(&engine.store, 100).await.unwrap().is_empty());
    assert_eq!(arcbase::ops::changes::head(&engine.store).await.unwrap(), reader.position);
    let hist = arcbase::ops::changes::history(&engine.store, "default", 2, reader.position, 100).await.unwrap();
    assert_eq!(hist.len(), 4);
}

/// PostgreSQL takes a position when the change row is written, not when its transaction
/// commits: a reader must wait at the gap instead of skipping the late commit, and pass a gap
/// that a rolled-back transaction left once nothing can fill it.
#[tokio::test]
async fn the_feed_reader_never_skips_a_late_commit() {
    let Some(url) = pg::database_or_skip("the_feed_reader_never_skips_a_late_commit").await else { return };
    let t =
        TestApp::at("type Note { text: String }", None, Default::default(), tempfile::tempdir().unwrap(), &url).await;
    let store = t.engine().store.clone();
    let row = |id: &str| {
        arcbase::sql::Sql::with_binds(
            arcbase::sql::Dialect::Postgres,
            "INSERT INTO arcbase_changes (instance_id, type_name, object_id, operation, version, changed_at) VALUES ('default', 'Note', ?, 'insert', 1, 'now')",
            vec![id.into()],
        )
    };
    let mut reader = FeedReader::after(arcbase::ops::changes::head(&store).await.unwrap());
    // `late` takes the earlier position and stays open; `early` commits after it.
    let mut late = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut late, &row("late")).await.unwrap();
    let mut early = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut early, &row("early")).await.unwrap();
    early.commit().await.unwrap();
    assert!(reader.next(&store, 100).await.unwrap().is_empty(), "waits at the gap while `late` may commit");
    late.commit().await.unwrap();
    let got: Vec<String> = reader.next(&store, 100).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(got, ["late", "early"]);
    // A rolled-back position is passed once its transaction is over.
    let mut gone = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut gone, &row("gone")).await.unwrap();
    let mut kept = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut kept, &row("kept")).await.unwrap();
    kept.commit().await.unwrap();
    assert!(reader.next(&store, 100).await.unwrap().is_empty());
    drop(gone);
    // The rollback of a dropped transaction completes when its connection returns to the pool.
    let mut got = Vec::new();
    for _ in 0..50 {
        got = reader.next(&store, 100).await.unwrap();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(got.into_iter().map(|c| c.id).collect::<Vec<_>>(), ["kept"]);
}
