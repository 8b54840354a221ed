//! Per-consumer fan-in: one subscription on every doppler, all feeding the
//! consumer's drop-oldest ring.
//!
//! Readers never block: a full ring overwrites its oldest entry and the
//! consumer's writer learns the count. A reader whose stream fails retries
//! with [`RetryDelay`]; dopplers that join get a reader, dopplers that leave
//! lose theirs. Dropping the [`FanIn`] (or cancelling its parent) cancels
//! every upstream stream, so doppler-side subscriptions end with the consumer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use plumbing::metrics::{Counter, Gauge};
use plumbing::ring::Ring;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::Channel;

use super::backoff::RetryDelay;
use super::pool::{Doppler, Pool};

/// A stream of upstream batches.
pub(crate) type BatchStream<T> = BoxStream<'static, Result<Vec<T>, tonic::Status>>;

/// Opens one upstream stream on a doppler channel.
pub(crate) type Opener<T> =
    Arc<dyn Fn(Channel) -> BoxFuture<'static, Result<BatchStream<T>, tonic::Status>> + Send + Sync>;

/// Metrics every reader updates.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamStats {
    /// `ingress{protocol="grpc"}`: envelopes received from dopplers.
    pub(crate) ingress: Counter,
    /// Doppler streams currently open for consumers.
    pub(crate) streams: Gauge,
}

/// A running fan-in; dropping it cancels every upstream stream.
#[derive(Debug)]
pub(crate) struct FanIn {
    _guard: DropGuard,
}

/// Subscribes `ring` to every doppler of `pool` (now and as the set changes).
pub(crate) fn start<T: Send + 'static>(
    pool: &Pool,
    opener: Opener<T>,
    ring: Arc<Ring<T>>,
    stats: UpstreamStats,
    parent: &CancellationToken,
) -> FanIn {
    let cancel = parent.child_token();
    let mut watch = pool.watch();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut readers: BTreeMap<SocketAddr, CancellationToken> = BTreeMap::new();
        loop {
            let set = watch.borrow_and_update().clone();
            readers.retain(|addr, reader| {
                let keep = set.contains_key(addr);
                if !keep {
                    reader.cancel();
                }
                keep
            });
            for (addr, doppler) in set.iter() {
                if readers.contains_key(addr) {
                    continue;
                }
                let reader = token.child_token();
                readers.insert(*addr, reader.clone());
                tokio::spawn(read(
                    doppler.clone(),
                    opener.clone(),
                    ring.clone(),
                    stats.clone(),
                    reader,
                ));
            }
            tokio::select! {
                _ = token.cancelled() => return,
                changed = watch.changed() => if changed.is_err() {
                    token.cancelled().await;
                    return;
                },
            }
        }
    });
    FanIn {
        _guard: cancel.drop_guard(),
    }
}

async fn read<T>(
    doppler: Doppler,
    opener: Opener<T>,
    ring: Arc<Ring<T>>,
    stats: UpstreamStats,
    cancel: CancellationToken,
) {
    let mut delay = RetryDelay::default();
    loop {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = opener(doppler.channel.clone()) => r,
        };
        match opened {
            Ok(mut stream) => {
                delay.reset();
                stats.streams.add(1);
                loop {
                    let item = tokio::select! {
                        _ = cancel.cancelled() => {
                            stats.streams.add(-1);
                            return;
                        }
                        item = stream.next() => item,
                    };
                    match item {
                        Some(Ok(batch)) => {
                            stats.ingress.add(batch.len() as u64);
                            for env in batch {
                                ring.push(env);
                            }
                        }
                        Some(Err(status)) => {
                            tracing::debug!(doppler = %doppler.addr, %status, "doppler stream failed");
                            break;
                        }
                        None => {
                            tracing::debug!(doppler = %doppler.addr, "doppler stream ended");
                            break;
                        }
                    }
                }
                stats.streams.add(-1);
            }
            Err(status) => {
                tracing::debug!(doppler = %doppler.addr, %status, "doppler subscribe failed");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay.next_delay()) => {}
        }
    }
}

/// Opener for the v1 `plumbing.Doppler/BatchSubscribe` stream: payloads are
/// the marshalled v1 envelopes, passed through untouched.
pub(crate) fn v1_batch_subscribe(
    request: envelope_proto::plumbing_v1::SubscriptionRequest,
) -> Opener<bytes::Bytes> {
    use envelope_proto::plumbing_v1::doppler_client::DopplerClient;
    Arc::new(move |channel: Channel| {
        let request = request.clone();
        Box::pin(async move {
            let mut client = DopplerClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let stream = client.batch_subscribe(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|b| b.payload)).boxed())
        })
    })
}

/// Opener for the v2 `loggregator.v2.Egress/BatchedReceiver` stream.
pub(crate) fn v2_batched_receiver(
    request: envelope_proto::loggregator_v2::EgressBatchRequest,
) -> Opener<envelope_proto::loggregator_v2::Envelope> {
    use envelope_proto::loggregator_v2::egress_client::EgressClient;
    Arc::new(move |channel: Channel| {
        let request = request.clone();
        Box::pin(async move {
            let mut client = EgressClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let stream = client.batched_receiver(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|b| b.batch)).boxed())
        })
    })
}

/// Max receive message size on doppler streams (reference §5.5).
pub(crate) const MAX_MESSAGE: usize = 10 * 1024 * 1024;
