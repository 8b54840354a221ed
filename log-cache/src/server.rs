//! Assembly: the store and its truncation task, the ingest paths, the gRPC
//! port (`Egress`, `Ingress`, `PromQLQuerier`), the HTTP API and the admin
//! endpoint, all stopped by one [`Shutdown`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use envelope_proto::raw::logcache::egress_server::EgressServer;
use envelope_proto::raw::logcache::ingress_server::IngressServer;
use plumbing::listen::{Gate, Limits};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::TlsOptions;
use plumbing::upstream::pool::Pool;

use crate::api::grpc::EgressService;
use crate::api::http::Gateway;
use crate::auth::Auth;
use crate::cluster::{Cluster, RoutedReader, RoutedSink};
use crate::config::Config;
use crate::ingest::grpc::IngressService;
use crate::ingest::{LocalSink, Sink};
use crate::metrics::Metrics;
use crate::read::{LocalReader, Reader};
use crate::store::{Limits as StoreLimits, Store};
use crate::{Error, Listeners};

/// TLS server name of log-cache nodes (upstream `Credentials("log-cache")`).
pub const SERVER_NAME: &str = "log-cache";

/// Largest gRPC message accepted or sent (a 1000-envelope read of large
/// logs fits).
pub const MAX_GRPC_MESSAGE: usize = 64 * 1024 * 1024;

/// Connections the HTTP API holds at once (each request is short; every
/// connection counts against this cap, as on the admin listener).
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

/// How long an HTTP answer may make no progress (the client not reading) before
/// the connection is closed: a reader that never reads holds one response for
/// at most this long.
pub const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The mutual-TLS server configuration of the gRPC port, if configured.
pub fn grpc_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let options = TlsOptions {
        alpn: Some(vec![b"h2".to_vec()]),
        ..TlsOptions::default()
    };
    Ok(Some(plumbing::tls::server_config_with(files, &options)?))
}

/// Checks every certificate and key the configuration names (before
/// anything is announced).
pub fn check_tls(config: &Config) -> Result<(), Error> {
    grpc_tls(config)?;
    if let Some(files) = &config.doppler_tls {
        plumbing::tls::client_config(files)?;
    }
    if let Some(files) = &config.gateway_tls {
        plumbing::tls::server_config(files)?;
    }
    if let Some(files) = config.syslog.as_ref().and_then(|s| s.tls.as_ref()) {
        plumbing::tls::server_config(files)?;
    }
    Ok(())
}

