//! Open-loop, constant-rate load generator.
//!
//! The schedule is fixed in advance: batch `k` is due at `start + k * batch / rate`. Each batch
//! carries its *scheduled* send time in every envelope's timestamp, so a generator that falls
//! behind (or a system that stalls it) shows up as latency instead of silently lowering the rate
//! (no coordinated omission). Sends that cannot be handed to the transport at all are counted as
//! `not_sent`, never retried.

use crate::profile::{Templates, patch_timestamp};
use bytes::{BufMut, Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// What the generator achieved.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadReport {
    /// Envelopes handed to the transport.
    pub sent: u64,
    /// Envelopes due by the schedule that could not be handed over (transport full or broken).
    pub not_sent: u64,
    /// Wall time of the run in seconds.
    pub seconds: f64,
}

/// Where and how the generator sends.
#[derive(Debug, Clone)]
pub enum Target {
    /// v2 `loggregator.v2.Ingress/BatchSender` streams on an already-built channel.
    GrpcV2 {
        /// Channel to the agent or doppler (mTLS or plaintext, see `plumbing::tls::grpc`).
        channel: tonic::transport::Channel,
        /// Number of concurrent BatchSender streams.
        streams: usize,
    },
    /// v1 dropsonde over UDP, one envelope per datagram.
    UdpV1 {
        /// Agent UDP address.
        addr: SocketAddr,
    },
}

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Envelopes per second offered.
    pub rate: u64,
    /// Duration of the run.
    pub duration: Duration,
    /// Envelopes per batch (gRPC) or per scheduling step (UDP).
    pub batch: usize,
}

/// Runs the generator to completion.
pub async fn run(target: Target, templates: Templates, spec: LoadSpec) -> LoadReport {
    match target {
        Target::GrpcV2 { channel, streams } => {
            run_grpc(channel, streams.max(1), templates, spec).await
        }
        Target::UdpV1 { addr } => run_udp(addr, templates, spec).await,
    }
}

/// Encodes one EnvelopeBatch of `n` envelopes from the templates, all stamped `ts`.
fn build_batch(
    templates: &Templates,
    next: &mut usize,
    n: usize,
    ts: i64,
    buf: &mut BytesMut,
) -> Bytes {
    for _ in 0..n {
        let t = templates.get(*next);
        *next = next.wrapping_add(1);
        buf.put_u8(0x0a); // field 1, length-delimited
        put_varint(buf, t.len() as u64);
        let start = buf.len();
        buf.put_slice(t);
        patch_timestamp(&mut buf[start..], ts);
    }
    buf.split().freeze()
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Drives the fixed schedule, calling `emit(n, scheduled_ts)` for each due step; `emit` returns
/// how many of the `n` envelopes were handed over.
async fn schedule<F>(spec: &LoadSpec, mut emit: F) -> LoadReport
where
    F: FnMut(usize, i64) -> usize,
{
    let step = spec.batch.max(1) as u64;
    let total = spec
        .rate
        .saturating_mul(spec.duration.as_secs_f64() as u64)
        .max(step)
        + (spec.rate as f64 * spec.duration.as_secs_f64().fract()) as u64;
    let interval_ns = (step as f64 * 1e9 / spec.rate.max(1) as f64) as u64;
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    let mut report = LoadReport::default();
    let mut k: u64 = 0;
    while k * step < total {
        let due = Duration::from_nanos(k * interval_ns);
        let now = t0.elapsed();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        // Everything due by now goes out in this wake-up (open loop catches up, never skips).
        let now = t0.elapsed();
        while k * step < total && Duration::from_nanos(k * interval_ns) <= now {
            let n = step.min(total - k * step) as usize;
            let scheduled = wall0 + Duration::from_nanos(k * interval_ns);
            let handed = emit(n, envelope_proto::timestamp::of(scheduled)).min(n);
            report.sent += handed as u64;
            report.not_sent += (n - handed) as u64;
            k += 1;
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report
}

async fn run_grpc(
    channel: tonic::transport::Channel,
    streams: usize,
    templates: Templates,
    spec: LoadSpec,
) -> LoadReport {
    let mut txs = Vec::with_capacity(streams);
    let mut tasks = Vec::with_capacity(streams);
    for _ in 0..streams {
        // A short queue per stream: if the transport cannot keep up, batches are counted as
        // not sent instead of piling up in the generator.
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let mut client = envelope_proto::raw::ingress_client::IngressClient::new(channel.clone())
            .max_encoding_message_size(16 << 20);
        tasks.push(tokio::spawn(async move {
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            client.batch_sender(stream).await.map(|_| ())
        }));
        txs.push(tx);
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut next = 0usize;
    let mut which = 0usize;
    let report = schedule(&spec, |n, ts| {
        let batch = build_batch(&templates, &mut next, n, ts, &mut buf);
        which = (which + 1) % txs.len();
        if txs[which].try_send(batch).is_ok() {
            n
        } else {
            0
        }
    })
    .await;
    drop(txs);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(status))) => tracing::warn!(%status, "load stream ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "load stream task failed"),
            Err(_) => tracing::warn!("load stream did not finish within 5 s"),
        }
    }
    report
}

async fn run_udp(addr: SocketAddr, templates: Templates, spec: LoadSpec) -> LoadReport {
    let v1 = crate::profile::V1Templates::from_v2(&templates);
    if v1.is_empty() {
        tracing::error!("no v1 template could be built for UDP load");
        return LoadReport::default();
    }
    let socket = match tokio::net::UdpSocket::bind("127.0.0.1:0").await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "binding the UDP load socket");
            return LoadReport::default();
        }
    };
    if let Err(e) = socket.connect(addr).await {
        tracing::error!(error = %e, %addr, "connecting the UDP load socket");
        return LoadReport::default();
    }
    let mut next = 0usize;
    let mut scratch = Vec::with_capacity(512);
    schedule(&spec, |n, ts| {
        let mut handed = 0;
        for _ in 0..n {
            let (template, at) = v1.get(next);
            next = next.wrapping_add(1);
            scratch.clear();
            scratch.extend_from_slice(template);
            crate::profile::patch_v1_timestamp(&mut scratch, at, ts);
            // Non-blocking send: a full socket buffer counts as not sent (open loop).
            if socket.try_send(&scratch).is_ok() {
                handed += 1;
            }
        }
        handed
    })
    .await
}
