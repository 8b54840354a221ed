//! Assembly of the drain forwarder: admin endpoint, notice sender, one
//! egress subscriber per doppler, and the binding poll loop that drives the
//! manager.

use std::path::Path;
use std::sync::Arc;

use plumbing::shutdown::Shutdown;

use super::bindings::{CcSource, Source, flatten};
use super::config::{BindingsConfig, Config};
use super::manager::Manager;
use super::metrics::DrainMetrics;
use super::notice::{self, Notices};
use super::subscriber;
use crate::Error;
pub use crate::admin::Listeners;
use crate::http::{HttpClient, split_url};

fn internal_client(config: &Config) -> Result<Option<Arc<rustls::ClientConfig>>, Error> {
    config
        .internal_tls
        .as_ref()
        .map(|f| plumbing::tls::client_config(f).map_err(|e| Error::Tls(e.to_string())))
        .transpose()
}

fn bindings_source(config: &Config) -> Result<Source, Error> {
    match &config.bindings {
        BindingsConfig::File(p) => Ok(Source::File(p.clone())),
        BindingsConfig::Http {
            url,
            tls,
            server_name,
            batch_size,
        } => {
            let (secure, authority, path) = split_url(url, "bindings")?;
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let addr = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:{}", if secure { 443 } else { 80 })
            };
            let tls = if secure {
                let files = tls.as_ref().ok_or_else(|| {
                    Error::Config(
                        "bindings url is https but no --bindings-ca/cert/key given".into(),
                    )
                })?;
                let cfg =
                    plumbing::tls::client_config(files).map_err(|e| Error::Tls(e.to_string()))?;
                let name = server_name.as_deref().unwrap_or(host);
                let name =
                    crate::tlsutil::server_name(name).map_err(|e| Error::Tls(e.to_string()))?;
                Some((cfg, name))
            } else {
                None
            };
            let client = HttpClient::new(
                addr,
                authority.to_owned(),
                tls,
                std::time::Duration::from_secs(30),
            );
            Ok(Source::Http(CcSource::new(
                client,
                path.to_owned(),
                *batch_size,
            )))
        }
    }
}

/// Runs the forwarder until `shutdown` is triggered, then stops every drain
/// and waits up to the grace period.
pub async fn run(config: Config, listeners: Listeners, shutdown: Shutdown) -> Result<(), Error> {
    let metrics = DrainMetrics::new(&config.registry);
    let internal = internal_client(&config)?;
    let mut source = bindings_source(&config)?;
    if let BindingsConfig::File(p) = &config.bindings
        && !Path::new(p).exists()
    {
        tracing::warn!(file = %p.display(), "bindings file does not exist yet");
    }

    listeners.serve_admin(&config.registry, &shutdown);

    let notices = match &config.ingress_addr {
        Some(addr) => {
            let tls = internal
                .clone()
                .map(|c| (c, config.ingress_server_name.as_str()));
            let channel =
                plumbing::tls::grpc::channel(addr, tls).map_err(|e| Error::Tls(e.to_string()))?;
            notice::start(
                channel,
                metrics.notices_sent.clone(),
                metrics.notices_dropped.clone(),
                &shutdown,
            )
        }
        None => Notices::disabled(metrics.notices_dropped.clone()),
    };

    let root = shutdown.token().child_token();
    let mut manager = Manager::new(
        config.drains.clone(),
        metrics.clone(),
        notices,
        root.clone(),
        shutdown.tracker().clone(),
    );

    for d in &config.dopplers {
        let tls = internal
            .clone()
            .map(|c| (c, config.doppler_server_name.as_str()));
        let channel =
            plumbing::tls::grpc::channel(d, tls).map_err(|e| Error::Tls(e.to_string()))?;
        shutdown.spawn(subscriber::run(
            channel,
            d.clone(),
            config.shard_id.clone(),
            manager.selectors(),
            manager.dispatcher(),
            metrics.subscriptions.clone(),
            root.clone(),
        ));
    }

    let mut last: Option<Vec<super::bindings::DrainSpec>> = None;
    loop {
        match source.fetch().await {
            Ok(bindings) => {
                let specs = flatten(&bindings, config.per_app_limit);
                if last.as_ref() != Some(&specs) {
                    manager.apply(&specs, &config.aggregate_drains);
                    tracing::info!(drains = manager.len(), "bindings applied");
                    last = Some(specs);
                }
            }
            Err(e) => {
                metrics.binding_refresh_failures.inc();
                tracing::warn!(error = %e, "fetching bindings failed; keeping the previous set");
                if last.is_none() && !config.aggregate_drains.is_empty() {
                    manager.apply(&[], &config.aggregate_drains);
                    last = Some(Vec::new());
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    manager.stop_all();
    root.cancel();
    shutdown.drain(config.grace).await;
    Ok(())
}
