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

use crate::metrics::{Counter, Gauge};
use crate::ring::Ring;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::Channel;

use super::backoff::RetryDelay;
use super::pool::{Doppler, Pool};

/// A stream of upstream batches.
pub type BatchStream<T> = BoxStream<'static, Result<Vec<T>, tonic::Status>>;

/// Opens one upstream stream on a doppler channel.
pub type Opener<T> =
    Arc<dyn Fn(Channel) -> BoxFuture<'static, Result<BatchStream<T>, tonic::Status>> + Send + Sync>;

/// Metrics every reader updates.
#[derive(Clone, Debug)]
pub struct UpstreamStats {
    /// `ingress{protocol="grpc"}`: envelopes received from dopplers.
    pub ingress: Counter,
    /// Doppler streams currently open for consumers.
    pub streams: Gauge,
}

/// A running fan-in; dropping it cancels every upstream stream.
#[derive(Debug)]
pub struct FanIn {
    _guard: DropGuard,
}

/// Subscribes `ring` to every doppler of `pool` (now and as the set changes).
pub fn start<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt;

    use super::*;
    use crate::upstream::pool::{Doppler, Pool};

    fn doppler(port: u16) -> (SocketAddr, Doppler) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        (addr, Doppler { addr, channel })
    }

    fn set(ports: &[u16]) -> Arc<BTreeMap<SocketAddr, Doppler>> {
        Arc::new(ports.iter().map(|p| doppler(*p)).collect())
    }

    /// Opens streams that yield one envelope then stay open; the first
    /// `fail_first` attempts fail.
    fn fake_opener(calls: Arc<AtomicUsize>, fail_first: usize) -> Opener<Bytes> {
        Arc::new(move |_channel| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < fail_first {
                    return Err(tonic::Status::unavailable("not yet"));
                }
                let one = futures::stream::iter(vec![Ok(vec![Bytes::from(vec![n as u8])])]);
                Ok(one.chain(futures::stream::pending()).boxed())
            })
        })
    }

    async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn stats() -> UpstreamStats {
        UpstreamStats {
            ingress: Counter::detached(),
            streams: Gauge::detached(),
        }
    }

    #[tokio::test]
    async fn follows_dopplers_joining_and_leaving_and_cancels_on_drop() {
        let (pool, tx) = Pool::fixed(set(&[1]));
        let ring = Arc::new(Ring::new(100));
        let calls = Arc::new(AtomicUsize::new(0));
        let stats = stats();
        let root = CancellationToken::new();
        let fanin = start(
            &pool,
            fake_opener(calls.clone(), 0),
            ring.clone(),
            stats.clone(),
            &root,
        );
        eventually(
            || stats.streams.get() == 1 && ring.len() == 1,
            "first doppler subscribed",
        )
        .await;
        tx.send(set(&[1, 2])).expect("send");
        eventually(
            || stats.streams.get() == 2 && ring.len() == 2,
            "joining doppler subscribed",
        )
        .await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the existing doppler is not re-subscribed"
        );
        tx.send(set(&[2])).expect("send");
        eventually(
            || stats.streams.get() == 1,
            "leaving doppler's stream cancelled",
        )
        .await;
        assert_eq!(stats.ingress.get(), 2);
        drop(fanin);
        eventually(|| stats.streams.get() == 0, "all streams cancelled").await;
    }

    #[tokio::test]
    async fn retries_failed_subscribes_with_backoff() {
        let (pool, _tx) = Pool::fixed(set(&[1]));
        let ring = Arc::new(Ring::new(100));
        let calls = Arc::new(AtomicUsize::new(0));
        let stats = stats();
        let root = CancellationToken::new();
        let _fanin = start(
            &pool,
            fake_opener(calls.clone(), 3),
            ring.clone(),
            stats.clone(),
            &root,
        );
        // 1 ms + 10 ms + 100 ms (+ jitter) before the fourth attempt succeeds.
        eventually(|| ring.len() == 1, "subscribed after retries").await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        root.cancel();
        eventually(|| stats.streams.get() == 0, "cancelled by the parent").await;
    }
}
