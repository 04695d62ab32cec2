//! PostgreSQL reads on their own connections (`src/store/pg.rs`), watched through a proxy that
//! parses what the client sends: a read costs one round trip (sqlx's pool sent a `Sync` and
//! waited for the answer each time a connection came back to it: two per read); connections
//! that died while idle (a server restart, here the proxy dropping them all) are replaced
//! without failing the read; a read cut off mid-statement closes its connection instead of
//! lending it out with the statement's leftovers. PostgreSQL only: started by the test harness,
//! skipped loudly when it is missing outside CI.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arcbase::sql::{Dialect, Sql, SqlValue};
use arcbase::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of the test cluster that counts the frontend's `Sync` messages and
/// the connections the client closed, and can drop every connection at once.
struct Proxy {
    port: u16,
    syncs: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    closed_by_client: Arc<AtomicUsize>,
    kill: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            syncs: Arc::default(),
            opened: Arc::default(),
            closed_by_client: Arc::default(),
            kill: Arc::default(),
        };
        let (syncs, opened, closed, kill) =
            (p.syncs.clone(), p.opened.clone(), p.closed_by_client.clone(), p.kill.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                opened.fetch_add(1, Ordering::SeqCst);
                let (tx, rx) = tokio::sync::oneshot::channel();
                kill.lock().unwrap().push(tx);
                tokio::spawn(pump(client, server, syncs.clone(), closed.clone(), rx));
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

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }
}

/// Copy both ways; parse the client's side into messages (the first, the startup message, has
/// no type byte) and count those of type `S`.
async fn pump(
    client: TcpStream,
    server: TcpStream,
    syncs: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    kill: tokio::sync::oneshot::Receiver<()>,
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
                    syncs.fetch_add(1, Ordering::SeqCst);
                }
                pending.drain(..head + len);
                started = true;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = kill => {}
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
