//! Realtime: the hub that tails the change feed for every subscription of this process, and
//! the driver that takes one subscription from its start position to the live tail.
//!
//! **The hub** (one task): a [`FeedReader`] (commit order; PostgreSQL's late commits waited
//! out) reads what is new whenever a write of this process commits (`Store::commits`), when
//! PostgreSQL notifies `arcbase_changes` (a trigger on the feed, so a write on any node wakes
//! every node), and at least every second (a lost notification only delays). Commits close
//! together are read together: a read follows the one before it by at least [`SPACING`] (a
//! write load of hundreds of commits a second would otherwise cost a feed read per commit and
//! per notification, measured at 713 reads for 281 commits), and a batch shorter than its
//! limit is not followed by another read until something wakes the hub again. While a gap
//! waits for a late commit (PostgreSQL), each look reads at most [`READ_WAITING`] rows: the
//! rows behind the gap come back on every look, and 1,000 of them every 10 ms under a steady
//! write load cut `upsert` on one CPU from 120-166 to 62-115 req/s (PostgreSQL, once reads
//! had connections of their own and stopped queueing behind the writers). Each read is
//! broadcast as one [`Batch`] to every subscription; subscriptions with the same query,
//! variables, viewer and instance share the work of a batch (one read of the objects, one
//! encoding: [`Batch::shared`]).
//!
//! **The driver** ([`drive`]): join the hub (remember its position `P`), replay the feed from
//! the subscription's start up to `P` in steps, then take the live batches, skipping what the
//! replay delivered: no gap and no duplicate at the seam. Events go to a bounded queue
//! (`subscriber_queue`) whose places are freed only once an event is written to the client: a
//! subscriber whose queue stays full for 5 s, or that falls behind the hub's broadcast, is
//! ended with a reason and its last cursor, and can resume from it.
//!
//! **Retention**: every minute the feed is pruned to `feed_retention_secs` and
//! `feed_retention_rows`, never past the position of a hyper bridge target that moved within
//! the retention time; the pruned position is recorded so that an older cursor is
//! `CURSOR_EXPIRED`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, OnceCell};

use crate::feed::Change;
use crate::ops::changes::FeedReader;
use crate::store::Store;

/// Changes per read of the hub.
const READ: u64 = 1_000;
/// Changes read at most while the hub waits for a gap to be filled: the rows behind the gap
/// come back on every look (every 10 ms) until it is, so each look reads few of them; once the
/// gap is filled, a full batch is followed at once by a read of [`READ`].
const READ_WAITING: u64 = 32;
/// Batches the broadcast holds for its slowest subscription.
const BACKLOG: usize = 1_024;
/// The longest the hub waits without a wake-up.
const IDLE: Duration = Duration::from_secs(1);
/// The least time between two reads of the feed by the hub (the most a commit waits for the
/// next read under a steady write load; an idle hub reads at once).
const SPACING: Duration = Duration::from_millis(5);
/// How long a subscriber's full queue may stay full before it is ended as too slow.
const SLOW: Duration = Duration::from_secs(5);
/// How often the feed is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One event as a group of identical subscriptions made it of a batch.
#[derive(Debug)]
pub struct Made {
    pub seq: i64,
    pub id: String,
    pub delete: bool,
    pub gone: Option<Option<String>>,
    pub type_idx: usize,
    /// The GraphQL response as JSON text.
    pub payload: Arc<str>,
}

/// What a group of identical subscriptions made of one batch.
pub type Encoded = Arc<Vec<Made>>;

/// Changes read from the feed at once, shared by every subscription.
pub struct Batch {
    pub changes: Vec<Change>,
    /// The work identical subscriptions share, by their key.
    shared: Mutex<HashMap<String, Arc<OnceCell<Encoded>>>>,
}

impl Batch {
    /// The cell where the subscriptions of `key` keep what they made of this batch.
    pub fn shared(&self, key: &str) -> Arc<OnceCell<Encoded>> {
        let mut m = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key.to_string()).or_default().clone()
    }
}

