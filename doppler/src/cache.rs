//! Per-app caches behind `plumbing.Doppler/RecentLogs` and
//! `plumbing.Doppler/ContainerMetrics` (reference §9.5, §15).
//!
//! - Recent logs: per app, the last `max_logs_per_app` log envelopes (oldest
//!   first when read), and no more than `max_log_bytes_per_app` bytes of them:
//!   the oldest logs go first. A single log larger than that bound is not
//!   cached.
//! - Container metrics: per app, the newest container metric per instance (by
//!   envelope timestamp); entries older than the TTL are pruned on read.
//! - An app is created on its first cached envelope and removed after
//!   `inactivity_timeout` without one; at most `max_apps` apps are kept, the least
//!   recently used app is evicted to make room.
//! - Memory is bounded by bytes: every entry costs its encoded size plus
//!   [`ENTRY_OVERHEAD`]; when all apps together hold more than
//!   `max_total_bytes`, the least recently used apps (other than the one being
//!   written) are evicted, oldest first.
//!
//! Logs removed or refused because of a byte bound are counted
//! (`recent_logs_dropped_by_size`); evicted apps are counted
//! (`recent_logs_apps_evicted`); the bytes held are a gauge
//! (`recent_logs_cache_bytes`).
//!
//! Entries are kept in the form they arrived in ([`Stored`]); v2 entries are
//! converted to v1 only when a request reads them, so caching costs the ingress
//! path one copy of each log and no conversion. Copies (not slices) are kept so a
//! cached envelope never pins a whole received batch buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::view::Kind;
use plumbing::metrics::{Counter, Gauge};

use crate::envelope::Ingested;

/// Default bound on the bytes of cached logs per app: one RecentLogs answer
/// (10 MiB, the gRPC message limit) — more could never be sent.
pub const DEFAULT_MAX_LOG_BYTES_PER_APP: usize = 10 * 1024 * 1024;
/// Default bound on the bytes held by all apps together (512 MiB).
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 512 * 1024 * 1024;
/// Bytes accounted per cached entry on top of its encoded size (queue slot,
/// buffer header, map entry), so many tiny entries are bounded too.
pub const ENTRY_OVERHEAD: usize = 64;

/// Cache limits.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Logs kept per app (`0` disables the recent-logs cache).
    pub max_logs_per_app: usize,
    /// Bytes of logs kept per app (oldest dropped first); a log larger than
    /// this is not cached.
    pub max_log_bytes_per_app: usize,
    /// Bytes kept by all apps together, logs and container metrics; the least
    /// recently used apps are evicted beyond it.
    pub max_total_bytes: usize,
    /// Container metrics older than this (by envelope timestamp) are not served.
    pub container_metric_ttl: Duration,
    /// Apps without new envelopes for this long are removed.
    pub inactivity_timeout: Duration,
    /// Upper bound on cached apps; the least recently used app is evicted.
    pub max_apps: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_logs_per_app: 100,
            max_log_bytes_per_app: DEFAULT_MAX_LOG_BYTES_PER_APP,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            container_metric_ttl: Duration::from_secs(120),
            inactivity_timeout: Duration::from_secs(3600),
            max_apps: 100_000,
        }
    }
}

/// One cached envelope in the encoding it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A marshalled `events.Envelope` (arrived on `Pusher`).
    V1(Bytes),
    /// A marshalled `loggregator.v2.Envelope` (arrived on `Ingress`).
    V2(Bytes),
}

impl Stored {
    /// Encoded size.
    pub fn len(&self) -> usize {
        match self {
            Stored::V1(b) | Stored::V2(b) => b.len(),
        }
    }

