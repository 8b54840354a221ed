//! One WebSocket consumer: ring -> frames, keepalive, slow-consumer detection.
//!
//! Generic over `Sink<Message>` + `Stream<Item = Result<Message, _>>` so unit
//! tests drive it with channels. The write path feeds every queued envelope
//! (one binary message each) and flushes once when the ring is empty, so
//! under load many frames share one write syscall.

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use plumbing::ring::Ring;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::warning::Warning;

/// Close reason sent when the client misses a pong (reference §12.5).
pub(crate) const KEEPALIVE_REASON: &str =
    "Client did not respond to ping before keep-alive timeout expired.";

/// Timers of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionConfig {
    /// Time the client has to answer a ping (30 s); the next ping goes out
    /// half of it after a pong.
    pub(crate) keepalive: Duration,
    /// A write that makes no progress for this long marks a slow consumer.
    pub(crate) slow_consumer_timeout: Duration,
    /// Envelopes taken from the ring per round.
    pub(crate) max_batch: usize,
}

/// Write deadline for pings and close frames (reference: 5 s).
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds of draining before control work (pings, pongs) gets a turn.
const ROUNDS_PER_TURN: usize = 16;
/// At most one rate-control warning per this interval; losses in between
/// accumulate into the next one (as doppler does).
pub(crate) const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client closed or the connection broke.
    ClientLeft,
    /// No pong within the keepalive time: closed with 1008.
    KeepaliveExpired,
    /// Writes made no progress for the slow-consumer timeout: closed with 1000.
    SlowConsumer,
    /// Shutdown or upstream end: closed with 1000.
    Finished,
}

/// Counts the session reports as it goes.
pub(crate) trait SessionStats {
    /// `n` envelopes were written to the client.
    fn egress(&self, n: u64);
    /// `n` envelopes were lost in the ring (overwritten before being sent).
    fn dropped(&self, n: u64);
    /// A rate-control warning was injected.
    fn warned(&self);
}

/// Runs one consumer until it ends; the caller cancels the upstream.
pub(crate) async fn run<S, St>(
    ws: S,
    ring: &Ring<Bytes>,
    warning: &mut Warning,
    config: SessionConfig,
    cancel: &CancellationToken,
    stats: &St,
) -> End
where
    S: Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin,
    St: SessionStats,
{
    let (mut tx, mut rx) = ws.split();
    let half = config.keepalive / 2;
    // One timer for the keepalive: first "ping now", then "pong due by".
    let keepalive_timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(keepalive_timer);
    let mut awaiting_pong = false;
    let mut batch: Vec<Bytes> = Vec::with_capacity(config.max_batch);
    let mut pending_lost: u64 = 0;
    let mut last_warning: Option<Instant> = None;

    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                close(&mut tx, CloseCode::Normal, "").await;
                return End::Finished;
            }
            msg = rx.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    close(&mut tx, CloseCode::Normal, "").await;
                    return End::ClientLeft;
                }
                Some(Ok(Message::Pong(_))) => {
                    if awaiting_pong {
                        awaiting_pong = false;
                        keepalive_timer.as_mut().reset(Instant::now() + half);
                    }
                }
                // Text, binary and ping frames from clients are ignored (pings
                // are answered by the protocol layer).
                Some(Ok(_)) => {}
            },
            _ = &mut keepalive_timer => {
                if awaiting_pong {
                    close(&mut tx, CloseCode::Policy, KEEPALIVE_REASON).await;
                    return End::KeepaliveExpired;
                }
                awaiting_pong = true;
                keepalive_timer.as_mut().reset(Instant::now() + config.keepalive);
                match tokio::time::timeout(CONTROL_WRITE_TIMEOUT, tx.send(Message::Ping(Bytes::new()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return End::ClientLeft,
                    Err(_) => return slow(&mut tx).await,
                }
            }
            _ = ring.ready() => {
                if ring.is_closed() && ring.is_empty() {
                    close(&mut tx, CloseCode::Normal, "").await;
                    return End::Finished;
                }
                for _ in 0..ROUNDS_PER_TURN {
                    batch.clear();
                    ring.drain_into(&mut batch, config.max_batch);
                    let lost = ring.take_dropped();
                    if lost > 0 {
                        stats.dropped(lost);
                        pending_lost += lost;
                    }
                    if pending_lost > 0 && last_warning.is_none_or(|t| t.elapsed() >= WARNING_INTERVAL) {
                        last_warning = Some(Instant::now());
                        stats.warned();
                        for notice in warning.notices(std::mem::take(&mut pending_lost)) {
                            if let Err(end) = write(&mut tx, Message::Binary(notice), config.slow_consumer_timeout).await {
                                return finish(&mut tx, end).await;
                            }
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                    let n = batch.len() as u64;
                    for item in batch.drain(..) {
                        if let Err(end) = write(&mut tx, Message::Binary(item), config.slow_consumer_timeout).await {
                            return finish(&mut tx, end).await;
                        }
                    }
                    stats.egress(n);
                    if ring.is_empty() {
                        break;
                    }
                }
                if let Err(end) = flush(&mut tx, config.slow_consumer_timeout).await {
                    return finish(&mut tx, end).await;
                }
            }
        }
    }
}

/// Feeds one message; fast path without a timer when the sink is ready.
async fn write<T>(tx: &mut T, msg: Message, limit: Duration) -> Result<(), End>
where
    T: Sink<Message, Error = WsError> + Unpin,
{
    let mut fut = tx.feed(msg);
    let res = match futures::poll!(&mut fut) {
        Poll::Ready(r) => r,
        Poll::Pending => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => return Err(End::SlowConsumer),
        },
    };
    res.map_err(|_| End::ClientLeft)
}

async fn flush<T>(tx: &mut T, limit: Duration) -> Result<(), End>
where
    T: Sink<Message, Error = WsError> + Unpin,
{
    let mut fut = tx.flush();
    let res = match futures::poll!(&mut fut) {
        Poll::Ready(r) => r,
        Poll::Pending => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => return Err(End::SlowConsumer),
        },
    };
    res.map_err(|_| End::ClientLeft)
}

async fn finish<T>(tx: &mut T, end: End) -> End
where
    T: Sink<Message, Error = WsError> + Unpin,
{
    match end {
        End::SlowConsumer => slow(tx).await,
        other => other,
    }
}

/// A slow consumer gets a best-effort 1000 close (its socket is usually
/// full, so this rarely reaches it) and is dropped.
async fn slow<T>(tx: &mut T) -> End
where
    T: Sink<Message, Error = WsError> + Unpin,
{
    let frame = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    let _ = tokio::time::timeout(Duration::from_millis(100), tx.send(frame)).await;
    End::SlowConsumer
}

async fn close<T>(tx: &mut T, code: CloseCode, reason: &str) -> End
where
    T: Sink<Message, Error = WsError> + Unpin,
{
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }));
    let _ = tokio::time::timeout(CONTROL_WRITE_TIMEOUT, tx.send(frame)).await;
    End::Finished
}

#[cfg(test)]
mod tests;
