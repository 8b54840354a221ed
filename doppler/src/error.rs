//! Doppler's error type.

/// Why doppler could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error("Unable to parse config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Certificates or keys could not be used.
    #[error("Could not use GRPC creds for server: {0}")]
    Tls(#[from] plumbing::tls::TlsError),
    /// A listener failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
