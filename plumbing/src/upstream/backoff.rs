//! Re-subscribe delay after a doppler stream error (reference §12.3): starts
//! at 1 ms and is multiplied by 10 while under one minute (1 ms, 10 ms,
//! 100 ms, 1 s, 10 s, 100 s), reset after a successful subscribe. Each delay
//! gets up to 20 % of jitter so many consumers do not reconnect in lockstep.

use std::time::Duration;

use rand::Rng;

/// Upstream's ×10 retry schedule with jitter.
#[derive(Debug, Clone)]
pub struct RetryDelay {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(1);
const GROW_WHILE_UNDER: Duration = Duration::from_secs(60);

impl Default for RetryDelay {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl RetryDelay {
    /// The delay to wait now (base value plus jitter), advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        if self.next < GROW_WHILE_UNDER {
            self.next = self.next.saturating_mul(10);
        }
        let jitter = rand::rng().random_range(0.0..0.2);
        base + base.mul_f64(jitter)
    }

    /// Back to 1 ms after a successful subscribe.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    #[cfg(test)]
    fn peek(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_times_ten_capped_at_100s() {
        let mut d = RetryDelay::default();
        let mut bases = Vec::new();
        for _ in 0..8 {
            bases.push(d.peek());
            let got = d.next_delay();
            let base = *bases.last().expect("pushed");
            assert!(
                got >= base && got <= base.mul_f64(1.2),
                "{got:?} vs {base:?}"
            );
        }
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            bases,
            vec![
                ms(1),
                ms(10),
                ms(100),
                ms(1_000),
                ms(10_000),
                ms(100_000),
                ms(100_000),
                ms(100_000)
            ]
        );
        d.reset();
        assert_eq!(d.peek(), ms(1));
    }
}
