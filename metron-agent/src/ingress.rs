//! Ingress: v1 dropsonde over UDP ([`udp`]) and v2 `loggregator.v2.Ingress`
//! over mutual TLS ([`grpc`]). Both only receive and push into their path's
//! drop-oldest ring, so a flood on one never blocks the other.

pub mod grpc;
pub mod udp;
