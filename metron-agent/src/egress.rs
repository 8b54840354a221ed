//! Egress loops: take what the ring holds (at most `batch_size`, flushing as
//! soon as the ring runs dry, via [`plumbing::batch::next_batch`]) and write
//! it to the doppler pool.
//!
//! - v2: one `EnvelopeBatch` built from the envelopes' bytes
//!   ([`envelope_proto::batch::encode`], no re-encode) per write.
//! - v1: each datagram is processed ([`crate::process::v1`]) and wrapped as
//!   `EnvelopeData`; the batch goes to one Pusher stream as consecutive
//!   messages, which tonic coalesces into few socket writes.
//!
//! Ring losses are counted here (the reader learns them) and logged at most
//! once per `drop_log_interval`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use plumbing::batch::next_batch;
use plumbing::metrics::{Counter, Gauge};
use plumbing::ring::Ring;

use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::process::v1::V1Processor;

/// Window of the `average_envelopes` gauges.
const AVERAGE_WINDOW: Duration = Duration::from_secs(60);

/// Running average of envelope sizes over [`AVERAGE_WINDOW`].
struct Average {
    gauge: Gauge,
    start: Instant,
    bytes: u64,
    count: u64,
}

impl Average {
    fn new(gauge: Gauge) -> Self {
        Self {
            gauge,
            start: Instant::now(),
            bytes: 0,
            count: 0,
        }
    }

    fn add(&mut self, bytes: u64, count: u64) {
        if self.start.elapsed() >= AVERAGE_WINDOW {
            self.start = Instant::now();
            self.bytes = 0;
            self.count = 0;
        }
        self.bytes += bytes;
        self.count += count;
        if let Some(avg) = self.bytes.checked_div(self.count) {
            self.gauge.set(i64::try_from(avg).unwrap_or(i64::MAX));
        }
    }
}

/// Ring-loss accounting with a rate-limited log line.
struct Drops {
    counter: Counter,
    interval: Duration,
    last_log: Option<Instant>,
    pending: u64,
    line: fn(u64),
}

impl Drops {
    fn check<T>(&mut self, ring: &Ring<T>) {
        let n = ring.take_dropped();
        if n == 0 && self.pending == 0 {
            return;
        }
        self.counter.add(n);
        self.pending += n;
        if self.last_log.is_none_or(|t| t.elapsed() >= self.interval) {
            (self.line)(self.pending);
            self.pending = 0;
            self.last_log = Some(Instant::now());
        }
    }
}

fn log_v2_drops(n: u64) {
    tracing::warn!("Dropped {n} v2 envelopes");
}

fn log_v1_drops(n: u64) {
    tracing::warn!("network reader dropped messages {n}");
}

/// The reading side shared by both loops: batches from the ring, with ring
/// losses accounted after every take.
struct Intake {
    ring: Arc<Ring<Bytes>>,
    batch: Vec<Bytes>,
    batch_size: usize,
    drops: Drops,
}

impl Intake {
    fn new(
        ring: Arc<Ring<Bytes>>,
        batch_size: usize,
        dropped: Counter,
        drop_log_interval: Duration,
        line: fn(u64),
    ) -> Self {
        Self {
            ring,
            batch: Vec::with_capacity(batch_size),
            batch_size,
            drops: Drops {
                counter: dropped,
                interval: drop_log_interval,
                last_log: None,
                pending: 0,
                line,
            },
        }
    }

    /// The next non-empty batch; `None` once the ring is closed and empty.
    async fn next(&mut self) -> Option<&[Bytes]> {
        self.batch.clear();
        let n = next_batch(&self.ring, &mut self.batch, self.batch_size).await;
        self.drops.check(&self.ring);
        (n > 0).then_some(&self.batch[..])
    }
}

/// Writes `msgs` (carrying `envelopes` envelopes) to the pool, counting them
/// as sent or as dropped.
async fn write_counted(
    pool: &Pool,
    msgs: Vec<Bytes>,
    envelopes: u64,
    sent: &Counter,
    dropped: &Counter,
) {
    match pool.write(msgs).await {
        Ok(()) => sent.add(envelopes),
        Err(e) => {
            dropped.add(envelopes);
            tracing::debug!(envelopes, "{e}");
        }
    }
}

/// The v2 loop; returns when the ring is closed and empty.
pub async fn run_v2(
    ring: Arc<Ring<Bytes>>,
    pool: Pool,
    metrics: Metrics,
    batch_size: usize,
    drop_log_interval: Duration,
) {
    let mut intake = Intake::new(
        ring,
        batch_size,
        metrics.dropped_ingress_v2.clone(),
        drop_log_interval,
        log_v2_drops,
    );
    let mut average = Average::new(metrics.average_envelopes_v2.clone());
    let mut out = BytesMut::new();
    while let Some(batch) = intake.next().await {
        let n = batch.len() as u64;
        envelope_proto::batch::encode(batch, &mut out);
        let msg = out.split().freeze();
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        average.add(bytes as u64, n);
        write_counted(
            &pool,
            vec![msg],
            n,
            &metrics.egress_v2,
            &metrics.dropped_egress_v2,
        )
        .await;
    }
}

