//! SQLite reads on the calling thread (`store/inline.rs`): short reads are answered there, a
//! read past the inline budget is stopped and answered by the pool (and its text goes there
//! directly afterwards), the statement's own budget still stops a read, every committed write
//! is seen, and a task whose reads all finish at once still gives its thread back. These are
//! SQLite's own paths: they run the same under either CI backend.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/rng.rs"]
mod rng;

use arcbase::sql::{Dialect, Sql};
use arcbase::store::{Budgets, Store, StoreError};
use arcbase::value::SqlValue;

async fn open(dir: &tempfile::TempDir, name: &str, budgets: Budgets) -> Store {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    Store::open_with(&url, budgets).await.unwrap()
}

/// Counts to `n` in SQLite's virtual machine (about 0.2 s per million on this machine).
fn counting(n: u64) -> Sql {
    Sql::raw(
        Dialect::Sqlite,
        &format!(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {n}) SELECT COUNT(*) FROM r"
        ),
    )
}

#[tokio::test]
async fn short_reads_run_here_and_a_long_one_moves_to_the_pool_with_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    // An inline budget of 40 ms, well apart from both kinds of read here: a short one that runs
    // on the pool (two thread hops, which on a loaded 2-core CI machine took more than the
    // default 2 ms) and a long one (about 0.6 s on this machine).
    let store = open(&dir, "a.db", Budgets { sqlite_inline: Duration::from_millis(40), ..Budgets::default() }).await;
    let before = store.read_figures().unwrap();
    let one = store.fetch_rows(&Sql::raw(Dialect::Sqlite, "SELECT 1, 'x', 2.5, NULL")).await.unwrap();
    assert_eq!(one, vec![vec![SqlValue::Int(1), SqlValue::Text("x".into()), SqlValue::Real(2.5), SqlValue::Null]]);
    let after = store.read_figures().unwrap();
    assert_eq!(after.inline, before.inline + 1, "{after:?}");
    assert_eq!(after.pool, before.pool);

    // Far past the inline budget: stopped, then answered in full by the pool.
    let long = counting(3_000_000);
    let rows = store.fetch_rows(&long).await.unwrap();
    assert_eq!(rows[0][0], SqlValue::Int(3_000_000));
    let moved = store.read_figures().unwrap();
    assert_eq!(moved.past_budget, after.past_budget + 1, "{moved:?}");
    // The same text again goes straight to the pool: it is not stopped a second time.
    let rows = store.fetch_rows(&long).await.unwrap();
    assert_eq!(rows[0][0], SqlValue::Int(3_000_000));
    let again = store.read_figures().unwrap();
    assert_eq!(again.past_budget, moved.past_budget, "{again:?}");
    assert_eq!(again.pool, moved.pool + 1, "{again:?}");
    // Other texts still run here.
    store.fetch_rows(&Sql::raw(Dialect::Sqlite, "SELECT 2")).await.unwrap();
    assert_eq!(store.read_figures().unwrap().inline, again.inline + 1);

    // A text is sent to the pool while its last run there was long, and comes back once a run
    // there is short (the same text, a smaller bound).
    let up_to = |n: i64| {
        let mut s = Sql::new(Dialect::Sqlite);
        s.push("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ")
            .bind(n)
            .push(") SELECT COUNT(*) FROM r");
        s
    };
    assert_eq!(store.fetch_rows(&up_to(3_000_000)).await.unwrap()[0][0], SqlValue::Int(3_000_000));
    let a = store.read_figures().unwrap();
    assert_eq!(a.past_budget, again.past_budget + 1, "{a:?}");
    assert_eq!(store.fetch_rows(&up_to(10)).await.unwrap()[0][0], SqlValue::Int(10));
    let b = store.read_figures().unwrap();
    assert_eq!((b.pool, b.inline), (a.pool + 1, a.inline), "straight to the pool, where it is short: {b:?}");
    assert_eq!(store.fetch_rows(&up_to(10)).await.unwrap()[0][0], SqlValue::Int(10));
    let c = store.read_figures().unwrap();
    assert_eq!((c.pool, c.inline), (b.pool, b.inline + 1), "back on the calling thread: {c:?}");
    // Only reads run here: a statement that writes is handed to the pool's connections.
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE t (x BIGINT)")).await.unwrap();
    let f = store.read_figures().unwrap();
    let rows = store.fetch_rows(&Sql::raw(Dialect::Sqlite, "INSERT INTO t (x) VALUES (7) RETURNING x")).await.unwrap();
    assert_eq!(rows, vec![vec![SqlValue::Int(7)]]);
    let g = store.read_figures().unwrap();
    assert_eq!((g.inline, g.handed_back), (f.inline, f.handed_back + 1), "{g:?}");
    let pragma = store.fetch_rows(&Sql::raw(Dialect::Sqlite, "PRAGMA mmap_size")).await.unwrap();
    assert_eq!(pragma, vec![vec![SqlValue::Int(0)]]);
    assert_eq!(store.read_figures().unwrap().inline, g.inline + 1, "a pragma that reads runs here");
    store.close().await;
}

