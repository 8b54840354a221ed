//! A firehose consumer that stops reading entirely is cut as slow, and when it
//! reads again it finds, in order: the envelopes it was sent, the
//! rate-control warning (log, then `TruncatingBuffer.DroppedMessages`)
//! counting everything it lost, a close frame 1000 whose reason says why,
//! and then the end of the TCP stream (issue 12 item 8).
//!
//! The client is raw TCP with a hand-written WebSocket handshake and frame
//! parser, so it writes nothing after the handshake (no automatic pong or
//! close reply that could reset the connection) and sees every byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envelope_proto::events;
use prost::Message as _;
use tc_cluster::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TC_ORIGIN: &str = "loggregator.trafficcontroller";

/// One server frame.
#[derive(Debug)]
enum Frame {
    Ping,
    Binary(Vec<u8>),
    Close(u16, String),
}

/// Parses unmasked server frames; panics on a truncated frame.
fn parse_frames(mut b: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 2, "truncated frame header");
        let opcode = b[0] & 0x0f;
        assert_eq!(b[0] & 0x80, 0x80, "unfragmented frames only");
        assert_eq!(b[1] & 0x80, 0, "server frames are unmasked");
        let (len, head) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert!(
            b.len() >= head + len,
            "truncated frame payload: the stream was cut mid-frame"
        );
        let payload = b[head..head + len].to_vec();
        b = &b[head + len..];
        out.push(match opcode {
            0x2 => Frame::Binary(payload),
            0x9 => Frame::Ping,
            0x8 => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                Frame::Close(code, String::from_utf8(payload[2..].to_vec()).unwrap())
            }
            other => panic!("unexpected opcode {other:#x}"),
        });
    }
    out
}

