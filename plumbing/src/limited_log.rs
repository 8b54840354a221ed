//! Rate-limited diagnostics: one log line per cause per interval, with the count of the lines
//! left out since the last one.
//!
//! Anything a stranger can trigger at will (a refused token, a connection beyond a limit, a
//! request that missed its deadline) must not be able to flood the log. A [`Limiter`] lets the
//! first occurrence of each cause through, then at most one per interval, and tells that line
//! how many were suppressed in between, so nothing is lost from the record but the repetition.
//!
//! ```
//! use std::time::Duration;
//! use plumbing::limited_log::Limiter;
//!
//! let limiter = Limiter::new(Duration::from_secs(10));
//! let mut lines = Vec::new();
//! for _ in 0..3 {
//!     limiter.warn("invalid-token", |suppressed| lines.push(suppressed));
//! }
//! assert_eq!(lines, vec![0]); // the first gets through; two are counted, not logged
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Per-cause rate limiter for log lines. Cheap to call; share it by reference or in an `Arc`.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    causes: Mutex<HashMap<&'static str, Cause>>,
}

#[derive(Debug)]
struct Cause {
    last: Instant,
    suppressed: u64,
}

impl Limiter {
    /// A limiter letting one line per cause through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Limiter {
            interval,
            causes: Mutex::new(HashMap::new()),
        }
    }

    /// Calls `log` with the number of occurrences of `cause` suppressed since its last line,
    /// unless a line for `cause` went out less than the interval ago; then only counts it.
    /// Returns whether `log` was called.
    pub fn warn(&self, cause: &'static str, log: impl FnOnce(u64)) -> bool {
        let now = Instant::now();
        let suppressed = {
            let mut causes = self.causes.lock();
            match causes.get_mut(cause) {
                Some(c) if now.duration_since(c.last) < self.interval => {
                    c.suppressed += 1;
                    return false;
                }
                Some(c) => {
                    c.last = now;
                    std::mem::take(&mut c.suppressed)
                }
                None => {
                    causes.insert(
                        cause,
                        Cause {
                            last: now,
                            suppressed: 0,
                        },
                    );
                    0
                }
            }
        };
        log(suppressed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_interval_with_the_count() {
        let limiter = Limiter::new(Duration::from_millis(200));
        let mut a = Vec::new();
        let mut b = Vec::new();
        for _ in 0..5 {
            limiter.warn("a", |n| a.push(n));
        }
        limiter.warn("b", |n| b.push(n));
        assert_eq!(
            a,
            vec![0],
            "the first line of a cause goes out, repeats are counted"
        );
        assert_eq!(b, vec![0], "causes are limited independently");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.warn("a", |n| a.push(n)));
        assert_eq!(a, vec![0, 4], "the next line tells how many were left out");
        assert!(!limiter.warn("a", |n| a.push(n)));
    }
}