#[tokio::test]
async fn the_statement_budget_still_stops_a_read() {
    let dir = tempfile::tempdir().unwrap();
    // The statement's budget shorter than the inline one: the inline read is stopped by it.
    let tight =
        Budgets { statement: Duration::from_millis(30), sqlite_inline: Duration::from_secs(5), ..Budgets::default() };
    let store = open(&dir, "b.db", tight).await;
    let started = Instant::now();
    let e = store.fetch_rows(&counting(1_000_000_000)).await.unwrap_err();
    assert!(matches!(e, StoreError::Timeout(30)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped after {:?}", started.elapsed());
    let f = store.read_figures().unwrap();
    assert_eq!((f.pool, f.past_budget), (0, 0), "a timeout is not run again: {f:?}");
    store.close().await;

    // The inline budget shorter: moved to the pool, which stops it at the statement's budget
    // (what was left of it), not later.
    let store = open(&dir, "c.db", Budgets { statement: Duration::from_millis(200), ..Budgets::default() }).await;
    let started = Instant::now();
    let e = store.fetch_rows(&counting(1_000_000_000)).await.unwrap_err();
    assert!(matches!(e, StoreError::Timeout(200)), "{e:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "stopped after {took:?}");
    assert_eq!(store.read_figures().unwrap().past_budget, 1);
    // The byte bound holds on this path too.
    let big =
        Sql::raw(Dialect::Sqlite, "SELECT replace(hex(zeroblob(2500)), '0', 'x') FROM (SELECT 1 UNION ALL SELECT 2)");
    assert!(matches!(store.fetch_rows_within(&big, 8_000).await, Err(StoreError::TooLarge(8_000))));
    assert_eq!(store.fetch_rows_within(&big, 20_000).await.unwrap().len(), 2);
    store.close().await;
}

/// A read prepared once is not prepared again for new values. SQLite is built here with its
/// value statistics (`SQLITE_ENABLE_STAT4`), under which, by default, binding a new value to a
/// parameter compared with an indexed column expires the statement, and the next step parses
/// and plans it again (a quarter of a SQLite `find`'s CPU). The inline connections keep the
/// query planner stability guarantee: one plan per text, whatever the values, and the same
/// answers.
#[tokio::test]
async fn a_read_is_not_prepared_again_for_new_values() {
    let dir = tempfile::tempdir().unwrap();
    // A generous inline budget: on a loaded machine no read moves to the pool.
    let store = open(&dir, "q.db", Budgets { sqlite_inline: Duration::from_secs(1), ..Budgets::default() }).await;
    store
        .execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE m (id INTEGER PRIMARY KEY, owner TEXT, score INTEGER)"))
        .await
        .unwrap();
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE INDEX m_owner ON m (owner, score)")).await.unwrap();
    // A skewed table, so that the statistics have something to say about each value.
    store
        .execute(&Sql::raw(
            Dialect::Sqlite,
            "INSERT INTO m (owner, score) SELECT CASE WHEN i % 10 = 0 THEN 'a' || (i % 7) ELSE 'big' END, i % 100 \
             FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5000) SELECT i FROM r)",
        ))
        .await
        .unwrap();
    store.execute(&Sql::raw(Dialect::Sqlite, "ANALYZE")).await.unwrap();
    let stat4 = store.fetch_rows(&Sql::raw(Dialect::Sqlite, "SELECT COUNT(*) FROM sqlite_stat4")).await.unwrap();
    assert!(matches!(stat4[0][0], SqlValue::Int(n) if n > 0), "no value statistics to plan by: {stat4:?}");
    let count = |owner: &str, above: i64| {
        let mut s = Sql::new(Dialect::Sqlite);
        s.push("SELECT COUNT(*) FROM m WHERE owner = ").bind(owner).push(" AND score > ").bind(above);
        s
    };
    // The first run prepares the text (and may find statistics to load).
    store.fetch_rows(&count("a1", 0)).await.unwrap();
    let before = store.read_figures().unwrap();
    for i in 0..40i64 {
        let owner = if i % 2 == 0 { "big".to_string() } else { format!("a{}", i % 7) };
        let rows = store.fetch_rows(&count(&owner, i)).await.unwrap();
        let expected = (1..=5000i64)
            .filter(|n| {
                let o = if n % 10 == 0 { format!("a{}", n % 7) } else { "big".to_string() };
                o == owner && n % 100 > i
            })
            .count();
        assert_eq!(rows, vec![vec![SqlValue::Int(expected as i64)]], "owner {owner}, score > {i}");
    }
    let after = store.read_figures().unwrap();
    assert_eq!(after.inline, before.inline + 40, "{after:?}");
    assert_eq!(after.reprepared, before.reprepared, "prepared again for new values: {after:?}");
    store.close().await;
}

/// Writers and readers at once on two worker threads: each reader sees every write committed
/// before its read began (the inline connections are other connections than the writer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_write_is_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "d.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE w (task BIGINT, n BIGINT)")).await.unwrap();
    let tasks: Vec<_> = (0..4i64)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 1..=100i64 {
                    let mut ins = Sql::new(Dialect::Sqlite);
                    ins.push("INSERT INTO w (task, n) VALUES (").bind(task).push(", ").bind(n).push(")");
                    store.execute(&ins).await.unwrap();
                    let mut count = Sql::new(Dialect::Sqlite);
                    count.push("SELECT COUNT(*), MAX(n) FROM w WHERE task = ").bind(task);
                    let rows = store.fetch_rows(&count).await.unwrap();
                    assert_eq!(rows[0], vec![SqlValue::Int(n), SqlValue::Int(n)], "task {task} after write {n}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let f = store.read_figures().unwrap();
    // Most reads ran inline; a loaded machine may push one past the 2 ms inline budget (CI
    // saw 398 of 400 inline, one moved to the pool), which then ran there, checked the same.
    assert!(f.inline >= 300 && f.inline + f.pool >= 390, "the reads ran inline: {f:?}");
    store.close().await;
}

/// One thread, one task that only reads: without giving its thread back now and then (tokio's
/// cooperative budget), the timer below would never run while the loop does.
#[tokio::test]
async fn a_task_whose_reads_finish_at_once_still_lets_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "e.db", Budgets::default()).await;
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.store(true, Ordering::Release);
    });
    let one = Sql::raw(Dialect::Sqlite, "SELECT 1");
    let started = Instant::now();
    let mut reads = 0u64;
    while !fired.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(3) {
        store.fetch_rows(&one).await.unwrap();
        reads += 1;
    }
    assert!(fired.load(Ordering::Acquire), "the timer never ran during {reads} reads");
    assert!(started.elapsed() < Duration::from_secs(1), "it ran only after {:?}", started.elapsed());
    assert!(store.read_figures().unwrap().inline >= reads);
    store.close().await;
}