/// Runs a node until `shutdown`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
    registry: Registry,
) -> Result<(), Error> {
    let started = Instant::now();
    let metrics = Metrics::new(&registry);
    let store = Arc::new(Store::new(
        StoreLimits {
            memory_limit: config.memory_limit,
            max_per_source: config.max_per_source,
        },
        metrics.store.clone(),
    ));
    let cancel = shutdown.token().clone();
    tokio::spawn(Arc::clone(&store).run_truncation(
        config.truncation_interval,
        config.system_memory,
        cancel.clone(),
    ));
    spawn_gauges(Arc::clone(&store), metrics.clone(), started, cancel.clone());

    let local: Arc<dyn Sink> = Arc::new(LocalSink::new(
        Arc::clone(&store),
        metrics.dropped_invalid.clone(),
    ));
    let local_reader = LocalReader::new(Arc::clone(&store));
    // One node: everything local. Several: route by source id.
    let (routed, reader): (Arc<dyn Sink>, Arc<dyn Reader>) = if config.node_addrs.len() > 1 {
        let tls = match &config.tls {
            Some(files) => Some(plumbing::tls::client_config(files)?),
            None => None,
        };
        let cluster = Cluster::start(
            config.node_index,
            &config.node_addrs,
            tls,
            Arc::clone(&store),
            local_reader,
            &registry,
            &cancel,
        )?;
        (
            Arc::new(RoutedSink::new(
                Arc::clone(&cluster),
                metrics.dropped_invalid.clone(),
            )),
            Arc::new(RoutedReader::new(cluster)),
        )
    } else {
        (Arc::clone(&local), Arc::new(local_reader))
    };

    let _doppler = if config.doppler_addrs.is_empty() {
        None
    } else {
        let tls = match &config.doppler_tls {
            Some(files) => Some(plumbing::tls::client_config(files)?),
            None => None,
        };
        let pool = Pool::start(
            config.doppler_addrs.clone(),
            tls,
            plumbing::tls::grpc::ChannelOptions::traffic_controller(),
            config.doppler_resolve_interval,
            cancel.clone(),
        )
        .await;
        Some(crate::ingest::doppler::start(
            &pool,
            &config.shard_id,
            config.ingest_buffer_size,
            Arc::clone(&routed),
            &metrics,
            &cancel,
        ))
    };

    let promql = Arc::new(crate::promql::Engine::new(
        Arc::clone(&reader),
        config.query_timeout,
    ));

    // gRPC.
    let tls = grpc_tls(&config)?;
    let incoming = plumbing::tls::grpc::serve_incoming(listeners.grpc, tls);
    let signal = shutdown.clone();
    let grpc = plumbing::tls::grpc::server_builder()
        .add_service(
            EgressServer::new(EgressService {
                reader: Arc::clone(&reader),
                metrics: metrics.clone(),
            })
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            crate::promql::PromQlService::new(Arc::clone(&promql))
                .into_server()
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            IngressServer::new(IngressService {
                routed: Arc::clone(&routed),
                local: Arc::clone(&local),
            })
            .max_decoding_message_size(MAX_GRPC_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming, async move { signal.cancelled().await });
    let mut grpc_task = tokio::spawn(grpc);

    // HTTP API.
    if let Some(listener) = listeners.gateway {
        let acceptor = match &config.gateway_tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(
                plumbing::tls::server_config(files)?,
            )),
            None => None,
        };
        let auth =
            Auth::new(config.auth.clone(), &registry).map_err(|e| Error::Auth(e.to_string()))?;
        // Upstream's auth proxy exits when UAA's keys cannot be fetched at start.
        auth.refresh_keys()
            .await
            .map_err(|e| Error::Auth(format!("fetching UAA token keys: {e}")))?;
        let gateway = Arc::new(Gateway {
            reader: Arc::clone(&reader),
            auth: Arc::new(auth),
            promql,
            metrics: metrics.clone(),
            started,
        });
        let gate = Gate::new(
            "gateway",
            Limits {
                max_pending: MAX_HTTP_CONNECTIONS,
                write_timeout: Some(HTTP_WRITE_TIMEOUT),
                ..Limits::default()
            },
            &registry,
        );
        let handler = move |req, _conn| {
            let gateway = Arc::clone(&gateway);
            async move { gateway.handle(req).await }
        };
        tokio::spawn(plumbing::listen::serve(
            listener,
            acceptor,
            gate,
            cancel.clone(),
            shutdown.tracker().clone(),
            handler,
        ));
    }
    if let (Some(listener), Some(syslog)) = (listeners.syslog, &config.syslog) {
        let tls = match &syslog.tls {
            Some(files) => Some(plumbing::tls::server_config(files)?),
            None => None,
        };
        tokio::spawn(crate::syslog::serve(
            listener,
            tls,
            syslog.config.clone(),
            Arc::clone(&routed),
            crate::syslog::SyslogMetrics::new(&registry),
            cancel.clone(),
        ));
    }
    if let Some(admin) = listeners.admin {
        tokio::spawn(plumbing::admin::serve(
            admin,
            registry.clone(),
            shutdown.clone(),
        ));
    }

    tokio::select! {
        _ = shutdown.cancelled() => {}
        r = &mut grpc_task => {
            shutdown.trigger();
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Transport(e)),
                Err(e) => Err(Error::Io(std::io::Error::other(e.to_string()))),
            };
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), grpc_task).await;
    shutdown.drain(Duration::from_secs(5)).await;
    Ok(())
}

/// `log_cache_uptime`, `log_cache_store_bytes` and the store gauges, every second.
fn spawn_gauges(
    store: Arc<Store>,
    metrics: Metrics,
    started: Instant,
    cancel: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            metrics.uptime.set(started.elapsed().as_secs() as i64);
            metrics.store_bytes.set(store.bytes() as i64);
            metrics.store.store_size.set(store.len() as i64);
        }
    });
}
