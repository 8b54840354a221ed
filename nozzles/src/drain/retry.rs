//! The syslog agent's retry schedule (reference §19.5): at most 22 attempts;
//! the delay after failed attempt `i` is 1 ms for i = 0, then 2^(i-1) ms,
//! capped at 15 s from i = 15 on (about 121 s over all attempts).

use std::time::Duration;

/// Attempts per message (or batch) before it is dropped (`maxRetries`).
pub const MAX_ATTEMPTS: u32 = 22;

/// Cap on a single delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15);

/// Delay after failed attempt `attempt` (0-based).
pub fn delay(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::from_millis(1);
    }
    if attempt >= 15 {
        return MAX_DELAY;
    }
    Duration::from_millis(1u64 << (attempt - 1)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_reference() {
        let ms = |i| delay(i).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4)], [1, 1, 2, 4, 8]);
        assert_eq!(ms(14), 8192);
        assert_eq!(ms(15), 15_000);
        assert_eq!(ms(21), 15_000);
        assert_eq!(ms(1000), 15_000);
        let total: Duration = (0..MAX_ATTEMPTS).map(delay).sum();
        // 16.384 s of doubling plus 7 x 15 s.
        assert_eq!(total, Duration::from_millis(16_384 + 7 * 15_000));
    }
}
