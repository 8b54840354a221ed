//! Egress loops: take what the ring holds (at most `batch_size`, flushing as
//! soon as the ring runs dry, via [`plumbing::batch::next_batch`]) and write
//! it to the doppler pool.
//!
//! - v2: `EnvelopeBatch`es built from the envelopes' bytes
//!   ([`envelope_proto::batch::encode`], no re-encode), each at most
//!   [`MAX_BATCH_BYTES`] (doppler's receive limit) with framing: a batch is
//!   closed before the next envelope would exceed it. An envelope too large
//!   to be sent even alone is dropped, counted in
//!   `dropped{direction="egress",metric_version="2.0"}` and logged (at most
//!   once per `drop_log_interval`).
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
use plumbing::limited_log::Limiter;
use plumbing::metrics::{Counter, Gauge};
use plumbing::ring::Ring;

use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::process::v1::V1Processor;

/// Largest v2 batch sent, in encoded bytes: doppler's max receive message
/// size (10 MiB, reference §5.5). A larger one would fail the whole stream.
pub const MAX_BATCH_BYTES: usize = plumbing::tls::grpc::MAX_MESSAGE_SIZE;

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
    let oversized = Limiter::new(drop_log_interval);
    let mut out = BytesMut::new();
    while let Some(batch) = intake.next().await {
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        average.add(bytes as u64, batch.len() as u64);
        let mut rest = batch;
        while !rest.is_empty() {
            let n = envelope_proto::batch::fitting(rest, MAX_BATCH_BYTES);
            if n == 0 {
                metrics.dropped_egress_v2.inc();
                let len = rest[0].len();
                oversized.warn("oversized", |suppressed| {
                    tracing::warn!(
                        last_size = len,
                        limit = MAX_BATCH_BYTES,
                        "Dropped {} v2 envelopes too large for one message to doppler",
                        suppressed + 1
                    )
                });
                rest = &rest[1..];
                continue;
            }
            let (run, tail) = rest.split_at(n);
            rest = tail;
            envelope_proto::batch::encode(run, &mut out);
            let msg = out.split().freeze();
            write_counted(
                &pool,
                vec![msg],
                n as u64,
                &metrics.egress_v2,
                &metrics.dropped_egress_v2,
            )
            .await;
        }
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

    /// A plaintext v2 pool of `streams` streams to `addr`, no rebalancing.
    fn v2_pool(addr: &str, streams: usize, recycle_after: u64, shutdown: &Shutdown) -> Pool {
        Pool::start(
            PoolConfig {
                protocol: Protocol::V2BatchSender,
                streams,
                discovery: Discovery::new(vec![], vec![addr.to_owned()]),
                tls: None,
                recycle_after,
                resolve_interval: Duration::ZERO,
                write_deadline: crate::pool::stream::WRITE_DEADLINE,
            },
            PoolMetrics {
                connections: Gauge::detached(),
                streams: Gauge::detached(),
                stranded: Counter::detached(),
            },
            shutdown,
        )
    }

    #[tokio::test]
    async fn ring_losses_and_a_dead_pool_are_counted() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry);
        let shutdown = Shutdown::new();
        let pool = v2_pool("127.0.0.1:1", 2, 100, &shutdown);
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

    /// A plaintext `loggregator.v2.Ingress` server with doppler's 10 MiB
    /// receive limit that records the envelopes of every batch it accepts.
    struct Recorder {
        batches: Arc<parking_lot::Mutex<Vec<Vec<usize>>>>,
    }

    #[tonic::async_trait]
    impl envelope_proto::raw::ingress_server::Ingress for Recorder {
        async fn sender(
            &self,
            _: tonic::Request<tonic::Streaming<Bytes>>,
        ) -> Result<tonic::Response<Bytes>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }

        async fn batch_sender(
            &self,
            request: tonic::Request<tonic::Streaming<Bytes>>,
        ) -> Result<tonic::Response<Bytes>, tonic::Status> {
            let mut stream = request.into_inner();
            while let Some(msg) = stream.message().await? {
                let lens = envelope_proto::batch::split(&msg)
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
                    .map(|e| e.len())
                    .collect();
                self.batches.lock().push(lens);
            }
            Ok(tonic::Response::new(Bytes::new()))
        }

        async fn send(
            &self,
            _: tonic::Request<Bytes>,
        ) -> Result<tonic::Response<Bytes>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v2_batches_stay_under_dopplers_limit_and_oversized_are_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let batches = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let server = plumbing::tls::grpc::server_builder()
            .add_service(
                envelope_proto::raw::ingress_server::IngressServer::new(Recorder {
                    batches: Arc::clone(&batches),
                })
                .max_decoding_message_size(MAX_BATCH_BYTES),
            )
            .serve_with_incoming(plumbing::tls::grpc::serve_incoming(listener, None));
        let server = tokio::spawn(server);
        let registry = Registry::new();
        let metrics = Metrics::new(&registry);
        let shutdown = Shutdown::new();
        let pool = v2_pool(&addr.to_string(), 1, 1_000_000, &shutdown);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pool.live_streams() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no stream");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // One ring's worth, taken as one batch of 100: four 4.5 MB envelopes
        // (18 MB together), one that cannot fit any batch, and 95 small ones.
        let big = 4_500_000;
        let huge = MAX_BATCH_BYTES;
        let ring = Arc::new(Ring::new(200));
        let mut want = Vec::new();
        for i in 0..100usize {
            let len = match i {
                10 | 30 | 50 | 70 => big,
                60 => huge,
                _ => 100 + i,
            };
            ring.push(Bytes::from(vec![b'e'; len]));
            if len != huge {
                want.push(len);
            }
        }
        ring.close();
        run_v2(ring, pool, metrics.clone(), 100, Duration::from_secs(1)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while batches.lock().iter().map(Vec::len).sum::<usize>() < want.len() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "doppler got {:?} of {} envelopes; dropped {}",
                batches.lock().iter().map(Vec::len).collect::<Vec<_>>(),
                want.len(),
                metrics.dropped_egress_v2.get()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = batches.lock().clone();
        for b in &got {
            let size: usize = b.iter().map(|&l| envelope_proto::batch::entry_len(l)).sum();
            assert!(size <= MAX_BATCH_BYTES, "a {size}-byte batch");
        }
        assert!(got.len() >= 2);
        assert_eq!(got.concat(), want, "every other envelope, in order");
        assert_eq!(
            metrics.dropped_egress_v2.get(),
            1,
            "the one that cannot fit"
        );
        assert_eq!(metrics.egress_v2.get(), want.len() as u64);
        shutdown.trigger();
        server.abort();
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
