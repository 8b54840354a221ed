//! The envelope store: per source id, ordered by timestamp, bounded by bytes.
//!
//! Each stored envelope is kept once, as its encoded bytes (`Arc<[u8]>`:
//! readers take a reference, never a copy, and never hold a lock while they
//! encode their answer), with its timestamp and kind beside it.
//!
//! # Order and equal timestamps
//!
//! A source's entries are sorted by envelope timestamp; envelopes with equal
//! timestamps are all kept, in arrival order (upstream nudges the key of a
//! duplicate by +1 ns instead; the envelope keeps its timestamp either way).
//! A read that reaches its limit inside a run of equal timestamps finishes
//! the run (at most [`MAX_RUN_EXTENSION`] more), as upstream's traversal
//! does, so a walker that continues at `last timestamp + 1` (the cf CLI)
//! never skips one.
//!
//! # Bounds (full-store policy: evict oldest, counted)
//!
//! - Per source: at most `max_per_source` envelopes; the oldest of that
//!   source goes first (`MAX_PER_SOURCE`, default 100000).
//! - Whole store: at most `memory_limit` accounted bytes (encoded length
//!   plus [`ENTRY_OVERHEAD`] per envelope). Going over wakes the truncation
//!   task ([`Store::truncate`]), which evicts the globally oldest envelopes
//!   until the store is back under the limit; it also runs every
//!   `TRUNCATION_INTERVAL`. Between a put and the truncation the store may
//!   overshoot by what arrives meanwhile.
//!
//! Every eviction is counted: per source (`expired` in `/api/v1/meta`) and
//! in `log_cache_expired`. A source whose last envelope is evicted is
//! forgotten.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envelope_proto::logcache_v1::MetaInfo;
use envelope_proto::view::{EnvelopeView, Kind, ViewError};
use parking_lot::Mutex;
use regex::Regex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::StoreMetrics;

/// Bytes accounted per stored envelope beyond its encoding: the entry in
/// its source's deque (32), the `Arc` header (16) and allocator rounding.
pub const ENTRY_OVERHEAD: u64 = 64;

/// Bytes accounted per source beyond its entries (map slot, name, deque).
pub const SOURCE_OVERHEAD: u64 = 160;

/// A read that hits its limit inside a run of equal timestamps returns at
/// most this many more envelopes to finish the run (upstream's timestamp
/// fudge limit).
pub const MAX_RUN_EXTENSION: usize = 4000;

/// Number of independently locked shards of the source map.
const SHARDS: usize = 32;

/// Store limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Accounted bytes the whole store may hold.
    pub memory_limit: u64,
    /// Envelopes one source may hold.
    pub max_per_source: usize,
}

/// `EnvelopeType` values (`logcache.v1`) as a bit set: bit `t` for type `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSet(u8);

impl TypeSet {
    /// Every envelope (no `envelope_types`, or only `ANY`).
    pub const ALL: TypeSet = TypeSet(0xff);

    /// The set of the given `EnvelopeType` numbers. `ANY` (0) is ignored,
    /// as upstream does; nothing left means every type.
    pub fn from_types(types: &[i32]) -> TypeSet {
        let mut bits = 0u8;
        for &t in types {
            if (1..=5).contains(&t) {
                bits |= 1 << t;
            }
        }
        if bits == 0 {
            TypeSet::ALL
        } else {
            TypeSet(bits)
        }
    }

    fn admits(self, kind: u8) -> bool {
        self.0 == 0xff || (kind != 0 && self.0 & (1 << kind) != 0)
    }
}

/// The `EnvelopeType` number of a view's kind (0 when none is set).
pub fn type_of(kind: Kind) -> u8 {
    match kind {
        Kind::None => 0,
        Kind::Log => 1,
        Kind::Counter => 2,
        Kind::Gauge => 3,
        Kind::Timer => 4,
        Kind::Event => 5,
    }
}

/// One read of one source, already validated (see [`crate::read`]).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Source id.
    pub source_id: &'a str,
    /// Inclusive start, ns.
    pub start: i64,
    /// Exclusive end, ns.
    pub end: i64,
    /// Most envelopes returned (before finishing a run of equal timestamps).
    pub limit: usize,
    /// Admitted types.
    pub types: TypeSet,
    /// Newest first.
    pub descending: bool,
    /// Counter/timer names and gauge keys must match; logs and events are
    /// excluded when set.
    pub name_filter: Option<&'a Regex>,
}

/// A stored envelope as a read returns it.
pub type Stored = Arc<[u8]>;

struct Entry {
    timestamp: i64,
    kind: u8,
    data: Stored,
}

impl Entry {
    fn cost(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Default)]
