//! Ring and queue micro-benchmarks (`Throughput::Elements`: results read as items/s).
//!
//! - `ring/push_pop`: single producer, push then pop of one `Bytes` (the issue's ≤ 30 ns target).
//! - `ring/push_full_overwrite`: push into a full ring (every push drops the oldest).
//! - `ring/push64_drain64`: 64 pushes then one `drain_into` of 64 (per-item cost of batching).
//! - `baseline_mutex_vecdeque/push_pop`: the same diode built on a `parking_lot` mutex, for
//!   comparison with the lock-free ring.
//! - `queue/*`: `queue::bounded` try_send + try_recv per policy.
//! - `ring/mpsc_2_producers`: two producer threads, one consumer draining (per item).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parking_lot::Mutex;
use plumbing::queue::{FullPolicy, bounded};
use plumbing::ring::Ring;

/// The simplest correct alternative: a mutex around a deque, drop-oldest on overflow.
struct MutexDiode<T> {
    inner: Mutex<VecDeque<T>>,
    cap: usize,
}

impl<T> MutexDiode<T> {
    fn push(&self, item: T) -> bool {
        let mut q = self.inner.lock();
        let dropped = if q.len() == self.cap {
            q.pop_front();
            true
        } else {
            false
        };
        q.push_back(item);
        dropped
    }

    fn pop(&self) -> Option<T> {
        self.inner.lock().pop_front()
    }
}

fn payload() -> Bytes {
    Bytes::from(vec![7u8; 200])
}

fn ring_benches(c: &mut Criterion) {
    let item = payload();
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));

    let ring = Ring::new(1024);
    g.bench_function("push_pop", |b| {
        b.iter(|| {
            ring.push(black_box(item.clone()));
            black_box(ring.pop())
        })
    });

    let full = Ring::new(1024);
    for _ in 0..1024 {
        full.push(item.clone());
    }
    g.bench_function("push_full_overwrite", |b| {
        b.iter(|| black_box(full.push(black_box(item.clone()))))
    });

    g.throughput(Throughput::Elements(64));
    let ring = Ring::new(1024);
    let mut out = Vec::with_capacity(64);
    g.bench_function("push64_drain64", |b| {
        b.iter(|| {
            for _ in 0..64 {
                ring.push(item.clone());
            }
            out.clear();
            black_box(ring.drain_into(&mut out, 64))
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("mpsc_2_producers", |b| {
        b.iter_custom(|iters| {
            let ring = Arc::new(Ring::new(4096));
            let stop = Arc::new(AtomicBool::new(false));
            let per = iters / 2 + 1;
            let start = Instant::now();
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let ring = ring.clone();
                    let item = item.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            ring.push(item.clone());
                        }
                    })
                })
                .collect();
            let consumer = {
                let ring = ring.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::with_capacity(64);
                    let mut n = 0u64;
                    loop {
                        out.clear();
                        let got = ring.drain_into(&mut out, 64) as u64;
                        n += got;
                        if got == 0 {
                            if stop.load(Ordering::Acquire) && ring.is_empty() {
                                break;
                            }
                            std::hint::spin_loop();
                        }
                    }
                    n + ring.take_dropped()
                })
            };
            for p in producers {
                p.join().expect("producer");
            }
            stop.store(true, Ordering::Release);
            let total = consumer.join().expect("consumer");
            let elapsed = start.elapsed();
            assert_eq!(total, per * 2, "every item delivered or counted");
            elapsed.mul_f64(iters as f64 / (per * 2) as f64)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("baseline_mutex_vecdeque");
    g.throughput(Throughput::Elements(1));
    let diode = MutexDiode {
        inner: Mutex::new(VecDeque::with_capacity(1024)),
        cap: 1024,
    };
    g.bench_function("push_pop", |b| {
        b.iter(|| {
            diode.push(black_box(item.clone()));
            black_box(diode.pop())
        })
    });
    g.finish();
}

fn queue_benches(c: &mut Criterion) {
    let item = payload();
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    for policy in [FullPolicy::DropOldest, FullPolicy::DropNewest, FullPolicy::Block] {
        let (tx, mut rx) = bounded(1024, policy);
        g.bench_function(format!("try_send_try_recv/{policy}"), |b| {
            b.iter(|| {
                black_box(tx.try_send(black_box(item.clone())));
                black_box(rx.try_recv())
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = ring_benches, queue_benches
}
criterion_main!(benches);
