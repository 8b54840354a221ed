//! The agent's error type.

use std::net::SocketAddr;

/// Why the agent could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Certificates or keys could not be loaded.
    #[error("could not use gRPC creds: {0}")]
    Tls(#[from] plumbing::tls::TlsError),
    /// A listener could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}
