//! Store and read-path micro-benchmarks on a realistic ~250-byte app log
//! (100-byte payload, the tags a Diego cell's agent adds). Every group
//! reports per envelope (`Throughput::Elements`), so results read as
//! envelopes/s.
//!
//! - `put/1_source`, `put/1000_sources`: [`Store::put`] (parse + store) of
//!   envelopes with increasing timestamps, at steady state (each source at
//!   its `max_per_source` cap, so every put also evicts one).
//! - `read/newest_1000_of_100k`: a `cf logs --recent` read (1000 newest logs,
//!   descending) from one source holding 100k envelopes.
//! - `http_json/*_1000`: rendering that read's result as JSON: decoding to
//!   owned envelopes then [`envelope_proto::json::write_batch_of`] (the
//!   first implementation), and [`envelope_proto::json::write_encoded`]
//!   straight from the stored bytes (what the HTTP API does now).
//!
//! Times are **thread CPU time** (`CLOCK_THREAD_CPUTIME_ID`) so that a run on
//! a shared, loaded machine is not charged for time it was descheduled.
//!
//! Run: `cargo bench -p log-cache --bench store -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod cpu_time {
    use std::time::Duration;

    use criterion::measurement::{Measurement, ValueFormatter, WallTime};

    /// Criterion measurement reading the calling thread's CPU clock.
    pub(crate) struct ThreadCpuTime;

    static WALL: WallTime = WallTime;

    fn now() -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
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
use std::time::Duration;

use cpu_time::ThreadCpuTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message, log};
use log_cache::metrics::StoreMetrics;
use log_cache::store::{Limits, Query, Store, TypeSet};
use plumbing::metrics::Registry;
use prost::Message as _;

/// First timestamp: needs exactly 9 varint bytes, so it can be patched in
/// place (any ns time after 1972 does).
const T0: i64 = 1_765_000_000_000_000_000;

fn source_id(i: usize) -> String {
    format!("6f3c9a2e-1b4d-4e8f-9a7c-{i:012x}")
}

/// A Diego app log as an agent sends it, timestamp first (bytes 1..10).
fn app_log(source: &str) -> Vec<u8> {
    let tags = [
        ("source_type", "APP/PROC/WEB"),
        ("deployment", "cf"),
        ("job", "diego-cell"),
        ("index", "3"),
        ("ip", "10.0.16.23"),
        ("origin", "rep"),
    ];
    let env = Envelope {
        timestamp: T0,
        source_id: source.to_owned(),
        instance_id: "0".into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        message: Some(Message::Log(Log {
            payload: format!(
                "{:<100}",
                "2026-12-09T10:11:12.131Z INFO GET /api/orders 200 12ms"
            )
            .into_bytes()
            .into(),
            r#type: log::Type::Out as i32,
        })),
        ..Envelope::default()
    };
    let bytes = env.encode_to_vec();
    assert_eq!(bytes[0], 0x08, "timestamp is field 1");
    bytes
}

/// Writes `ts` as the 9-byte varint at bytes 1..10.
fn patch_ts(buf: &mut [u8], ts: i64) {
    let mut v = ts as u64;
    for b in buf[1..9].iter_mut() {
        *b = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
    }
    buf[9] = v as u8 & 0x7f;
}

fn store(max_per_source: usize) -> Store {
    Store::new(
        Limits {
            memory_limit: u64::MAX,
            max_per_source,
        },
        StoreMetrics::new(&Registry::new()),
    )
}

/// `sources` envelopes templates and a store already at its per-source cap.
fn filled(sources: usize, per_source: usize) -> (Store, Vec<Vec<u8>>, i64) {
    let s = store(per_source);
    let mut templates: Vec<Vec<u8>> = (0..sources).map(|i| app_log(&source_id(i))).collect();
    let mut ts = T0;
    for _ in 0..per_source {
        for t in &mut templates {
            ts += 1;
            patch_ts(t, ts);
            s.put(t).unwrap();
        }
    }
    (s, templates, ts)
}

fn benches(c: &mut Criterion<ThreadCpuTime>) {
    let size = app_log(&source_id(0)).len();
    assert!((230..=270).contains(&size), "{size}");

    let mut g = c.benchmark_group(format!("put_{size}B"));
    g.throughput(Throughput::Elements(1));
    for (name, sources, cap) in [("1_source", 1, 100_000), ("1000_sources", 1000, 1000)] {
        let (s, mut templates, mut ts) = filled(sources, cap);
        let mut next = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let t = &mut templates[next];
                next = (next + 1) % sources;
                ts += 1;
                patch_ts(t, ts);
                s.put(black_box(t)).unwrap();
            })
        });
    }
    g.finish();

    let (s, _, _) = filled(1, 100_000);
    let id = source_id(0);
    let q = Query {
        source_id: &id,
        start: -6_795_364_578_871_345_152,
        end: i64::MAX,
        limit: 1000,
        types: TypeSet::from_types(&[1]),
        descending: true,
        name_filter: None,
    };
    assert_eq!(s.read(&q).len(), 1000);
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("newest_1000_of_100k", |b| b.iter(|| s.read(black_box(&q))));
    g.finish();

    let stored = s.read(&q);
    let mut g = c.benchmark_group("http_json");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode_all_1000", |b| {
        b.iter(|| log_cache::read::decode_all(black_box(&stored)))
    });
    g.bench_function("decode_and_write_1000", |b| {
        // As the handler does: a fresh, pre-sized String per response.
        b.iter(|| {
            let envelopes = log_cache::read::decode_all(black_box(&stored));
            let mut out =
                String::with_capacity(32 + stored.iter().map(|s| s.len() * 2).sum::<usize>());
            out.push_str("{\"envelopes\":");
            envelope_proto::json::write_batch_of(&mut out, &envelopes);
            out.push_str("}\n");
            out
        })
    });
    g.bench_function("from_encoded_1000", |b| {
        b.iter(|| {
            let stored = black_box(&stored);
            let mut out = String::with_capacity(
                32 + stored.iter().map(|s| s.len() * 3 / 2 + 64).sum::<usize>(),
            );
            out.push_str("{\"envelopes\":{\"batch\":[");
            for (i, e) in stored.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                envelope_proto::json::write_encoded(&mut out, e).expect("valid");
            }
            out.push_str("]}}\n");
            out
        })
    });
    g.finish();
}

criterion_group! {
    name = store_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .with_measurement(ThreadCpuTime);
    targets = benches
}
criterion_main!(store_benches);