/// The v1 loop; returns when the ring is closed and empty.
pub async fn run_v1(
    ring: Arc<Ring<Bytes>>,
    pool: Pool,
    processor: Arc<V1Processor>,
    metrics: Metrics,
    batch_size: usize,
    drop_log_interval: Duration,
) {
    let mut intake = Intake::new(
        ring,
        batch_size,
        metrics.dropped_ring_v1.clone(),
        drop_log_interval,
        log_v1_drops,
    );
    let mut average = Average::new(metrics.average_envelopes_v1.clone());
    let mut arena = BytesMut::new();
    while let Some(batch) = intake.next().await {
        let mut msgs = Vec::with_capacity(batch.len());
        let mut bytes = 0u64;
        for datagram in batch {
            match processor.process_into(datagram, &mut arena) {
                Ok(len) => {
                    bytes += len as u64;
                    msgs.push(arena.split().freeze());
                }
                Err(e) => {
                    metrics.invalid_v1.inc();
                    tracing::debug!(error = %e, "discarding v1 datagram");
                }
            }
        }
        let k = msgs.len() as u64;
        if k == 0 {
            continue;
        }
        average.add(bytes, k);
        write_counted(
            &pool,
            msgs,
            k,
            &metrics.egress_v1,
            &metrics.dropped_egress_v1,
        )
        .await;
    }
}

/// Appends an encoded `plumbing.EnvelopeData{payload = env}`.
pub fn envelope_data(env: &[u8], out: &mut BytesMut) {
    let mut head = Vec::with_capacity(6);
    head.push(0x0a);
    prost::encoding::encode_varint(env.len() as u64, &mut head);
    out.reserve(head.len() + env.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(env);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Discovery, PoolConfig, PoolMetrics, Protocol};
    use plumbing::metrics::Registry;
    use plumbing::shutdown::Shutdown;

    #[tokio::test]
    async fn ring_losses_and_a_dead_pool_are_counted() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry);
        let shutdown = Shutdown::new();
        let pool = Pool::start(
            PoolConfig {
                protocol: Protocol::V2BatchSender,
                streams: 2,
                discovery: Discovery::new(vec![], vec!["127.0.0.1:1".into()]),
                tls: None,
                recycle_after: 100,
                resolve_interval: Duration::ZERO,
                write_deadline: crate::pool::stream::WRITE_DEADLINE,
            },
            PoolMetrics {
                connections: Gauge::detached(),
                streams: Gauge::detached(),
                stranded: Counter::detached(),
            },
            &shutdown,
        );
        let ring = Arc::new(Ring::new(10));
        for i in 0..15u8 {
            ring.push(Bytes::from(vec![0x12, 1, b'a' + i]));
        }
        ring.close();
        run_v2(ring, pool, metrics.clone(), 4, Duration::from_secs(1)).await;
        assert_eq!(
            metrics.dropped_ingress_v2.get(),
            5,
            "15 pushed into 10 slots"
        );
        assert_eq!(metrics.dropped_egress_v2.get(), 10, "no doppler accepts");
        assert_eq!(metrics.egress_v2.get(), 0);
        assert_eq!(metrics.average_envelopes_v2.get(), 3);
        shutdown.trigger();
    }

    #[test]
    fn v1_process_into_wraps_the_processed_envelope() {
        use envelope_proto::events::{Envelope, LogMessage, envelope::EventType};
        use prost::Message as _;
        let p = V1Processor::new(crate::process::Identity::default());
        let env = Envelope {
            origin: Some("o".into()),
            event_type: Some(EventType::LogMessage as i32),
            log_message: Some(LogMessage {
                message: Some(Bytes::from_static(b"m")),
                message_type: Some(1),
                timestamp: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let datagram = envelope_proto::v1::encode(&env).expect("encodes");
        let mut out = BytesMut::new();
        p.process_into(&datagram, &mut out).expect("valid");
        let d = envelope_proto::plumbing_v1::EnvelopeData::decode(out.as_ref()).expect("decodes");
        let back = envelope_proto::v1::decode(&d.payload).expect("v1");
        assert_eq!(
            back,
            p.process(&datagram)
                .map(|v| envelope_proto::v1::decode(&v).expect("v1"))
                .expect("valid")
        );
        assert_eq!(back.tags["source_id"], "o");
        assert_eq!(back.deployment.as_deref(), Some(""));
    }

    #[test]
    fn envelope_data_wraps_the_payload() {
        use prost::Message as _;
        let mut out = BytesMut::new();
        envelope_data(&[7u8; 300], &mut out);
        let d = envelope_proto::plumbing_v1::EnvelopeData::decode(out.as_ref()).expect("decodes");
        assert_eq!(d.payload.as_ref(), &[7u8; 300][..]);
    }
}
