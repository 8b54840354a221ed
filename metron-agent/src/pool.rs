//! The doppler pool (reference §8.4): per protocol, N stream managers, each
//! owning at most one gRPC connection and one client stream (Pusher for v1,
//! BatchSender for v2).
//!
//! - **Writing** ([`Pool::write`]): start at a random stream and hand the
//!   messages to the first stream with room; a stream whose connection broke
//!   refuses and the next one is tried. Each stream is fed through a small
//!   bounded channel that tonic drains into the HTTP/2 body, so under load many
//!   messages leave in one write. When every live stream is full the writer
//!   waits up to [`FULL_WAIT`] for room (backpressure into the drop-oldest
//!   ring, as upstream's blocking `Send` does); with no live stream, or after
//!   that wait, the messages are dropped and the caller counts
//!   `dropped{direction="egress"}`.
//! - **Managers** ([`stream`]): resolve, dial, open the stream, log
//!   `successfully established a stream to doppler ADDR`; on failure log
//!   `failed to connect: …` and retry with jittered backoff; after
//!   `recycle_after + rand[0,1000)` writes close and re-dial so load moves to
//!   new dopplers.
//! - **Rebalancing** (beyond upstream): a resolver task re-resolves the
//!   doppler names every `resolve_interval`; when an address appears that no
//!   stream uses while another address carries several streams, or a stream's
//!   address disappeared, one stream is recycled. Dials pick randomly among the
//!   least-used addresses, so streams spread evenly over dopplers; an address
//!   whose dial failed in the last 10 s is avoided while others
//!   exist (e.g. `localhost` resolving to `::1` with doppler on IPv4 only).
//! - **Write deadline** (beyond upstream): a stream whose doppler takes none of
//!   its queued messages for [`stream::WRITE_DEADLINE`] (a frozen doppler keeps
//!   its TCP connection and HTTP/2 pings alive but its window closed) is failed:
//!   writers move to the other streams at once, the address is avoided for 10 s,
//!   and the messages still queued are counted in `dropped{direction="egress"}`.
//!   Envelopes already inside that doppler's HTTP/2 window are in doubt:
//!   delivered if it resumes, lost if it dies.

pub mod discovery;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use plumbing::metrics::{Counter, Gauge};
use plumbing::shutdown::Shutdown;
use rand::Rng as _;
use tokio::sync::{Notify, mpsc};

pub use discovery::Discovery;

/// How long a writer waits for room when every live stream is full.
pub const FULL_WAIT: Duration = Duration::from_secs(1);

/// Which doppler service the pool's streams call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `/plumbing.DopplerIngestor/Pusher`, one `EnvelopeData` per message.
    V1Pusher,
    /// `/loggregator.v2.Ingress/BatchSender`, one `EnvelopeBatch` per message.
    V2BatchSender,
}

impl Protocol {
    /// gRPC method path.
    pub fn path(self) -> &'static str {
        match self {
            Self::V1Pusher => "/plumbing.DopplerIngestor/Pusher",
            Self::V2BatchSender => "/loggregator.v2.Ingress/BatchSender",
        }
    }

    /// Envelopes carried by one message of this protocol (0 if a batch is malformed).
    pub fn envelopes_in(self, msg: &[u8]) -> u64 {
        match self {
            Self::V1Pusher => 1,
            Self::V2BatchSender => envelope_proto::batch::count(msg).map_or(0, |n| n as u64),
        }
    }

    /// Messages buffered per stream between the writer and the HTTP/2 body.
    pub fn channel_capacity(self) -> usize {
        match self {
            Self::V1Pusher => 1024,
            Self::V2BatchSender => 16,
        }
    }
}

/// Settings shared by every manager of one pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Which service.
    pub protocol: Protocol,
    /// Number of streams.
    pub streams: usize,
    /// Where the dopplers are.
    pub discovery: Discovery,
    /// Client TLS (server name `doppler` is verified); `None` = plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Writes before a stream is recycled (plus rand[0,1000)).
    pub recycle_after: u64,
    /// Re-resolution interval of the rebalancer.
    pub resolve_interval: Duration,
    /// Write deadline of each stream: queued messages its doppler takes none of for this long
    /// fail the stream over to another doppler ([`stream::WRITE_DEADLINE`] in production).
    pub write_deadline: Duration,
}

/// The metrics a pool maintains: connection and stream gauges, and its loss counter.
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    /// All established connections (shared by both pools).
    pub connections: Gauge,
    /// Established streams of this pool's protocol.
    pub streams: Gauge,
    /// Envelopes still queued on a stream when it broke (`dropped{direction="egress"}`; they
    /// were counted in `egress` when queued).
    pub stranded: Counter,
}

/// One stream manager's published state.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Sender into the live stream; `None` while (re)connecting.
    pub(crate) tx: RwLock<Option<mpsc::Sender<Bytes>>>,
    pub(crate) writes: AtomicU64,
    pub(crate) limit: AtomicU64,
    pub(crate) recycle: Notify,
    /// Address of the live stream, or of the dial in progress.
    pub(crate) addr: Mutex<Option<SocketAddr>>,
}

