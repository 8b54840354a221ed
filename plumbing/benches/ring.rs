//! Ring and queue micro-benchmarks (`Throughput::Elements`: results read as items/s).
//!
//! - `ring/push_pop_u64`: single producer, push then pop of a `u64` (the ring's own cost; the
//!   issue's ≤ 30 ns target).
//! - `ring/push_pop`: the same with a 200-byte `Bytes` (includes its clone + drop).
//! - `ring/push_full_overwrite`: push into a full ring (every push drops the oldest).
//! - `ring/push64_drain64`: 64 pushes then one `drain_into` of 64 (per-item cost of batching).
//! - `baseline_mutex_vecdeque/push_pop`: the same diode built on a `parking_lot` mutex, for
//!   comparison with the lock-free ring.
//! - `queue/*`: `queue::bounded` try_send + try_recv per policy.
//! - `ring/mpsc_2_producers`: two producer threads, one consumer draining (per item).
//! - `baseline_array_queue/force_push_pop`: crossbeam's `ArrayQueue` alone (no drop counter, no
//!   wake-up signal), to show what the ring adds.
//!
//! Every single-threaded benchmark runs twice: under wall time (`wall/...`) and under the
//! benchmark thread's CPU time (`cpu/...`, `CLOCK_THREAD_CPUTIME_ID`). On a shared, loaded
//! machine wall time includes time the thread spent waiting for a core; CPU time does not.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
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

/// Criterion measurement: CPU time consumed by the measuring thread.
struct ThreadCpu;

fn thread_cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }

    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn payload() -> Bytes {
    Bytes::from(vec![7u8; 200])
}

fn ring_benches<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let item = payload();
    let mut g = c.benchmark_group(format!("{prefix}/ring"));
    g.throughput(Throughput::Elements(1));

    let ring_u64 = Ring::new(1024);
    g.bench_function("push_pop_u64", |b| {
        b.iter(|| {
            ring_u64.push(black_box(1u64));
            black_box(ring_u64.pop())
        })
    });

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

    g.finish();

    let mut g = c.benchmark_group(format!("{prefix}/baseline"));
    g.throughput(Throughput::Elements(1));
    let diode = MutexDiode {
        inner: Mutex::new(VecDeque::with_capacity(1024)),
        cap: 1024,
    };
    g.bench_function("mutex_vecdeque_push_pop", |b| {
        b.iter(|| {
            diode.push(black_box(item.clone()));
            black_box(diode.pop())
        })
    });
    let queue = ArrayQueue::new(1024);
    g.bench_function("array_queue_force_push_pop", |b| {
        b.iter(|| {
            black_box(queue.force_push(black_box(item.clone())));
            black_box(queue.pop())
        })
    });
    let queue_u64 = ArrayQueue::new(1024);
    g.bench_function("array_queue_force_push_pop_u64", |b| {
        b.iter(|| {
            black_box(queue_u64.force_push(black_box(1u64)));
            black_box(queue_u64.pop())
        })
    });
    g.bench_function("bytes_clone_drop", |b| {
        b.iter(|| black_box(black_box(&item).clone()))
    });
    g.finish();
}

fn queue_benches<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let item = payload();
    let mut g = c.benchmark_group(format!("{prefix}/queue"));
    g.throughput(Throughput::Elements(1));
    for policy in [
        FullPolicy::DropOldest,
        FullPolicy::DropNewest,
        FullPolicy::Block,
    ] {
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

fn mpsc_bench(c: &mut Criterion) {
    let item = payload();
    let mut g = c.benchmark_group("wall/ring");
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
}

fn wall(c: &mut Criterion) {
    ring_benches(c, "wall");
    queue_benches(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    ring_benches(c, "cpu");
    queue_benches(c, "cpu");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn cpu_config() -> Criterion<ThreadCpu> {
    config().with_measurement(ThreadCpu)
}

criterion_group! {
    name = wall_benches;
    config = config();
    targets = wall, mpsc_bench
}
criterion_group! {
    name = cpu_benches;
    config = cpu_config();
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
