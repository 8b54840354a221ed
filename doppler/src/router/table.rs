//! The subscription index the router consults for every envelope.
//!
//! A [`Table`] is an immutable snapshot built from the list of live
//! subscriptions; the router swaps in a new snapshot when subscriptions change
//! (rare) and reads it without locks per envelope (often). Lookups are by
//! `source_id` (plus the wildcard bucket), then by message type, then by counter
//! name or gauge name-set hash, so the per-envelope cost does not grow with
//! unrelated subscriptions.
//!
//! Rules (reference §5.2, §9.3, §9.4):
//! - every selector of a v2 request is its own entry, so two matching selectors
//!   deliver an envelope twice;
//! - entries at the same tree node with an empty shard id each get a copy;
//!   entries sharing a non-empty shard id form a group of which exactly one
//!   member gets the envelope: the member at `hash mod n` of the members sorted
//!   by deterministic name when any member set one and the envelope is a counter
//!   or gauge, a random member otherwise;
//! - v1 subscriptions are keyed by (app ID, type class) with the four lookups of
//!   §9.3; a v1 shard group always picks a random member.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use envelope_proto::view::Kind;

use super::key::{RouteKey, V1Class};

/// How a v2 subscriber wants its tags (`use_preferred_tags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagForm {
    /// `use_preferred_tags = true`: deprecated tags are folded into `tags`.
    Preferred,
    /// `use_preferred_tags = false`: `tags` are moved into `deprecated_tags`.
    Deprecated,
}

/// The message part of a v2 selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorKind {
    /// `LogSelector`.
    Log,
    /// `CounterSelector`; an empty name matches every counter.
    Counter(String),
    /// `GaugeSelector`; `None` (no names) matches every gauge, otherwise the
    /// wrapping sum of the crc64 of the names (the exact-set rule).
    Gauge(Option<u64>),
    /// `TimerSelector`.
    Timer,
    /// `EventSelector`.
    Event,
}

/// One usable v2 selector (selectors without a message are dropped before this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Empty means every source.
    pub source_id: String,
    /// Message part.
    pub kind: SelectorKind,
}

/// What a subscription asked for.
#[derive(Debug, Clone)]
pub enum SubscriptionKind {
    /// `loggregator.v2.Egress/BatchedReceiver`.
    V2 {
        /// One routing entry per selector.
        selectors: Vec<Selector>,
        /// Enables hash-based member choice inside a shard group.
        deterministic_name: String,
        /// Tag form the subscriber wants.
        form: TagForm,
    },
    /// `plumbing.Doppler/Subscribe` or `BatchSubscribe`.
    V1 {
        /// Empty means the firehose.
        app_id: String,
        /// `None`: no type filter.
        class: Option<V1Class>,
    },
}

/// A live subscription as the table sees it.
#[derive(Debug)]
pub struct SubscriptionSpec<S> {
    /// Unique id (for logs and tests).
    pub id: u64,
    /// Where delivered envelopes go.
    pub sink: Arc<S>,
    /// Shard id; empty means "every envelope".
    pub shard_id: String,
    /// v1 or v2 request details.
    pub kind: SubscriptionKind,
}

/// One routing entry: a subscription's sink plus how it wants envelopes.
#[derive(Debug)]
pub struct Member<S> {
    /// Subscription id.
    pub id: u64,
    /// Index of the selector inside the request (v2), 0 for v1.
    pub selector: usize,
    /// Destination.
    pub sink: Arc<S>,
    /// Tag form (v2 only; v1 entries use `Preferred` and ignore it).
    pub form: TagForm,
}

impl<S> Clone for Member<S> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            selector: self.selector,
            sink: Arc::clone(&self.sink),
            form: self.form,
        }
    }
}

#[derive(Debug)]
struct Shard<S> {
    shard_id: String,
    /// (deterministic name, member); sorted by name when finished.
    members: Vec<(String, Member<S>)>,
    deterministic: bool,
}

/// The entries at one tree node.
#[derive(Debug)]
struct Groups<S> {
    /// Empty shard id: each gets a copy.
    all: Vec<Member<S>>,
    /// Non-empty shard ids: one member each.
    shards: Vec<Shard<S>>,
}

impl<S> Default for Groups<S> {
    fn default() -> Self {
        Self {
            all: Vec::new(),
            shards: Vec::new(),
        }
    }
}