    /// Whether the encoding is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this entry is accounted for in the cache.
    fn cost(&self) -> usize {
        self.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
struct AppEntry {
    logs: VecDeque<Stored>,
    /// Accounted bytes of `logs`.
    log_bytes: usize,
    /// instance -> (envelope timestamp ns, envelope)
    metrics: HashMap<Box<str>, (i64, Stored)>,
    /// Accounted bytes of `metrics` (instance names included).
    metric_bytes: usize,
    last_seen: Instant,
    /// Position in the LRU order.
    lru_key: (u64, u64),
}

/// The recent-logs and container-metrics cache.
#[derive(Debug)]
pub struct AppCache {
    cfg: CacheConfig,
    apps: HashMap<Box<str>, AppEntry>,
    /// (touch epoch, unique id) -> app; oldest first.
    lru: BTreeMap<(u64, u64), Box<str>>,
    epoch: u64,
    next_uid: u64,
    now: Instant,
    /// Apps evicted (inactivity or capacity).
    evictions: Counter,
    /// Accounted bytes of every app.
    total_bytes: usize,
    /// Logs removed or refused because of a byte bound.
    size_drops: Counter,
    /// Metric mirror of `total_bytes`.
    bytes_gauge: Gauge,
}

impl AppCache {
    /// Empty cache.
    pub fn new(cfg: CacheConfig) -> Self {
        Self {
            cfg,
            apps: HashMap::new(),
            lru: BTreeMap::new(),
            epoch: 0,
            next_uid: 0,
            now: Instant::now(),
            evictions: Counter::detached(),
            total_bytes: 0,
            size_drops: Counter::detached(),
            bytes_gauge: Gauge::detached(),
        }
    }

    /// Counts evictions (capacity and inactivity) in `counter` too.
    pub fn with_eviction_counter(mut self, counter: Counter) -> Self {
        self.evictions = counter;
        self
    }

    /// Counts logs dropped by the byte bounds in `counter` and mirrors the
    /// bytes held in `gauge`.
    pub fn with_size_metrics(mut self, counter: Counter, gauge: Gauge) -> Self {
        self.size_drops = counter;
        self.bytes_gauge = gauge;
        self
    }

    /// Accounted bytes held by all apps.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Logs removed or refused so far because of a byte bound.
    pub fn dropped_by_size(&self) -> u64 {
        self.size_drops.get()
    }

    fn publish_bytes(&self) {
        self.bytes_gauge
            .set(i64::try_from(self.total_bytes).unwrap_or(i64::MAX));
    }

    fn count_size_drops(&self, n: u64) {
        if n > 0 {
            self.size_drops.add(n);
        }
    }

    /// Removes `name` and its bytes; `false` if it was not cached.
    fn remove_app(&mut self, name: &str) -> bool {
        let Some(e) = self.apps.remove(name) else {
            return false;
        };
        self.total_bytes -= e.log_bytes + e.metric_bytes;
        true
    }

    /// Evicts least recently used apps other than `keep` until the total is
    /// within `max_total_bytes`; if `keep` alone is over, its oldest logs go.
    fn enforce_total(&mut self, keep: &str) {
        let max = self.cfg.max_total_bytes;
        while self.total_bytes > max {
            let victim = self
                .lru
                .iter()
                .find(|(_, name)| &***name != keep)
                .map(|(k, _)| *k);
            let Some(key) = victim else {
                break;
            };
            if let Some(name) = self.lru.remove(&key) {
                self.remove_app(&name);
                self.evictions.inc();
            }
        }
        let mut trimmed = 0;
        if self.total_bytes > max
            && let Some(e) = self.apps.get_mut(keep)
        {
            while self.total_bytes > max {
                let Some(old) = e.logs.pop_front() else {
                    break;
                };
                e.log_bytes -= old.cost();
                self.total_bytes -= old.cost();
                trimmed += 1;
            }
        }
        self.count_size_drops(trimmed);
    }

    /// Starts a batch of updates at `now`: an app touched several times in one
    /// batch is moved in the LRU order only once.
    pub fn begin(&mut self, now: Instant) {
        self.epoch += 1;
        self.now = now;
    }

    /// Whether logs are cached at all.
    pub fn logs_enabled(&self) -> bool {
        self.cfg.max_logs_per_app > 0
    }

    /// Number of cached apps.
    pub fn app_count(&self) -> usize {
        self.apps.len()
    }

    /// Apps evicted so far (inactivity or capacity).
    pub fn evicted(&self) -> u64 {
        self.evictions.get()
    }

    fn entry(&mut self, app: &str) -> &mut AppEntry {
        let epoch = self.epoch;
        let now = self.now;
        if self.apps.contains_key(app) {
            // Present: checked just above.
            let e = self
                .apps
                .get_mut(app)
                .expect("entry present: checked by contains_key");
            e.last_seen = now;
            if e.lru_key.0 != epoch {
                let old = e.lru_key;
                e.lru_key = (epoch, old.1);
                if let Some(name) = self.lru.remove(&old) {
                    self.lru.insert(e.lru_key, name);
                }
            }
            return e;
        }
        while self.apps.len() >= self.cfg.max_apps.max(1) {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            self.remove_app(&victim);
            self.evictions.inc();
        }
        self.next_uid += 1;
        let key = (epoch, self.next_uid);
        let name: Box<str> = app.into();
        self.lru.insert(key, name.clone());
        self.apps.entry(name).or_insert(AppEntry {
            logs: VecDeque::new(),
            log_bytes: 0,
            metrics: HashMap::new(),
            metric_bytes: 0,
            last_seen: now,
            lru_key: key,
        })
    }

    /// Appends a log envelope for `app`, dropping the oldest beyond the count
    /// and byte limits (a log larger than the per-app byte limit is refused).
    pub fn push_log(&mut self, app: &str, env: Stored) {
        let max = self.cfg.max_logs_per_app;
        if max == 0 || app.is_empty() {
            return;
        }
        let cost = env.cost();
        let max_bytes = self.cfg.max_log_bytes_per_app;
        if cost > max_bytes {
            self.count_size_drops(1);
            return;
        }
        let e = self.entry(app);
        let (mut freed, mut by_size) = (0, 0);
        while e.logs.len() >= max || e.log_bytes + cost > max_bytes {
            let Some(old) = e.logs.pop_front() else {
                break;
            };
            if e.logs.len() + 1 < max {
                by_size += 1;
            }
            e.log_bytes -= old.cost();
            freed += old.cost();
        }
        e.logs.push_back(env);
        e.log_bytes += cost;
        self.total_bytes = self.total_bytes + cost - freed;
        self.count_size_drops(by_size);
        self.enforce_total(app);
        self.publish_bytes();
    }

    /// Records a container metric for `app`/`instance`, keeping the newest by
    /// envelope timestamp.
    pub fn put_container_metric(&mut self, app: &str, instance: &str, timestamp: i64, env: Stored) {
        if app.is_empty() {
            return;
        }
        let e = self.entry(app);
        let (added, freed) = match e.metrics.get_mut(instance) {
            Some(slot) => {
                if timestamp >= slot.0 {
                    let old = std::mem::replace(slot, (timestamp, env));
                    (slot.1.cost(), old.1.cost())
                } else {
                    (0, 0)
                }
            }
            None => {
                let cost = env.cost() + instance.len();
                e.metrics.insert(instance.into(), (timestamp, env));
                (cost, 0)
            }
        };
        e.metric_bytes = e.metric_bytes + added - freed;
        self.total_bytes = self.total_bytes + added - freed;
        self.enforce_total(app);
        self.publish_bytes();
    }

    /// The cached logs of `app`, oldest first.
    pub fn recent_logs(&self, app: &str) -> Vec<Stored> {
        self.apps
            .get(app)
            .map(|e| e.logs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The newest container metric per instance of `app` whose timestamp is
    /// within the TTL of `now_ns`; older entries are pruned.
    pub fn container_metrics(&mut self, app: &str, now_ns: i64) -> Vec<Stored> {
        let ttl = i64::try_from(self.cfg.container_metric_ttl.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = now_ns.saturating_sub(ttl);
        let Some(e) = self.apps.get_mut(app) else {
            return Vec::new();
        };
        let mut freed = 0;
        e.metrics.retain(|instance, (ts, s)| {
            let keep = *ts >= cutoff;
            if !keep {
                freed += s.cost() + instance.len();
            }
            keep
        });
        e.metric_bytes -= freed;
        let mut out: Vec<_> = e
            .metrics
            .iter()
            .map(|(i, (_, s))| (i.clone(), s.clone()))
            .collect();
        self.total_bytes -= freed;
        self.publish_bytes();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// Removes apps idle for longer than the inactivity timeout; returns how many.
    pub fn evict_idle(&mut self, now: Instant) -> usize {
        let timeout = self.cfg.inactivity_timeout;
        let mut removed = 0;
        // Oldest touches first; stop at the first app still active. The LRU order
        // follows touch epochs, which follow time, so this scan is exact.
        while let Some((&k, name)) = self.lru.first_key_value() {
            let idle = self
                .apps
                .get(name)
                .is_none_or(|e| now.saturating_duration_since(e.last_seen) >= timeout);
            if !idle {
                break;
            }
            if let Some(name) = self.lru.remove(&k) {
                self.remove_app(&name);
                removed += 1;
            }
        }
        self.evictions.add(removed as u64);
        self.publish_bytes();
        removed
    }
}

/// Gauge metric names of a container metric (ToV2 of a v1 ContainerMetric).
const CONTAINER_METRIC_NAMES: [&str; 5] = ["cpu", "memory", "disk", "memory_quota", "disk_quota"];

/// Name-set hashes of gauges that are container metrics: the five names, and
/// the five plus `instance_index`.
pub fn container_metric_hashes() -> [u64; 2] {
    let five = CONTAINER_METRIC_NAMES.iter().fold(0u64, |s, n| {
        s.wrapping_add(envelope_proto::view::crc64(n.as_bytes()))
    });
    [
        five,
        five.wrapping_add(envelope_proto::view::crc64(b"instance_index")),
    ]
}

impl AppCache {
    /// Caches `item` if it is a log or a container metric. Entries are copies,
    /// so a cached envelope does not keep a received batch buffer alive.
    pub fn record(&mut self, item: &Ingested, cm_hashes: &[u64; 2]) {
        let stored = || match &item.v1_original {
            Some(v1) => Stored::V1(Bytes::copy_from_slice(v1)),
            None => Stored::V2(Bytes::copy_from_slice(&item.v2)),
        };
        match item.key.kind {
            Kind::Log if self.logs_enabled() => {
                if let Ok(app) = std::str::from_utf8(&item.key.source_id) {
                    self.push_log(app, stored());
                }
            }
            Kind::Gauge if cm_hashes.contains(&item.key.name_hash) => {
                let Ok(view) = envelope_proto::view::EnvelopeView::parse(&item.v2) else {
                    return;
                };
                self.put_container_metric(
                    view.source_id(),
                    view.instance_id(),
                    view.timestamp(),
                    stored(),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(max_logs: usize, max_apps: usize) -> CacheConfig {
        CacheConfig {
            max_logs_per_app: max_logs,
            max_log_bytes_per_app: DEFAULT_MAX_LOG_BYTES_PER_APP,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            container_metric_ttl: Duration::from_secs(120),
            inactivity_timeout: Duration::from_secs(10),
            max_apps,
        }
    }

    fn log(n: u32) -> Stored {
        Stored::V2(Bytes::from(n.to_string()))
    }

    #[test]
    fn keeps_last_n_logs_oldest_first() {
        let mut c = AppCache::new(cfg(3, 10));
        c.begin(Instant::now());
        for i in 0..5 {
            c.push_log("a", log(i));
        }
        assert_eq!(c.recent_logs("a"), vec![log(2), log(3), log(4)]);
        assert!(c.recent_logs("b").is_empty());
    }

    #[test]
    fn zero_limit_disables_logs() {
        let mut c = AppCache::new(cfg(0, 10));
        c.begin(Instant::now());
        c.push_log("a", log(1));
        assert_eq!(c.app_count(), 0);
    }

    #[test]
    fn capacity_evicts_least_recently_used() {
        let mut c = AppCache::new(cfg(2, 3));
        let t0 = Instant::now();
        for (i, app) in ["a", "b", "c"].iter().enumerate() {
            c.begin(t0);
            c.push_log(app, log(i as u32));
        }
        // touch a, so b is now the least recently used
        c.begin(t0);
        c.push_log("a", log(9));
        c.begin(t0);
        c.push_log("d", log(4));
        assert_eq!(c.app_count(), 3);
        assert!(c.recent_logs("b").is_empty());
        assert_eq!(c.recent_logs("a"), vec![log(0), log(9)]);
        assert_eq!(c.recent_logs("d"), vec![log(4)]);
        assert_eq!(c.evicted(), 1);
    }

    #[test]
    fn idle_apps_are_evicted() {
        let mut c = AppCache::new(cfg(2, 10));
        let t0 = Instant::now();
        c.begin(t0);
        c.push_log("old", log(1));
        c.begin(t0 + Duration::from_secs(5));
        c.push_log("new", log(2));
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(9)), 0);
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(11)), 1);
        assert!(c.recent_logs("old").is_empty());
        assert_eq!(c.recent_logs("new"), vec![log(2)]);
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(16)), 1);
        assert_eq!(c.app_count(), 0);
    }

    #[test]
    fn container_metrics_newest_per_instance_and_ttl() {
        let mut c = AppCache::new(cfg(2, 10));
        c.begin(Instant::now());
        let s = |t: &str| Stored::V1(Bytes::from(t.to_owned()));
        let sec = 1_000_000_000i64;
        c.put_container_metric("a", "0", 100 * sec, s("i0-old"));
        c.put_container_metric("a", "0", 200 * sec, s("i0-new"));
        c.put_container_metric("a", "0", 150 * sec, s("i0-late-but-older"));
        c.put_container_metric("a", "1", 90 * sec, s("i1"));
        assert_eq!(
            c.container_metrics("a", 205 * sec),
            vec![s("i0-new"), s("i1")]
        );
        // i1 (90 s) is older than 120 s at 211 s
        assert_eq!(c.container_metrics("a", 211 * sec), vec![s("i0-new")]);
        assert!(c.container_metrics("a", 400 * sec).is_empty());
        assert!(c.container_metrics("zzz", 0).is_empty());
    }

    /// A log of exactly `len` encoded bytes, tagged with `n` in its first byte.
    fn sized(n: u8, len: usize) -> Stored {
        let mut v = vec![b'x'; len];
        v[0] = n;
        Stored::V2(Bytes::from(v))
    }

    fn bytes_cfg(per_app: usize, total: usize) -> CacheConfig {
        CacheConfig {
            max_log_bytes_per_app: per_app,
            max_total_bytes: total,
            ..cfg(100, 10)
        }
    }

    #[test]
    fn per_app_byte_bound_drops_oldest_first_and_counts() {
        let cost = 1000 + ENTRY_OVERHEAD;
        let counter = Counter::detached();
        let mut c = AppCache::new(bytes_cfg(3 * cost, 1 << 30))
            .with_size_metrics(counter.clone(), Gauge::detached());
        c.begin(Instant::now());
        for i in 0..5 {
            c.push_log("a", sized(i, 1000));
        }
        assert_eq!(
            c.recent_logs("a"),
            vec![sized(2, 1000), sized(3, 1000), sized(4, 1000)],
            "the newest that fit, oldest first"
        );
        assert_eq!(c.dropped_by_size(), 2);
        assert_eq!(counter.get(), 2);
        assert_eq!(c.total_bytes(), 3 * cost);
        // One larger log pushes out as many old ones as it needs.
        c.push_log("a", sized(9, 2000));
        assert_eq!(c.recent_logs("a"), vec![sized(4, 1000), sized(9, 2000)]);
        assert_eq!(c.total_bytes(), cost + 2000 + ENTRY_OVERHEAD);
        assert_eq!(c.dropped_by_size(), 4);
    }

    #[test]
    fn a_log_larger_than_the_per_app_bound_is_refused_and_counted() {
        let mut c = AppCache::new(bytes_cfg(5000, 1 << 30));
        c.begin(Instant::now());
        c.push_log("a", sized(1, 100));
        c.push_log("a", sized(2, 5000));
        assert_eq!(c.recent_logs("a"), vec![sized(1, 100)]);
        assert_eq!(c.dropped_by_size(), 1);
        assert_eq!(c.total_bytes(), 100 + ENTRY_OVERHEAD);
    }

    #[test]
    fn count_limit_pops_are_not_size_drops() {
        let mut c = AppCache::new(cfg(2, 10));
        c.begin(Instant::now());
        for i in 0..5 {
            c.push_log("a", sized(i, 10));
        }
        assert_eq!(c.recent_logs("a").len(), 2);
        assert_eq!(c.dropped_by_size(), 0);
        assert_eq!(c.total_bytes(), 2 * (10 + ENTRY_OVERHEAD));
    }

    #[test]
    fn total_byte_bound_evicts_least_recently_used_apps() {
        let cost = 1000 + ENTRY_OVERHEAD;
        let gauge = Gauge::detached();
        // Room for 5 logs in all; each app may hold 3.
        let mut c = AppCache::new(bytes_cfg(3 * cost, 5 * cost))
            .with_size_metrics(Counter::detached(), gauge.clone());
        let t0 = Instant::now();
        for (i, app) in ["a", "b"].iter().enumerate() {
            c.begin(t0);
            c.push_log(app, sized(i as u8, 1000));
            c.push_log(app, sized(i as u8, 1000));
        }
        assert_eq!(c.total_bytes(), 4 * cost);
        c.begin(t0);
        c.push_log("c", sized(7, 1000));
        assert_eq!(c.app_count(), 3, "5 entries fit");
        c.begin(t0);
        c.push_log("c", sized(8, 1000));
        // 6 entries: "a" is the least recently used and goes.
        assert!(c.recent_logs("a").is_empty());
        assert_eq!(c.recent_logs("b").len(), 2);
        assert_eq!(c.recent_logs("c"), vec![sized(7, 1000), sized(8, 1000)]);
        assert_eq!(c.evicted(), 1);
        assert_eq!(c.total_bytes(), 4 * cost);
        assert_eq!(gauge.get(), (4 * cost) as i64);
        // The app being written is never the victim: a total below one
        // app's share trims that app's oldest logs instead.
        let mut c = AppCache::new(bytes_cfg(3 * cost, 2 * cost));
        c.begin(t0);
        for i in 0..3 {
            c.push_log("solo", sized(i, 1000));
        }
        assert_eq!(c.recent_logs("solo"), vec![sized(1, 1000), sized(2, 1000)]);
        assert!(c.total_bytes() <= 2 * cost);
        assert_eq!(c.dropped_by_size(), 1);
    }

    #[test]
    fn bytes_are_released_by_eviction_and_metric_replacement() {
        let mut c = AppCache::new(cfg(10, 10));
        let t0 = Instant::now();
        c.begin(t0);
        c.push_log("a", sized(1, 500));
        let sec = 1_000_000_000i64;
        c.put_container_metric("a", "0", 100 * sec, sized(2, 300));
        let after_first = c.total_bytes();
        assert_eq!(after_first, 500 + 300 + 2 * ENTRY_OVERHEAD + 1);
        c.put_container_metric("a", "0", 101 * sec, sized(3, 100));
        assert_eq!(c.total_bytes(), after_first - 200, "replaced, not added");
        c.put_container_metric("a", "0", 50 * sec, sized(4, 900));
        assert_eq!(c.total_bytes(), after_first - 200, "older metric ignored");
        // TTL pruning on read releases the metric.
        assert!(c.container_metrics("a", 400 * sec).is_empty());
        assert_eq!(c.total_bytes(), 500 + ENTRY_OVERHEAD);
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(11)), 1);
        assert_eq!(c.total_bytes(), 0);
        // Capacity eviction releases bytes too.
        let mut c = AppCache::new(cfg(10, 1));
        c.begin(t0);
        c.push_log("a", sized(1, 500));
        c.push_log("b", sized(2, 100));
        assert_eq!(c.total_bytes(), 100 + ENTRY_OVERHEAD);
    }
}
