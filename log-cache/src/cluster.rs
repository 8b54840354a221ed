//! Scale-out: several nodes (`--node-addrs`, `--node-index`), each source id
//! owned by one node chosen exactly as upstream's routing table does
//! (`src/internal/routing/routing_table.go`: xxhash64 of the source id, then
//! jump consistent hash over the node count, replication 1), so a cluster
//! mixing our nodes and upstream's agrees on every owner.
//!
//! - [`RoutedSink`]: ingest for a source owned elsewhere is forwarded to the
//!   owner with `logcache.v1.Ingress/Send` (`local_only`, so it is never
//!   forwarded again). Each peer has one outbound queue bounded by bytes
//!   ([`FORWARD_QUEUE_BYTES`], drop-oldest, counted in
//!   `log_cache_forward_dropped`) and one sender task; a peer that is down
//!   costs at most that queue, never memory that grows while it is away.
//! - [`RoutedReader`]: reads for a source owned elsewhere are proxied to the
//!   owner (`Egress/Read`); an owner that is down or slow yields an empty
//!   batch, not an error (as upstream's `remoteRead`). Meta fans out to every
//!   node (`local_only` on the peers), failed nodes left out, and is cached
//!   for one second.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::logcache_v1::{MetaInfo, MetaRequest, MetaResponse, ReadRequest};
use envelope_proto::raw::logcache::egress_client::EgressClient;
use envelope_proto::raw::logcache::ingress_client::IngressClient;
use envelope_proto::view::EnvelopeView;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use plumbing::limited_log::Limiter;
use plumbing::metrics::{Counter, Gauge, Registry};
use prost::Message as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::ingest::Sink;
use crate::read::{LocalReader, ReadError, Reader};
use crate::store::{Store, Stored};

/// Bytes of envelopes queued for one peer at most.
pub const FORWARD_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Largest batch sent to a peer in one `Send`.
const FORWARD_BATCH_BYTES: usize = 1024 * 1024;
/// How long a proxied read or a `Send` may take.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fanned-out meta answer is reused.
const META_CACHE: Duration = Duration::from_secs(1);

/// Jump consistent hash (Lamping & Veach), as `benbjohnson/jmphash`.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The node (index into the node list) that owns `source_id`.
pub fn owner(source_id: &str, nodes: usize) -> usize {
    if nodes <= 1 {
        return 0;
    }
    jump_hash(xxhash_rust::xxh64::xxh64(source_id.as_bytes(), 0), nodes)
}

/// Per-peer forwarding metrics.
#[derive(Debug, Clone)]
struct PeerMetrics {
    forwarded: Counter,
    dropped: Counter,
    queued: Gauge,
}

/// The outbound queue of one peer: encoded envelopes, bounded by bytes.
struct Outbox {
    queue: Mutex<(VecDeque<Bytes>, usize)>,
    ready: Notify,
    metrics: PeerMetrics,
}

impl Outbox {
    fn push(&self, envelope: Bytes) {
        let mut dropped = 0u64;
        {
            let mut q = self.queue.lock();
            q.1 += envelope.len();
            q.0.push_back(envelope);
            while q.1 > FORWARD_QUEUE_BYTES {
                let Some(old) = q.0.pop_front() else { break };
                q.1 -= old.len();
                dropped += 1;
            }
            self.metrics.queued.set(q.1 as i64);
        }
        if dropped > 0 {
            self.metrics.dropped.add(dropped);
        }
        self.ready.notify_one();
    }

    /// Takes up to [`FORWARD_BATCH_BYTES`] of envelopes (at least one).
    fn take(&self) -> Vec<Bytes> {
        let mut q = self.queue.lock();
        let mut out = Vec::new();
        let mut size = 0;
        while let Some(front) = q.0.front() {
            if !out.is_empty() && size + front.len() > FORWARD_BATCH_BYTES {
                break;
            }
            size += front.len();
            if let Some(e) = q.0.pop_front() {
                out.push(e);
            }
        }
        q.1 -= size;
        self.metrics.queued.set(q.1 as i64);
        out
    }
}

/// One other node.
struct Peer {
    addr: String,
    channel: Channel,
    outbox: Arc<Outbox>,
}

