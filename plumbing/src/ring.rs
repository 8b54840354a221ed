//! Bounded drop-oldest ring ("diode"): many producers, one consumer.
//!
//! Observable contract (reference §10): the producer never blocks; when the ring is full the
//! oldest entry is discarded to make room; every discard is counted and the **reader** learns
//! the count via [`Ring::take_dropped`] (losses since its previous call), as upstream's diode
//! alerter does.
//!
//! Memory follows what is held, not the capacity: entries live in a lock-free linked list of
//! blocks of [`BLOCK_ENTRIES`] slots ([`crossbeam_queue::SegQueue`]); a block is allocated when
//! the producers reach it and freed as soon as the reader has taken its last entry. An idle
//! ring holds no block, a drained one at most one, a full one `capacity / BLOCK_ENTRIES + 2`.
//! The bound is an entry count kept beside the list: a push that takes it past `capacity` takes
//! the oldest entry back out and counts it (with concurrent producers the ring may hold a few
//! entries more than `capacity` for the duration of their pushes, one per producer at most).
//!
//! Readiness for an async consumer comes from an internal notify that costs the producer one
//! fence and one load when the consumer is not waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;

use crate::signal::Signal;

/// Entries per allocation block (crossbeam's `SegQueue` block: 31 slots, each the entry plus a
/// word of state).
pub const BLOCK_ENTRIES: usize = 31;

/// Bounded drop-oldest diode. Share it with `Arc<Ring<T>>`.
#[derive(Debug)]
pub struct Ring<T> {
    queue: SegQueue<T>,
    capacity: usize,
    /// Entries held; never below the true count (a push counts its entry before storing it, a
    /// pop uncounts one after taking it), above it only while pushes or pops are in flight.
    held: AtomicUsize,
    /// Total entries overwritten since creation (never reset).
    dropped_total: AtomicU64,
    /// `dropped_total` as of the reader's last [`Ring::take_dropped`] (only ever grows).
    dropped_seen: AtomicU64,
    closed: AtomicBool,
    signal: Signal,
}

impl<T> Ring<T> {
    /// Creates a ring holding at most `capacity` entries (a capacity of 0 is raised to 1).
    /// Allocates nothing for the entries until they arrive.
    pub fn new(capacity: usize) -> Self {
        Ring {
            queue: SegQueue::new(),
            capacity: capacity.max(1),
            held: AtomicUsize::new(0),
            dropped_total: AtomicU64::new(0),
            dropped_seen: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            signal: Signal::default(),
        }
    }

    /// Adds `item`, discarding the oldest entry when full. Never blocks.
    ///
    /// Returns `true` when an older entry was overwritten (and counted as dropped). Pushing into
    /// a closed ring still stores the item (the reader may drain what remains).
    #[inline]
    pub fn push(&self, item: T) -> bool {
        // Count first, so a reader never uncounts an entry before it was counted: `held`
        // cannot underflow. (Relaxed: the queue's own release/acquire orders the two.)
        let held = self.held.fetch_add(1, Ordering::Relaxed) + 1;
        self.queue.push(item);
        let mut lost = false;
        if held > self.capacity
            && let Some(oldest) = self.queue.pop()
        {
            self.held.fetch_sub(1, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            drop(oldest);
            lost = true;
        }
        self.signal.notify_if_waiting();
        lost
    }

    /// Takes the oldest entry, if any.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        let item = self.queue.pop();
        if item.is_some() {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }

    /// Moves up to `max` entries (oldest first) into `out`; returns how many were moved.
    pub fn drain_into(&self, out: &mut Vec<T>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.queue.pop() {
                Some(item) => {
                    out.push(item);
                    n += 1;
                }
                None => break,
            }
        }
        if n > 0 {
            self.held.fetch_sub(n, Ordering::Relaxed);
        }
        n
    }

    /// Returns the number of entries lost since the previous call and resets it (reader side).
    pub fn take_dropped(&self) -> u64 {
        let total = self.dropped_total.load(Ordering::Relaxed);
        // fetch_max keeps concurrent callers consistent: each loss is reported exactly once.
        let seen = self.dropped_seen.fetch_max(total, Ordering::Relaxed);
        total.saturating_sub(seen)
    }

    /// Total number of entries lost since the ring was created.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Resolves when the ring holds at least one entry or is closed.
    pub async fn ready(&self) {
        self.signal
            .wait_until(|| !self.queue.is_empty() || self.closed.load(Ordering::Acquire))
            .await;
    }

