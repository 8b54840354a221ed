//! The crate's error type.

/// Why a log-cache node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] plumbing::tls::TlsError),
    /// Authorisation could not be set up.
    #[error("auth: {0}")]
    Auth(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
