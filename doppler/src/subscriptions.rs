//! Live subscriptions: the source of truth the router's [`Table`] snapshots
//! are built from.
//!
//! Adding or removing a subscription (rare) rebuilds the table under a mutex
//! and bumps a version number; the router compares the version once per batch
//! and picks up the new snapshot, so routing itself takes no lock. Each
//! subscription owns a bounded drop-oldest ring ([`Ring`]) that the router
//! pushes into and the subscription's response stream drains.
//!
//! The registry also publishes what ingress must prepare for the current
//! subscribers ([`Needs`]): v1 conversions only when a v1 subscriber exists,
//! `deprecated_tags` re-encodes only when a `use_preferred_tags=false`
//! subscriber exists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use plumbing::metrics::Gauge;
use plumbing::ring::Ring;

use crate::router::table::{SubscriptionKind, SubscriptionSpec, Table};

/// A subscription's queue: encoded envelopes ready to send (v2 envelopes for
/// v2 subscriptions, v1 envelopes for v1 subscriptions).
pub type Sink = Ring<Bytes>;

/// What ingress must compute per envelope for the current subscribers.
#[derive(Debug, Default)]
pub struct Needs {
    /// Some v1 subscriber exists: convert v2 envelopes to v1 (once each).
    pub v1: AtomicBool,
    /// Some v2 subscriber wants `use_preferred_tags = false`.
    pub deprecated_tags: AtomicBool,
    /// Some v2 subscriber wants `use_preferred_tags = true`.
    pub preferred_tags: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    subs: BTreeMap<u64, SubscriptionSpec<Sink>>,
    next_id: u64,
    table: Arc<Table<Sink>>,
}

/// The set of live subscriptions.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    version: AtomicU64,
    needs: Arc<Needs>,
    gauge: Gauge,
}

impl Registry {
    /// Empty registry; `gauge` tracks the number of live subscriptions.
    pub fn new(gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                subs: BTreeMap::new(),
                next_id: 1,
                table: Arc::new(Table::default()),
            }),
            version: AtomicU64::new(0),
            needs: Arc::new(Needs::default()),
            gauge,
        })
    }

    /// What ingress must prepare.
    pub fn needs(&self) -> &Arc<Needs> {
        &self.needs
    }

    /// Current table version (changes on every add/remove).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Current routing snapshot.
    pub fn table(&self) -> Arc<Table<Sink>> {
        Arc::clone(&self.inner.lock().table)
    }

    /// Registers a subscription; it stays until the returned guard is dropped.
    pub fn add(
        self: &Arc<Self>,
        shard_id: String,
        kind: SubscriptionKind,
        sink: Arc<Sink>,
    ) -> SubscriptionGuard {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subs.insert(
            id,
            SubscriptionSpec {
                id,
                sink,
                shard_id,
                kind,
            },
        );
        self.rebuild(&mut inner);
        self.gauge.add(1);
        SubscriptionGuard {
            registry: Arc::clone(self),
            id,
        }
    }

    fn remove(&self, id: u64) {
        let mut inner = self.inner.lock();
        if let Some(spec) = inner.subs.remove(&id) {
            spec.sink.close();
            self.rebuild(&mut inner);
            self.gauge.add(-1);
        }
    }

    fn rebuild(&self, inner: &mut Inner) {
        let table = Table::build(inner.subs.values());
        let mut preferred = false;
        for s in inner.subs.values() {
            if let SubscriptionKind::V2 { form, .. } = &s.kind
                && *form == crate::router::table::TagForm::Preferred
            {
                preferred = true;
            }
        }
        self.needs.v1.store(table.has_v1(), Ordering::Release);
        self.needs
            .deprecated_tags
            .store(table.has_deprecated_form(), Ordering::Release);
        self.needs
            .preferred_tags
            .store(preferred, Ordering::Release);
        inner.table = Arc::new(table);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.inner.lock().subs.len()
    }

    /// Whether no subscription is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every subscription's ring (shutdown: streams drain what is
    /// queued, then end).
    pub fn close_all(&self) {
        for s in self.inner.lock().subs.values() {
            s.sink.close();
        }
    }
}

/// Keeps a subscription registered; dropping it (the client went away or the
/// stream ended) removes the subscription and decrements the gauge.
#[derive(Debug)]
pub struct SubscriptionGuard {
    registry: Arc<Registry>,
    id: u64,
}

impl SubscriptionGuard {
    /// The subscription id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}
