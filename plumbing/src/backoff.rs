//! Capped exponential backoff with jitter, for reconnect loops.
//!
//! The n-th delay (from 0) has the nominal value `min(base * 2^n, max)`; [`Jitter`] then spreads
//! it so that many clients reconnecting at once do not synchronise:
//!
//! - [`Jitter::Full`] (default): uniform in `[0, nominal]` ("full jitter").
//! - [`Jitter::Proportional`]`(f)`: uniform in `[nominal * (1 - f), nominal * (1 + f)]`, capped
//!   at `max`.
//! - [`Jitter::None`]: exactly the nominal value.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How the nominal delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// No randomisation.
    None,
    /// Uniform in `[0, nominal]`.
    Full,
    /// Uniform in `nominal * [1 - f, 1 + f]` (f clamped to `0..=1`), capped at `max`.
    Proportional(f64),
}

/// Exponential backoff state for one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// Backoff starting at `base`, doubling up to `max`, with full jitter.
    ///
    /// If `max < base`, `max` is raised to `base`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            jitter: Jitter::Full,
            attempt: 0,
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// Replaces the jitter mode.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Uses a deterministic random source (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SmallRng::seed_from_u64(seed);
        self
    }

    /// The nominal (un-jittered) delay of the next attempt.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let secs = nominal.as_secs_f64();
        let d = match self.jitter {
            Jitter::None => return nominal,
            Jitter::Full => self.rng.random_range(0.0..=secs),
            Jitter::Proportional(f) => {
                let f = if f.is_finite() {
                    f.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                self.rng.random_range(secs * (1.0 - f)..=secs * (1.0 + f))
            }
        };
        Duration::from_secs_f64(d).min(self.max)
    }

    /// Number of delays handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `base` (call after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
            .with_jitter(Jitter::None);
        let got: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(Jitter::None);
        for _ in 0..200 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_within_bounds_and_varies() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_seed(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let nominal = b.nominal();
            let d = b.next_delay();
            assert!(d <= nominal, "{d:?} > {nominal:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 10);
    }

    #[test]
    fn proportional_jitter_bounds_and_seed_determinism() {
        let mk = || {
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
                .with_jitter(Jitter::Proportional(0.2))
                .with_seed(42)
        };
        let mut a = mk();
        let mut b = mk();
        for _ in 0..20 {
            let nominal = a.nominal().as_secs_f64();
            let da = a.next_delay();
            assert_eq!(da, b.next_delay());
            let x = da.as_secs_f64();
            assert!(x >= nominal * 0.8 - 1e-9 && x <= (nominal * 1.2).min(10.0) + 1e-9);
        }
    }

    #[test]
    fn max_below_base_is_raised() {
        let mut b =
            Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).with_jitter(Jitter::None);
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
    }
}
