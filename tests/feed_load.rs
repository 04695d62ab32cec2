//! The realtime hub's reads of the change feed under a steady write load: what it costs per
//! commit. Eight writers commit one object per request for two seconds; the hub must broadcast
//! every change exactly once (its position moves by the number of commits) while its reads stay
//! bounded by time (at most one per `SPACING`, 5 ms, plus its wake-ups) rather than growing with
//! the commits, and the rows those reads return stay within a small multiple of what they
//! deliver: rows past a gap (PostgreSQL: a transaction that took an earlier position commits
//! later) are read again on each look, at most 32 of them a look. Before the hub spaced its reads
//! and bounded its looks, a load like this cost 2.5 feed reads per commit and re-read 1,000 rows
//! behind every gap each 10 ms, which took a third to a half of PostgreSQL's `upsert` throughput
//! (found by hand with `log_statement=all`; this test is the class that catches it).
//!
//! Runs on the suite's backend (SQLite: one writer at a time, so no gaps, but the spacing still
//! holds; PostgreSQL: gaps from concurrent commits).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::json;

const SDL: &str = r#"
type Note @access(read: PUBLIC, write: PUBLIC) {
  text: String
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reads_the_feed_by_time_not_by_commit() {
    let t = Arc::new(TestApp::new(SDL).await);
    t.differential(false);
    let hub = t.app.hub.clone();
    let before = hub.figures();
    let commits = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = Duration::from_secs(2);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (t, commits) = (t.clone(), commits.clone());
            tokio::spawn(async move {
                while started.elapsed() < load {
                    let ids = t.upsert(json!({ "Note": [{ "text": format!("writer {w}") }] })).await;
                    assert_eq!(ids.len(), 1);
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let commits = commits.load(Ordering::Relaxed);
    // Every change reaches the hub (a gap waits at most its grace, 1 s, once its writer is gone).
    let mut after = hub.figures();
    for _ in 0..100 {
        if after.position - before.position >= commits as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = hub.figures();
    }
    let elapsed = started.elapsed();
    let delivered = (after.position - before.position) as u64;
    let reads = after.reads - before.reads;
    let fetched = after.fetched - before.fetched;
    eprintln!("{commits} commits in {elapsed:?}: {reads} feed reads, {fetched} rows fetched, {delivered} delivered");
    assert!(commits >= 50, "the load ran ({commits} commits)");
    assert_eq!(delivered, commits, "every change broadcast once");
    // At most one read per 5 ms while the load runs, and a few more while the last gap waits.
    let by_time = elapsed.as_millis() as u64 / 5 + 40;
    assert!(reads <= by_time, "{reads} feed reads in {elapsed:?} for {commits} commits (at most {by_time})");
    // Rows read again past gaps: at most 32 a look while one waits.
    let bound = 2 * delivered + 32 * reads;
    assert!(fetched <= bound, "{fetched} rows fetched to deliver {delivered} in {reads} reads (at most {bound})");
}
