//! One stream manager: dial a doppler, open the stream, publish its sender
//! in the slot, and start over when it breaks or is due for recycling.
//!
//! The channel is plumbing's lazily connecting TLS channel; the stream counts
//! as established when tonic first polls the request body, which happens only
//! once the connection (TCP, TLS, HTTP/2) is up and the call was dispatched.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::raw::doppler_ingestor_client::DopplerIngestorClient;
use envelope_proto::raw::ingress_client::IngressClient;
use futures::Stream;
use plumbing::backoff::Backoff;
use plumbing::metrics::Counter;
use plumbing::shutdown::Shutdown;
use plumbing::tls::grpc::{ChannelOptions, MAX_MESSAGE_SIZE, channel_with};
use rand::Rng as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{Failures, PoolConfig, PoolMetrics, Protocol, Slot, usage};

/// How long a recycled or shut-down stream may take to flush what it holds.
const FLUSH_GRACE: Duration = Duration::from_secs(5);
/// Write deadline of a doppler stream: messages queued for it that it does not take for this
/// long (a frozen or overloaded doppler whose HTTP/2 window stays closed) fail the stream, so
/// writers move to the other dopplers and what was queued is counted as dropped.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(1);

/// Manages one slot of a pool.
pub(crate) struct Manager {
    pub(crate) slot: Arc<Slot>,
    pub(crate) all: Arc<[Arc<Slot>]>,
    pub(crate) failures: Arc<Failures>,
    /// Serialises pick-and-reserve so concurrent dials spread evenly.
    pub(crate) dial_lock: Arc<parking_lot::Mutex<()>>,
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) metrics: PoolMetrics,
    pub(crate) shutdown: Shutdown,
}

/// Request body that reports its first poll (= the stream is established) and, when dropped,
/// counts the envelopes still queued in it: a stream that ended cleanly was drained first, so
/// anything left was stranded by a broken stream.
struct Announce {
    inner: ReceiverStream<Bytes>,
    first_poll: Option<oneshot::Sender<()>>,
    protocol: Protocol,
    stranded: Counter,
    /// Messages the transport has taken (the stream's progress).
    taken: Arc<AtomicU64>,
}

impl Drop for Announce {
    fn drop(&mut self) {
        let rx = self.inner.as_mut();
        rx.close();
        let mut lost = 0;
        while let Ok(msg) = rx.try_recv() {
            lost += self.protocol.envelopes_in(&msg);
        }
        if lost > 0 {
            self.stranded.add(lost);
            tracing::warn!(lost, "doppler stream broke with envelopes queued; dropped");
        }
    }
}

impl Stream for Announce {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(tx) = self.first_poll.take() {
            let _ = tx.send(());
        }
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(_)) = &next {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        next
    }
}

/// Resolves once messages have sat in the stream's queue for `deadline` without the transport
/// taking any: the doppler stopped reading (frozen, overloaded, or its connection is a black
/// hole). Holds only a weak sender, so the queue still closes when the slot unpublishes it.
async fn stalled(queue: mpsc::WeakSender<Bytes>, taken: Arc<AtomicU64>, deadline: Duration) {
    let tick = (deadline / 4).max(Duration::from_millis(10));
    let mut last = taken.load(Ordering::Relaxed);
    let mut stuck = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        let Some(tx) = queue.upgrade() else {
            return std::future::pending().await;
        };
        let queued = tx.capacity() < tx.max_capacity();
        drop(tx);
        let now = taken.load(Ordering::Relaxed);
        if now != last || !queued {
            last = now;
            stuck = Duration::ZERO;
            continue;
        }
        stuck += tick;
        if stuck >= deadline {
            return;
        }
    }
}

enum End {
    Failed(String),
    Recycled,
    Shutdown,
}