struct Source {
    entries: VecDeque<Entry>,
    expired: u64,
    newest: i64,
}

impl Source {
    /// Position of the first entry with `timestamp >= t`.
    fn lower_bound(&self, t: i64) -> usize {
        self.entries.partition_point(|e| e.timestamp < t)
    }
}

#[derive(Default)]
struct Shard {
    sources: HashMap<Box<str>, Source>,
}

/// Why an envelope was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// Not a decodable v2 envelope.
    #[error("invalid envelope: {0}")]
    Invalid(#[from] ViewError),
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    bytes: AtomicU64,
    count: AtomicU64,
    limits: Limits,
    metrics: StoreMetrics,
    over_limit: Notify,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("count", &self.count.load(Ordering::Relaxed))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store.
    pub fn new(limits: Limits, metrics: StoreMetrics) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            bytes: AtomicU64::new(0),
            count: AtomicU64::new(0),
            limits,
            metrics,
            over_limit: Notify::new(),
        }
    }

    /// The limits it was built with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn shard(&self, source_id: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(source_id) as usize;
        &self.shards[h % SHARDS]
    }

    /// Stores one encoded v2 envelope (validated with Go's decoding rules).
    /// Never blocks on readers for longer than one shard lock.
    pub fn put(&self, encoded: &[u8]) -> Result<(), PutError> {
        let view = EnvelopeView::parse(encoded)?;
        self.put_view(&view);
        Ok(())
    }

    /// Stores an already parsed envelope.
    pub fn put_view(&self, view: &EnvelopeView<'_>) {
        let entry = Entry {
            timestamp: view.timestamp(),
            kind: type_of(view.kind()),
            data: Arc::from(view.as_bytes()),
        };
        let cost = entry.cost();
        let source_id = view.source_id();
        let mut evicted = 0u64;
        let mut added = cost;
        {
            let mut shard = self.shard(source_id).lock();
            let source = match shard.sources.get_mut(source_id) {
                Some(s) => s,
                None => {
                    added += SOURCE_OVERHEAD + source_id.len() as u64;
                    shard
                        .sources
                        .entry(Box::from(source_id))
                        .or_insert_with(|| Source {
                            newest: i64::MIN,
                            ..Source::default()
                        })
                }
            };
            if source.entries.len() >= self.limits.max_per_source.max(1)
                && let Some(old) = source.entries.pop_front()
            {
                evicted += old.cost();
                source.expired += 1;
            }
            let ts = entry.timestamp;
            // `newest` is the back entry's timestamp (or newer, when that entry
            // was evicted): comparing with it spares a cache miss on the deque.
            if ts >= source.newest {
                source.newest = ts;
                source.entries.push_back(entry);
            } else {
                // Out of order: after every entry with timestamp <= ts.
                let at = source.entries.partition_point(|e| e.timestamp <= ts);
                source.entries.insert(at, entry);
            }
        }
        self.metrics.ingress.inc();
        if evicted > 0 {
            self.metrics.expired.inc();
        } else {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        let total = self.bytes.fetch_add(added, Ordering::Relaxed) + added - evicted;
        if evicted > 0 {
            self.bytes.fetch_sub(evicted, Ordering::Relaxed);
        }
        if total > self.limits.memory_limit {
            self.over_limit.notify_one();
        }
    }

    /// Envelopes of one source that `q` selects, in the order asked for.
    /// Unknown sources give an empty result.
    pub fn read(&self, q: &Query<'_>) -> Vec<Stored> {
        let mut out = Vec::new();
        if q.limit == 0 || q.start >= q.end {
            return out;
        }
        let shard = self.shard(q.source_id).lock();
        let Some(source) = shard.sources.get(q.source_id) else {
            return out;
        };
        let from = source.lower_bound(q.start);
        let to = source.lower_bound(q.end);
        let range = source.entries.range(from..to);
        if q.descending {
            collect(range.rev(), q, &mut out);
        } else {
            collect(range, q, &mut out);
        }
        drop(shard);
        self.metrics.egress.add(out.len() as u64);
        out
    }

    /// Count, expired count, oldest and newest timestamp of every source.
    pub fn meta(&self) -> BTreeMap<String, MetaInfo> {
        let mut out = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (id, s) in &shard.sources {
                out.insert(
                    id.to_string(),
                    MetaInfo {
                        count: s.entries.len() as i64,
                        expired: s.expired as i64,
                        oldest_timestamp: s.entries.front().map_or(0, |e| e.timestamp),
                        newest_timestamp: s.newest.max(0),
                    },
                );
            }
        }
        out
    }

    /// Accounted bytes held now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Envelopes held now.
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evicts the globally oldest envelopes until the store is within its
    /// memory limit; returns how many were evicted.
    pub fn truncate(&self) -> u64 {
        if self.bytes() <= self.limits.memory_limit {
            return 0;
        }
        // Oldest timestamp of every source, smallest first.
        let mut heap = BinaryHeap::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let shard = shard.lock();
            for (id, s) in &shard.sources {
                if let Some(e) = s.entries.front() {
                    heap.push(std::cmp::Reverse((e.timestamp, i, id.clone())));
                }
            }
        }
        let mut evicted = 0u64;
        while self.bytes() > self.limits.memory_limit {
            let Some(std::cmp::Reverse((_, i, id))) = heap.pop() else {
                break;
            };
            let mut shard = self.shards[i].lock();
            let Some(source) = shard.sources.get_mut(&id) else {
                continue;
            };
            // Evict this source's envelopes while they are older than the
            // next source's oldest (one lock for a run of them).
            let next_oldest = heap.peek().map_or(i64::MAX, |r| r.0.0);
            let mut freed = 0u64;
            let mut n = 0u64;
            while let Some(front) = source.entries.front() {
                if front.timestamp > next_oldest && n > 0 {
                    break;
                }
                freed += front.cost();
                n += 1;
                source.entries.pop_front();
                if self.bytes().saturating_sub(freed) <= self.limits.memory_limit {
                    break;
                }
            }
            source.expired += n;
            let next = source.entries.front().map(|e| e.timestamp);
            if next.is_none() {
                shard.sources.remove(&id);
                freed += SOURCE_OVERHEAD + id.len() as u64;
            }
            drop(shard);
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
            self.count.fetch_sub(n, Ordering::Relaxed);
            self.metrics.expired.add(n);
            evicted += n;
            if let Some(ts) = next {
                heap.push(std::cmp::Reverse((ts, i, id)));
            }
        }
        evicted
    }

    /// Oldest timestamp in the whole store (`None` when empty).
    pub fn oldest_timestamp(&self) -> Option<i64> {
        self.shards
            .iter()
            .filter_map(|s| {
                s.lock()
                    .sources
                    .values()
                    .filter_map(|src| src.entries.front().map(|e| e.timestamp))
                    .min()
            })
            .min()
    }

    /// Runs truncation every `interval` and whenever a put goes over the
    /// limit, and refreshes the store gauges, until `cancel`.
    pub async fn run_truncation(
        self: Arc<Self>,
        interval: Duration,
        system_memory: u64,
        cancel: CancellationToken,
    ) {
        let interval = interval.max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.over_limit.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
            let started = std::time::Instant::now();
            self.truncate();
            self.refresh_gauges(system_memory);
            self.metrics
                .truncation_duration
                .set(started.elapsed().as_millis() as i64);
        }
    }

    /// Sets `log_cache_store_size`, `log_cache_cache_period` and
    /// `log_cache_memory_utilization`.
    pub fn refresh_gauges(&self, system_memory: u64) {
        self.metrics.store_size.set(self.len() as i64);
        let period_ms = self.oldest_timestamp().map_or(0, |oldest| {
            (envelope_proto::timestamp::now() - oldest).max(0) / 1_000_000
        });
        self.metrics.cache_period.set(period_ms);
        if let Some(pct) = (self.bytes() * 100).checked_div(system_memory) {
            self.metrics.memory_utilization.set(pct as i64);
        }
    }
}

/// Takes what `q` admits from `entries` up to its limit, then finishes a run
/// of equal timestamps (bounded by [`MAX_RUN_EXTENSION`]).
fn collect<'e>(entries: impl Iterator<Item = &'e Entry>, q: &Query<'_>, out: &mut Vec<Stored>) {
    let mut last_ts = None;
    for e in entries {
        if out.len() >= q.limit
            && (last_ts != Some(e.timestamp) || out.len() >= q.limit + MAX_RUN_EXTENSION)
        {
            break;
        }
        if q.types.admits(e.kind) && matches_name(e, q.name_filter) {
            out.push(e.data.clone());
            last_ts = Some(e.timestamp);
        }
    }
}

fn matches_name(e: &Entry, filter: Option<&Regex>) -> bool {
    let Some(re) = filter else {
        return true;
    };
    // Stored bytes were validated on the way in.
    let Ok(view) = EnvelopeView::parse(&e.data) else {
        return false;
    };
    match view.kind() {
        Kind::Counter => re.is_match(view.counter_name()),
        Kind::Timer => re.is_match(view.timer_name()),
        Kind::Gauge => view.gauge_names().any(|n| re.is_match(n)),
        Kind::Log | Kind::Event | Kind::None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