/// See the module documentation.
pub struct Hub {
    tx: broadcast::Sender<Arc<Batch>>,
    /// Every change at or before this position has been broadcast.
    position: AtomicI64,
    /// Reads of the feed, and the rows they returned ([`Hub::figures`]).
    reads: AtomicU64,
    fetched: AtomicU64,
}

/// How much the hub read of the feed since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubFigures {
    /// Every change at or before this position has been broadcast.
    pub position: i64,
    /// Statements that read the feed.
    pub reads: u64,
    /// Rows they returned, broadcast or read again later (past a gap).
    pub fetched: u64,
}

impl Hub {
    /// Start tailing the feed from its head (and pruning it) until shutdown.
    pub async fn start(
        store: Store,
        limits: &crate::config::Limits,
        tasks: &crate::tasks::Supervisor,
    ) -> Result<Arc<Hub>, crate::error::ApiError> {
        let head = crate::ops::changes::head(&store).await?;
        let (tx, _) = broadcast::channel(BACKLOG);
        let hub =
            Arc::new(Hub { tx, position: AtomicI64::new(head), reads: AtomicU64::new(0), fetched: AtomicU64::new(0) });
        let me = hub.clone();
        let tail_store = store.clone();
        tasks.spawn("realtime hub", move |mut shutdown| async move {
            let commits = tail_store.commits();
            let mut listener = match tail_store.listen("arcbase_changes").await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(
                        "realtime: cannot listen for other nodes' writes ({e}); reading the feed every second"
                    );
                    None
                }
            };
            let mut reader = FeedReader::after(head);
            let mut last_read: Option<std::time::Instant> = None;
            loop {
                let woken = commits.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if let Some(rest) = last_read.and_then(|t| SPACING.checked_sub(t.elapsed())) {
                    if shutdown.sleep(rest).await {
                        return;
                    }
                }
                last_read = Some(std::time::Instant::now());
                let limit = if reader.waiting() { READ_WAITING } else { READ };
                let read = reader.next(&tail_store, limit).await;
                me.reads.fetch_add(1, Ordering::Relaxed);
                me.fetched.store(reader.fetched, Ordering::Relaxed);
                match read {
                    Ok(changes) if !changes.is_empty() => {
                        tracing::debug!(from = changes[0].seq, to = reader.position, "realtime: batch");
                        let full = changes.len() as u64 >= limit;
                        me.position.store(reader.position, Ordering::Release);
                        let _ = me.tx.send(Arc::new(Batch { changes, shared: Mutex::new(HashMap::new()) }));
                        if full {
                            // More may be waiting behind a full batch.
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("realtime: reading the feed failed: {}", e.message),
                }
                // A gap (PostgreSQL: a late commit may fill it) is looked at again soon.
                let wait = if reader.waiting() { Duration::from_millis(10) } else { IDLE };
                tokio::select! {
                    () = &mut woken => {}
                    n = async {
                        match listener.as_mut() {
                            Some(l) => l.recv().await.map(|_| ()),
                            None => std::future::pending().await,
                        }
                    } => {
                        if let Err(e) = n {
                            tracing::warn!("realtime: the notification connection failed ({e}); it reconnects");
                        }
                    }
                    stop = shutdown.sleep(wait) => if stop { return; },
                }
            }
        });
        let prune_store = store.with_own_count();
        let (secs, rows) = (limits.feed_retention_secs, limits.feed_retention_rows);
        tasks.spawn("change feed pruning", move |mut shutdown| async move {
            while !shutdown.sleep(PRUNE_EVERY).await {
                if let Err(e) = prune(&prune_store, secs, rows).await {
                    tracing::warn!("change feed pruning failed: {e}");
                }
            }
        });
        Ok(hub)
    }

    /// A receiver of the batches broadcast from now on, and the position everything before
    /// them reached.
    pub fn join(&self) -> (broadcast::Receiver<Arc<Batch>>, i64) {
        let rx = self.tx.subscribe();
        (rx, self.position.load(Ordering::Acquire))
    }