/// Waits until the file has gone unwritten long enough for reads to keep a snapshot.
async fn quiet() {
    tokio::time::sleep(Duration::from_millis(80)).await;
}

fn count_of(table: &str) -> Sql {
    Sql::raw(Dialect::Sqlite, &format!("SELECT COUNT(*) FROM {table}"))
}

/// `tasks` tasks at once, each reading `reads` times the count of `table`.
async fn read_from_tasks(store: &Store, table: &'static str, tasks: usize, reads: usize) {
    let all: Vec<_> = (0..tasks)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                for _ in 0..reads {
                    s.fetch_rows(&count_of(table)).await.unwrap();
                }
            })
        })
        .collect();
    for t in all {
        t.await.unwrap();
    }
}

/// A passive checkpoint through `side`: (busy, frames in the WAL, frames checkpointed).
fn checkpoint(side: &rusqlite::Connection) -> (i64, i64, i64) {
    side.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap()
}

/// While nothing is written, reads share one read transaction (`snapshots` counts those begun);
/// a write ends it, and the next read sees the write.
#[tokio::test]
async fn reads_keep_a_snapshot_while_nothing_is_written_and_see_each_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "f.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE s (n BIGINT)")).await.unwrap();
    for round in 1..=5i64 {
        store.execute(&Sql::raw(Dialect::Sqlite, "INSERT INTO s VALUES (1)")).await.unwrap();
        // Right after the write, and again once the file is quiet: the write is seen.
        assert_eq!(store.fetch_rows(&count_of("s")).await.unwrap()[0][0], SqlValue::Int(round));
        quiet().await;
        let before = store.read_figures().unwrap();
        for _ in 0..50 {
            assert_eq!(store.fetch_rows(&count_of("s")).await.unwrap()[0][0], SqlValue::Int(round));
        }
        let after = store.read_figures().unwrap();
        assert_eq!(after.inline, before.inline + 50, "{after:?}");
        // One task reads, so one connection: one snapshot for the 50 reads.
        assert_eq!(after.snapshots, before.snapshots + 1, "{before:?} {after:?}");
    }
    store.close().await;
}

