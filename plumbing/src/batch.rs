//! Batching that flushes when full or as soon as its input runs dry.
//!
//! [`next_batch`] waits for at least one entry, then takes whatever else is already queued, up
//! to `max`, without waiting. A lone entry is therefore forwarded immediately (no flush timer
//! adds latency at low rates) while under load every batch is full.

use crate::ring::Ring;

/// Waits until `ring` holds an entry (or is closed), then moves up to `max` entries into `out`.
///
/// Returns the number of entries moved; `0` means the ring is closed and empty (or `max` is 0).
/// `out` is appended to, not cleared.
pub async fn next_batch<T>(ring: &Ring<T>, out: &mut Vec<T>, max: usize) -> usize {
    if max == 0 {
        return 0;
    }
    loop {
        let n = ring.drain_into(out, max);
        if n > 0 {
            return n;
        }
        if ring.is_closed() {
            // Entries pushed right before close are still delivered.
            return ring.drain_into(out, max);
        }
        ring.ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn lone_item_returned_immediately() {
        let ring = Ring::new(100);
        ring.push(1);
        let mut out = Vec::new();
        let start = tokio::time::Instant::now();
        let n = next_batch(&ring, &mut out, 100).await;
        assert_eq!(n, 1);
        assert_eq!(out, vec![1]);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn full_batches_under_load() {
        let ring = Ring::new(1000);
        for i in 0..250 {
            ring.push(i);
        }
        let mut sizes = Vec::new();
        let mut out = Vec::new();
        for _ in 0..3 {
            out.clear();
            sizes.push(next_batch(&ring, &mut out, 100).await);
        }
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(out, (200..250).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn waits_for_first_item() {
        let ring = Arc::new(Ring::new(10));
        let r2 = ring.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let n = next_batch(&r2, &mut out, 10).await;
            (n, out)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished());
        ring.push("x");
        let (n, out) = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!((n, out), (1, vec!["x"]));
    }

    #[tokio::test]
    async fn closed_and_empty_returns_zero() {
        let ring: Ring<u8> = Ring::new(4);
        ring.push(1);
        ring.close();
        let mut out = Vec::new();
        assert_eq!(next_batch(&ring, &mut out, 10).await, 1);
        assert_eq!(next_batch(&ring, &mut out, 10).await, 0);
        assert_eq!(next_batch(&ring, &mut out, 0).await, 0);
    }
}
