//! PostgreSQL connections (`src/store/pg.rs`), watched through a proxy that parses what the
//! client sends:
//!
//! - a read costs one round trip, and a write transaction one per statement plus its `BEGIN`
//!   and `COMMIT` (sqlx's pool sent a `Sync` and waited for the answer each time a connection
//!   came back to it: one more for each);
//! - connections that died while idle (a server restart, here the proxy dropping them all) are
//!   replaced without failing the read or the transaction that finds them dead;
//! - a read cut off mid-statement closes its connection instead of lending it out with the
//!   statement's leftovers; a transaction dropped without its `COMMIT` is rolled back, and its
//!   connection serves the next one;
//! - on a half-open network (the proxy swallowing everything on the connections open then), a
//!   statement ends at its budget and a grace instead of waiting for good, its connection is
//!   closed rather than sent a `ROLLBACK`, and a read runs again on a new connection.
//!
//! PostgreSQL only: started by the test harness, skipped loudly when it is missing outside CI.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arcbase::sql::{Dialect, Sql, SqlValue};
use arcbase::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of the test cluster that counts the frontend's `Sync` messages (the
/// end of an extended-protocol statement) and `Query` messages (a simple-protocol one: `BEGIN`,
/// `COMMIT`), each a round trip, and the connections the client closed, and can drop every
/// connection at once.
struct Proxy {
    port: u16,
    syncs: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    closed_by_client: Arc<AtomicUsize>,
    /// Stalled connections the server closed, the client having gone (see [`Proxy::stall_all`]).
    closed_by_server: Arc<AtomicUsize>,
    kill: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
    /// Set for each connection open at [`Proxy::stall_all`]: it forwards nothing more either way.
    stalls: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            syncs: Arc::default(),
            queries: Arc::default(),
            opened: Arc::default(),
            closed_by_client: Arc::default(),
            closed_by_server: Arc::default(),
            kill: Arc::default(),
            stalls: Arc::default(),
        };
        let counts = Counts {
            syncs: p.syncs.clone(),
            queries: p.queries.clone(),
            closed: p.closed_by_client.clone(),
            server_closed: p.closed_by_server.clone(),
        };
        let (opened, kill, stalls) = (p.opened.clone(), p.kill.clone(), p.stalls.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                opened.fetch_add(1, Ordering::SeqCst);
                let (tx, rx) = tokio::sync::oneshot::channel();
                kill.lock().unwrap().push(tx);
                let stalled = Arc::new(AtomicBool::new(false));
                stalls.lock().unwrap().push(stalled.clone());
                tokio::spawn(pump(client, server, counts.clone(), rx, stalled));
            }
        });
        p
    }

    /// Drop every connection now, as a server restart does.
    fn drop_all(&self) {
        for k in self.kill.lock().unwrap().drain(..) {
            let _ = k.send(());
        }
    }

    /// Every connection open now goes silent, its sockets open (a half-open network: a
    /// partition, a peer gone without a reset): what either side sends is swallowed, and when
    /// the client closes such a connection the server is not told (its socket stays open until
    /// the server closes it, counted in `closed_by_server`). Later connections are forwarded as
    /// before.
    fn stall_all(&self) {
        for s in self.stalls.lock().unwrap().drain(..) {
            s.store(true, Ordering::SeqCst);
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// Round trips so far: `Sync` and `Query` messages.
    fn round_trips(&self) -> usize {
        self.syncs.load(Ordering::SeqCst) + self.queries.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Counts {
    syncs: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    server_closed: Arc<AtomicUsize>,
}

/// Copy both ways; parse the client's side into messages (the first, the startup message, has
/// no type byte) and count those of type `S` and `Q`.
async fn pump(
    client: TcpStream,
    server: TcpStream,
    counts: Counts,
    kill: tokio::sync::oneshot::Receiver<()>,
    stalled: Arc<AtomicBool>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut pending: Vec<u8> = Vec::new();
        let mut started = false;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            loop {
                let head = usize::from(started);
                if pending.len() < head + 4 {
                    break;
                }
                let len = u32::from_be_bytes(pending[head..head + 4].try_into().unwrap()) as usize;
                if pending.len() < head + len {
                    break;
                }
                if started && pending[0] == b'S' {
                    counts.syncs.fetch_add(1, Ordering::SeqCst);
                }
                if started && pending[0] == b'Q' {
                    counts.queries.fetch_add(1, Ordering::SeqCst);
                }
                pending.drain(..head + len);
                started = true;
            }
            if !stalled.load(Ordering::SeqCst) && sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        counts.closed.fetch_add(1, Ordering::SeqCst);
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !stalled.load(Ordering::SeqCst) && cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(up, down, kill);
    tokio::select! {
        _ = &mut up => {
            // Across a partition the server never learns that the client went away: its side
            // stays open until the server itself ends the session.
            if stalled.load(Ordering::SeqCst) {
                tokio::select! {
                    _ = &mut down => { counts.server_closed.fetch_add(1, Ordering::SeqCst); }
                    _ = &mut kill => {}
                }
            }
        }
        _ = &mut down => {
            // Nor does the client learn that the server ended it.
            if stalled.load(Ordering::SeqCst) {
                counts.server_closed.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = &mut up => {}
                    _ = &mut kill => {}
                }
            }
        }
        _ = &mut kill => {}
    }
}

fn one(store_rows: Vec<Vec<SqlValue>>) -> i64 {
    match store_rows.as_slice() {
        [row] => match row.as_slice() {
            [SqlValue::Int(v)] => *v,
            other => panic!("one integer expected, got {other:?}"),
        },
        other => panic!("one row expected, got {other:?}"),
    }
}

async fn setup(test: &str) -> Option<(Proxy, Store)> {
    let url = common::pg::database_or_skip(test).await?;
    let database = url.rsplit('/').next().unwrap().to_string();
    let upstream = common::pg::cluster().unwrap().port;
    let proxy = Proxy::start(upstream).await;
    let store = Store::open(&proxy.url(&database)).await.unwrap();
    Some((proxy, store))
}

fn pick(i: i64) -> Sql {
    let mut s = Sql::new(Dialect::Postgres);
    s.push("SELECT ").bind(i).push("::bigint + 1");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_costs_one_round_trip() {
    let Some((proxy, store)) = setup("a_read_costs_one_round_trip").await else { return };
    // The text is prepared once on the connection (one more Sync), then each read is one.
    assert_eq!(one(store.fetch_rows(&pick(0)).await.unwrap()), 1);
    let before = proxy.syncs.load(Ordering::SeqCst);
    for i in 1..=200 {
        assert_eq!(one(store.fetch_rows(&pick(i)).await.unwrap()), i + 1);
    }
    let within = store.fetch_rows_within(&pick(7), 1 << 20).await.unwrap();
    assert_eq!(one(within), 8);
    let syncs = proxy.syncs.load(Ordering::SeqCst) - before;
    assert_eq!(syncs, 201, "one Sync per read and none on giving the connection back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_connections_that_died_while_idle() {
    let Some((proxy, store)) = setup("reads_survive_connections_that_died_while_idle").await else { return };
    // Several idle connections: concurrent reads open them.
    let reads: Vec<_> = (0..6)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let mut q = Sql::new(Dialect::Postgres);
                q.push("SELECT ").bind(i as i64).push("::bigint FROM pg_sleep(0.2)");
                one(s.fetch_rows(&q).await.unwrap())
            })
        })
        .collect();
    for (i, r) in reads.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), i as i64);
    }
    let opened = proxy.opened.load(Ordering::SeqCst);
    proxy.drop_all();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Every idle connection is gone; each read still gets its answer.
    for i in 0..20 {
        assert_eq!(one(store.fetch_rows(&pick(i)).await.unwrap()), i + 1, "read {i} after the restart");
    }
    assert!(proxy.opened.load(Ordering::SeqCst) > opened, "new connections were opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_off_closes_its_connection() {
    let Some((proxy, store)) = setup("a_read_cut_off_closes_its_connection").await else { return };
    assert_eq!(one(store.fetch_rows(&pick(1)).await.unwrap()), 2);
    let closed = proxy.closed_by_client.load(Ordering::SeqCst);
    let slow = Sql::raw(Dialect::Postgres, "SELECT 41::bigint FROM pg_sleep(3)");
    let cut = tokio::time::timeout(Duration::from_millis(300), store.fetch_rows(&slow)).await;
    assert!(cut.is_err(), "the slow read was cut off");
    // Its connection was closed, not given back with the statement's answer still to come.
    for _ in 0..50 {
        if proxy.closed_by_client.load(Ordering::SeqCst) > closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.closed_by_client.load(Ordering::SeqCst), closed + 1, "the cut-off read's connection closed");
    // The next reads get their own answers (not the cut-off statement's 41), at once.
    let started = std::time::Instant::now();
    for i in 0..10 {
        assert_eq!(one(store.fetch_rows(&pick(i)).await.unwrap()), i + 1);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "no read waited for the cut-off statement");
}

