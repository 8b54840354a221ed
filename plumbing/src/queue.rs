//! Bounded channels with a named full-queue policy and counted drops.
//!
//! Every hop in the pipeline picks one [`FullPolicy`] and documents its consequence:
//!
//! - [`FullPolicy::DropOldest`]: the producer never waits; the oldest queued item is discarded
//!   (diode behaviour, reference §10). Used where slow readers must not slow producers.
//! - [`FullPolicy::DropNewest`]: the producer never waits; the item being sent is discarded
//!   (RLP per-client behaviour, reference §11).
//! - [`FullPolicy::Block`]: [`QueueTx::send`] waits for room (back-pressure; the traffic
//!   controller's per-client channel).
//!
//! Drops are counted in the queue; read them with [`QueueRx::take_dropped`] or
//! [`QueueTx::dropped_total`]. The channel closes for the receiver once every [`QueueTx`] is
//! dropped (after the remaining items are received), and for senders once the [`QueueRx`] is
//! dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::signal::Signal;

/// What a queue does when it is full and another item is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FullPolicy {
    /// Discard the oldest queued item to make room (producer never waits).
    DropOldest,
    /// Discard the item being sent (producer never waits).
    DropNewest,
    /// Wait for room ([`QueueTx::send`]); [`QueueTx::try_send`] reports `Full`.
    Block,
}

impl fmt::Display for FullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FullPolicy::DropOldest => "drop-oldest",
            FullPolicy::DropNewest => "drop-newest",
            FullPolicy::Block => "block",
        })
    }
}

/// Result of a non-waiting send.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySend<T> {
    /// The item was queued without loss.
    Sent,
    /// The item was queued and the oldest item was discarded (`DropOldest`).
    SentDroppedOldest,
    /// The item was discarded because the queue is full (`DropNewest`; counted).
    DroppedNewest,
    /// The queue is full and the policy is `Block`: the item is handed back (not counted).
    Full(T),
    /// The receiver is gone: the item is handed back.
    Closed(T),
}

/// Error returned by [`QueueTx::send`] when the receiver is gone; holds the unsent item.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("queue receiver closed")]
pub struct SendError<T>(pub T);

struct Shared<T> {
    queue: ArrayQueue<T>,
    policy: FullPolicy,
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    senders: AtomicUsize,
    rx_closed: AtomicBool,
    /// Wakes the receiver (items or sender-close).
    rx_signal: Signal,
    /// Wakes blocked senders (room or receiver-close).
    tx_signal: Signal,
}

impl<T> Shared<T> {
    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sending half of a [`bounded`] queue. Clone for more producers.
pub struct QueueTx<T> {
    shared: Arc<Shared<T>>,
}

/// Receiving half of a [`bounded`] queue (single consumer).
pub struct QueueRx<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for QueueTx<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueTx")
            .field("policy", &self.shared.policy)
            .field("len", &self.shared.queue.len())
            .finish()
    }
}

impl<T> fmt::Debug for QueueRx<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueRx")
            .field("policy", &self.shared.policy)
            .field("len", &self.shared.queue.len())
            .finish()
    }
}

/// Creates a queue of `capacity` items (0 is raised to 1) with the given full policy.
pub fn bounded<T>(capacity: usize, policy: FullPolicy) -> (QueueTx<T>, QueueRx<T>) {
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(capacity.max(1)),
        policy,
        dropped: AtomicU64::new(0),
        dropped_total: AtomicU64::new(0),
        senders: AtomicUsize::new(1),
        rx_closed: AtomicBool::new(false),
        rx_signal: Signal::default(),
        tx_signal: Signal::default(),
    });
    (
        QueueTx {
            shared: shared.clone(),
        },
        QueueRx { shared },
    )
}

impl<T> QueueTx<T> {
    /// Sends without waiting, applying the full policy.
    pub fn try_send(&self, item: T) -> TrySend<T> {
        let s = &*self.shared;
        if s.rx_closed.load(Ordering::Acquire) {
            return TrySend::Closed(item);
        }
        let outcome = match s.policy {
            FullPolicy::DropOldest => {
                if s.queue.force_push(item).is_some() {
                    s.count_drop();
                    TrySend::SentDroppedOldest
                } else {
                    TrySend::Sent
                }
            }
            FullPolicy::DropNewest => match s.queue.push(item) {
                Ok(()) => TrySend::Sent,
                Err(_discarded) => {
                    s.count_drop();
                    return TrySend::DroppedNewest;
                }
            },
            FullPolicy::Block => match s.queue.push(item) {
                Ok(()) => TrySend::Sent,
                Err(item) => return TrySend::Full(item),
            },
        };
        s.rx_signal.notify_if_waiting();
        outcome
    }