/// Opens `/firehose/<sub>` over raw TCP with a small receive buffer; returns
/// the socket and any frame bytes that came with the 101.
async fn raw_firehose(c: &Cluster, sub: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    let mut tcp = sock.connect(c.tc_addr).await.unwrap();
    let req = format!(
        "GET /firehose/{sub} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        c.tc_addr
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("handshake answer")
            .unwrap();
        assert!(n > 0, "closed during handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tcp, buf[end..].to_vec())
}

fn is_tc_warning(e: &events::Envelope) -> bool {
    e.origin.as_deref() == Some(TC_ORIGIN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_firehose_consumer_finds_envelopes_warning_close_frame_then_eof() {
    let c = Cluster::start(|config| {
        config.buffer_size = 1000;
        config.slow_consumer_timeout = Duration::from_secs(5);
    })
    .await;
    let (mut tcp, mut received) = raw_firehose(&c, "stalled").await;
    c.wait_subscriptions(1).await;

    // ~2,000 envelopes of ~1 KiB per second until the consumer is cut.
    let cut = Arc::new(AtomicBool::new(false));
    let producer = {
        let cut = cut.clone();
        let c = &c;
        async move {
            let padding = "x".repeat(1000);
            let mut round = 0u64;
            // Generous bound for a loaded machine: the cut comes after ~5 s.
            while !cut.load(Ordering::SeqCst) && round < 600 {
                let batch: Vec<_> = (0..200)
                    .map(|i| log_env(APP, &format!("{round}-{i}-{padding}")))
                    .collect();
                c.push((round % 2) as usize, &batch).await;
                round += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let watcher = async {
        for _ in 0..600 {
            if c.tc_counter("doppler_proxy_slow_consumer", &[]) >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cut.store(true, Ordering::SeqCst);
    };
    tokio::join!(producer, watcher);
    assert_eq!(
        c.tc_counter("doppler_proxy_slow_consumer", &[]),
        1,
        "the stalled consumer was cut"
    );

    // Now read everything the kernel kept for us, up to the end of the stream.
    let eof = tokio::time::timeout(Duration::from_secs(60), async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) => return true,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read failed before the end of the stream: {e}"),
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(eof, "the TCP stream ends after the farewell");

    let frames = parse_frames(&received);
    // The close frame is last, and there is exactly one.
    let Some(Frame::Close(code, reason)) = frames.last() else {
        panic!(
            "no close frame at the end; last frames: {:?}",
            &frames[frames.len().saturating_sub(3)..]
        );
    };
    assert_eq!(*code, 1000);
    let closes = frames
        .iter()
        .filter(|f| matches!(f, Frame::Close(..)))
        .count();
    assert_eq!(closes, 1);

    let envelopes: Vec<events::Envelope> = frames[..frames.len() - 1]
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) => Some(events::Envelope::decode(b.as_slice()).unwrap()),
            Frame::Ping => None,
            Frame::Close(..) => unreachable!("counted above: one close, last"),
        })
        .collect();
    let n = envelopes.len();
    assert!(n > 2, "envelopes, then the warning");
    // The two frames before the close: the TC's warning log, then its counter.
    let (log, counter) = (&envelopes[n - 2], &envelopes[n - 1]);
    assert!(is_tc_warning(log) && is_tc_warning(counter));
    let lm = log.log_message.as_ref().expect("warning log");
    assert_eq!(lm.source_type.as_deref(), Some("LGR"));
    assert_eq!(lm.app_id.as_deref(), Some("system"));
    let text = log_text(log).unwrap();
    let rest = text
        .strip_prefix("Log message output is too high. ")
        .expect("prefix");
    let (delta, rest) = rest.split_once(" messages dropped (Total ").expect("delta");
    let (total, rest) = rest.split_once(" messages dropped) from ").expect("total");
    assert!(
        rest.starts_with("loggregator.trafficcontroller to 127.0.0.1:"),
        "{rest}"
    );
    let (delta, total): (u64, u64) = (delta.parse().unwrap(), total.parse().unwrap());
    assert!(delta > 0);
    let ce = counter.counter_event.as_ref().expect("warning counter");
    assert_eq!(ce.name.as_deref(), Some("TruncatingBuffer.DroppedMessages"));
    assert_eq!((ce.delta, ce.total), (Some(delta), Some(total)));
    assert_eq!(
        reason,
        &format!("slow consumer: no progress for 5s; {total} messages dropped")
    );

    // Before the warning: the envelopes that were delivered (doppler's and,
    // if the writer ever fell behind before the stall, earlier TC warnings
    // whose deltas add up to the rest of the total).
    let data = &envelopes[..n - 2];
    let earlier: u64 = data
        .iter()
        .filter(|e| is_tc_warning(e))
        .filter_map(|e| e.counter_event.as_ref().and_then(|c| c.delta))
        .sum();
    assert_eq!(earlier + delta, total);
    let delivered = data.iter().filter(|e| !is_tc_warning(e)).count() as u64;
    assert!(delivered > 0);

    // Every envelope the TC took for this consumer was delivered or counted
    // as dropped, including those queued for it when it was cut.
    c.wait_subscriptions(0).await;
    eventually(
        || c.tc_gauge("doppler_proxy_doppler_streams") == 0,
        "doppler readers gone",
    )
    .await;
    let egress = c.tc_counter("egress", &[("endpoint", "firehose")]);
    let dropped = c.tc_counter(
        "dropped",
        &[("direction", "egress"), ("endpoint", "firehose")],
    );
    let abandoned = c.tc_counter("doppler_proxy_slow_consumer_dropped", &[]);
    let ingress = c.tc_counter("ingress", &[("protocol", "grpc")]);
    assert_eq!(egress, delivered, "everything handed to the socket arrived");
    assert!(dropped >= total, "dropped {dropped} < warned {total}");
    assert!(abandoned > 0, "the envelopes queued at the cut are counted");
    assert!(abandoned <= dropped);
    assert_eq!(ingress, egress + dropped, "every envelope accounted for");
    assert!(c.tc_counter("doppler_proxy_rate_control_warnings", &[]) >= 1);
}
