//! Assembly: takes the bound listeners, builds the rings, processors and
//! doppler pools, spawns every task and waits for shutdown.
//!
//! Shutdown order: ingress stops (gRPC server, UDP reader), the rings are
//! closed, the egress loops send what the rings still hold, then the doppler
//! pools close their streams (each flushes within a grace period).

use std::sync::Arc;

use bytes::Bytes;
use envelope_proto::raw::ingress_server::IngressServer;
use plumbing::metrics::Registry;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;
use plumbing::tls::grpc::{MAX_MESSAGE_SIZE, serve_incoming, server_builder};
use plumbing::tls::{TlsFiles, TlsOptions};

use crate::config::Config;
use crate::error::Error;
use crate::ingress::grpc::IngressService;
use crate::metrics::Metrics;
use crate::pool::{Discovery, Pool, PoolConfig, PoolMetrics, Protocol};
use crate::process::v1::V1Processor;
use crate::process::v2::V2Processor;
use crate::{Listeners, egress, ingress, own_metrics};

/// Runs the agent until `shutdown` triggers; see [`crate::run`].
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
    registry: Registry,
) -> Result<(), Error> {
    let metrics = Metrics::new(&registry);
    let (server_tls, client_tls) = match &config.tls {
        Some(paths) => {
            let files = TlsFiles::new(&paths.ca, &paths.cert, &paths.key);
            let server_options = TlsOptions {
                tls12_suites: plumbing::tls::parse_cipher_suite_names(
                    config.cipher_suites.as_deref(),
                )?,
                alpn: None,
            };
            (
                Some(plumbing::tls::server_config_with(&files, &server_options)?),
                Some(plumbing::tls::client_config(&files)?),
            )
        }
        None => {
            tracing::warn!("insecure_plaintext: serving and dialing gRPC without TLS");
            (None, None)
        }
    };

    // Doppler pools live on their own shutdown so the egress loops can still
    // write after ingress stopped.
    let pool_shutdown = Shutdown::new();
    let discovery = Discovery::new(config.dopplers_with_az.clone(), config.dopplers.clone());
    let pool_config = |protocol, streams: usize| PoolConfig {
        protocol,
        streams,
        discovery: discovery.clone(),
        tls: client_tls.clone(),
        recycle_after: config.recycle_after_writes.get(),
        resolve_interval: config.resolve_interval,
        write_deadline: crate::pool::stream::WRITE_DEADLINE,
    };
    let v2_pool = Pool::start(
        pool_config(Protocol::V2BatchSender, config.v2_streams.get()),
        PoolMetrics {
            connections: metrics.doppler_connections.clone(),
            streams: metrics.doppler_v2_streams.clone(),
            stranded: metrics.dropped_egress_v2.clone(),
        },
        &pool_shutdown,
    );

    let v2_ring: Arc<Ring<Bytes>> = Arc::new(Ring::new(config.ingress_buffer_size.get()));
    let v2_processor = Arc::new(V2Processor::new(
        config.default_tags.clone(),
        config.logs_disabled,
    ));
    let egress_tasks = tokio_util::task::TaskTracker::new();
    egress_tasks.spawn(egress::run_v2(
        v2_ring.clone(),
        v2_pool,
        metrics.clone(),
        config.batch_size.get(),
        config.drop_log_interval,
    ));

    let mut v1_ring = None;
    if let Some(socket) = listeners.udp {
        let v1_pool = Pool::start(
            pool_config(Protocol::V1Pusher, config.v1_streams.get()),
            PoolMetrics {
                connections: metrics.doppler_connections.clone(),
                streams: metrics.doppler_v1_streams.clone(),
                stranded: metrics.dropped_egress_v1.clone(),
            },
            &pool_shutdown,
        );
        let ring: Arc<Ring<Bytes>> = Arc::new(Ring::new(config.ingress_buffer_size.get()));
        let processor = Arc::new(V1Processor::new(config.identity.clone()));
        egress_tasks.spawn(egress::run_v1(
            ring.clone(),
            v1_pool,
            processor,
            metrics.clone(),
            config.batch_size.get(),
            config.drop_log_interval,
        ));
        shutdown.spawn(ingress::udp::run(
            socket,
            ring.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        v1_ring = Some(ring);
    }
    egress_tasks.close();

    shutdown.spawn(own_metrics::run(
        config.metrics_interval,
        config.metric_source_id.clone(),
        metrics.clone(),
        v2_processor.clone(),
        v2_ring.clone(),
        shutdown.clone(),
    ));
    if let Some(admin) = listeners.admin {
        shutdown.spawn(plumbing::admin::serve(
            admin,
            registry.clone(),
            shutdown.clone(),
        ));
    }

    let service = IngressService::new(v2_processor, v2_ring.clone(), metrics.clone());
    let signal = shutdown.clone();
    let grpc = server_builder()
        .add_service(IngressServer::new(service).max_decoding_message_size(MAX_MESSAGE_SIZE))
        .serve_with_incoming_shutdown(serve_incoming(listeners.grpc, server_tls), async move {
            signal.cancelled().await;
        });
    // One deadline for the whole shutdown, whatever the peers do: every phase
    // gets what is left of the grace period. Graceful shutdown of the ingress
    // server waits for open client streams, which emitters may keep open
    // forever, so it gets at most half; the rest flushes the rings and pools.
    let grace = config.shutdown_grace;
    let mut triggered_at = None;
    let grpc_result = {
        tokio::pin!(grpc);
        tokio::select! {
            r = &mut grpc => r,
            () = shutdown.cancelled() => {
                triggered_at = Some(tokio::time::Instant::now());
                tokio::time::timeout(grace / 2, &mut grpc).await.unwrap_or(Ok(()))
            }
        }
    };
    if grpc_result.is_err() {
        shutdown.trigger();
    }
    shutdown.cancelled().await;
    let deadline = triggered_at.unwrap_or_else(tokio::time::Instant::now) + grace;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());

    // Ingress is done: let the egress loops empty the rings, then stop the pools.
    let _ = shutdown.drain(left()).await;
    v2_ring.close();
    if let Some(r) = &v1_ring {
        r.close();
    }
    let _ = tokio::time::timeout(left(), egress_tasks.wait()).await;
    pool_shutdown.trigger();
    if !pool_shutdown.drain(left()).await {
        tracing::warn!(
            ?grace,
            "doppler streams still flushing at the end of the shutdown grace period; exiting"
        );
    }
    grpc_result.map_err(Error::from)
}
