//! Requests cut off at any moment (a client that goes away, a proxy that drops the
//! connection) never leave a pooled connection inside a transaction: writes cancelled at
//! random points of `BEGIN`, their statements and `COMMIT`, then every later write works.
//! (A lease dropped while its `BEGIN IMMEDIATE` was in flight once returned the writer to the
//! pool inside a transaction; every write after it failed with "cannot start a transaction
//! within a transaction".)

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use arcbase::sql::{Dialect, Sql};
use arcbase::store::{tx_execute, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_cut_off_anywhere_leave_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let url = if common::backend_is_postgres() {
        common::pg::fresh_database(common::pg::cluster().unwrap()).await
    } else {
        format!("sqlite://{}", dir.path().join("cancel.db").display())
    };
    let store = Store::open(&url).await.unwrap();
    let d = store.dialect();
    store.execute(&Sql::raw(d, "CREATE TABLE cut (x BIGINT)")).await.unwrap();
    let insert = |x: i64| {
        let mut s = Sql::new(d);
        s.push("INSERT INTO cut (x) VALUES (").bind(x).push(")");
        s
    };
    let heavy = Sql::raw(
        d,
        match d {
            Dialect::Sqlite => {
                "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20000) SELECT COUNT(*) FROM r"
            }
            Dialect::Postgres => "SELECT COUNT(*) FROM generate_series(1, 20000)",
        },
    );
    let mut rng = common::rng::Rng(0x9e37_79b9_7f4a_7c15);
    let mut cut = 0;
    for i in 0..400 {
        let after = Duration::from_micros(rng.below(3000));
        let (s, ins, heavy) = (store.clone(), insert(i), heavy.clone());
        let work = async move {
            let mut tx = s.begin_write().await?;
            tx_execute(&mut tx, &ins).await?;
            tx_execute(&mut tx, &heavy).await?;
            tx.commit().await
        };
        if tokio::time::timeout(after, work).await.is_err() {
            cut += 1;
        }
    }
    assert!(cut > 50, "most writes were cut off somewhere ({cut} of 400)");
    // Cleanups run in the background: give them a moment, then every write must work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..50 {
        store.execute(&insert(10_000 + i)).await.unwrap_or_else(|e| panic!("write {i} after the cut-offs: {e}"));
    }
    let n = store.fetch_rows(&Sql::raw(d, "SELECT COUNT(*) FROM cut WHERE x >= 10000")).await.unwrap();
    assert_eq!(n[0][0].as_i64(), Some(50));
}