/// The nodes of a cluster, seen from one of them.
pub struct Cluster {
    index: usize,
    peers: Vec<Option<Peer>>,
    local_store: Arc<Store>,
    local_reader: LocalReader,
    remote_read_errors: Counter,
    meta_cache: Mutex<Option<(Instant, BTreeMap<String, MetaInfo>)>>,
    log: Limiter,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("index", &self.index)
            .field("nodes", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster of `addrs` (gRPC `host:port` of every node, in index
    /// order) seen from node `index`; peers are reached over `tls` (server
    /// name `log-cache`) or plaintext; this node's own envelopes go to
    /// `local_store`. Starts one sender task per peer,
    /// stopped by `cancel`.
    pub fn start(
        index: usize,
        addrs: &[String],
        tls: Option<Arc<rustls::ClientConfig>>,
        local_store: Arc<Store>,
        local_reader: LocalReader,
        registry: &Registry,
        cancel: &CancellationToken,
    ) -> Result<Arc<Cluster>, plumbing::tls::TlsError> {
        let mut peers = Vec::with_capacity(addrs.len());
        for (i, addr) in addrs.iter().enumerate() {
            if i == index {
                peers.push(None);
                continue;
            }
            let channel = plumbing::tls::grpc::channel(
                addr,
                tls.clone().map(|t| (t, crate::server::SERVER_NAME)),
            )?;
            let labels = [("peer", addr.as_str())];
            let outbox = Arc::new(Outbox {
                queue: Mutex::new((VecDeque::new(), 0)),
                ready: Notify::new(),
                metrics: PeerMetrics {
                    forwarded: registry.counter(
                        "log_cache_forwarded",
                        "Envelopes forwarded to the node that owns their source id.",
                        &labels,
                    ),
                    dropped: registry.counter(
                        "log_cache_forward_dropped",
                        "Envelopes for another node dropped (its queue full or the node unreachable).",
                        &labels,
                    ),
                    queued: registry.gauge(
                        "log_cache_forward_queue_bytes",
                        "Bytes queued for another node.",
                        &labels,
                    ),
                },
            });
            tokio::spawn(send_loop(
                addr.clone(),
                channel.clone(),
                Arc::clone(&outbox),
                cancel.clone(),
            ));
            peers.push(Some(Peer {
                addr: addr.clone(),
                channel,
                outbox,
            }));
        }
        Ok(Arc::new(Cluster {
            index,
            peers,
            local_store,
            local_reader,
            remote_read_errors: registry.counter(
                "log_cache_remote_read_errors",
                "Proxied reads or meta requests that failed (answered empty).",
                &[],
            ),
            meta_cache: Mutex::new(None),
            log: Limiter::new(Duration::from_secs(10)),
        }))
    }

    fn owner(&self, source_id: &str) -> Option<&Peer> {
        self.peers[owner(source_id, self.peers.len())].as_ref()
    }
}

async fn send_loop(addr: String, channel: Channel, outbox: Arc<Outbox>, cancel: CancellationToken) {
    let mut client =
        IngressClient::new(channel).max_encoding_message_size(crate::server::MAX_GRPC_MESSAGE);
    let log = Limiter::new(Duration::from_secs(10));
    loop {
        let batch = outbox.take();
        if batch.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = outbox.ready.notified() => continue,
            }
        }
        let n = batch.len() as u64;
        let request = envelope_proto::logcache::encode_send_request(&batch, true);
        let sent = tokio::time::timeout(PEER_TIMEOUT, client.send(request)).await;
        match sent {
            Ok(Ok(_)) => outbox.metrics.forwarded.add(n),
            Ok(Err(status)) => {
                outbox.metrics.dropped.add(n);
                log.warn("send", |suppressed| {
                    tracing::warn!(peer = %addr, %status, suppressed, "forwarding to the owning log-cache node failed; envelopes dropped")
                });
                // Let a dead peer cost little: pause before the next attempt.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Err(_) => {
                outbox.metrics.dropped.add(n);
                log.warn("timeout", |suppressed| {
                    tracing::warn!(peer = %addr, suppressed, "forwarding to the owning log-cache node timed out; envelopes dropped")
                });
            }
        }
    }
}

/// Ingest that routes each envelope to its owner.
#[derive(Debug, Clone)]
pub struct RoutedSink {
    cluster: Arc<Cluster>,
    invalid: Counter,
}

impl RoutedSink {
    /// Routes through `cluster`; undecodable envelopes are counted in `invalid`.
    pub fn new(cluster: Arc<Cluster>, invalid: Counter) -> Self {
        Self { cluster, invalid }
    }
}

impl Sink for RoutedSink {
    fn put(&self, encoded: &[u8]) {
        let Ok(view) = EnvelopeView::parse(encoded) else {
            self.invalid.inc();
            return;
        };
        match self.cluster.owner(view.source_id()) {
            None => self.cluster.local_store.put_view(&view),
            Some(peer) => peer.outbox.push(Bytes::copy_from_slice(encoded)),
        }
    }
}

/// Reads that go to the owner of their source id.
#[derive(Debug, Clone)]
pub struct RoutedReader {
    cluster: Arc<Cluster>,
}

impl RoutedReader {
    /// Reads through `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }

    async fn remote_read(&self, peer: &Peer, req: ReadRequest) -> Vec<Stored> {
        let mut client = EgressClient::new(peer.channel.clone())
            .max_decoding_message_size(crate::server::MAX_GRPC_MESSAGE);
        let call = client.read(Bytes::from(req.encode_to_vec()));
        let answer = match tokio::time::timeout(PEER_TIMEOUT, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                self.failed(&peer.addr, &status.to_string());
                return Vec::new();
            }
            Err(_) => {
                self.failed(&peer.addr, "timed out");
                return Vec::new();
            }
        };
        split_read_response(&answer).unwrap_or_else(|| {
            self.failed(&peer.addr, "malformed ReadResponse");
            Vec::new()
        })
    }

    fn failed(&self, addr: &str, why: &str) {
        self.cluster.remote_read_errors.inc();
        self.cluster.log.warn("remote-read", |suppressed| {
            tracing::warn!(peer = %addr, error = %why, suppressed, "read from the owning log-cache node failed; answered empty")
        });
    }
}

/// The envelopes of an encoded `ReadResponse`, each copied out as it came
/// (no decoding, no re-encoding).
fn split_read_response(answer: &Bytes) -> Option<Vec<Stored>> {
    let batch = envelope_proto::logcache::read_response_batch(answer).ok()?;
    Some(
        envelope_proto::batch::entries(batch)
            .ok()?
            .map(Arc::from)
            .collect(),
    )
}

impl Reader for RoutedReader {
    fn read(&self, req: ReadRequest) -> BoxFuture<'_, Result<Vec<Stored>, ReadError>> {
        Box::pin(async move {
            match self.cluster.owner(&req.source_id) {
                None => self.cluster.local_reader.read_now(&req),
                Some(peer) => {
                    // Refuse bad requests here, as the owner would.
                    crate::read::check(&req, envelope_proto::timestamp::now())?;
                    Ok(self.remote_read(peer, req).await)
                }
            }
        })
    }

    fn meta(
        &self,
        local_only: bool,
    ) -> BoxFuture<'_, Result<BTreeMap<String, MetaInfo>, ReadError>> {
        Box::pin(async move {
            if local_only {
                return self.cluster.local_reader.meta(true).await;
            }
            if let Some((at, meta)) = self.cluster.meta_cache.lock().as_ref()
                && at.elapsed() < META_CACHE
            {
                return Ok(meta.clone());
            }
            let mut all = self.cluster.local_reader.meta(true).await?;
            let asks = self.cluster.peers.iter().flatten().map(|peer| async move {
                let mut client = EgressClient::new(peer.channel.clone())
                    .max_decoding_message_size(crate::server::MAX_GRPC_MESSAGE);
                let req = Bytes::from(MetaRequest { local_only: true }.encode_to_vec());
                let answer = tokio::time::timeout(PEER_TIMEOUT, client.meta(req)).await;
                (peer, answer)
            });
            for (peer, answer) in futures::future::join_all(asks).await {
                match answer {
                    Ok(Ok(resp)) => match MetaResponse::decode(resp.into_inner()) {
                        Ok(m) => all.extend(m.meta),
                        Err(e) => self.failed(&peer.addr, &e.to_string()),
                    },
                    Ok(Err(status)) => self.failed(&peer.addr, &status.to_string()),
                    Err(_) => self.failed(&peer.addr, "timed out"),
                }
            }
            *self.cluster.meta_cache.lock() = Some((Instant::now(), all.clone()));
            Ok(all)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash64_is_the_reference_function() {
        // Reference vectors of XXH64 with seed 0.
        assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxhash_rust::xxh64::xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn jump_hash_is_in_range_and_moves_little() {
        assert_eq!(jump_hash(12345, 1), 0);
        let keys: Vec<u64> = (0..10_000u64)
            .map(|k| xxhash_rust::xxh64::xxh64(&k.to_le_bytes(), 0))
            .collect();
        for n in [2, 3, 5, 10] {
            assert!(keys.iter().all(|&k| jump_hash(k, n) < n));
        }
        // Growing 4 -> 5 nodes moves about 1/5 of the keys, all to the new node.
        let moved: Vec<_> = keys
            .iter()
            .filter(|&&k| jump_hash(k, 4) != jump_hash(k, 5))
            .collect();
        assert!(moved.iter().all(|&&k| jump_hash(k, 5) == 4));
        assert!((1500..2500).contains(&moved.len()), "{}", moved.len());
    }

    #[test]
    fn sources_spread_over_every_node() {
        // Key 0 steps to 1 and jumps to 2^31: bucket 0 for any small count.
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(0, 100), 0);
        let spread: std::collections::BTreeSet<usize> = (0..64u64)
            .map(|k| owner(&format!("source-{k}"), 3))
            .collect();
        assert_eq!(spread.len(), 3, "sources spread over every node");
    }
}