fn insert(k: i64) -> Sql {
    let mut s = Sql::new(Dialect::Postgres);
    s.push("INSERT INTO pgc_t (k) VALUES (").bind(k).push(")");
    s
}

fn count_of(k: Option<i64>) -> Sql {
    let mut s = Sql::new(Dialect::Postgres);
    s.push("SELECT COUNT(*)::bigint FROM pgc_t");
    if let Some(k) = k {
        s.push(" WHERE k = ").bind(k);
    }
    s
}

/// Wait (at most 5 s) until the test's one connection is back in the pool.
async fn idle_again(store: &Store) {
    for _ in 0..250 {
        if store.idle_connections() == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the connection did not come back: {:?} idle", store.idle_connections());
}

/// A transaction that holds its connection for `secs` seconds (the server sleeping), then
/// inserts `k` and commits.
fn holding(store: &Store, k: i64, secs: &str) -> tokio::task::JoinHandle<()> {
    let s = store.clone();
    let sleep = Sql::raw(Dialect::Postgres, &format!("SELECT 1::bigint FROM pg_sleep({secs})"));
    tokio::spawn(async move {
        let mut tx = s.begin_write().await.unwrap();
        assert_eq!(one(arcbase::store::tx_fetch(&mut tx, &sleep).await.unwrap()), 1);
        arcbase::store::tx_execute(&mut tx, &insert(k)).await.unwrap();
        tx.commit().await.unwrap();
    })
}

/// One transaction: insert `k`, read it back, commit.
async fn write(store: &Store, k: i64) -> Result<(), arcbase::store::StoreError> {
    let mut tx = store.begin_write().await?;
    arcbase::store::tx_execute(&mut tx, &insert(k)).await?;
    assert_eq!(one(arcbase::store::tx_fetch(&mut tx, &count_of(Some(k))).await?), 1);
    tx.commit().await
}

async fn with_table(test: &str) -> Option<(Proxy, Store)> {
    let (proxy, store) = setup(test).await?;
    store.execute(&Sql::raw(Dialect::Postgres, "CREATE TABLE pgc_t (k bigint PRIMARY KEY)")).await.unwrap();
    Some((proxy, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_transaction_costs_its_statements_and_no_more() {
    let Some((proxy, store)) = with_table("a_write_transaction_costs_its_statements_and_no_more").await else {
        return;
    };
    // The texts are prepared once on the connection, then each transaction is BEGIN, two
    // statements and COMMIT: four round trips.
    write(&store, 0).await.unwrap();
    let before = proxy.round_trips();
    for k in 1..=50 {
        write(&store, k).await.unwrap();
    }
    let trips = proxy.round_trips() - before;
    assert_eq!(trips, 50 * 4, "BEGIN, 2 statements, COMMIT and nothing on giving the connection back");
    assert_eq!(one(store.fetch_rows(&count_of(None)).await.unwrap()), 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_connections_that_died_while_idle() {
    let Some((proxy, store)) = with_table("writes_survive_connections_that_died_while_idle").await else { return };
    // Several idle connections: concurrent transactions open them.
    let txs: Vec<_> = (0..6).map(|i| holding(&store, 1000 + i, "0.2")).collect();
    for t in txs {
        t.await.unwrap();
    }
    let opened = proxy.opened.load(Ordering::SeqCst);
    proxy.drop_all();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Every idle connection is gone; each transaction still commits, sequential or concurrent.
    for k in 0..10 {
        write(&store, k).await.unwrap_or_else(|e| panic!("transaction {k} after the restart: {e}"));
    }
    let txs: Vec<_> = (10..20)
        .map(|k| {
            let s = store.clone();
            tokio::spawn(async move { write(&s, k).await.unwrap_or_else(|e| panic!("transaction {k}: {e}")) })
        })
        .collect();
    for t in txs {
        t.await.unwrap();
    }
    assert_eq!(one(store.fetch_rows(&count_of(None)).await.unwrap()), 26);
    assert!(proxy.opened.load(Ordering::SeqCst) > opened, "new connections were opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_is_rolled_back_and_its_connection_serves_on() {
    let Some((proxy, store)) = with_table("a_dropped_transaction_is_rolled_back_and_its_connection_serves_on").await
    else {
        return;
    };
    write(&store, 1).await.unwrap();
    let closed = proxy.closed_by_client.load(Ordering::SeqCst);
    let opened = proxy.opened.load(Ordering::SeqCst);
    // Dropped between statements: rolled back on its connection, which is kept.
    {
        let mut tx = store.begin_write().await.unwrap();
        arcbase::store::tx_execute(&mut tx, &insert(2)).await.unwrap();
    }
    // The ROLLBACK runs in the background; once it is answered the connection is idle again.
    idle_again(&store).await;
    for k in 3..8 {
        write(&store, k).await.unwrap();
    }
    assert_eq!(one(store.fetch_rows(&count_of(Some(2))).await.unwrap()), 0, "the dropped insert was rolled back");
    assert_eq!(one(store.fetch_rows(&count_of(None)).await.unwrap()), 6);
    assert_eq!(proxy.closed_by_client.load(Ordering::SeqCst), closed, "no connection was closed");
    assert_eq!(proxy.opened.load(Ordering::SeqCst), opened, "no connection was opened");
    // A statement that failed aborts the transaction; dropped, it is rolled back the same way.
    {
        let mut tx = store.begin_write().await.unwrap();
        arcbase::store::tx_execute(&mut tx, &insert(9)).await.unwrap();
        assert!(arcbase::store::tx_execute(&mut tx, &insert(1)).await.is_err(), "a duplicate key");
    }
    idle_again(&store).await;
    write(&store, 10).await.unwrap();
    assert_eq!(one(store.fetch_rows(&count_of(Some(9))).await.unwrap()), 0);
    assert_eq!(proxy.opened.load(Ordering::SeqCst), opened, "the failed transaction's connection served on");

    // Dropped mid-statement: its connection is closed (its answer is still to come), and the
    // next transactions do not wait for it.
    let cut = tokio::time::timeout(Duration::from_millis(300), async {
        let mut tx = store.begin_write().await.unwrap();
        arcbase::store::tx_execute(&mut tx, &insert(11)).await.unwrap();
        let slow = Sql::raw(Dialect::Postgres, "SELECT 41::bigint FROM pg_sleep(3)");
        arcbase::store::tx_fetch(&mut tx, &slow).await
    })
    .await;
    assert!(cut.is_err(), "the slow statement was cut off");
    for _ in 0..50 {
        if proxy.closed_by_client.load(Ordering::SeqCst) > closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        proxy.closed_by_client.load(Ordering::SeqCst),
        closed + 1,
        "the cut-off transaction's connection closed"
    );
    let started = std::time::Instant::now();
    for k in 12..17 {
        write(&store, k).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2), "no transaction waited for the cut-off statement");
    assert_eq!(one(store.fetch_rows(&count_of(Some(11))).await.unwrap()), 0, "the cut-off insert was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_find_a_connection_while_write_transactions_wait() {
    let Some((_proxy, store)) = with_table("reads_find_a_connection_while_write_transactions_wait").await else {
        return;
    };
    // More transactions than the pool has connections (4 per CPU, at least 4), each holding
    // its connection for 0.6 s.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let txs: Vec<_> = (0..(cpus * 4).clamp(4, 32) as i64 + 2).map(|k| holding(&store, k, "0.6")).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Reads do not wait for them: two connections are always left for reads.
    let started = std::time::Instant::now();
    for i in 0..5 {
        assert_eq!(one(store.fetch_rows(&pick(i)).await.unwrap()), i + 1);
    }
    assert!(started.elapsed() < Duration::from_millis(300), "reads waited {:?} for the writers", started.elapsed());
    for t in txs {
        t.await.unwrap();
    }
}

/// A half-open network: the connections open at that moment stop answering, their sockets
/// open. A statement in a transaction, a `COMMIT`, and a read on an idle connection each end
/// by the statement budget (here 300 ms) and `ANSWER_GRACE` (1 s) instead of waiting for good
/// (the statement as a timeout, the `COMMIT` as a write whose outcome is unknown);
/// the transactions' connections are closed (no `ROLLBACK` sent into the silence, no place
/// held), the read runs again on a new connection and is answered, and so do the next
/// transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_network_ends_statements_at_their_budget() {
    let test = "a_silent_network_ends_statements_at_their_budget";
    let Some(url) = common::pg::database_or_skip(test).await else { return };
    let database = url.rsplit('/').next().unwrap().to_string();
    let proxy = Proxy::start(common::pg::cluster().unwrap().port).await;
    let budgets = arcbase::store::Budgets {
        statement: Duration::from_millis(300),
        write: Duration::from_millis(1000),
        remote_wait: Duration::ZERO,
        ..Default::default()
    };
    let store = Store::open_with(&proxy.url(&database), budgets).await.unwrap();
    store.execute(&Sql::raw(Dialect::Postgres, "CREATE TABLE pgc_t (k bigint PRIMARY KEY)")).await.unwrap();
    write(&store, 1).await.unwrap();
    // Two transactions open, and an idle connection for the read.
    let mut statement_tx = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut statement_tx, &insert(2)).await.unwrap();
    let mut commit_tx = store.begin_write().await.unwrap();
    arcbase::store::tx_execute(&mut commit_tx, &insert(3)).await.unwrap();
    assert_eq!(one(store.fetch_rows(&count_of(None)).await.unwrap()), 1);
    assert_eq!(store.idle_connections(), Some(1), "the read's connection waits idle");
    let closed = proxy.closed_by_client.load(Ordering::SeqCst);
    proxy.stall_all();

    let bound = Duration::from_millis(300) + Duration::from_secs(1) + Duration::from_millis(1500);
    let timed = std::time::Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), arcbase::store::tx_execute(&mut statement_tx, &insert(4)))
        .await
        .expect("the statement waited on a silent connection")
        .unwrap_err();
    assert!(matches!(e, arcbase::store::StoreError::Timeout(300)), "{e:?}");
    // A COMMIT sent and never answered may have been written: not reported as a timeout
    // (which says nothing was).
    let e = tokio::time::timeout(Duration::from_secs(10), commit_tx.commit())
        .await
        .expect("COMMIT waited on a silent connection")
        .unwrap_err();
    assert!(matches!(e, arcbase::store::StoreError::CommitUnknown), "{e:?}");
    let api = arcbase::error::ApiError::from(e);
    assert!(api.message.contains("may or may not have been saved"), "{}", api.message);
    // hyper's REST routes say the same (not a bare 500).
    let hyper = arcbase::hyper::HyperError::from(arcbase::store::StoreError::CommitUnknown);
    assert!(hyper.status == 503 && hyper.msg.contains("may or may not have been saved"), "{hyper:?}");
    assert!(timed.elapsed() < bound * 2, "{:?}", timed.elapsed());
    drop(statement_tx);
    // Both transactions' connections closed (the client side of each went away).
    for _ in 0..100 {
        if proxy.closed_by_client.load(Ordering::SeqCst) >= closed + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.closed_by_client.load(Ordering::SeqCst), closed + 2, "the silent transactions' connections");
    // The server, told nothing, ends the two sessions whose transactions went quiet (and with
    // them their row locks) at `idle_in_transaction_session_timeout`: the write budget and a
    // grace, 2 s here. The idle session is left to TCP keepalive.
    let quiet = std::time::Instant::now();
    while proxy.closed_by_server.load(Ordering::SeqCst) < 2 && quiet.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(proxy.closed_by_server.load(Ordering::SeqCst), 2, "the server ended the abandoned transactions");
    assert!(timed.elapsed() < Duration::from_secs(2) * 4, "by their idle timeout: {:?}", timed.elapsed());

    // The read takes the idle (now silent) connection, gives up on it, and runs on a new one.
    let timed = std::time::Instant::now();
    let rows = tokio::time::timeout(Duration::from_secs(10), store.fetch_rows(&count_of(None)))
        .await
        .expect("the read waited on a silent connection")
        .unwrap();
    assert_eq!(one(rows), 1, "only the committed transaction's row");
    assert!(timed.elapsed() < bound, "{:?}", timed.elapsed());
    // New transactions commit on new connections at once.
    let timed = std::time::Instant::now();
    for k in 10..15 {
        write(&store, k).await.unwrap();
    }
    assert!(timed.elapsed() < Duration::from_secs(2), "{:?}", timed.elapsed());
    assert_eq!(one(store.fetch_rows(&count_of(None)).await.unwrap()), 6);
}
