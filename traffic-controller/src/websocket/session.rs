//! One WebSocket consumer: ring -> frames, keepalive, slow-consumer detection.
//!
//! Generic over `Sink<Message>` + `Stream<Item = Result<Message, _>>` so unit
//! tests drive it with channels. The write path feeds every queued envelope
//! (one binary message each) and flushes once when the ring is empty, so
//! under load many frames share one write syscall.
//!
//! A consumer cut as slow gets a farewell behind what it was already sent:
//! the rate-control warning counting everything it lost (including what was
//! still queued for it), then a close frame 1000 whose reason says why. Its
//! socket is kept from filling up completely ([`Socket`]) so the farewell
//! fits.

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
/// Deadline for handing a slow consumer's farewell (warning and close frame)
/// to the kernel once [`Socket::make_room`] made room for it.
pub(crate) const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// `n` envelopes were still queued for a consumer cut as slow (lost too).
    fn abandoned(&self, n: u64);
}

/// What the session may ask of the socket under it.
pub(crate) trait Socket {
    /// Lifts the cap on unsent bytes (and grows a small send buffer) so the
    /// farewell frames fit behind what is already queued.
    fn make_room(&self);
}

/// A socket nothing can be asked of (tests, unknown transports).
#[cfg(test)]
impl Socket for () {
    fn make_room(&self) {}
}

/// Close reason sent to a consumer cut as slow (the code is 1000, as upstream).
pub(crate) fn slow_reason(timeout: Duration, total_dropped: u64) -> String {
    format!("slow consumer: no progress for {timeout:?}; {total_dropped} messages dropped")
}

/// Runs one consumer until it ends; the caller cancels the upstream.
pub(crate) async fn run<S, St, K>(
    ws: S,
    ring: &Ring<Bytes>,
    warning: &mut Warning,
    config: SessionConfig,
    cancel: &CancellationToken,
    stats: &St,
    socket: &K,
) -> End
where
    S: Sink<Message, Error = WsError> + Stream<Item = Result<Message, WsError>> + Unpin,
    St: SessionStats,
    K: Socket,
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
                    Err(_) => {
                        let lost = Lost { unsent: 0, unreported: pending_lost };
                        return cut(&mut tx, ring, warning, stats, socket, lost, &config).await;
                    }
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
                        let delta = std::mem::take(&mut pending_lost);
                        for notice in warning.notices(delta) {
                            if let Err(end) = write(&mut tx, Message::Binary(notice), config.slow_consumer_timeout).await {
                                // Reported again, once, by the farewell.
                                warning.retract(delta);
                                let lost = Lost { unsent: batch.len() as u64, unreported: delta };
                                return finish(&mut tx, ring, warning, stats, socket, end, lost, &config).await;
                            }
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                    let mut sent = 0u64;
                    let mut items = batch.drain(..);
                    while let Some(item) = items.next() {
                        if let Err(end) = write(&mut tx, Message::Binary(item), config.slow_consumer_timeout).await {
                            // The item the sink refused is lost with the rest.
                            let unsent = 1 + items.len() as u64;
                            drop(items);
                            stats.egress(sent);
                            let lost = Lost { unsent, unreported: pending_lost };
                            return finish(&mut tx, ring, warning, stats, socket, end, lost, &config).await;
                        }
                        sent += 1;
                    }
                    stats.egress(sent);
                    if ring.is_empty() {
                        break;
                    }
                }
                if let Err(end) = flush(&mut tx, config.slow_consumer_timeout).await {
                    let lost = Lost { unsent: 0, unreported: pending_lost };
                    return finish(&mut tx, ring, warning, stats, socket, end, lost, &config).await;
                }
            }
        }
    }
}

/// Envelopes a slow consumer lost that no warning has reported yet.
#[derive(Debug, Clone, Copy)]
struct Lost {
    /// Taken from the ring but never handed to the sink.
    unsent: u64,
    /// Counted as dropped, waiting for the next warning.
    unreported: u64,
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

#[allow(clippy::too_many_arguments)]
async fn finish<T, St, K>(
    tx: &mut T,
    ring: &Ring<Bytes>,
    warning: &mut Warning,
    stats: &St,
    socket: &K,
    end: End,
    lost: Lost,
    config: &SessionConfig,
) -> End
where
    T: Sink<Message, Error = WsError> + Unpin,
    St: SessionStats,
    K: Socket,
{
    match end {
        End::SlowConsumer => cut(tx, ring, warning, stats, socket, lost, config).await,
        other => other,
    }
}

/// Cuts a slow consumer: counts everything still queued for it as lost, then,
/// with room made in its socket, sends the rate-control warning for all it
/// lost since the last one and a close frame 1000 with [`slow_reason`]. The
/// frames follow what the socket already holds, so a consumer that reads
/// again finds its envelopes, the warning, the close frame, then the end.
#[allow(clippy::too_many_arguments)]
async fn cut<T, St, K>(
    tx: &mut T,
    ring: &Ring<Bytes>,
    warning: &mut Warning,
    stats: &St,
    socket: &K,
    lost: Lost,
    config: &SessionConfig,
) -> End
where
    T: Sink<Message, Error = WsError> + Unpin,
    St: SessionStats,
    K: Socket,
{
    let mut abandoned = lost.unsent;
    while ring.pop().is_some() {
        abandoned += 1;
    }
    let overwritten = ring.take_dropped();
    if overwritten > 0 {
        stats.dropped(overwritten);
    }
    if abandoned > 0 {
        stats.abandoned(abandoned);
    }
    let delta = lost.unreported + overwritten + abandoned;
    socket.make_room();
    let notices = if delta > 0 {
        stats.warned();
        warning.notices(delta)
    } else {
        Vec::new()
    };
    let reason = slow_reason(config.slow_consumer_timeout, warning.total());
    let farewell = async {
        for notice in notices {
            tx.feed(Message::Binary(notice)).await?;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        };
        tx.send(Message::Close(Some(frame))).await
    };
    match tokio::time::timeout(FAREWELL_TIMEOUT, farewell).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "farewell to a slow consumer failed"),
        Err(_) => tracing::debug!("farewell to a slow consumer did not fit in its socket"),
    }
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