impl<S> Groups<S> {
    fn insert(&mut self, shard_id: &str, det_name: &str, member: Member<S>) {
        if shard_id.is_empty() {
            self.all.push(member);
            return;
        }
        match self.shards.iter_mut().find(|s| s.shard_id == shard_id) {
            Some(shard) => shard.members.push((det_name.to_owned(), member)),
            None => self.shards.push(Shard {
                shard_id: shard_id.to_owned(),
                members: vec![(det_name.to_owned(), member)],
                deterministic: false,
            }),
        }
    }

    fn finish(&mut self) {
        for shard in &mut self.shards {
            shard.deterministic = shard.members.iter().any(|(n, _)| !n.is_empty());
            shard
                .members
                .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        }
    }

    #[inline]
    fn deliver(&self, hash: Option<u64>, rng: &mut FastRng, f: &mut impl FnMut(&Member<S>)) {
        for m in &self.all {
            f(m);
        }
        for shard in &self.shards {
            let n = shard.members.len() as u64;
            let pick = match hash {
                Some(h) if shard.deterministic => h % n,
                _ => rng.next_u64() % n,
            };
            // `pick < n` always holds.
            if let Some((_, m)) = shard.members.get(pick as usize) {
                f(m);
            }
        }
    }
}

/// v2 tree node for one source id (or the wildcard).
#[derive(Debug)]
struct Node<S> {
    log: Groups<S>,
    timer: Groups<S>,
    event: Groups<S>,
    counter_any: Groups<S>,
    counter: HashMap<Bytes, Groups<S>>,
    gauge_any: Groups<S>,
    gauge: HashMap<u64, Groups<S>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Self {
            log: Groups::default(),
            timer: Groups::default(),
            event: Groups::default(),
            counter_any: Groups::default(),
            counter: HashMap::new(),
            gauge_any: Groups::default(),
            gauge: HashMap::new(),
        }
    }
}

impl<S> Node<S> {
    fn groups_mut(&mut self, kind: &SelectorKind) -> &mut Groups<S> {
        match kind {
            SelectorKind::Log => &mut self.log,
            SelectorKind::Timer => &mut self.timer,
            SelectorKind::Event => &mut self.event,
            SelectorKind::Counter(name) if name.is_empty() => &mut self.counter_any,
            SelectorKind::Counter(name) => self
                .counter
                .entry(Bytes::copy_from_slice(name.as_bytes()))
                .or_default(),
            SelectorKind::Gauge(None) => &mut self.gauge_any,
            SelectorKind::Gauge(Some(h)) => self.gauge.entry(*h).or_default(),
        }
    }

    fn finish(&mut self) {
        self.log.finish();
        self.timer.finish();
        self.event.finish();
        self.counter_any.finish();
        self.counter.values_mut().for_each(Groups::finish);
        self.gauge_any.finish();
        self.gauge.values_mut().for_each(Groups::finish);
    }

    #[inline]
    fn route(&self, key: &RouteKey, rng: &mut FastRng, f: &mut impl FnMut(&Member<S>)) {
        let hash = key.deterministic_hash();
        match key.kind {
            Kind::Log => self.log.deliver(hash, rng, f),
            Kind::Timer => self.timer.deliver(hash, rng, f),
            Kind::Event => self.event.deliver(hash, rng, f),
            Kind::Counter => {
                self.counter_any.deliver(hash, rng, f);
                if let Some(g) = self.counter.get(&key.counter_name[..]) {
                    g.deliver(hash, rng, f);
                }
            }
            Kind::Gauge => {
                self.gauge_any.deliver(hash, rng, f);
                if let Some(g) = self.gauge.get(&key.name_hash) {
                    g.deliver(hash, rng, f);
                }
            }
            Kind::None => {}
        }
    }
}

/// v1 node for one app id (or `""`, the firehose).
#[derive(Debug)]
struct V1Node<S> {
    any: Groups<S>,
    log: Groups<S>,
    metric: Groups<S>,
}

impl<S> Default for V1Node<S> {
    fn default() -> Self {
        Self {
            any: Groups::default(),
            log: Groups::default(),
            metric: Groups::default(),
        }
    }
}

impl<S> V1Node<S> {
    fn typed(&self, class: V1Class) -> &Groups<S> {
        match class {
            V1Class::Log => &self.log,
            V1Class::Metric => &self.metric,
        }
    }
}

