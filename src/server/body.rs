//! Request bodies read with a size cap, refused with a 413 that the client actually sees.
//!
//! A client that writes its whole body before reading the response (Python's `urllib`, most
//! HTTP/1.1 clients) gets a connection reset instead of the status when the server answers
//! and closes while the body is still arriving. So an over-limit body is read on and thrown
//! away up to a bound (as nginx's lingering close does), then answered with 413 and
//! `Connection: close`. The bound keeps a 100 MB body from costing more than a few MB of
//! reading: a `Content-Length` beyond it, or `Expect: 100-continue` (the client waits for the
//! go-ahead), is refused at once without reading.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

/// How much of an over-limit body is read and discarded before the 413, at most.
pub const DRAIN_BYTES: usize = 8 << 20;
/// How long an over-limit body may take to arrive before the 413 is sent anyway.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit (already drained as far as the bounds allow).
    TooLarge,
    /// The connection failed while the body was read.
    Read(String),
    /// The body did not arrive within its time.
    Timeout,
}

/// The `Content-Length` of a request, when it has a valid one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Read `body` whole if it has at most `limit` bytes and arrives within `time`.
pub async fn read_limited(body: Body, headers: &HeaderMap, limit: usize, time: Duration) -> Result<Bytes, BodyError> {
    tokio::time::timeout(time, read_all(body, headers, limit)).await.unwrap_or(Err(BodyError::Timeout))
}

async fn read_all(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let announced = content_length(headers);
    if announced.is_some_and(|n| n > limit as u64) {
        let expects = headers
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        if !expects && announced.is_some_and(|n| n <= (limit + DRAIN_BYTES) as u64) {
            drain(body.into_data_stream(), 0).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(announced.map_or(8 << 10, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            drain(stream, buf.len() + chunk.len() - limit).await;
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Read and discard the rest of a body, within [`DRAIN_BYTES`] (`already` past the limit
/// counts) and [`DRAIN_TIME`].
async fn drain(mut stream: axum::body::BodyDataStream, already: usize) {
    let mut seen = already;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}