/// Two stores of one process on one file (two nodes, as tests run them): a write through one
/// ends the other's kept snapshots, and its next read sees the write.
#[tokio::test]
async fn a_write_through_another_store_on_the_file_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, "g.db", Budgets::default()).await;
    let b = open(&dir, "./g.db", Budgets::default()).await;
    a.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE t (n BIGINT)")).await.unwrap();
    for n in 1..=5i64 {
        a.execute(&Sql::raw(Dialect::Sqlite, "INSERT INTO t VALUES (1)")).await.unwrap();
        quiet().await;
        let before = b.read_figures().unwrap();
        assert_eq!(b.fetch_rows(&count_of("t")).await.unwrap()[0][0], SqlValue::Int(n));
        assert_eq!(b.fetch_rows(&count_of("t")).await.unwrap()[0][0], SqlValue::Int(n));
        let after = b.read_figures().unwrap();
        assert_eq!((after.inline, after.snapshots), (before.inline + 2, before.snapshots + 1), "{after:?}");
    }
    // And a write through the read pool (a statement that writes and returns rows), while the
    // other store keeps a snapshot.
    let twos = Sql::raw(Dialect::Sqlite, "SELECT COUNT(*) FROM t WHERE n = 2");
    quiet().await;
    assert_eq!(a.fetch_rows(&twos).await.unwrap()[0][0], SqlValue::Int(0));
    let upd = Sql::raw(Dialect::Sqlite, "UPDATE t SET n = 2 RETURNING n");
    assert_eq!(b.fetch_rows(&upd).await.unwrap().len(), 5);
    assert_eq!(a.fetch_rows(&twos).await.unwrap()[0][0], SqlValue::Int(5));
    assert_eq!(b.fetch_rows(&twos).await.unwrap()[0][0], SqlValue::Int(5));
    a.close().await;
    b.close().await;
}

/// No idle reader holds a snapshot from before a write: after writes and reads in turn, a
/// checkpoint copies every frame of the WAL back (a reader's older snapshot would keep the
/// frames written after it in the WAL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_snapshots_do_not_hold_back_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "h.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE c (n BIGINT, pad TEXT)")).await.unwrap();
    let side = rusqlite::Connection::open(dir.path().join("h.db")).unwrap();
    for round in 0..10 {
        // Several readers at once, each keeping its snapshot once the file is quiet.
        quiet().await;
        read_from_tasks(&store, "c", 8, 20).await;
        let mut ins = Sql::new(Dialect::Sqlite);
        ins.push("INSERT INTO c SELECT value, printf('%.500c', 'x') FROM generate_series(1, 50)");
        if store.execute(&ins).await.is_err() {
            // No generate_series in this build: a recursive count instead.
            let mut ins = Sql::new(Dialect::Sqlite);
            ins.push("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 50) ");
            ins.push("INSERT INTO c SELECT i, printf('%.500c', 'x') FROM r");
            store.execute(&ins).await.unwrap();
        }
        let (busy, log, done) = checkpoint(&side);
        assert_eq!((busy, done), (0, log), "round {round}: {log} frames in the WAL, {done} checkpointed");
    }
    assert!(store.read_figures().unwrap().snapshots >= 10);
    assert_eq!(store.fetch_rows(&count_of("c")).await.unwrap()[0][0], SqlValue::Int(500));
    store.close().await;
}

