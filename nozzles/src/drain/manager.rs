//! The set of running drains. [`Manager::apply`] diffs a new binding set
//! against the running one: removed drains are cancelled, added drains get a
//! ring and a task, and the routing table (app GUID -> rings) is swapped
//! atomically. The selectors for the doppler subscription are published on a
//! watch channel whenever the set of bound apps (or their wanted kinds)
//! changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    CounterSelector, Envelope, EventSelector, GaugeSelector, LogSelector, Selector, TimerSelector,
    selector,
};
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::bindings::DrainSpec;
use super::forwarder::{DrainRing, Forwarder};
use super::metrics::DrainMetrics;
use super::notice::Notices;
use super::url::{DrainUrl, Kinds, Scheme};
use super::writer::Writer;
use crate::syslog::rfc5424::Rfc5424Encoder;
use crate::tlsutil::{ClientPem, TrustOptions, client_config};

/// A ring plus the URL filter that decides what goes into it.
#[derive(Debug, Clone)]
struct Route {
    url: Arc<DrainUrl>,
    ring: Arc<DrainRing>,
}

/// App GUID -> drains, plus aggregate drains that get everything.
#[derive(Debug, Default)]
struct Routes {
    by_app: HashMap<String, Vec<Route>>,
    aggregate: Vec<Route>,
}

/// A running drain.
#[derive(Debug)]
struct Running {
    ring: Arc<DrainRing>,
    url: Arc<DrainUrl>,
    cancel: CancellationToken,
}

/// Settings shared by all drains.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    /// Trust for external drains.
    pub trust: TrustOptions,
    /// Operator `DEFAULT_DRAIN_METADATA`.
    pub default_metadata: bool,
    /// Per-drain ring capacity.
    pub buffer_size: usize,
    /// Idle connection timeout.
    pub idle_timeout: Duration,
}

/// Owner of all drains.
pub struct Manager {
    settings: DrainSettings,
    metrics: DrainMetrics,
    notices: Notices,
    running: BTreeMap<DrainSpec, Running>,
    routes: Arc<RwLock<Arc<Routes>>>,
    selectors_tx: watch::Sender<Arc<Vec<Selector>>>,
    batch_retry_slots: Arc<tokio::sync::Semaphore>,
    /// Parent of every drain's cancellation token.
    root: CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("drains", &self.running.len())
            .finish()
    }
}

/// The read side: routes received envelopes into drain rings.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    routes: Arc<RwLock<Arc<Routes>>>,
    metrics: DrainMetrics,
}

impl Dispatcher {
    /// Pushes every envelope into the rings of the drains that want it. Never waits.
    pub fn dispatch(&self, envelopes: Vec<Envelope>) {
        let routes = self.routes.read().clone();
        self.metrics.ingress.add(envelopes.len() as u64);
        for env in envelopes {
            let app = routes.by_app.get(&env.source_id);
            if app.is_none() && routes.aggregate.is_empty() {
                continue;
            }
            let env = Arc::new(env);
            for r in app.into_iter().flatten().chain(routes.aggregate.iter()) {
                if r.url.wants(&env) {
                    r.ring.push(env.clone());
                }
            }
        }
    }
}

impl Manager {
    /// A manager with no drains; `root` cancels every drain on shutdown.
    pub fn new(
        settings: DrainSettings,
        metrics: DrainMetrics,
        notices: Notices,
        root: CancellationToken,
        tracker: tokio_util::task::TaskTracker,
    ) -> Self {
        let (selectors_tx, _) = watch::channel(Arc::new(Vec::new()));
        Self {
            settings,
            metrics,
            notices,
            running: BTreeMap::new(),
            routes: Arc::new(RwLock::new(Arc::new(Routes::default()))),
            selectors_tx,
            batch_retry_slots: Arc::new(tokio::sync::Semaphore::new(4)),
            root,
            tracker,
        }
    }

    /// The dispatcher feeding this manager's drains.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher {
            routes: self.routes.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Selectors to subscribe with (updated on every change of bound apps).
    pub fn selectors(&self) -> watch::Receiver<Arc<Vec<Selector>>> {
        self.selectors_tx.subscribe()
    }

    /// Number of running drains.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// True when no drain runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Makes the running set equal `specs` (app drains) plus `aggregate`
    /// (URLs that receive every envelope).
    pub fn apply(&mut self, specs: &[DrainSpec], aggregate: &[String]) {
        let mut wanted: BTreeMap<DrainSpec, ()> = specs.iter().map(|s| (s.clone(), ())).collect();
        for url in aggregate {
            wanted.insert(
                DrainSpec {
                    app_id: String::new(),
                    url: url.clone(),
                    hostname: String::new(),
                    cert: String::new(),
                    key: String::new(),
                    ca: String::new(),
                },
                (),
            );
        }
        // Stop removed drains.
        let removed: Vec<DrainSpec> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in removed {
            if let Some(r) = self.running.remove(&k) {
                r.cancel.cancel();
                r.ring.close();
                tracing::info!(drain = %r.url, app_id = %k.app_id, "drain removed");
            }
        }
        // Start added drains.
        for spec in wanted.keys() {
            if self.running.contains_key(spec) {
                continue;
            }
            match self.start(spec) {
                Ok(r) => {
                    tracing::info!(drain = %r.url, app_id = %spec.app_id, "drain added");
                    self.running.insert(spec.clone(), r);
                }
                Err(e) => {
                    self.metrics.invalid_drains.inc();
                    tracing::warn!(app_id = %spec.app_id, error = %e, "invalid drain binding");
                    if !spec.app_id.is_empty() {
                        self.notices.send(&spec.app_id, &e);
                    }
                }
            }
        }
        self.metrics.drains.set(self.running.len() as i64);
        self.publish();
    }

