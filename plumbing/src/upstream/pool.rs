//! The set of dopplers to subscribe to.
//!
//! `ROUTER_ADDRS` entries are `host:port`. IP literals are used as they are;
//! names are resolved through DNS at startup and again every resolve
//! interval, so dopplers joining or leaving behind one name are picked up.
//! One lazily connecting gRPC channel per resolved address, with TLS that
//! verifies the server name `doppler`. Consumers watch the set and subscribe
//! to / drop dopplers as it changes (see [`super::fanin`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::tls::TlsError;
use crate::tls::grpc::{ChannelOptions, channel_with};

/// The TLS server name every doppler must present.
pub const DOPPLER_SERVER_NAME: &str = "doppler";

/// One doppler and its channel.
#[derive(Clone, Debug)]
pub struct Doppler {
    /// Resolved address (the key consumers track dopplers by).
    pub addr: SocketAddr,
    /// Lazily connecting gRPC channel.
    pub channel: Channel,
}

/// The current doppler set, shared by every consumer.
pub type DopplerSet = Arc<BTreeMap<SocketAddr, Doppler>>;

/// Handle to the doppler set.
#[derive(Clone, Debug)]
pub struct Pool {
    rx: watch::Receiver<DopplerSet>,
}

impl Pool {
    /// A pool that never changes (tests, and `start` with only IP literals).
    pub fn fixed(set: DopplerSet) -> (Self, watch::Sender<DopplerSet>) {
        let (tx, rx) = watch::channel(set);
        (Self { rx }, tx)
    }

    /// Resolves `addrs` now, then keeps re-resolving names every `interval`
    /// until `cancel` fires.
    pub async fn start(
        addrs: Vec<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
        options: ChannelOptions,
        interval: Duration,
        cancel: CancellationToken,
    ) -> Self {
        let mut resolver = Resolver {
            addrs,
            tls,
            options,
            current: BTreeMap::new(),
        };
        let first = resolver.resolve().await;
        let (pool, tx) = Self::fixed(Arc::new(first));
        let all_literal = resolver
            .addrs
            .iter()
            .all(|a| a.parse::<SocketAddr>().is_ok());
        if !all_literal && !interval.is_zero() {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(interval) => {}
                    }
                    let next = resolver.resolve().await;
                    if next.keys().ne(tx.borrow().keys()) {
                        let _ = tx.send(Arc::new(next));
                    }
                }
            });
        }
        pool
    }

    /// The dopplers right now.
    pub fn current(&self) -> DopplerSet {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every change of the set.
    pub fn watch(&self) -> watch::Receiver<DopplerSet> {
        self.rx.clone()
    }
}

/// Builds the channel for one doppler address.
pub fn channel(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    options: &ChannelOptions,
) -> Result<Channel, TlsError> {
    let tls = tls.map(|c| (c.clone(), DOPPLER_SERVER_NAME));
    channel_with(&addr.to_string(), tls, options)
}

struct Resolver {
    addrs: Vec<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    options: ChannelOptions,
    current: BTreeMap<SocketAddr, Doppler>,
}

impl Resolver {
    async fn resolve(&mut self) -> BTreeMap<SocketAddr, Doppler> {
        let mut found: Vec<SocketAddr> = Vec::new();
        for entry in &self.addrs {
            if let Ok(sa) = entry.parse::<SocketAddr>() {
                found.push(sa);
                continue;
            }
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(iter) => found.extend(iter),
                Err(e) => {
                    tracing::warn!(doppler = %entry, error = %e, "failed to resolve doppler address");
                    // Keep what this name resolved to before: a DNS hiccup must
                    // not drop every consumer's subscriptions.
                    let port = entry.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    found.extend(
                        self.current
                            .keys()
                            .filter(|k| Some(k.port()) == port)
                            .copied(),
                    );
                }
            }
        }
        found.sort();
        found.dedup();
        if found.iter().ne(self.current.keys()) {
            let list: Vec<String> = found.iter().map(ToString::to_string).collect();
            log_line(&format!(
                "Event from finder: {{GRPCDopplers:[{}]}}",
                list.join(" ")
            ));
        }
        let mut next = BTreeMap::new();
        for sa in found {
            let doppler = match self.current.get(&sa) {
                Some(d) => d.clone(),
                None => match channel(sa, self.tls.as_ref(), &self.options) {
                    Ok(channel) => {
                        log_line(&format!("adding doppler {sa}"));
                        Doppler { addr: sa, channel }
                    }
                    Err(e) => {
                        tracing::warn!(doppler = %sa, error = %e, "cannot create doppler channel");
                        continue;
                    }
                },
            };
            next.insert(sa, doppler);
        }
        for gone in self.current.keys().filter(|k| !next.contains_key(k)) {
            log_line(&format!("removing doppler {gone}"));
        }
        self.current = next.clone();
        next
    }
}

fn log_line(line: &str) {
    tracing::info!("{line}");
}
