//! Benchmark helper for `bench/realtime.sh`: subscribers on one arcbase node, writes on another
//! (or the same), events timed from write to receipt.
//!
#![allow(clippy::unwrap_used)]
//! `cargo run --release --example realtime_bench -- WRITE_ADDR SUBSCRIBE_ADDR SUBSCRIBERS EVENTS [SERVER_PID]`
//!
//! Opens SUBSCRIBERS WebSocket connections (graphql-transport-ws) to SUBSCRIBE_ADDR, each with
//! `changes(type: Author, ops: [INSERT])`, waits until they are live, then writes to WRITE_ADDR
//! in two phases; every subscriber must receive every event of both.
//!
//! 1. **Latency at a steady rate**: `RT_PACED` Authors (default 200) at `RT_RATE` upserts per
//!    second (default 50), each sent on schedule whatever the previous one is doing (an open
//!    loop, as independent users write): latency from the upsert's start to each receipt
//!    (an upper bound of commit → receipt).
//! 2. **Throughput**: EVENTS Authors as fast as 4 writers can upsert them one at a time (a
//!    closed loop that saturates the delivery): writes per second, deliveries per second, and
//!    the latency under that saturation, which is the queue in front of the subscribers.
//!
//! Prints one JSON line, with, given SERVER_PID, the subscribing server's resident memory
//! before and after the subscriptions opened (per idle subscription).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    text.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn post(client: &reqwest::Client, addr: &str, body: Value) -> Value {
    let r = client
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    serde_json::from_str(&r.text().await.expect("a body")).expect("JSON")
}

async fn upsert(http: &reqwest::Client, addr: &str, name: &str) {
    let q = json!({ "query": "mutation($n: String!) { upsert(values: {Author: [{name: $n}]}) { id } }", "variables": { "n": name } });
    let r = post(http, addr, q).await;
    assert!(r.get("errors").is_none(), "{r}");
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// p50, p99 and max in milliseconds, two decimals.
fn percentiles(mut l: Vec<Duration>) -> (f64, f64, f64) {
    l.sort();
    let pct = |p: f64| {
        let ms = l
            .get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        (ms * 100.0).round() / 100.0
    };
    (pct(0.50), pct(0.99), pct(1.0))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: realtime_bench WRITE_ADDR SUBSCRIBE_ADDR SUBSCRIBERS EVENTS [SERVER_PID]");
        std::process::exit(2);
    }
    let (write, read) = (args[0].clone(), args[1].clone());
    let subscribers: usize = args[2].parse().expect("SUBSCRIBERS");
    let events: usize = args[3].parse().expect("EVENTS");
    let pid: Option<u32> = args.get(4).and_then(|p| p.parse().ok());
    let paced = env_or("RT_PACED", 200);
    let rate = env_or("RT_RATE", 50).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let rss_before = rss_kib(pid);

    // Subscribe everyone, each on its own connection.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let paced_lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let burst_lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let paced_done = Arc::new(AtomicUsize::new(0));
    let total = paced + events;
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers.max(1));
    for i in 0..subscribers {
        let read = read.clone();
        let (sent, paced_lat, burst_lat, paced_done) =
            (sent.clone(), paced_lat.clone(), burst_lat.clone(), paced_done.clone());
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = format!("ws://{read}/graphql").into_client_request().unwrap();
            req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect");
            ws.send(Message::Text(json!({ "type": "connection_init" }).to_string().into())).await.unwrap();
            let _ack = ws.next().await;
            let q = "subscription { changes(type: Author, ops: [INSERT]) { node { ... on Author { name } } } }";
            let sub = json!({ "id": format!("s{i}"), "type": "subscribe", "payload": { "query": q } });
            ws.send(Message::Text(sub.to_string().into())).await.unwrap();
            // Live once a ping after the subscribe is answered and a moment has passed.
            ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
            let _pong = ws.next().await;
            let _ = ready.send(()).await;
            let mut got = 0;
            while got < total {
                let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("subscriber {i} lost its connection") };
                let at = Instant::now();
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let Some(name) = v["payload"]["data"]["changes"]["node"]["name"].as_str() else {
                    eprintln!("subscriber {i}: an unexpected message: {v}");
                    continue;
                };
                let start = sent.lock().unwrap().get(name).copied();
                if let Some(s) = start {
                    let into = if name.starts_with("lat-") { &paced_lat } else { &burst_lat };
                    into.lock().unwrap().push(at.duration_since(s));
                }
                got += 1;
                if got == paced {
                    paced_done.fetch_add(1, Ordering::Relaxed);
                }
            }
            ws
        }));
    }
    drop(ready_tx);
    for _ in 0..subscribers {
        ready_rx.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(pid);

    // Phase 1: a steady rate, each upsert sent on its schedule.
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..paced {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate as f64)).into()).await;
        let (http, write, sent) = (http.clone(), write.clone(), sent.clone());
        pending.push(tokio::spawn(async move {
            let name = format!("lat-{i}");
            sent.lock().unwrap().insert(name.clone(), Instant::now());
            upsert(&http, &write, &name).await;
        }));
    }
    for p in pending {
        p.await.unwrap();
    }
    let until = Instant::now() + Duration::from_secs(60);
    while paced_done.load(Ordering::Relaxed) < subscribers {
        assert!(Instant::now() < until, "every paced event within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Phase 2: as fast as 4 writers go, one upsert per event.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (http, write, sent, next) = (http.clone(), write.clone(), sent.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    break;
                }
                let name = format!("rt-{i}");
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                upsert(&http, &write, &name).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let wrote = started.elapsed();
    let mut sockets = Vec::new();
    for t in tasks {
        sockets.push(tokio::time::timeout(Duration::from_secs(60), t).await.expect("every event within 60 s").unwrap());
    }
    let all = started.elapsed();
    let paced_l = paced_lat.lock().unwrap().clone();
    let burst_l = burst_lat.lock().unwrap().clone();
    let deliveries = burst_l.len();
    let (p50, p99, max) = percentiles(paced_l);
    let (sat_p50, sat_p99, _) = percentiles(burst_l);
    let per_idle = match (rss_before, rss_idle) {
        (Some(b), Some(a)) if subscribers > 0 => Some((a.saturating_sub(b)) as f64 / subscribers as f64),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "subscribers": subscribers,
            "rate": rate,
            "paced": paced,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max,
            "events": events,
            "deliveries": deliveries,
            "writes_per_sec": (events as f64 / wrote.as_secs_f64()).round(),
            "deliveries_per_sec": (deliveries as f64 / all.as_secs_f64()).round(),
            "saturated_p50_ms": sat_p50,
            "saturated_p99_ms": sat_p99,
            "rss_kib_before": rss_before,
            "rss_kib_subscribed": rss_idle,
            "kib_per_idle_subscription": per_idle.map(|k| (k * 10.0).round() / 10.0),
        })
    );
    drop(sockets);
}