    /// Closes the ring: wakes the reader; [`Ring::ready`] resolves from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.signal.notify_all();
    }

    /// Whether [`Ring::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Number of entries currently held (at most [`Ring::capacity`]).
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed).min(self.capacity)
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Maximum number of entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether at least half the capacity is in use: the point where the
    /// ring's producers and its reader change how they share the CPU
    /// ([`crate::turns`], doppler's router).
    pub fn is_half_full(&self) -> bool {
        self.len() * 2 >= self.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn drops_oldest_and_reports_count_to_reader() {
        let ring = Ring::new(3);
        for i in 0..3 {
            assert!(!ring.push(i));
        }
        assert!(ring.push(3));
        assert!(ring.push(4));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.take_dropped(), 2);
        assert_eq!(ring.take_dropped(), 0);
        assert_eq!(ring.dropped_total(), 2);
        let mut out = Vec::new();
        assert_eq!(ring.drain_into(&mut out, 10), 3);
        assert_eq!(out, vec![2, 3, 4]);
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn drain_into_respects_max() {
        let ring = Ring::new(10);
        for i in 0..7 {
            ring.push(i);
        }
        let mut out = Vec::new();
        assert_eq!(ring.drain_into(&mut out, 4), 4);
        assert_eq!(out, vec![0, 1, 2, 3]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.capacity(), 10);
    }

    #[test]
    fn zero_capacity_is_one() {
        let ring = Ring::new(0);
        assert_eq!(ring.capacity(), 1);
        ring.push(1);
        assert!(ring.push(2));
        assert_eq!(ring.pop(), Some(2));
    }

    #[tokio::test]
    async fn ready_wakes_on_push_from_other_task() {
        let ring = Arc::new(Ring::new(4));
        let r2 = ring.clone();
        let waiter = tokio::spawn(async move {
            r2.ready().await;
            r2.pop()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ring.push(7u32);
        let got = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert_eq!(got.expect("woken").expect("join"), Some(7));
    }

    #[tokio::test]
    async fn ready_resolves_on_close() {
        let ring: Arc<Ring<u8>> = Arc::new(Ring::new(4));
        let r2 = ring.clone();
        let waiter = tokio::spawn(async move { r2.ready().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ring.close();
        assert!(ring.is_closed());
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .expect("join");
    }

    #[test]
    fn many_producers_every_item_delivered_or_counted() {
        let ring = Arc::new(Ring::new(64));
        let producers = 4;
        let per = 50_000u64;
        let consumer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut got = 0u64;
                let mut dropped = 0u64;
                let mut idle = 0;
                loop {
                    match ring.pop() {
                        Some(_) => {
                            got += 1;
                            idle = 0;
                        }
                        None => {
                            dropped += ring.take_dropped();
                            if ring.is_closed() && ring.is_empty() {
                                idle += 1;
                                if idle > 2 {
                                    break;
                                }
                            }
                            std::thread::yield_now();
                        }
                    }
                }
                (got, dropped + ring.take_dropped())
            })
        };
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        ring.push(p * per + i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("producer");
        }
        ring.close();
        let (got, dropped) = consumer.join().expect("consumer");
        assert_eq!(got + dropped, producers * per);
    }

    #[tokio::test]
    async fn async_consumer_sees_every_item_or_drop() {
        let ring = Arc::new(Ring::new(16));
        let total = 20_000u64;
        let r2 = ring.clone();
        let consumer = tokio::spawn(async move {
            let mut got = 0u64;
            let mut out = Vec::new();
            loop {
                r2.ready().await;
                out.clear();
                got += r2.drain_into(&mut out, 64) as u64;
                if r2.is_closed() && r2.is_empty() {
                    break;
                }
            }
            (got, r2.take_dropped())
        });
        let r3 = ring.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                r3.push(i);
            }
            r3.close();
        })
        .join()
        .expect("producer");
        let (got, dropped) = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("done")
            .expect("join");
        assert_eq!(got + dropped, total);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Pop,
        Drain(usize),
        TakeDropped,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => any::<u32>().prop_map(Op::Push),
            1 => Just(Op::Pop),
            1 => (0usize..6).prop_map(Op::Drain),
            1 => Just(Op::TakeDropped),
        ]
    }

    proptest::proptest! {
        /// The ring behaves like a bounded deque that discards its front when full.
        #[test]
        fn matches_drop_oldest_model(cap in 1usize..8, ops in proptest::collection::vec(op(), 0..200)) {
            let ring = Ring::new(cap);
            let mut model = std::collections::VecDeque::new();
            let mut model_dropped = 0u64;
            let mut model_total = 0u64;
            for op in ops {
                match op {
                    Op::Push(v) => {
                        let lost = model.len() == cap;
                        if lost {
                            model.pop_front();
                            model_dropped += 1;
                            model_total += 1;
                        }
                        model.push_back(v);
                        proptest::prop_assert_eq!(ring.push(v), lost);
                    }
                    Op::Pop => proptest::prop_assert_eq!(ring.pop(), model.pop_front()),
                    Op::Drain(max) => {
                        let mut out = Vec::new();
                        let n = ring.drain_into(&mut out, max);
                        let want: Vec<u32> = (0..max).map_while(|_| model.pop_front()).collect();
                        proptest::prop_assert_eq!(n, want.len());
                        proptest::prop_assert_eq!(out, want);
                    }
                    Op::TakeDropped => {
                        proptest::prop_assert_eq!(ring.take_dropped(), model_dropped);
                        model_dropped = 0;
                    }
                }
                proptest::prop_assert_eq!(ring.len(), model.len());
                proptest::prop_assert_eq!(ring.dropped_total(), model_total);
            }
        }
    }
}