/// Immutable routing snapshot.
#[derive(Debug)]
pub struct Table<S> {
    v2_by_source: HashMap<Bytes, Node<S>>,
    v2_any: Node<S>,
    v1_by_app: HashMap<Box<str>, V1Node<S>>,
    v2_entries: usize,
    v1_entries: usize,
    deprecated_form: bool,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Self {
            v2_by_source: HashMap::new(),
            v2_any: Node::default(),
            v1_by_app: HashMap::new(),
            v2_entries: 0,
            v1_entries: 0,
            deprecated_form: false,
        }
    }
}

impl<S> Table<S> {
    /// Builds a snapshot from the live subscriptions.
    pub fn build<'a>(subs: impl IntoIterator<Item = &'a SubscriptionSpec<S>>) -> Self
    where
        S: 'a,
    {
        let mut t = Table::default();
        for sub in subs {
            match &sub.kind {
                SubscriptionKind::V2 {
                    selectors,
                    deterministic_name,
                    form,
                } => {
                    for (i, sel) in selectors.iter().enumerate() {
                        let node = if sel.source_id.is_empty() {
                            &mut t.v2_any
                        } else {
                            t.v2_by_source
                                .entry(Bytes::copy_from_slice(sel.source_id.as_bytes()))
                                .or_default()
                        };
                        let member = Member {
                            id: sub.id,
                            selector: i,
                            sink: Arc::clone(&sub.sink),
                            form: *form,
                        };
                        node.groups_mut(&sel.kind).insert(
                            &sub.shard_id,
                            deterministic_name,
                            member,
                        );
                        t.v2_entries += 1;
                        if *form == TagForm::Deprecated {
                            t.deprecated_form = true;
                        }
                    }
                }
                SubscriptionKind::V1 { app_id, class } => {
                    let node = t.v1_by_app.entry(app_id.as_str().into()).or_default();
                    let groups = match class {
                        None => &mut node.any,
                        Some(V1Class::Log) => &mut node.log,
                        Some(V1Class::Metric) => &mut node.metric,
                    };
                    let member = Member {
                        id: sub.id,
                        selector: 0,
                        sink: Arc::clone(&sub.sink),
                        form: TagForm::Preferred,
                    };
                    groups.insert(&sub.shard_id, "", member);
                    t.v1_entries += 1;
                }
            }
        }
        t.v2_any.finish();
        t.v2_by_source.values_mut().for_each(Node::finish);
        for node in t.v1_by_app.values_mut() {
            node.any.finish();
            node.log.finish();
            node.metric.finish();
        }
        t
    }

    /// Whether any v1 subscription exists (v2 → v1 conversion is needed).
    pub fn has_v1(&self) -> bool {
        self.v1_entries > 0
    }

    /// Whether any v2 subscription exists.
    pub fn has_v2(&self) -> bool {
        self.v2_entries > 0
    }

    /// Whether any v2 subscriber wants `use_preferred_tags = false`.
    pub fn has_deprecated_form(&self) -> bool {
        self.deprecated_form
    }

    /// Calls `f` once per v2 delivery of the envelope with `key`.
    #[inline]
    pub fn route_v2(&self, key: &RouteKey, rng: &mut FastRng, mut f: impl FnMut(&Member<S>)) {
        if self.v2_entries == 0 {
            return;
        }
        if !key.source_id.is_empty()
            && let Some(node) = self.v2_by_source.get(&key.source_id[..])
        {
            node.route(key, rng, &mut f);
        }
        self.v2_any.route(key, rng, &mut f);
    }

    /// Calls `f` once per v1 delivery of a v1 envelope with this app id and class.
    #[inline]
    pub fn route_v1(
        &self,
        app_id: &str,
        class: V1Class,
        rng: &mut FastRng,
        mut f: impl FnMut(&Member<S>),
    ) {
        if self.v1_entries == 0 {
            return;
        }
        if let Some(node) = self.v1_by_app.get("") {
            node.typed(class).deliver(None, rng, &mut f);
            node.any.deliver(None, rng, &mut f);
        }
        if !app_id.is_empty()
            && let Some(node) = self.v1_by_app.get(app_id)
        {
            node.any.deliver(None, rng, &mut f);
            node.typed(class).deliver(None, rng, &mut f);
        }
    }

    /// True when no subscription is registered.
    pub fn is_empty(&self) -> bool {
        self.v2_entries == 0 && self.v1_entries == 0
    }
}

