//! The accept loop: HTTP/1.1 connections with bounded time and size, and a bounded number of
//! them, so that no client can hold the server's file descriptors or memory.
//!
//! - Headers must arrive within `header_read_ms` (also for the next request on a kept-alive
//!   connection) and fit in `header_bytes` (431 above); bodies have `body_read_ms`
//!   (`body.rs`). A connection with no request in flight and no traffic for `idle_ms` is
//!   closed.
//! - At most `connections` are open. Past it, the connection idle the longest (no request in
//!   flight; a client that connected and said nothing is the first) is closed to make room,
//!   so a flood of silent connections cannot keep a real client (or `/health`) out; when every
//!   connection has a request in flight, the new one is answered 503 with `Retry-After` and
//!   closed.
//! - On shutdown the loop stops accepting, every connection finishes its request in flight
//!   and closes, and the loop returns when all are closed or the grace period is over.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::config::Limits;

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// What the loop knows of one connection.
struct Tracked {
    /// Milliseconds since the loop's epoch of the last byte read or written.
    last_active: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Close now (to make room).
    close: Notify,
}

struct Conns {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
}

impl Conns {
    /// Make room for one more connection: close the one idle the longest. `false` when every
    /// open connection has a request in flight.
    fn evict_idlest(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let victim = open
            .iter()
            .filter(|(_, t)| t.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, t)| t.last_active.load(Ordering::Acquire))
            .map(|(id, _)| *id);
        // Out of the count at once, so the next accept picks another.
        match victim.and_then(|id| open.remove(&id)) {
            Some(v) => {
                v.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A socket that records when bytes last moved.
struct ActivityIo {
    inner: TcpStream,
    tracked: Arc<Tracked>,
    epoch: Instant,
}

impl ActivityIo {
    fn touch(&self) {
        self.tracked.last_active.store(millis_since(self.epoch), Ordering::Release);
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The answer to a connection that finds every slot busy.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"errors":[{"message":"the server has too many open connections; retry shortly","extensions":{"code":"OVERLOADED"}}]}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serve `router` on `listener` until `shutdown` completes, then close gracefully within
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let conns = Arc::new(Conns { epoch: Instant::now(), next: AtomicU64::new(0), open: Mutex::new(HashMap::new()) });
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_ms))
        .max_buf_size(limits.header_bytes.max(8192) * 2)
        .max_header_size(limits.header_bytes)
        .keep_alive(true);
    let idle = Duration::from_millis(limits.idle_ms);
    let max = limits.connections.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: make room and go on.
                    tracing::warn!("accept failed: {e}");
                    conns.evict_idlest();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let open = conns.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        if open >= max && !conns.evict_idlest() {
            tasks.spawn(refuse(stream));
            continue;
        }
        let id = conns.next.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked {
            last_active: AtomicU64::new(millis_since(conns.epoch)),
            in_flight: AtomicUsize::new(0),
            close: Notify::new(),
        });
        conns.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, tracked.clone());
        let io = TokioIo::new(ActivityIo { inner: stream, tracked: tracked.clone(), epoch: conns.epoch });
        let conn_tracked = tracked.clone();
        let svc_router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(super::ClientAddr(peer));
            let tracked = conn_tracked.clone();
            tracked.in_flight.fetch_add(1, Ordering::AcqRel);
            let router = svc_router.clone();
            async move {
                let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                tracked.in_flight.fetch_sub(1, Ordering::AcqRel);
                resp
            }
        });
        let conn = builder.serve_connection(io, service).with_upgrades();
        let conns2 = conns.clone();
        let mut stop_rx = stop.subscribe();
        tasks.spawn(serve_one(conn, tracked, conns2, id, idle, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
    }
    // Stop: no new connections; each finishes what it is doing and closes.
    let _ = stop.send(true);
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if !tasks.is_empty() {
        tracing::warn!(connections = tasks.len(), "connections still open after the grace period; closing them");
        tasks.abort_all();
    }
}

/// Drive one connection until it ends, is evicted, idles out, or shutdown asks it to finish.
async fn serve_one<C>(
    conn: C,
    tracked: Arc<Tracked>,
    conns: Arc<Conns>,
    id: u64,
    idle: Duration,
    stop: impl Future<Output = ()>,
) where
    C: Future<Output = hyper::Result<()>> + GracefulShutdown,
{
    tokio::pin!(conn);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(idle));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = tracked.close.notified() => {
                if tracked.in_flight.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            () = &mut stop, if !stopping => {
                stopping = true;
                conn.as_mut().shutdown_gracefully();
            }
            _ = tick.tick() => {
                let quiet = millis_since(conns.epoch).saturating_sub(tracked.last_active.load(Ordering::Acquire));
                if tracked.in_flight.load(Ordering::Acquire) == 0 && quiet >= idle.as_millis() as u64 {
                    break;
                }
            }
        }
    }
    conns.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
}

/// A connection that can be asked to finish its request in flight and close.
pub trait GracefulShutdown {
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
