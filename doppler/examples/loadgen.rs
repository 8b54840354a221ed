//! Quick loopback load generator for a running doppler (rough numbers; the
//! `benches/` suite does the full method).
//!
//! ```text
//! loadgen pki <dir>                      # writes a dev CA + leaves (doppler, client, ...)
//! loadgen run <addr> <pki-dir> [secs] [subscribers] [rate] [pid]
//! ```
//!
//! `run` sends 200-byte log envelopes in batches of 100 over 2 mTLS BatchSender
//! streams (pre-encoded, so the generator itself is cheap), with `subscribers`
//! v2 BatchedReceiver subscriptions counting what they receive. `rate` is a
//! target in envelopes/s (0 = as fast as possible). With `pid`, the doppler
//! process's CPU time (from /proc) is reported per million envelopes.
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::{
    self as v2, EgressBatchRequest, Envelope, Selector, selector::Message as SelMsg,
};
use envelope_proto::raw::egress_client::EgressClient as RawEgressClient;
use envelope_proto::raw::ingress_client::IngressClient;
use plumbing::tls::dev::DevPki;
use prost::Message;

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn batch_bytes() -> Bytes {
    let env = Envelope {
        timestamp: 1_700_000_000_000_000_000,
        source_id: "11111111-2222-3333-4444-555555555555".into(),
        instance_id: "0".into(),
        tags: [("source_type".to_owned(), "APP/PROC/WEB".to_owned())].into(),
        message: Some(v2::envelope::Message::Log(v2::Log {
            payload: Bytes::from(vec![b'x'; 100]),
            r#type: 0,
        })),
        ..Default::default()
    };
    let one = Bytes::from(env.encode_to_vec());
    let items: Vec<Bytes> = (0..100).map(|_| one.clone()).collect();
    let mut out = BytesMut::new();
    envelope_proto::batch::encode(&items, &mut out);
    println!(
        "envelope size {} bytes, batch {} bytes",
        one.len(),
        out.len()
    );
    out.freeze()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("pki") => {
            DevPki::generate(std::path::Path::new(&args[2])).unwrap();
        }
        Some("run") => run(&args[2..]).await,
        _ => println!(
            "usage: loadgen pki <dir> | loadgen run <addr> <pki-dir> [secs] [subs] [rate] [pid]"
        ),
    }
}

async fn run(args: &[String]) {
    let addr = args[0].clone();
    let dir = std::path::PathBuf::from(&args[1]);
    let files = plumbing::tls::TlsFiles::new(
        dir.join("ca.crt"),
        dir.join("client.crt"),
        dir.join("client.key"),
    );
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let subs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rate: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let pid: Option<u32> = args.get(5).and_then(|s| s.parse().ok());
    let cfg = plumbing::tls::client_config(&files).unwrap();
    let channel = || plumbing::tls::grpc::channel(&addr, Some((cfg.clone(), "doppler"))).unwrap();

    let received = Arc::new(AtomicU64::new(0));
    for _ in 0..subs {
        // Raw client: counts envelopes per batch without decoding them, so
        // the subscriber side measures doppler, not prost.
        let request = EgressBatchRequest {
            selectors: vec![Selector {
                source_id: String::new(),
                message: Some(SelMsg::Log(v2::LogSelector {})),
            }],
            use_preferred_tags: true,
            ..Default::default()
        };
        let mut stream = RawEgressClient::new(channel())
            .max_decoding_message_size(64 << 20)
            .batched_receiver(Bytes::from(request.encode_to_vec()))
            .await
            .unwrap()
            .into_inner();
        let r = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok(Some(b)) = stream.message().await {
                let n = envelope_proto::batch::entries(&b).map_or(0, |e| e.len());
                r.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let batch = batch_bytes();
    let sent = Arc::new(AtomicU64::new(0));
    let streams = 2u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let ticks0 = pid.and_then(cpu_ticks);
    let mut senders = Vec::new();
    for _ in 0..streams {
        let batch = batch.clone();
        let sent = Arc::clone(&sent);
        let ch = channel();
        senders.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
            let mut client = IngressClient::new(ch);
            let call = tokio::spawn(async move {
                client
                    .batch_sender(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            });
            let per_stream = rate / streams;
            let mut n = 0u64;
            while Instant::now() < end {
                if per_stream > 0 {
                    let due = start + Duration::from_secs_f64(n as f64 * 100.0 / per_stream as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                if tx.send(batch.clone()).await.is_err() {
                    break;
                }
                n += 1;
                sent.fetch_add(100, Ordering::Relaxed);
            }
            drop(tx);
            let _ = call.await;
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ticks1 = pid.and_then(cpu_ticks);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = sent.load(Ordering::Relaxed);
    let got = received.load(Ordering::Relaxed);
    println!(
        "sent {sent} in {elapsed:.2}s = {:.0} env/s; received {got} over {subs} subscriber(s) ({:.2}% of sent x subs)",
        sent as f64 / elapsed,
        100.0 * got as f64 / (sent as f64 * subs.max(1) as f64)
    );
    if let (Some(a), Some(b)) = (ticks0, ticks1) {
        let cpu_s = (b - a) as f64 / 100.0;
        println!(
            "doppler CPU {cpu_s:.2} s = {:.2} cores; {:.3} core-s per million envelopes",
            cpu_s / elapsed,
            cpu_s / (sent as f64 / 1e6)
        );
    }
}
