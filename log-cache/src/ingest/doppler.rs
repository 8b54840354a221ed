//! Ingest from dopplers: one `loggregator.v2.Egress/BatchedReceiver`
//! subscription on every doppler of the pool (static addresses or DNS names,
//! re-resolved; mutual TLS with server name `doppler`), all with the same
//! shard id, so several log-cache nodes split the stream between them and
//! each envelope reaches one node (which forwards it to its owner).
//!
//! The selectors ask for every envelope type. Batches arrive as raw bytes
//! ([`envelope_proto::raw`]) and are split into envelope slices without
//! decoding; the slices go through one bounded drop-oldest ring
//! (`--ingest-buffer-size`, counted in
//! `log_cache_ingress_dropped{source="doppler"}` when it overwrites) to one
//! task that stores them. Nothing waits on a reader.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::loggregator_v2::{
    CounterSelector, EgressBatchRequest, EventSelector, GaugeSelector, LogSelector, Selector,
    TimerSelector, selector::Message,
};
use futures::StreamExt;
use plumbing::ring::Ring;
use plumbing::upstream::fanin::{self, FanIn, Opener, UpstreamStats};
use plumbing::upstream::pool::Pool;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::Sink;
use crate::metrics::Metrics;

/// Largest doppler message accepted (reference §5.5).
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// Envelopes taken from the ring per store round.
const STORE_BATCH: usize = 1024;

/// The subscription every node sends: all types, one shard id.
pub fn request(shard_id: &str) -> EgressBatchRequest {
    let selectors = [
        Message::Log(LogSelector {}),
        Message::Counter(CounterSelector::default()),
        Message::Gauge(GaugeSelector::default()),
        Message::Timer(TimerSelector::default()),
        Message::Event(EventSelector {}),
    ]
    .into_iter()
    .map(|m| Selector {
        source_id: String::new(),
        message: Some(m),
    })
    .collect();
    EgressBatchRequest {
        shard_id: shard_id.to_owned(),
        selectors,
        use_preferred_tags: true,
        ..EgressBatchRequest::default()
    }
}

/// Opens a raw `BatchedReceiver` stream; each batch becomes its envelope
/// slices (zero copy). A batch with broken framing ends the stream.
fn opener(request: EgressBatchRequest) -> Opener<Bytes> {
    let encoded = Bytes::from(request.encode_to_vec());
    Arc::new(move |channel: Channel| {
        let encoded = encoded.clone();
        Box::pin(async move {
            let mut client = envelope_proto::raw::egress_client::EgressClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE);
            let stream = client.batched_receiver(encoded).await?.into_inner();
            Ok(stream
                .map(|r| {
                    r.and_then(|batch| {
                        envelope_proto::batch::split(&batch)
                            .map(Iterator::collect)
                            .map_err(|e| tonic::Status::data_loss(e.to_string()))
                    })
                })
                .boxed())
        })
    })
}

/// A running doppler ingest; dropping it ends every subscription.
#[derive(Debug)]
pub struct DopplerIngest {
    _fanin: FanIn,
}

/// Subscribes to every doppler in `pool` and stores what arrives through
/// `sink` until `cancel`.
pub fn start(
    pool: &Pool,
    shard_id: &str,
    buffer: usize,
    sink: Arc<dyn Sink>,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> DopplerIngest {
    let ring = Arc::new(Ring::<Bytes>::new(buffer));
    let stats = UpstreamStats {
        ingress: metrics.doppler_ingress.clone(),
        streams: metrics.doppler_streams.clone(),
    };
    let fanin = fanin::start(pool, opener(request(shard_id)), ring.clone(), stats, cancel);
    let dropped = metrics.dropped_doppler.clone();
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let log = plumbing::limited_log::Limiter::new(Duration::from_secs(10));
        let mut batch = Vec::with_capacity(STORE_BATCH);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = plumbing::batch::next_batch(&ring, &mut batch, STORE_BATCH) => {}
            }
            for envelope in batch.drain(..) {
                sink.put(&envelope);
            }
            let lost = ring.take_dropped();
            if lost > 0 {
                dropped.add(lost);
                log.warn("ingest-behind", |suppressed| {
                    tracing::warn!(
                        lost,
                        suppressed,
                        "log-cache ingest fell behind the dopplers; oldest envelopes dropped"
                    )
                });
            }
            if batch.capacity() > STORE_BATCH * 4 {
                batch.shrink_to(STORE_BATCH);
            }
            tokio::task::yield_now().await;
        }
    });
    DopplerIngest { _fanin: fanin }
}

/// How often doppler names are re-resolved by default.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);
