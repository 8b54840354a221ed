//! Internal wake-up signal shared by [`crate::ring`] and [`crate::queue`].
//!
//! A [`tokio::sync::Notify`] plus a "someone is waiting" flag so that the producer's hot path
//! costs one fence and one relaxed load when nobody waits, instead of a `notify_one` per push.
//!
//! Correctness (Dekker pattern): the waiter stores `waiting = true`, issues a SeqCst fence and
//! re-checks its condition; the notifier publishes its data, issues a SeqCst fence and loads
//! `waiting`. At least one side sees the other's write, so a wake-up is never lost.

use std::sync::atomic::{AtomicUsize, Ordering, fence};

use tokio::sync::Notify;

/// Wake-up signal with a cheap "nobody waits" fast path.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    notify: Notify,
    /// Number of tasks currently between "registered interest" and "woken".
    waiting: AtomicUsize,
}

impl Signal {
    /// Wakes waiters, if any. Call after publishing the state change waiters look for.
    #[inline]
    pub(crate) fn notify_if_waiting(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) != 0 {
            self.notify.notify_waiters();
        }
    }

    /// Wakes every waiter unconditionally (used for close).
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once `ready()` returns true. `ready` is re-evaluated after each wake-up.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let _guard = WaitingGuard::new(&self.waiting);
            fence(Ordering::SeqCst);
            if ready() {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements the waiting count when the waiter leaves, even if its future is dropped.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
