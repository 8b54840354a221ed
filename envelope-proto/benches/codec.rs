//! Codec micro-benchmarks on the reference envelope of
//! `performance-anchors.md` §5.1: a log with a 100-byte payload and 2 tags
//! (~200 bytes encoded). Every group reports per envelope
//! (`Throughput::Elements`), so results read as envelopes/s.
//!
//! Times are **thread CPU time** (`CLOCK_THREAD_CPUTIME_ID`), not wall time,
//! so that a benchmark sharing two cores with compilers and other tests is not
//! charged for the time it was descheduled; on an idle machine both agree.
//!
//! Run: `cargo bench -p envelope-proto --bench codec -- --warm-up-time 1 --measurement-time 3`
#![allow(unsafe_code)] // one clock_gettime call

mod cpu_time {
    use std::time::Duration;

    use criterion::measurement::{Measurement, ValueFormatter, WallTime};

    /// Criterion measurement reading the calling thread's CPU clock.
    pub(crate) struct ThreadCpuTime;

    static WALL: WallTime = WallTime;

    fn now() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a
        // constant supported by Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    impl Measurement for ThreadCpuTime {
        type Intermediate = Duration;
        type Value = Duration;

        fn start(&self) -> Duration {
            now()
        }
        fn end(&self, start: Duration) -> Duration {
            now().saturating_sub(start)
        }
        fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
            *v1 + *v2
        }
        fn zero(&self) -> Duration {
            Duration::ZERO
        }
        fn to_f64(&self, value: &Duration) -> f64 {
            value.as_nanos() as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            WALL.formatter()
        }
    }
}

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use cpu_time::ThreadCpuTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};
use envelope_proto::view::EnvelopeView;
use envelope_proto::{batch, convert, v2};
use prost::Message as _;

const BATCH: usize = 100;

fn log_envelope() -> Envelope {
    Envelope {
        timestamp: 1_700_000_000_123_456_789,
        source_id: "f47ac10b-58cc-4372-a567-0e02b2c3d479".into(),
        instance_id: "0".into(),
        tags: [
            ("source_type".to_string(), "APP/PROC/WEB".to_string()),
            ("deployment".to_string(), "cf".to_string()),
        ]
        .into(),
        message: Some(Message::Log(Log {
            payload: Bytes::from(vec![b'x'; 100]),
            r#type: 0,
        })),
        ..Default::default()
    }
}

fn benches(c: &mut Criterion<ThreadCpuTime>) {
    let env = log_envelope();
    let encoded = Bytes::from(env.encode_to_vec());
    assert!((150..=250).contains(&encoded.len()), "{}", encoded.len());

    let mut g = c.benchmark_group(format!("envelope_{}B", encoded.len()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("prost_full_decode", |b| {
        b.iter(|| Envelope::decode(black_box(encoded.clone())))
    });
    g.bench_function("v2_decode_go_compatible", |b| {
        b.iter(|| v2::decode_bytes(black_box(&encoded)))
    });
    g.bench_function("routing_view", |b| {
        b.iter(|| {
            let v = EnvelopeView::parse(black_box(&encoded[..])).expect("valid");
            (v.source_id().len(), v.kind(), v.log_type(), v.timestamp())
        })
    });
    g.bench_function("routing_view_plus_tag", |b| {
        b.iter(|| {
            let v = EnvelopeView::parse(black_box(&encoded[..])).expect("valid");
            (v.source_id().len(), v.kind(), v.tag("source_type"))
        })
    });
    g.bench_function("to_v1", |b| b.iter(|| convert::to_v1(black_box(&env))));
    // What doppler does per log for v1 subscribers: general conversion + marshal, versus the
    // wire fast path from the routing view (parse included).
    g.bench_function("to_v1_and_encode", |b| {
        b.iter(|| {
            let d = v2::decode_bytes(black_box(&encoded)).expect("valid");
            convert::to_v1(&d)
                .iter()
                .filter_map(|e| envelope_proto::v1::encode(e).ok())
                .map(|b| b.len())
                .sum::<usize>()
        })
    });
    g.bench_function("log_to_v1_wire", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            let v = EnvelopeView::parse(black_box(&encoded[..])).expect("valid");
            convert::log_to_v1(&v, &mut out)
        })
    });
    let v1 = convert::to_v1(&env)
        .into_iter()
        .next()
        .expect("a log converts");
    g.bench_function("to_v2", |b| b.iter(|| convert::to_v2(black_box(&v1), true)));
    g.finish();

    let items: Vec<Bytes> = vec![encoded.clone(); BATCH];
    let mut out = BytesMut::new();
    batch::encode(&items, &mut out);
    let raw_batch = out.freeze();
    let mut g = c.benchmark_group(format!("batch_of_{BATCH}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("split", |b| {
        b.iter(|| {
            let mut n = 0;
            for part in batch::split(black_box(&raw_batch)).expect("valid") {
                n += part.len();
            }
            n
        })
    });
    g.bench_function("split_borrowed", |b| {
        b.iter(|| {
            let mut n = 0;
            for part in batch::entries(black_box(&raw_batch)).expect("valid") {
                n += part.len();
            }
            n
        })
    });
    g.bench_function("split_and_view", |b| {
        b.iter(|| {
            let mut n = 0;
            for part in batch::split(black_box(&raw_batch)).expect("valid") {
                let v = EnvelopeView::parse(&part).expect("valid");
                n += v.source_id().len();
            }
            n
        })
    });
    g.bench_function("encode", |b| {
        let mut out = BytesMut::with_capacity(batch::encoded_len(&items));
        b.iter(|| {
            out.clear();
            batch::encode(black_box(&items), &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = codec;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = benches
}
criterion_main!(codec);