impl Slot {
    fn count(&self, n: u64) {
        let before = self.writes.fetch_add(n, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        if before < limit && before + n >= limit {
            self.recycle.notify_one();
        }
    }
}

/// How long a failed dial keeps an address out of the preferred choices.
pub(crate) const FAILURE_MEMORY: Duration = Duration::from_secs(10);

/// Addresses whose last dial failed, and when.
#[derive(Debug, Default)]
pub(crate) struct Failures(Mutex<HashMap<SocketAddr, Instant>>);

impl Failures {
    pub(crate) fn record(&self, addr: SocketAddr) {
        self.0.lock().insert(addr, Instant::now());
    }

    pub(crate) fn clear(&self, addr: SocketAddr) {
        self.0.lock().remove(&addr);
    }

    pub(crate) fn recent(&self, addr: &SocketAddr) -> bool {
        self.0
            .lock()
            .get(addr)
            .is_some_and(|t| t.elapsed() < FAILURE_MEMORY)
    }
}

/// No stream accepted the messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to write to any dopplers")]
pub struct NoStream;

/// The streams of one protocol.
#[derive(Debug, Clone)]
pub struct Pool {
    slots: Arc<[Arc<Slot>]>,
}

impl Pool {
    /// Starts `config.streams` managers and the rebalancer on `shutdown`'s
    /// tracker.
    pub fn start(config: PoolConfig, metrics: PoolMetrics, shutdown: &Shutdown) -> Self {
        let slots: Arc<[Arc<Slot>]> = (0..config.streams.max(1))
            .map(|_| Arc::new(Slot::default()))
            .collect();
        let config = Arc::new(config);
        let failures = Arc::new(Failures::default());
        let dial_lock = Arc::new(Mutex::new(()));
        for slot in slots.iter() {
            let m = stream::Manager {
                slot: slot.clone(),
                all: slots.clone(),
                failures: failures.clone(),
                dial_lock: dial_lock.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
            };
            shutdown.spawn(m.run());
        }
        shutdown.spawn(rebalance(slots.clone(), failures, config, shutdown.clone()));
        Self { slots }
    }

    /// Number of streams currently established.
    pub fn live_streams(&self) -> usize {
        self.slots.iter().filter(|s| s.tx.read().is_some()).count()
    }

    /// Writes `msgs` (at most the protocol's channel capacity) to one stream.
    pub async fn write(&self, msgs: Vec<Bytes>) -> Result<(), NoStream> {
        let n = msgs.len();
        if n == 0 {
            return Ok(());
        }
        let count = self.slots.len();
        let start = rand::rng().random_range(0..count);
        let mut full: Option<(usize, mpsc::Sender<Bytes>)> = None;
        for k in 0..count {
            let i = (start + k) % count;
            let guard = self.slots[i].tx.read();
            let Some(tx) = guard.as_ref() else { continue };
            match tx.try_reserve_many(n) {
                Ok(permits) => {
                    for (permit, msg) in permits.zip(msgs) {
                        permit.send(msg);
                    }
                    self.slots[i].count(n as u64);
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    if full.is_none() {
                        full = Some((i, tx.clone()));
                    }
                }
                Err(mpsc::error::TrySendError::Closed(())) => {}
            }
        }
        let Some((i, tx)) = full else {
            return Err(NoStream);
        };
        match tokio::time::timeout(FULL_WAIT, tx.reserve_many(n)).await {
            Ok(Ok(permits)) => {
                for (permit, msg) in permits.zip(msgs) {
                    permit.send(msg);
                }
                self.slots[i].count(n as u64);
                Ok(())
            }
            _ => Err(NoStream),
        }
    }
}

/// Addresses in use, with how many streams use each.
pub(crate) fn usage(slots: &[Arc<Slot>]) -> BTreeMap<SocketAddr, usize> {
    let mut used = BTreeMap::new();
    for s in slots {
        if let Some(a) = *s.addr.lock() {
            *used.entry(a).or_insert(0) += 1;
        }
    }
    used
}

/// Periodic re-resolution: recycle one stream when an address is unused while
/// another carries several streams, or when a stream's address vanished.
async fn rebalance(
    slots: Arc<[Arc<Slot>]>,
    failures: Arc<Failures>,
    config: Arc<PoolConfig>,
    shutdown: Shutdown,
) {
    if config.resolve_interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.resolve_interval) => {}
        }
        let Ok(addrs) = config.discovery.resolve().await else {
            continue;
        };
        let used = usage(&slots);
        // A stream whose doppler left the resolution.
        if let Some(s) = slots
            .iter()
            .find(|s| s.tx.read().is_some() && s.addr.lock().is_some_and(|a| !addrs.contains(&a)))
        {
            tracing::info!(protocol = ?config.protocol, "doppler left the resolution; recycling its stream");
            s.recycle.notify_one();
            continue;
        }
        let unused = addrs
            .iter()
            .any(|a| !used.contains_key(a) && !failures.recent(a));
        let busiest = used
            .iter()
            .max_by_key(|(_, n)| **n)
            .filter(|(_, n)| **n > 1);
        if let (true, Some((addr, _))) = (unused, busiest)
            && let Some(s) = slots
                .iter()
                .find(|s| s.tx.read().is_some() && *s.addr.lock() == Some(*addr))
        {
            tracing::info!(protocol = ?config.protocol, from = %addr, "new doppler address; rebalancing one stream");
            s.recycle.notify_one();
        }
    }
}