/// While a write transaction is open no read keeps a snapshot, however long it stays open (the
/// checkpoint after its commit could not copy back what a snapshot kept from before it needs);
/// once it has committed and the file is quiet, reads keep one again and see the write.
#[tokio::test]
async fn no_snapshot_is_kept_while_a_write_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "i.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE x (n BIGINT)")).await.unwrap();
    quiet().await;
    let mut tx = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut tx, &Sql::raw(Dialect::Sqlite, "INSERT INTO x VALUES (1)")).await.unwrap();
    let before = store.read_figures().unwrap();
    for _ in 0..4 {
        quiet().await;
        assert_eq!(store.fetch_rows(&count_of("x")).await.unwrap()[0][0], SqlValue::Int(0));
    }
    let during = store.read_figures().unwrap();
    assert_eq!((during.inline, during.snapshots), (before.inline + 4, before.snapshots), "{during:?}");
    tx.commit().await.unwrap();
    assert_eq!(store.fetch_rows(&count_of("x")).await.unwrap()[0][0], SqlValue::Int(1));
    quiet().await;
    assert_eq!(store.fetch_rows(&count_of("x")).await.unwrap()[0][0], SqlValue::Int(1));
    assert_eq!(store.read_figures().unwrap().snapshots, during.snapshots + 1);
    store.close().await;
}

/// A `SELECT` run on the pool writes nothing, so it leaves the kept snapshots alone; a
/// statement on the pool that does write ends them.
#[tokio::test]
async fn a_select_on_the_pool_ends_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "j.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE y (n BIGINT)")).await.unwrap();
    // Past the inline budget: once run there, the text goes to the pool directly.
    let long = Sql::raw(
        Dialect::Sqlite,
        "SELECT COUNT(*) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000000) SELECT i FROM r)",
    );
    store.fetch_rows(&long).await.unwrap();
    quiet().await;
    store.fetch_rows(&count_of("y")).await.unwrap();
    let kept = store.read_figures().unwrap();
    store.fetch_rows(&long).await.unwrap();
    quiet().await;
    store.fetch_rows(&count_of("y")).await.unwrap();
    let after = store.read_figures().unwrap();
    assert_eq!(after.pool, kept.pool + 1, "{after:?}");
    assert_eq!(after.snapshots, kept.snapshots, "the pool's SELECT ended the kept snapshot: {after:?}");
    // A statement that is not a SELECT counts as a write, even one that changes nothing.
    store.fetch_rows(&Sql::raw(Dialect::Sqlite, "UPDATE y SET n = 1 WHERE n = 2 RETURNING n")).await.unwrap();
    quiet().await;
    store.fetch_rows(&count_of("y")).await.unwrap();
    assert_eq!(store.read_figures().unwrap().snapshots, after.snapshots + 1);
    store.close().await;
}

/// A process that stops reading lets go of its snapshots within their age: another process's
/// writes are then checkpointed in full, and seen by the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_readers_let_go_of_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "k.db", Budgets::default()).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE z (n BIGINT)")).await.unwrap();
    quiet().await;
    read_from_tasks(&store, "z", 8, 20).await;
    assert!(store.read_figures().unwrap().snapshots >= 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let side = rusqlite::Connection::open(dir.path().join("k.db")).unwrap();
    side.execute_batch("INSERT INTO z VALUES (7)").unwrap();
    let (busy, log, done) = checkpoint(&side);
    assert_eq!((busy, done), (0, log), "{log} frames in the WAL, {done} checkpointed");
    assert_eq!(store.fetch_rows(&count_of("z")).await.unwrap()[0][0], SqlValue::Int(1));
    store.close().await;
}

