//! Fair turns for tasks that feed a [`Ring`] from a stream.
//!
//! A task reading a gRPC stream whose input is already buffered never has to
//! wait, and tokio's cooperative budget lets it handle up to 128 messages per
//! turn: with 100-envelope batches that is 12,800 envelopes, about 15 ms of
//! work, during which the ring's reader and the other tasks sharing the
//! worker thread do not run. Downstream rings sized for a few milliseconds of
//! traffic (a doppler subscription holds 1000 envelopes, ~3 ms at 300,000/s)
//! then overflow although the process has CPU to spare.
//!
//! [`Turns`] makes such a task hand its worker over after a fixed number of
//! items, and at once when the ring it feeds is half full. This is
//! cooperative scheduling, not backpressure: it never waits for room, and the
//! ring still drops its oldest entries if the reader is slower.

use crate::ring::Ring;

/// Counts items a task has handled since it last let others run.
#[derive(Debug, Clone)]
pub struct Turns {
    handled: usize,
    every: usize,
}

impl Turns {
    /// Yields after every `every` handled items (at least 1).
    pub const fn new(every: usize) -> Self {
        Self {
            handled: 0,
            every: if every == 0 { 1 } else { every },
        }
    }

    /// Records `n` more handled items pushed into `ring`; yields to the
    /// scheduler when `every` items have been handled since the last yield,
    /// or when `ring` is at least half full.
    pub async fn handled<T>(&mut self, n: usize, ring: &Ring<T>) {
        self.handled = self.handled.saturating_add(n);
        if self.handled >= self.every || ring.is_half_full() {
            self.handled = 0;
            tokio::task::yield_now().await;
        }
    }

    /// Yields only when the ring is half full (no item count): for a task
    /// whose downstream batches by what is there, so that extra turns would
    /// only shrink its batches.
    pub const fn on_pressure() -> Self {
        Self::new(usize::MAX)
    }

    /// Items handled since the last yield.
    pub fn pending(&self) -> usize {
        self.handled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_after_every_n_items_or_when_the_ring_is_half_full() {
        let ring: Ring<u8> = Ring::new(10);
        let mut turns = Turns::new(4);
        turns.handled(3, &ring).await;
        assert_eq!(turns.pending(), 3);
        turns.handled(1, &ring).await;
        assert_eq!(turns.pending(), 0, "4 items: a turn is over");
        for i in 0..5 {
            ring.push(i);
        }
        turns.handled(1, &ring).await;
        assert_eq!(turns.pending(), 0, "half-full ring: yield at once");
        assert_eq!(Turns::new(0).every, 1);
        let mut pressure_only = Turns::on_pressure();
        let empty: Ring<u8> = Ring::new(10);
        pressure_only.handled(1_000_000, &empty).await;
        assert_eq!(pressure_only.pending(), 1_000_000);
        pressure_only.handled(1, &ring).await;
        assert_eq!(pressure_only.pending(), 0);
    }
}
