//! Short-lived cache of positive authorisation results.
//!
//! Bounded: at most `capacity` entries; when full, expired entries are purged
//! and, if that frees nothing, the whole cache is cleared (a burst of distinct
//! tokens costs extra UAA/CC calls, never memory). Only successes are cached,
//! so a revoked permission lasts at most one TTL, and no entry outlives the
//! token it is about.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::time::Instant;

/// A TTL map with a hard size bound.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache whose entries live `ttl`, holding at most `capacity` of them.
    /// A zero `ttl` or `capacity` disables caching.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, if present and not expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock();
        let (expiry, value) = entries.get(key)?;
        if *expiry > Instant::now() {
            return Some(value.clone());
        }
        entries.remove(key);
        None
    }

    /// Remembers `value` for one TTL, but never past `not_after` (the
    /// credential's own expiry, when known): an answer about a token never
    /// outlives the token. Nothing is cached when `not_after` has passed.
    pub(crate) fn insert(&self, key: K, value: V, not_after: Option<SystemTime>) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut expiry = now + self.ttl;
        if let Some(t) = not_after {
            match t.duration_since(SystemTime::now()) {
                Ok(left) => expiry = expiry.min(now + left),
                Err(_) => return,
            }
        }
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expiry, _)| *expiry > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (expiry, value));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_capacity_is_bounded() {
        let c = TtlCache::new(Duration::from_secs(30), 2);
        c.insert("a", 1, None);
        assert_eq!(c.get(&"a"), Some(1));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.get(&"a"), None);
        c.insert("a", 1, None);
        c.insert("b", 2, None);
        c.insert("c", 3, None);
        assert!(c.len() <= 2);
        assert_eq!(c.get(&"c"), Some(3));
    }

    #[test]
    fn zero_ttl_disables() {
        let c = TtlCache::new(Duration::ZERO, 10);
        c.insert("a", 1, None);
        assert_eq!(c.get(&"a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_never_outlives_its_credential() {
        let c = TtlCache::new(Duration::from_secs(30), 10);
        c.insert(
            "expired",
            1,
            Some(SystemTime::now() - Duration::from_secs(1)),
        );
        assert_eq!(
            c.get(&"expired"),
            None,
            "an expired credential is not cached"
        );
        c.insert("short", 2, Some(SystemTime::now() + Duration::from_secs(5)));
        assert_eq!(c.get(&"short"), Some(2));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            c.get(&"short"),
            None,
            "gone at the credential's expiry, not the TTL's"
        );
        c.insert(
            "long",
            3,
            Some(SystemTime::now() + Duration::from_secs(3600)),
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(c.get(&"long"), None, "the TTL still bounds it");
    }
}