/// A write that ends while a reader is out (its read began before) leaves that reader's
/// snapshot stale: it is ended when the reader is given back, not kept idle, where it would
/// hold back the checkpoint of the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_out_during_a_write_comes_back_without_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // A long inline budget: the read below (about 0.1 s) runs here.
    let budgets = Budgets { sqlite_inline: Duration::from_secs(2), ..Budgets::default() };
    let store = open(&dir, "l.db", budgets).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE o (n BIGINT)")).await.unwrap();
    store.execute(&Sql::raw(Dialect::Sqlite, "INSERT INTO o VALUES (1)")).await.unwrap();
    let side = rusqlite::Connection::open(dir.path().join("l.db")).unwrap();
    side.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    quiet().await;
    let before = store.read_figures().unwrap();
    let reader = {
        let s = store.clone();
        tokio::spawn(async move {
            let long = Sql::raw(
                Dialect::Sqlite,
                "SELECT COUNT(*) FROM o, (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 600000) SELECT i FROM r)",
            );
            s.fetch_rows(&long).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    store.execute(&Sql::raw(Dialect::Sqlite, "INSERT INTO o VALUES (2)")).await.unwrap();
    assert_eq!(reader.await.unwrap()[0][0], SqlValue::Int(600_000));
    let after = store.read_figures().unwrap();
    assert_eq!(after.inline, before.inline + 1, "the long read ran inline, its write alongside: {after:?}");
    let (busy, log, done) = checkpoint(&side);
    assert_eq!((busy, done), (0, log), "{log} frames in the WAL, {done} checkpointed");
    store.close().await;
}

/// Generated sequences of writes and reads over two stores of one process on one file, against
/// a model of the table: every write path (a store's write, a write transaction, an `UPDATE ...
/// RETURNING` through the read pool) on either store, then reads on either, some after the file
/// has gone quiet (so that they keep snapshots). Each read must give the model's count and sum;
/// a failure names its seed and step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_writes_and_reads_on_two_stores_agree_with_a_model() {
    for seed in [0x5eed_0001u64, 0x5eed_0002, 0x5eed_0003] {
        let dir = tempfile::tempdir().unwrap();
        let stores = [open(&dir, "m.db", Budgets::default()).await, open(&dir, "./m.db", Budgets::default()).await];
        stores[0].execute(&Sql::raw(Dialect::Sqlite, "CREATE TABLE m (v BIGINT)")).await.unwrap();
        let mut rng = rng::Rng(seed);
        let (mut count, mut sum) = (0i64, 0i64);
        let read = Sql::raw(Dialect::Sqlite, "SELECT COUNT(*), COALESCE(SUM(v), 0) FROM m");
        for step in 0..80 {
            let s = &stores[rng.index(2)];
            match rng.below(10) {
                0 | 1 => {
                    let v = rng.below(100) as i64;
                    let mut ins = Sql::new(Dialect::Sqlite);
                    ins.push("INSERT INTO m VALUES (").bind(v).push(")");
                    s.execute(&ins).await.unwrap();
                    (count, sum) = (count + 1, sum + v);
                }
                2 => {
                    let v = rng.below(100) as i64;
                    let mut tx = s.begin_write().await.unwrap();
                    let mut ins = Sql::new(Dialect::Sqlite);
                    ins.push("INSERT INTO m VALUES (").bind(v).push(")");
                    arcbase::store::tx_execute(&mut tx, &ins).await.unwrap();
                    tx.commit().await.unwrap();
                    (count, sum) = (count + 1, sum + v);
                }
                3 => {
                    let upd = Sql::raw(Dialect::Sqlite, "UPDATE m SET v = v + 1 RETURNING v");
                    assert_eq!(s.fetch_rows(&upd).await.unwrap().len() as i64, count, "seed {seed:#x} step {step}");
                    sum += count;
                }
                4 => quiet().await,
                _ => {
                    let rows = s.fetch_rows(&read).await.unwrap();
                    assert_eq!(rows[0], vec![SqlValue::Int(count), SqlValue::Int(sum)], "seed {seed:#x} step {step}");
                }
            }
        }
        let kept: u64 = stores.iter().map(|s| s.read_figures().unwrap().snapshots).sum();
        assert!(kept > 0, "seed {seed:#x}: no read kept a snapshot, so the sequence tested nothing of them");
        for s in &stores {
            s.close().await;
        }
    }
}
