//! Generates the Rust types and tonic services from `proto/` without a system
//! `protoc`: `protox` parses the sources, then the descriptors are adjusted and
//! handed to prost/tonic.
//!
//! One adjustment: every proto2 `required` field of package `events` is turned
//! into `optional` before code generation, so the generated v1 structs keep
//! *presence* (`Option<T>`). Required-field checks are done by
//! `envelope_proto::v1::check_required`, which reports the missing field by
//! name, the same way the reference marshaller refuses such messages.
//!
//! Then `tonic_build::manual` generates the *raw* services (`crate::raw`):
//! the same gRPC paths, with every message carried as `bytes::Bytes` through
//! `crate::codec::RawCodec`.

use prost_types::field_descriptor_proto::Label;
use tonic_build::manual::{Builder, Method, Service};

const PROTOS: &[&str] = &[
    "proto/events/envelope.proto",
    "proto/events/error.proto",
    "proto/events/http.proto",
    "proto/events/log.proto",
    "proto/events/metric.proto",
    "proto/events/uuid.proto",
    "proto/loggregator/v2/envelope.proto",
    "proto/loggregator/v2/ingress.proto",
    "proto/loggregator/v2/egress.proto",
    "proto/plumbing/doppler.proto",
];

/// Log Cache's protos, generated in a second pass that refers to the v2
/// types already generated (`crate::loggregator_v2`).
const LOGCACHE_PROTOS: &[&str] = &[
    "proto/logcache/v1/egress.proto",
    "proto/logcache/v1/ingress.proto",
    "proto/logcache/v1/promql.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS.iter().chain(LOGCACHE_PROTOS) {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut fds = protox::compile(PROTOS, ["proto"])?;
    for file in &mut fds.file {
        if file.package() != "events" {
            continue;
        }
        for msg in &mut file.message_type {
            for field in &mut msg.field {
                if field.label() == Label::Required {
                    field.set_label(Label::Optional);
                }
            }
        }
    }
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.btree_map(["."]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    let logcache = protox::compile(LOGCACHE_PROTOS, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.btree_map(["."]);
    config.extern_path(".loggregator.v2", "crate::loggregator_v2");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(logcache, config)?;
    Builder::new().compile(&raw_services());
    Ok(())
}

/// One raw method: `Bytes` in, `Bytes` out, through `RawCodec`.
fn raw_method(name: &str, route: &str, comment: &str) -> tonic_build::manual::MethodBuilder {
    Method::builder()
        .name(name)
        .route_name(route)
        .comment(comment)
        .input_type("bytes::Bytes")
        .output_type("bytes::Bytes")
        .codec_path("crate::codec::RawCodec")
}

/// Raw twins of `loggregator.v2.Ingress`, `loggregator.v2.Egress`,
/// `plumbing.DopplerIngestor`, `logcache.v1.Egress` and `logcache.v1.Ingress`.
fn raw_services() -> [Service; 5] {
    let ingress = Service::builder()
        .name("Ingress")
        .package("loggregator.v2")
        .comment("`loggregator.v2.Ingress` carrying encoded messages as bytes.")
        .method(
            raw_method("sender", "Sender", "Client stream of encoded `Envelope`s.")
                .client_streaming()
                .build(),
        )
        .method(
            raw_method(
                "batch_sender",
                "BatchSender",
                "Client stream of encoded `EnvelopeBatch`es.",
            )
            .client_streaming()
            .build(),
        )
        .method(raw_method("send", "Send", "One encoded `EnvelopeBatch`.").build())
        .build();
    let egress = Service::builder()
        .name("Egress")
        .package("loggregator.v2")
        .comment("`loggregator.v2.Egress` carrying encoded messages as bytes.")
        .method(
            raw_method(
                "receiver",
                "Receiver",
                "Encoded `EgressRequest` -> stream of encoded `Envelope`s.",
            )
            .server_streaming()
            .build(),
        )
        .method(
            raw_method(
                "batched_receiver",
                "BatchedReceiver",
                "Encoded `EgressBatchRequest` -> stream of encoded `EnvelopeBatch`es.",
            )
            .server_streaming()
            .build(),
        )
        .build();
    let pusher = Service::builder()
        .name("DopplerIngestor")
        .package("plumbing")
        .comment("`plumbing.DopplerIngestor` carrying encoded messages as bytes.")
        .method(
            raw_method(
                "pusher",
                "Pusher",
                "Client stream of encoded `EnvelopeData`.",
            )
            .client_streaming()
            .build(),
        )
        .build();
    let cache_egress = Service::builder()
        .name("Egress")
        .package("logcache.v1")
        .comment("`logcache.v1.Egress` carrying encoded messages as bytes.")
        .method(
            raw_method(
                "read",
                "Read",
                "Encoded `ReadRequest` -> encoded `ReadResponse`.",
            )
            .build(),
        )
        .method(
            raw_method(
                "meta",
                "Meta",
                "Encoded `MetaRequest` -> encoded `MetaResponse`.",
            )
            .build(),
        )
        .build();
    let cache_ingress = Service::builder()
        .name("Ingress")
        .package("logcache.v1")
        .comment("`logcache.v1.Ingress` carrying encoded messages as bytes.")
        .method(
            raw_method(
                "send",
                "Send",
                "Encoded `SendRequest` -> encoded (empty) `SendResponse`.",
            )
            .build(),
        )
        .build();
    [ingress, egress, pusher, cache_egress, cache_ingress]
}