    /// Sends, waiting for room only under [`FullPolicy::Block`]; the drop policies never wait.
    ///
    /// Returns the item in [`SendError`] when the receiver is gone.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let mut item = item;
        loop {
            match self.try_send(item) {
                TrySend::Sent | TrySend::SentDroppedOldest | TrySend::DroppedNewest => {
                    return Ok(());
                }
                TrySend::Closed(it) => return Err(SendError(it)),
                TrySend::Full(it) => {
                    item = it;
                    let s = &*self.shared;
                    s.tx_signal
                        .wait_until(|| !s.queue.is_full() || s.rx_closed.load(Ordering::Acquire))
                        .await;
                }
            }
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.rx_closed.load(Ordering::Acquire)
    }

    /// Total items discarded by the full policy since creation.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// Items currently queued.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }

    /// The queue's full policy.
    pub fn policy(&self) -> FullPolicy {
        self.shared.policy
    }
}

impl<T> Clone for QueueTx<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        QueueTx {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.rx_signal.notify_all();
        }
    }
}

impl<T> QueueRx<T> {
    /// Takes an item without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        let item = self.shared.queue.pop();
        if item.is_some() && self.shared.policy == FullPolicy::Block {
            self.shared.tx_signal.notify_if_waiting();
        }
        item
    }

    /// Waits for an item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // Senders may have pushed right before leaving.
                return self.try_recv();
            }
            let s = &*self.shared;
            s.rx_signal
                .wait_until(|| !s.queue.is_empty() || s.senders.load(Ordering::Acquire) == 0)
                .await;
        }
    }

    /// Moves up to `max` queued items into `out` without waiting; returns how many.
    pub fn drain_into(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.shared.queue.pop() {
                Some(item) => {
                    out.push(item);
                    n += 1;
                }
                None => break,
            }
        }
        if n > 0 && self.shared.policy == FullPolicy::Block {
            self.shared.tx_signal.notify_if_waiting();
        }
        n
    }

    /// Items discarded by the full policy since the previous call (reader side).
    pub fn take_dropped(&self) -> u64 {
        self.shared.dropped.swap(0, Ordering::Relaxed)
    }

    /// Total items discarded since creation.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// Items currently queued.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }

    /// Capacity of the queue.
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        self.shared.rx_closed.store(true, Ordering::Release);
        self.shared.tx_signal.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn drop_oldest_keeps_newest_and_counts() {
        let (tx, mut rx) = bounded(2, FullPolicy::DropOldest);
        assert_eq!(tx.try_send(1), TrySend::Sent);
        assert_eq!(tx.try_send(2), TrySend::Sent);
        assert_eq!(tx.try_send(3), TrySend::SentDroppedOldest);
        assert_eq!(rx.take_dropped(), 1);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn drop_newest_keeps_oldest_and_counts() {
        let (tx, mut rx) = bounded(2, FullPolicy::DropNewest);
        tx.send(1).await.expect("send");
        tx.send(2).await.expect("send");
        tx.send(3).await.expect("send never waits");
        assert_eq!(tx.try_send(4), TrySend::DroppedNewest);
        assert_eq!(rx.take_dropped(), 2);
        assert_eq!(tx.dropped_total(), 2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn block_waits_for_room() {
        let (tx, mut rx) = bounded(1, FullPolicy::Block);
        tx.send(1).await.expect("send");
        assert_eq!(tx.try_send(2), TrySend::Full(2));
        let tx2 = tx.clone();
        let sender = tokio::spawn(async move { tx2.send(2).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!sender.is_finished(), "send must wait while full");
        assert_eq!(rx.recv().await, Some(1));
        tokio::time::timeout(Duration::from_secs(2), sender)
            .await
            .expect("sender woken")
            .expect("join")
            .expect("sent");
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.dropped_total(), 0);
    }

    #[tokio::test]
    async fn blocked_sender_fails_when_receiver_dropped() {
        let (tx, rx) = bounded(1, FullPolicy::Block);
        tx.send(1).await.expect("send");
        let sender = tokio::spawn(async move { tx.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        let res = tokio::time::timeout(Duration::from_secs(2), sender)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(res, Err(SendError(2)));
    }

    #[tokio::test]
    async fn recv_ends_after_senders_leave_and_queue_drains() {
        let (tx, mut rx) = bounded(4, FullPolicy::Block);
        let tx2 = tx.clone();
        tx.send("a").await.expect("send");
        drop(tx);
        tx2.send("b").await.expect("send");
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(x) = rx.recv().await {
                got.push(x);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx2);
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("ends")
            .expect("join");
        assert_eq!(got, vec!["a", "b"]);
    }

    #[tokio::test]
    async fn block_policy_delivers_everything_under_contention() {
        let (tx, mut rx) = bounded(8, FullPolicy::Block);
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..2_000u64 {
                        tx.send(p * 10_000 + i).await.expect("send");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut count = 0u64;
        let mut sum = 0u64;
        while let Some(v) = rx.recv().await {
            count += 1;
            sum += v;
        }
        for p in producers {
            p.await.expect("producer");
        }
        let expected: u64 = (0..4u64)
            .map(|p| (0..2_000u64).map(|i| p * 10_000 + i).sum::<u64>())
            .sum();
        assert_eq!(count, 8_000);
        assert_eq!(sum, expected);
    }
}
