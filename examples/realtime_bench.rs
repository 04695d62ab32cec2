//! Benchmark helper for `bench/realtime.sh`: subscribers on one arcbase node, writes on another
//! (or the same), events timed from write to receipt.
//!
#![allow(clippy::unwrap_used)]
//! `cargo run --release --example realtime_bench -- WRITE_ADDR SUBSCRIBE_ADDR SUBSCRIBERS EVENTS [SERVER_PID]`
//!
//! Opens SUBSCRIBERS WebSocket connections (graphql-transport-ws) to SUBSCRIBE_ADDR, each with
//! `changes(type: Author)`, waits until they are live, then writes EVENTS Authors to WRITE_ADDR,
//! one upsert at a time from 4 writers. Every subscriber must receive every event. Prints one
//! JSON line: writes per second, deliveries per second, p50/p99/max latency from the upsert's
//! start to the receipt (an upper bound of commit → receipt), and, with SERVER_PID, the
//! subscribing server's resident memory before and after the subscriptions opened (per idle
//! subscription).

use std::collections::HashMap;
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let rss_before = rss_kib(pid);

    // Subscribe everyone, each on its own connection.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers.max(1));
    for i in 0..subscribers {
        let read = read.clone();
        let sent = sent.clone();
        let latencies = latencies.clone();
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
            while got < events {
                let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("subscriber {i} lost its connection") };
                let at = Instant::now();
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let Some(name) = v["payload"]["data"]["changes"]["node"]["name"].as_str() else {
                    eprintln!("subscriber {i}: an unexpected message: {v}");
                    continue;
                };
                let start = sent.lock().unwrap().get(name).copied();
                if let Some(s) = start {
                    latencies.lock().unwrap().push(at.duration_since(s));
                }
                got += 1;
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

    // Write: 4 writers, one upsert per event.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (http, write, sent, next) = (http.clone(), write.clone(), sent.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    break;
                }
                let name = format!("rt-{i}");
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                let q = json!({ "query": "mutation($n: String!) { upsert(values: {Author: [{name: $n}]}) { id } }", "variables": { "n": name } });
                let r = post(&http, &write, q).await;
                assert!(r.get("errors").is_none(), "{r}");
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
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let per_idle = match (rss_before, rss_idle) {
        (Some(b), Some(a)) if subscribers > 0 => Some((a.saturating_sub(b)) as f64 / subscribers as f64),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "subscribers": subscribers,
            "events": events,
            "deliveries": l.len(),
            "writes_per_sec": (events as f64 / wrote.as_secs_f64()).round(),
            "deliveries_per_sec": (l.len() as f64 / all.as_secs_f64()).round(),
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "max_ms": (pct(1.0) * 100.0).round() / 100.0,
            "rss_kib_before": rss_before,
            "rss_kib_subscribed": rss_idle,
            "kib_per_idle_subscription": per_idle.map(|k| (k * 10.0).round() / 10.0),
        })
    );
    drop(sockets);
}
