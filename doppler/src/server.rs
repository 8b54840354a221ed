//! Assembly: takes the bound listeners, builds the shared state, spawns the
//! router, the gRPC server, the admin and pprof listeners and (optionally) the
//! own-metrics emitter, and runs until shutdown plus the grace period.

use std::sync::Arc;

use envelope_proto::plumbing_v1::doppler_server::DopplerServer;
use envelope_proto::raw::doppler_ingestor_server::DopplerIngestorServer;
use envelope_proto::raw::egress_server::EgressServer;
use envelope_proto::raw::ingress_server::IngressServer;
use parking_lot::Mutex;
use plumbing::metrics::Registry;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;
use plumbing::tls::{TlsFiles, TlsOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::Listeners;
use crate::cache::AppCache;
use crate::config::Config;
use crate::egress::EgressService;
use crate::error::Error;
use crate::ingress::IngressService;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::subscriptions;

/// Builds the rustls server config (mTLS, h2 ALPN, optional TLS 1.2 suites).
pub fn tls_config(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
    let Some(paths) = &config.tls else {
        return Ok(None);
    };
    let suites = plumbing::tls::parse_cipher_suite_names(config.cipher_suites.as_deref())?;
    let files = TlsFiles::new(&paths.ca, &paths.cert, &paths.key);
    let options = TlsOptions {
        tls12_suites: suites,
        alpn: Some(vec![b"h2".to_vec()]),
    };
    Ok(Some(plumbing::tls::server_config_with(&files, &options)?))
}

/// Runs doppler on `listeners` until `shutdown` triggers, then gives
/// subscribers `config.grace_period` to take what is queued.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
    registry: Registry,
) -> Result<(), Error> {
    let tls = tls_config(&config)?;
    let metrics = Metrics::new(&registry);
    let ingress_ring = Arc::new(Ring::new(config.ingress_buffer_size.get()));
    let subs = subscriptions::Registry::new(metrics.subscriptions.clone());
    let cache = Arc::new(Mutex::new(
        AppCache::new(config.cache.clone())
            .with_eviction_counter(metrics.cache_evictions.clone())
            .with_size_metrics(
                metrics.cache_size_dropped.clone(),
                metrics.cache_bytes.clone(),
            ),
    ));

    let router = Router {
        ingress: Arc::clone(&ingress_ring),
        registry: Arc::clone(&subs),
        cache: Arc::clone(&cache),
        metrics: metrics.clone(),
    };
    let mut router_task = tokio::spawn(router.run(shutdown.clone()));

    let ingress = IngressService::new(
        Arc::clone(&ingress_ring),
        Arc::clone(subs.needs()),
        metrics.clone(),
        shutdown.clone(),
        Arc::clone(&cache),
    );
    let egress = EgressService::new(
        Arc::clone(&subs),
        cache,
        metrics.clone(),
        shutdown.clone(),
        config.egress_buffer_size.get(),
        config.egress_message_limit(),
    );
    let max = config.max_message_size;
    let incoming = plumbing::tls::grpc::serve_incoming(listeners.grpc, tls);
    let signal = shutdown.clone();
    let grpc = plumbing::tls::grpc::server_builder()
        .add_service(
            IngressServer::new(ingress.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            DopplerIngestorServer::new(ingress)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            EgressServer::new(egress.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            DopplerServer::new(egress)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .serve_with_incoming_shutdown(incoming, async move { signal.cancelled().await });
    let mut grpc_task = tokio::spawn(grpc);

    let mut helpers = Vec::new();
    if let Some(admin) = listeners.admin {
        helpers.push(tokio::spawn(plumbing::admin::serve(
            admin,
            registry.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(pprof) = listeners.pprof {
        helpers.push(tokio::spawn(serve_not_found(pprof, shutdown.clone())));
    }
    if let Some(agent) = &config.agent_metrics {
        helpers.push(tokio::spawn(crate::emitter::run(
            agent.clone(),
            config.tls.clone(),
            metrics.clone(),
            shutdown.clone(),
        )));
    }

    tokio::select! {
        _ = shutdown.cancelled() => {}
        r = &mut grpc_task => {
            // The server ended on its own: that is a failure.
            shutdown.trigger();
            router_task.abort();
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Transport(e)),
                Err(e) => Err(Error::Io {
                    context: "gRPC server task".to_owned(),
                    source: std::io::Error::other(e.to_string()),
                }),
            };
        }
    }
    tracing::info!("shutting down: flushing subscribers");
    let grace = config.grace_period;
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, &mut router_task)
        .await
        .is_err()
    {
        router_task.abort();
    }
    if tokio::time::timeout_at(deadline, &mut grpc_task)
        .await
        .is_err()
    {
        tracing::warn!(?grace, "grace period over; closing remaining streams");
        grpc_task.abort();
    }
    for h in helpers {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            tracing::debug!("helper task still running after the grace period");
        }
    }
    Ok(())
}

/// Localhost "pprof" listener (upstream-config §10): announced like upstream;
/// this implementation has no Go profiler, so every request gets a 404.
async fn serve_not_found(listener: TcpListener, shutdown: Shutdown) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
            )
            .await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nconnection: close\r\n\r\nnot found\n",
                )
                .await;
        });
    }
}
