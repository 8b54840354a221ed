//! Envelope timestamps: nanoseconds since the Unix epoch in an `i64`, the unit
//! of v1 `Envelope.timestamp` and v2 `Envelope.timestamp` alike.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as an envelope timestamp: 0 before the epoch, `i64::MAX` past 2262.
pub fn of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The current time as an envelope timestamp.
pub fn now() -> i64 {
    of(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_offsets_and_bounds() {
        assert_eq!(of(UNIX_EPOCH), 0);
        assert_eq!(of(UNIX_EPOCH + Duration::from_nanos(1_500)), 1_500);
        assert_eq!(of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(
            of(UNIX_EPOCH + Duration::from_secs(300 * 365 * 86_400)),
            i64::MAX
        );
        assert!(now() > 1_700_000_000_000_000_000);
    }
}
