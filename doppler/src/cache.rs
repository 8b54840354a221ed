//! Per-app caches behind `plumbing.Doppler/RecentLogs` and
//! `plumbing.Doppler/ContainerMetrics` (reference §9.5, §15).
//!
//! - Recent logs: per app, the last `max_logs_per_app` log envelopes (oldest
//!   first when read).
//! - Container metrics: per app, the newest container metric per instance (by
//!   envelope timestamp); entries older than the TTL are pruned on read.
//! - An app is created on its first cached envelope and removed after
//!   `inactivity_timeout` without one; at most `max_apps` apps are kept, the least
//!   recently used app is evicted to make room (memory stays bounded:
//!   `max_apps × (max_logs_per_app + instances)` entries).
//!
//! Entries are kept in the form they arrived in ([`Stored`]); v2 entries are
//! converted to v1 only when a request reads them, so caching costs the ingress
//! path one copy of each log and no conversion. Copies (not slices) are kept so a
//! cached envelope never pins a whole received batch buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::view::Kind;
use plumbing::metrics::Counter;

use crate::envelope::Ingested;

/// Cache limits.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Logs kept per app (`0` disables the recent-logs cache).
    pub max_logs_per_app: usize,
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

#[derive(Debug)]
struct AppEntry {
    logs: VecDeque<Stored>,
    /// instance -> (envelope timestamp ns, envelope)
    metrics: HashMap<Box<str>, (i64, Stored)>,
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
    evicted: u64,
    /// Metric mirror of `evicted`.
    evictions: Counter,
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
            evicted: 0,
            evictions: Counter::detached(),
        }
    }

    /// Counts evictions (capacity and inactivity) in `counter` too.
    pub fn with_eviction_counter(mut self, counter: Counter) -> Self {
        self.evictions = counter;
        self
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
        self.evicted
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
            self.apps.remove(&victim);
            self.evicted += 1;
            self.evictions.inc();
        }
        self.next_uid += 1;
        let key = (epoch, self.next_uid);
        let name: Box<str> = app.into();
        self.lru.insert(key, name.clone());
        self.apps.entry(name).or_insert(AppEntry {
            logs: VecDeque::new(),
            metrics: HashMap::new(),
            last_seen: now,
            lru_key: key,
        })
    }

    /// Appends a log envelope for `app`, dropping the oldest beyond the limit.
    pub fn push_log(&mut self, app: &str, env: Stored) {
        let max = self.cfg.max_logs_per_app;
        if max == 0 || app.is_empty() {
            return;
        }
        let e = self.entry(app);
        if e.logs.len() >= max {
            e.logs.pop_front();
        }
        e.logs.push_back(env);
    }

    /// Records a container metric for `app`/`instance`, keeping the newest by
    /// envelope timestamp.
    pub fn put_container_metric(&mut self, app: &str, instance: &str, timestamp: i64, env: Stored) {
        if app.is_empty() {
            return;
        }
        let e = self.entry(app);
        match e.metrics.get_mut(instance) {
            Some(slot) => {
                if timestamp >= slot.0 {
                    *slot = (timestamp, env);
                }
            }
            None => {
                e.metrics.insert(instance.into(), (timestamp, env));
            }
        }
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
        e.metrics.retain(|_, (ts, _)| *ts >= cutoff);
        let mut out: Vec<_> = e
            .metrics
            .iter()
            .map(|(i, (_, s))| (i.clone(), s.clone()))
            .collect();
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
                self.apps.remove(&name);
                removed += 1;
            }
        }
        self.evicted += removed as u64;
        self.evictions.add(removed as u64);
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
}
