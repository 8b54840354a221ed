//! Generates the Rust types and tonic services from `proto/` without a system
//! `protoc`: `protox` parses the sources, then the descriptors are adjusted and
//! handed to prost/tonic.
//!
//! One adjustment: every proto2 `required` field of package `events` is turned
//! into `optional` before code generation, so the generated v1 structs keep
//! *presence* (`Option<T>`). Required-field checks are done by
//! `envelope_proto::v1::validate`, which reports the missing field by name, the
//! same way the reference marshaller refuses such messages.

use prost_types::field_descriptor_proto::Label;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
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
    Ok(())
}