/// Small, fast xorshift64* generator for random shard member choice (not
/// cryptographic; seeded from the OS RNG).
#[derive(Debug, Clone)]
pub struct FastRng(u64);

impl FastRng {
    /// Seeds from `rand`.
    pub fn from_entropy() -> Self {
        Self::seeded(rand::random::<u64>())
    }

    /// Fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Next pseudo-random value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(source: &str, kind: Kind, counter: &str, hash: u64) -> RouteKey {
        RouteKey {
            source_id: Bytes::copy_from_slice(source.as_bytes()),
            kind,
            counter_name: Bytes::copy_from_slice(counter.as_bytes()),
            name_hash: hash,
        }
    }

    fn v2(id: u64, shard: &str, det: &str, sels: Vec<Selector>) -> SubscriptionSpec<()> {
        SubscriptionSpec {
            id,
            sink: Arc::new(()),
            shard_id: shard.into(),
            kind: SubscriptionKind::V2 {
                selectors: sels,
                deterministic_name: det.into(),
                form: TagForm::Preferred,
            },
        }
    }

    fn sel(source: &str, kind: SelectorKind) -> Selector {
        Selector {
            source_id: source.into(),
            kind,
        }
    }

    fn deliveries(t: &Table<()>, k: &RouteKey, rng: &mut FastRng) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        t.route_v2(k, rng, |m| out.push((m.id, m.selector)));
        out.sort_unstable();
        out
    }

    #[test]
    fn wildcard_and_exact_source() {
        let subs = vec![
            v2(1, "", "", vec![sel("", SelectorKind::Log)]),
            v2(2, "", "", vec![sel("app", SelectorKind::Log)]),
            v2(3, "", "", vec![sel("other", SelectorKind::Log)]),
        ];
        let t = Table::build(&subs);
        let mut rng = FastRng::seeded(1);
        let got = deliveries(&t, &key("app", Kind::Log, "", 0), &mut rng);
        assert_eq!(got, vec![(1, 0), (2, 0)]);
        let got = deliveries(&t, &key("", Kind::Log, "", 0), &mut rng);
        assert_eq!(got, vec![(1, 0)]);
        let got = deliveries(&t, &key("app", Kind::Counter, "c", 5), &mut rng);
        assert!(got.is_empty());
    }

    #[test]
    fn counter_exact_name_and_gauge_exact_set() {
        let subs = vec![
            v2(1, "", "", vec![sel("", SelectorKind::Counter("c".into()))]),
            v2(
                2,
                "",
                "",
                vec![sel("", SelectorKind::Counter(String::new()))],
            ),
            v2(3, "", "", vec![sel("", SelectorKind::Gauge(Some(7)))]),
            v2(4, "", "", vec![sel("", SelectorKind::Gauge(None))]),
        ];
        let t = Table::build(&subs);
        let mut rng = FastRng::seeded(1);
        assert_eq!(
            deliveries(&t, &key("s", Kind::Counter, "c", 1), &mut rng),
            vec![(1, 0), (2, 0)]
        );
        assert_eq!(
            deliveries(&t, &key("s", Kind::Counter, "cc", 1), &mut rng),
            vec![(2, 0)]
        );
        assert_eq!(
            deliveries(&t, &key("s", Kind::Gauge, "", 7), &mut rng),
            vec![(3, 0), (4, 0)]
        );
        assert_eq!(
            deliveries(&t, &key("s", Kind::Gauge, "", 8), &mut rng),
            vec![(4, 0)]
        );
    }

    #[test]
    fn two_matching_selectors_deliver_twice() {
        let subs = vec![v2(
            1,
            "",
            "",
            vec![sel("", SelectorKind::Log), sel("a", SelectorKind::Log)],
        )];
        let t = Table::build(&subs);
        let mut rng = FastRng::seeded(1);
        assert_eq!(
            deliveries(&t, &key("a", Kind::Log, "", 0), &mut rng),
            vec![(1, 0), (1, 1)]
        );
    }

    #[test]
    fn shard_group_splits_evenly() {
        let subs: Vec<_> = (1..=4)
            .map(|i| v2(i, "g", "", vec![sel("", SelectorKind::Log)]))
            .collect();
        let t = Table::build(&subs);
        let mut rng = FastRng::seeded(42);
        let mut counts = BTreeMap::new();
        for _ in 0..40_000 {
            let d = deliveries(&t, &key("a", Kind::Log, "", 0), &mut rng);
            assert_eq!(d.len(), 1);
            *counts.entry(d[0].0).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 4);
        for c in counts.values() {
            assert!((9_000..11_000).contains(c), "uneven split: {counts:?}");
        }
    }

    #[test]
    fn deterministic_choice_is_stable_and_sorted_by_name() {
        let subs = vec![
            v2(
                1,
                "g",
                "zeta",
                vec![sel("", SelectorKind::Counter(String::new()))],
            ),
            v2(
                2,
                "g",
                "alpha",
                vec![sel("", SelectorKind::Counter(String::new()))],
            ),
            v2(
                3,
                "g",
                "mid",
                vec![sel("", SelectorKind::Counter(String::new()))],
            ),
        ];
        let t = Table::build(&subs);
        let mut rng = FastRng::seeded(3);
        // sorted: alpha(2), mid(3), zeta(1); index = hash % 3
        for (hash, want) in [(0u64, 2u64), (1, 3), (2, 1), (3, 2), (u64::MAX, 2)] {
            for _ in 0..10 {
                let d = deliveries(&t, &key("s", Kind::Counter, "n", hash), &mut rng);
                assert_eq!(d, vec![(want, 0)], "hash {hash}");
            }
        }
    }

    #[test]
    fn v1_keys() {
        let v1 = |id: u64, shard: &str, app: &str, class: Option<V1Class>| SubscriptionSpec {
            id,
            sink: Arc::new(()),
            shard_id: shard.into(),
            kind: SubscriptionKind::V1 {
                app_id: app.into(),
                class,
            },
        };
        let subs = vec![
            v1(1, "", "", None),
            v1(2, "", "", Some(V1Class::Log)),
            v1(3, "", "", Some(V1Class::Metric)),
            v1(4, "", "app", None),
            v1(5, "", "app", Some(V1Class::Log)),
            v1(6, "", "other", None),
            v1(7, "fh", "", None),
            v1(8, "fh", "", None),
        ];
        let t = Table::build(&subs);
        assert!(t.has_v1());
        assert!(!t.has_v2());
        let mut rng = FastRng::seeded(9);
        let mut run = |app: &str, class| {
            let mut out = Vec::new();
            t.route_v1(app, class, &mut rng, |m| out.push(m.id));
            out.sort_unstable();
            out
        };
        let got = run("app", V1Class::Log);
        assert_eq!(&got[..4], &[1, 2, 4, 5]);
        assert!(got[4] == 7 || got[4] == 8);
        assert_eq!(got.len(), 5);
        let got = run("app", V1Class::Metric);
        assert_eq!(&got[..3], &[1, 3, 4]);
        assert_eq!(got.len(), 4);
        let got = run("", V1Class::Log);
        assert_eq!(&got[..2], &[1, 2]);
        assert_eq!(got.len(), 3);
    }

    // ---- property test against a simple model ----

    #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
    enum ModelNode {
        Log,
        Timer,
        Event,
        CounterAny,
        Counter(String),
        GaugeAny,
        Gauge(u64),
    }

    /// (selector source id, tree node, shard id)
    type GroupKey = (String, ModelNode, String);

    fn model_node(k: &SelectorKind) -> ModelNode {
        match k {
            SelectorKind::Log => ModelNode::Log,
            SelectorKind::Timer => ModelNode::Timer,
            SelectorKind::Event => ModelNode::Event,
            SelectorKind::Counter(n) if n.is_empty() => ModelNode::CounterAny,
            SelectorKind::Counter(n) => ModelNode::Counter(n.clone()),
            SelectorKind::Gauge(None) => ModelNode::GaugeAny,
            SelectorKind::Gauge(Some(h)) => ModelNode::Gauge(*h),
        }
    }

    fn model_matches(s: &Selector, k: &RouteKey) -> bool {
        if !s.source_id.is_empty() && s.source_id.as_bytes() != &k.source_id[..] {
            return false;
        }
        match (&s.kind, k.kind) {
            (SelectorKind::Log, Kind::Log)
            | (SelectorKind::Timer, Kind::Timer)
            | (SelectorKind::Event, Kind::Event) => true,
            (SelectorKind::Counter(n), Kind::Counter) => {
                n.is_empty() || n.as_bytes() == &k.counter_name[..]
            }
            (SelectorKind::Gauge(None), Kind::Gauge) => true,
            (SelectorKind::Gauge(Some(h)), Kind::Gauge) => *h == k.name_hash,
            _ => false,
        }
    }

    fn arb_selector_kind() -> impl Strategy<Value = SelectorKind> {
        prop_oneof![
            Just(SelectorKind::Log),
            Just(SelectorKind::Timer),
            Just(SelectorKind::Event),
            prop::sample::select(vec!["", "c1", "c2"])
                .prop_map(|n| SelectorKind::Counter(n.into())),
            prop::option::of(0u64..3).prop_map(SelectorKind::Gauge),
        ]
    }

    fn arb_selector() -> impl Strategy<Value = Selector> {
        (
            prop::sample::select(vec!["", "a", "b"]),
            arb_selector_kind(),
        )
            .prop_map(|(s, k)| Selector {
                source_id: s.into(),
                kind: k,
            })
    }

    fn arb_sub() -> impl Strategy<Value = (String, String, Vec<Selector>)> {
        (
            prop::sample::select(vec!["", "", "s1", "s2"]),
            prop::sample::select(vec!["", "x", "y", "z"]),
            prop::collection::vec(arb_selector(), 0..4),
        )
            .prop_map(|(s, d, v)| (s.to_owned(), d.to_owned(), v))
    }

    fn arb_key() -> impl Strategy<Value = RouteKey> {
        (
            prop::sample::select(vec!["", "a", "b", "c"]),
            prop::sample::select(vec![
                Kind::None,
                Kind::Log,
                Kind::Counter,
                Kind::Gauge,
                Kind::Timer,
                Kind::Event,
            ]),
            prop::sample::select(vec!["c1", "c2", "c3"]),
            0u64..4,
        )
            .prop_map(|(s, k, c, h)| {
                key(
                    s,
                    k,
                    if k == Kind::Counter { c } else { "" },
                    if matches!(k, Kind::Counter | Kind::Gauge) {
                        h
                    } else {
                        0
                    },
                )
            })
    }

    proptest! {
        #[test]
        fn routing_matches_model(
            subs in prop::collection::vec(arb_sub(), 0..8),
            keys in prop::collection::vec(arb_key(), 1..20),
            seed in any::<u64>(),
        ) {
            let specs: Vec<_> = subs
                .iter()
                .enumerate()
                .map(|(i, (shard, det, sels))| v2(i as u64, shard, det, sels.clone()))
                .collect();
            let t = Table::build(&specs);
            let mut rng = FastRng::seeded(seed);
            for k in &keys {
                let got = deliveries(&t, k, &mut rng);
                // Model: every matching selector entry; fan-out entries each get
                // one copy, entries of one (node, shard) group get exactly one.
                let mut fanout = Vec::new();
                let mut groups: BTreeMap<GroupKey, Vec<(String, u64, usize)>> = BTreeMap::new();
                for (i, (shard, det, sels)) in subs.iter().enumerate() {
                    for (j, s) in sels.iter().enumerate() {
                        if !model_matches(s, k) {
                            continue;
                        }
                        if shard.is_empty() {
                            fanout.push((i as u64, j));
                        } else {
                            groups
                                .entry((s.source_id.clone(), model_node(&s.kind), shard.clone()))
                                .or_default()
                                .push((det.clone(), i as u64, j));
                        }
                    }
                }
                let mut remaining = got.clone();
                for f in &fanout {
                    let pos = remaining.iter().position(|g| g == f);
                    prop_assert!(pos.is_some(), "missing fan-out delivery {:?}", f);
                    if let Some(p) = pos {
                        remaining.remove(p);
                    }
                }
                prop_assert_eq!(remaining.len(), groups.len());
                for members in groups.values() {
                    let hits: Vec<_> = remaining
                        .iter()
                        .filter(|g| members.iter().any(|(_, i, j)| (*i, *j) == **g))
                        .collect();
                    prop_assert_eq!(hits.len(), 1, "group {:?} got {:?}", members, hits);
                    let deterministic = members.iter().any(|(d, _, _)| !d.is_empty());
                    if deterministic && let Some(h) = k.deterministic_hash() {
                        let mut sorted = members.clone();
                        sorted.sort();
                        let want = &sorted[(h % sorted.len() as u64) as usize];
                        prop_assert_eq!(*hits[0], (want.1, want.2));
                    }
                }
            }
        }
    }
}