    /// Stops every drain.
    pub fn stop_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.cancel.cancel();
            r.ring.close();
        }
        self.metrics.drains.set(0);
        self.publish();
    }

    fn start(&self, spec: &DrainSpec) -> Result<Running, String> {
        let url = DrainUrl::parse(&spec.url, self.settings.default_metadata)
            .map_err(|e| e.to_string())?;
        let anonymized = url.anonymized.clone();
        let tls = match url.scheme {
            Scheme::Syslog => None,
            _ => {
                let client = (!spec.cert.is_empty() && !spec.key.is_empty()).then_some(ClientPem {
                    cert: spec.cert.as_bytes(),
                    key: spec.key.as_bytes(),
                });
                if !spec.ca.trim().is_empty()
                    && plumbing::tls::parse_certs(spec.ca.as_bytes(), std::path::Path::new("ca"))
                        .is_err()
                {
                    return Err(format!("failed to load root CA for {anonymized}"));
                }
                let alpn: &[&[u8]] = match url.scheme {
                    Scheme::Https | Scheme::HttpsBatch => &[b"http/1.1"],
                    _ => &[],
                };
                Some(
                    client_config(&self.settings.trust, Some(spec.ca.as_bytes()), client, alpn)
                        .map_err(|_| format!("failed to load certificate for {anonymized}"))?,
                )
            }
        };
        let writer = Writer::for_url(&url, tls)?;
        let url = Arc::new(url);
        let ring = Arc::new(DrainRing::new(self.settings.buffer_size));
        let cancel = self.root.child_token();
        let fwd = Forwarder {
            url: url.clone(),
            app_id: (!spec.app_id.is_empty()).then(|| spec.app_id.clone()),
            ring: ring.clone(),
            encoder: Rfc5424Encoder::new(&spec.hostname, url.omit_metadata),
            writer,
            metrics: self.metrics.clone(),
            notices: self.notices.clone(),
            idle_timeout: self.settings.idle_timeout,
            batch_retry_slots: self.batch_retry_slots.clone(),
        };
        self.tracker.spawn(fwd.run(cancel.clone()));
        Ok(Running { ring, url, cancel })
    }

    /// Rebuilds the routing table and the subscription selectors.
    fn publish(&self) {
        let mut routes = Routes::default();
        let mut kinds_by_app: BTreeMap<String, Kinds> = BTreeMap::new();
        let mut aggregate_kinds = Kinds::default();
        for (spec, r) in &self.running {
            let route = Route {
                url: r.url.clone(),
                ring: r.ring.clone(),
            };
            let k = r.url.mode.kinds();
            if spec.app_id.is_empty() {
                routes.aggregate.push(route);
                aggregate_kinds = aggregate_kinds.union(k);
            } else {
                routes
                    .by_app
                    .entry(spec.app_id.clone())
                    .or_default()
                    .push(route);
                let e = kinds_by_app.entry(spec.app_id.clone()).or_default();
                *e = e.union(k);
            }
        }
        *self.routes.write() = Arc::new(routes);

        // With aggregate drains, one set of wildcard selectors covers every
        // app too (app selectors would deliver envelopes twice).
        let selectors = if routes_has_aggregate(aggregate_kinds) {
            let all = kinds_by_app
                .values()
                .fold(aggregate_kinds, |a, k| a.union(*k));
            selectors_for("", all)
        } else {
            kinds_by_app
                .iter()
                .flat_map(|(app, k)| selectors_for(app, *k))
                .collect()
        };
        self.selectors_tx.send_if_modified(|cur| {
            if **cur == selectors {
                false
            } else {
                *cur = Arc::new(selectors);
                true
            }
        });
    }
}

fn routes_has_aggregate(k: Kinds) -> bool {
    k.logs || k.events || k.metrics || k.timers
}

/// The selectors that deliver `kinds` for `source_id` (empty = every source).
pub fn selectors_for(source_id: &str, kinds: Kinds) -> Vec<Selector> {
    let mut out = Vec::new();
    let mut add = |m: selector::Message| {
        out.push(Selector {
            source_id: source_id.to_owned(),
            message: Some(m),
        })
    };
    if kinds.logs {
        add(selector::Message::Log(LogSelector {}));
    }
    if kinds.events {
        add(selector::Message::Event(EventSelector {}));
    }
    if kinds.metrics {
        add(selector::Message::Counter(CounterSelector {
            name: String::new(),
        }));
        add(selector::Message::Gauge(GaugeSelector {
            names: Vec::new(),
        }));
    }
    if kinds.timers {
        add(selector::Message::Timer(TimerSelector {}));
    }
    out
}
