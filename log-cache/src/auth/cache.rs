//! The bounded cache of positive authorisation answers.
//!
//! Keys are SHA-256 digests (of the token, or of token and source id), so no
//! token is kept in memory and every key is 32 bytes. Entries live one TTL
//! (upstream `CACHE_EXPIRATION_INTERVAL`) but never past the token's `exp`.
//! Expired entries are removed when looked up and, every pruning interval
//! (upstream `TOKEN_PRUNING_INTERVAL`), by a sweep done on insert. The cache
//! holds at most `capacity` weight units (an answer weighs 1, a meta source
//! set its length + 1): an insert that does not fit first sweeps the expired
//! entries and, if that is not enough, clears the cache, counting every entry
//! it dropped in `evictions`. Distinct tokens therefore cost Cloud Controller
//! calls, never memory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use plumbing::metrics::{Counter, Gauge};
use tokio::time::Instant;

/// A cache key: a SHA-256 digest.
pub(crate) type Key = [u8; 32];

/// A TTL map bounded in weight.
#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    prune_every: Duration,
    inner: Mutex<Inner<V>>,
    evictions: Counter,
    weight_gauge: Gauge,
}

#[derive(Debug)]
struct Inner<V> {
    map: HashMap<Key, Entry<V>>,
    weight: usize,
    last_prune: Instant,
}

#[derive(Debug)]
struct Entry<V> {
    expires: Instant,
    weight: usize,
    value: V,
}

impl<V: Clone> TtlCache<V> {
    /// A cache of entries living `ttl`, at most `capacity` weight units,
    /// swept every `prune_every`. A zero `ttl` or `capacity` disables it.
    pub(crate) fn new(
        ttl: Duration,
        capacity: usize,
        prune_every: Duration,
        evictions: Counter,
        weight_gauge: Gauge,
    ) -> Self {
        Self {
            ttl,
            capacity,
            prune_every,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                weight: 0,
                last_prune: Instant::now(),
            }),
            evictions,
            weight_gauge,
        }
    }

    /// The live value under `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<V> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let entry = inner.map.get(key)?;
        if entry.expires > now {
            return Some(entry.value.clone());
        }
        let weight = entry.weight;
        inner.map.remove(key);
        inner.weight -= weight;
        self.weight_gauge.set(inner.weight as i64);
        None
    }

    /// Remembers `value` for one TTL but never past `not_after` (the token's
    /// `exp`); nothing is stored when `not_after` has passed or `weight`
    /// exceeds the whole capacity.
    pub(crate) fn insert(&self, key: Key, value: V, weight: usize, not_after: SystemTime) {
        if self.ttl.is_zero() || weight > self.capacity {
            return;
        }
        let Ok(left) = not_after.duration_since(SystemTime::now()) else {
            return;
        };
        let now = Instant::now();
        let expires = now + self.ttl.min(left);
        let mut inner = self.inner.lock();
        if now.duration_since(inner.last_prune) >= self.prune_every {
            inner.sweep(now);
        }
        if let Some(old) = inner.map.remove(&key) {
            inner.weight -= old.weight;
        }
        if inner.weight + weight > self.capacity {
            inner.sweep(now);
            if inner.weight + weight > self.capacity {
                self.evictions.add(inner.map.len() as u64);
                inner.map.clear();
                inner.weight = 0;
            }
        }
        inner.weight += weight;
        inner.map.insert(
            key,
            Entry {
                expires,
                weight,
                value,
            },
        );
        self.weight_gauge.set(inner.weight as i64);
    }

    /// Entries held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map.len()
    }
}

impl<V> Inner<V> {
    /// Drops every expired entry.
    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        self.map.retain(|_, e| {
            let live = e.expires > now;
            if !live {
                freed += e.weight;
            }
            live
        });
        self.weight -= freed;
        self.last_prune = now;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache(ttl: u64, capacity: usize) -> (TtlCache<u32>, Counter) {
        let evictions = Counter::detached();
        let c = TtlCache::new(
            Duration::from_secs(ttl),
            capacity,
            Duration::from_secs(60),
            evictions.clone(),
            Gauge::detached(),
        );
        (c, evictions)
    }

    fn k(n: u8) -> Key {
        [n; 32]
    }

    fn far() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn entries_live_one_ttl() {
        let (c, _) = cache(60, 10);
        c.insert(k(1), 1, 1, far());
        assert_eq!(c.get(&k(1)), Some(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(c.get(&k(1)), None);
        assert_eq!(c.len(), 0, "an expired entry is removed when looked up");
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_never_outlives_the_token() {
        let (c, _) = cache(60, 10);
        c.insert(k(1), 1, 1, SystemTime::now() + Duration::from_secs(5));
        assert_eq!(c.get(&k(1)), Some(1));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(c.get(&k(1)), None, "gone at the token's exp, not the TTL's");
        c.insert(k(2), 2, 1, SystemTime::now() - Duration::from_secs(1));
        assert_eq!(c.get(&k(2)), None, "an expired token is not cached");
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_bounds_weight_and_evictions_are_counted() {
        let (c, evictions) = cache(60, 3);
        c.insert(k(1), 1, 1, far());
        c.insert(k(2), 2, 1, far());
        c.insert(k(3), 3, 1, far());
        assert_eq!(evictions.get(), 0);
        c.insert(k(4), 4, 1, far());
        assert!(c.len() <= 3);
        assert_eq!(evictions.get(), 3);
        assert_eq!(c.get(&k(4)), Some(4));
        c.insert(k(5), 5, 4, far());
        assert_eq!(c.get(&k(5)), None, "heavier than the whole cache: not kept");
        c.insert(k(6), 6, 3, far());
        assert_eq!(c.get(&k(6)), Some(6));
        assert_eq!(c.get(&k(4)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_first_drops_expired_entries() {
        let (c, evictions) = cache(60, 2);
        c.insert(k(1), 1, 1, SystemTime::now() + Duration::from_secs(5));
        c.insert(k(2), 2, 1, far());
        tokio::time::advance(Duration::from_secs(6)).await;
        c.insert(k(3), 3, 1, far());
        assert_eq!(evictions.get(), 0, "the expired entry made room");
        assert_eq!(c.get(&k(2)), Some(2));
        assert_eq!(c.get(&k(3)), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pruning_sweep_removes_expired_entries() {
        let (c, _) = cache(10, 100);
        for n in 0..50 {
            c.insert(k(n), 1, 1, far());
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        c.insert(k(200), 1, 1, far());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn zero_ttl_disables() {
        let (c, _) = cache(0, 10);
        c.insert(k(1), 1, 1, far());
        assert_eq!(c.get(&k(1)), None);
    }
}