impl Manager {
    pub(crate) async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !self.shutdown.is_triggered() {
            let end = self.once(&mut backoff).await;
            match end {
                End::Shutdown => break,
                End::Recycled => continue,
                End::Failed(msg) => {
                    tracing::warn!("failed to connect: {msg}");
                    let delay = backoff.next_delay();
                    tokio::select! {
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Picks randomly among the least-used resolved addresses, avoiding
    /// recently failed ones while others exist.
    fn pick(&self, addrs: &[SocketAddr]) -> Option<SocketAddr> {
        let healthy: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !self.failures.recent(a))
            .collect();
        let addrs = if healthy.is_empty() {
            addrs
        } else {
            &healthy[..]
        };
        let used = usage(&self.all);
        let load = |a: &SocketAddr| used.get(a).copied().unwrap_or(0);
        let min = addrs.iter().map(load).min()?;
        let least: Vec<SocketAddr> = addrs.iter().copied().filter(|a| load(a) == min).collect();
        let i = rand::rng().random_range(0..least.len());
        least.get(i).copied()
    }

    async fn once(&self, backoff: &mut Backoff) -> End {
        let addrs = match self.config.discovery.resolve().await {
            Ok(a) => a,
            Err(e) => return End::Failed(e.to_string()),
        };
        let addr = {
            let _dialing = self.dial_lock.lock();
            let Some(addr) = self.pick(&addrs) else {
                return End::Failed("unable to lookup a log consumer".to_owned());
            };
            // Reserve the address while dialing so other managers see it used.
            *self.slot.addr.lock() = Some(addr);
            addr
        };
        let end = self.dial(addr, backoff).await;
        *self.slot.addr.lock() = None;
        end
    }

    async fn dial(&self, addr: SocketAddr, backoff: &mut Backoff) -> End {
        let tls = self.config.tls.clone().map(|c| (c, "doppler"));
        let channel = match channel_with(&addr.to_string(), tls, &ChannelOptions::agent()) {
            Ok(c) => c,
            Err(e) => {
                return End::Failed(format!(
                    "failed to establish stream to doppler ({addr}): {e}"
                ));
            }
        };
        let (tx, rx) = mpsc::channel(self.config.protocol.channel_capacity());
        let (est_tx, est_rx) = oneshot::channel();
        let taken = Arc::new(AtomicU64::new(0));
        let body = Announce {
            inner: ReceiverStream::new(rx),
            first_poll: Some(est_tx),
            protocol: self.config.protocol,
            stranded: self.metrics.stranded.clone(),
            taken: taken.clone(),
        };
        let protocol = self.config.protocol;
        let mut call = Box::pin(async move {
            match protocol {
                Protocol::V1Pusher => DopplerIngestorClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .pusher(body)
                    .await
                    .map(|_| ()),
                Protocol::V2BatchSender => IngressClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .batch_sender(body)
                    .await
                    .map(|_| ()),
            }
        });
        tokio::select! {
            () = self.shutdown.cancelled() => return End::Shutdown,
            res = &mut call => {
                let why = match res {
                    Ok(()) => "stream closed by doppler".to_owned(),
                    Err(status) => status.message().to_owned(),
                };
                self.failures.record(addr);
                return End::Failed(format!("failed to establish stream to doppler ({addr}): {why}"));
            }
            r = est_rx => if r.is_err() {
                return End::Failed(format!("failed to establish stream to doppler ({addr}): request dropped"));
            }
        }

        tracing::info!("successfully established a stream to doppler {addr}");
        self.failures.clear(addr);
        backoff.reset();
        let jitter = rand::rng().random_range(0..1000u64);
        self.slot.writes.store(0, Ordering::Relaxed);
        self.slot.limit.store(
            self.config.recycle_after.saturating_add(jitter),
            Ordering::Relaxed,
        );
        let watchdog = stalled(tx.downgrade(), taken, self.config.write_deadline);
        *self.slot.tx.write() = Some(tx);
        self.metrics.connections.add(1);
        self.metrics.streams.add(1);

        let end = tokio::select! {
            res = &mut call => {
                let why = match res {
                    Ok(()) => "stream closed by doppler".to_owned(),
                    Err(status) => status.message().to_owned(),
                };
                self.failures.record(addr);
                End::Failed(format!("doppler stream to {addr} ended: {why}"))
            }
            () = watchdog => {
                self.failures.record(addr);
                End::Failed(format!(
                    "doppler stream to {addr} took nothing for {:?}; failing over to another doppler",
                    self.config.write_deadline
                ))
            }
            () = self.slot.recycle.notified() => End::Recycled,
            () = self.shutdown.cancelled() => End::Shutdown,
        };

        // Unpublish: the channel closes once no writer holds a sender, the
        // request body ends and the call completes after flushing.
        *self.slot.tx.write() = None;
        self.metrics.connections.add(-1);
        self.metrics.streams.add(-1);
        if !matches!(end, End::Failed(_)) {
            let _ = tokio::time::timeout(FLUSH_GRACE, call).await;
            if matches!(end, End::Recycled) {
                tracing::debug!(%addr, protocol = ?self.config.protocol, "recycled doppler stream");
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(protocol: Protocol) -> (mpsc::Sender<Bytes>, Announce, Counter) {
        let (tx, rx) = mpsc::channel(8);
        let stranded = Counter::detached();
        let body = Announce {
            inner: ReceiverStream::new(rx),
            first_poll: None,
            protocol,
            stranded: stranded.clone(),
            taken: Arc::new(AtomicU64::new(0)),
        };
        (tx, body, stranded)
    }

    fn v2_batch(envelopes: usize) -> Bytes {
        let items: Vec<Bytes> = (0..envelopes)
            .map(|i| Bytes::from(vec![0x12, 1, b'a' + i as u8]))
            .collect();
        let mut out = bytes::BytesMut::new();
        envelope_proto::batch::encode(&items, &mut out);
        out.freeze()
    }

    #[test]
    fn a_broken_v2_stream_counts_the_envelopes_of_its_queued_batches() {
        let (tx, body, stranded) = body(Protocol::V2BatchSender);
        tx.try_send(v2_batch(3)).expect("queued");
        tx.try_send(v2_batch(2)).expect("queued");
        drop(body);
        assert_eq!(stranded.get(), 5);
        assert!(tx.try_send(v2_batch(1)).is_err(), "closed once dropped");
    }

    #[test]
    fn a_broken_v1_stream_counts_one_envelope_per_message() {
        let (tx, body, stranded) = body(Protocol::V1Pusher);
        for _ in 0..4 {
            tx.try_send(Bytes::from_static(b"\x0a\x01x"))
                .expect("queued");
        }
        drop(body);
        assert_eq!(stranded.get(), 4);
    }

    #[tokio::test]
    async fn a_drained_body_counts_nothing() {
        use futures::StreamExt as _;
        let (tx, mut body, stranded) = body(Protocol::V2BatchSender);
        tx.try_send(v2_batch(3)).expect("queued");
        drop(tx);
        while body.next().await.is_some() {}
        drop(body);
        assert_eq!(stranded.get(), 0);
    }
}