    /// How much the hub read of the feed so far.
    pub fn figures(&self) -> HubFigures {
        HubFigures {
            position: self.position.load(Ordering::Acquire),
            reads: self.reads.load(Ordering::Relaxed),
            fetched: self.fetched.load(Ordering::Relaxed),
        }
    }

    /// Subscriptions listening now.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Prune the feed (see the module documentation); how many rows went.
pub async fn prune(store: &Store, retention_secs: u64, max_rows: i64) -> Result<u64, crate::store::StoreError> {
    use crate::sql::changes as c;
    let d = store.dialect();
    let cutoff_ms = (crate::hyper::now_ms() as u64).saturating_sub(retention_secs.saturating_mul(1000));
    let cutoff = crate::plan::write::format_ms(cutoff_ms as i64);
    let head = crate::ops::changes::head(store).await.unwrap_or(0);
    let slowest = store
        .fetch_rows(&c::slowest_sync(d, &cutoff))
        .await?
        .first()
        .and_then(|r| r.first())
        .and_then(crate::value::SqlValue::as_i64)
        .unwrap_or(i64::MAX);
    let mut removed: u64 = 0;
    let mut upto_seen = 0i64;
    for (upto, before) in [(slowest, Some(cutoff.as_str())), (slowest.min(head - max_rows), None)] {
        if upto <= 0 {
            continue;
        }
        loop {
            let rows = store.execute(&c::prune(d, upto, before, 5_000)).await?;
            let n = rows.len();
            removed += n as u64;
            for r in &rows {
                if let Some(s) = r.first().and_then(crate::value::SqlValue::as_i64) {
                    upto_seen = upto_seen.max(s);
                }
            }
            if n < 5_000 {
                break;
            }
        }
    }
    if upto_seen > 0 {
        store.execute(&c::set_pruned(d, upto_seen)).await?;
        tracing::info!(removed, upto = upto_seen, "change feed pruned");
    }
    Ok(removed)
}

/// What a driven subscription hands its transport.
#[derive(Debug)]
pub enum Outgoing {
    /// One event: its cursor (feed position) and its GraphQL response as JSON text. The
    /// permit is the event's place in the subscriber's queue.
    Next { cursor: i64, payload: Arc<str>, permit: tokio::sync::OwnedSemaphorePermit },
    /// The subscription ended with these errors (a GraphQL `errors` array as JSON text).
    Error(String),
}

/// The channel a transport gives [`drive`]: room for `subscriber_queue` events and the final
/// error.
pub fn channel(
    limits: &crate::config::Limits,
) -> (tokio::sync::mpsc::Sender<Outgoing>, tokio::sync::mpsc::Receiver<Outgoing>) {
    tokio::sync::mpsc::channel(limits.subscriber_queue.max(1) + 2)
}

fn errors_text(errors: &[crate::graphql::response::GqlError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

fn api_errors(e: crate::error::ApiError) -> String {
    errors_text(&[crate::graphql::response::GqlError::from_api(e, Vec::new(), None)])
}

/// Take `sub` from its start to the live tail and on (see the module documentation) until the
/// transport drops the receiver, the subscriber falls behind, or an error ends it.
pub async fn drive(
    hub: Arc<Hub>,
    sub: crate::graphql::exec::Subscription,
    caller: crate::ops::Caller,
    out: tokio::sync::mpsc::Sender<Outgoing>,
) {
    use crate::error::{ApiError, ErrorCode};
    let engine = sub.engine().clone();
    let limits = &engine.limits;
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.subscriber_queue.max(1)));
    let (mut stream, start) = match crate::ops::stream::Stream::open(&engine, &caller, sub.args.clone()).await {
        Ok(x) => x,
        Err(e) => {
            let _ = out.send(Outgoing::Error(api_errors(e))).await;
            return;
        }
    };
    let (mut rx, live) = hub.join();
    let mut position = start.unwrap_or(live);
    tracing::debug!(?start, live, "realtime: subscription joined");
    let too_slow = |p: i64| {
        ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "the subscriber fell too far behind ({} events waiting); resume with after: \"{p}\"",
                limits.subscriber_queue
            ),
        )
    };
    // Send one encoded event; false when the subscription has ended.
    let send = |cursor: i64, payload: Arc<str>, last_sent: i64| {
        let permits = permits.clone();
        let out = out.clone();
        async move {
            // A full queue may drain (a burst); one that stays full is a subscriber too slow.
            match tokio::time::timeout(SLOW, permits.acquire_owned()).await {
                Ok(Ok(p)) => out.send(Outgoing::Next { cursor, payload, permit: p }).await.is_ok(),
                _ => {
                    let _ = out.send(Outgoing::Error(api_errors(too_slow(last_sent)))).await;
                    false
                }
            }
        }
    };
    let mut last_sent = position;
    let text = |r: &crate::graphql::response::Response| -> Arc<str> { Arc::from(r.to_json()) };
    // The objects as they are, then the feed from the start up to the hub's position.
    let mut replay = Vec::new();
    if stream.include_current() {
        match stream.current(&engine, &caller, position).await {
            Ok(evs) => replay.push(evs),
            Err(e) => {
                let _ = out.send(Outgoing::Error(api_errors(e))).await;
                return;
            }
        }
    }
    loop {
        for evs in replay.drain(..) {
            let encoded = sub.encode(&caller, &evs);
            for (ev, r) in evs.iter().zip(encoded.iter()) {
                let delete = ev.change.op == crate::feed::ChangeOp::Delete;
                if !stream.admit(ev.gone.as_ref(), delete, &ev.change.id, ev.type_idx) {
                    continue;
                }
                if !send(ev.change.seq, text(r), last_sent).await {
                    return;
                }
                last_sent = ev.change.seq;
            }
        }
        if position >= live {
            break;
        }
        let batch =
            match crate::ops::changes::history(&engine.store, &caller.instance, position, live, limits.replay_batch)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    let _ = out.send(Outgoing::Error(api_errors(e))).await;
                    return;
                }
            };
        let Some(last) = batch.last().map(|c| c.seq) else { break };
        match stream.events(&engine, &caller, &batch).await {
            Ok(evs) => replay.push(evs),
            Err(e) => {
                let _ = out.send(Outgoing::Error(api_errors(e))).await;
                return;
            }
        }
        position = last;
    }
    position = position.max(live);
    last_sent = last_sent.max(position);
    // Live.
    loop {
        let batch = match rx.recv().await {
            Ok(b) => b,
            Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = out.send(Outgoing::Error(api_errors(too_slow(last_sent)))).await;
                return;
            }
        };
        let Some(last) = batch.changes.last().map(|c| c.seq).filter(|l| *l > position) else { continue };
        tracing::debug!(position, last, "realtime: live batch");
        // Made of the whole batch (subscriptions sharing it may stand at different places in
        // it); each takes what is after its own position.
        let cell = batch.shared(&sub.key);
        let made = cell
            .get_or_try_init(|| async {
                let evs = stream.events(&engine, &caller, &batch.changes).await?;
                let encoded = sub.encode(&caller, &evs);
                let list: Vec<_> = evs
                    .iter()
                    .zip(encoded.iter())
                    .map(|(ev, r)| Made {
                        seq: ev.change.seq,
                        id: ev.change.id.clone(),
                        delete: ev.change.op == crate::feed::ChangeOp::Delete,
                        gone: ev.gone.clone(),
                        type_idx: ev.type_idx,
                        payload: text(r),
                    })
                    .collect();
                Ok::<Encoded, ApiError>(Arc::new(list))
            })
            .await;
        let made = match made {
            Ok(m) => m.clone(),
            Err(e) => {
                let _ = out.send(Outgoing::Error(api_errors(e))).await;
                return;
            }
        };
        for m in made.iter() {
            if m.seq <= position || !stream.admit(m.gone.as_ref(), m.delete, &m.id, m.type_idx) {
                continue;
            }
            if !send(m.seq, m.payload.clone(), last_sent).await {
                return;
            }
            last_sent = m.seq;
        }
        position = last;
    }
}
