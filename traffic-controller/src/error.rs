//! Errors that stop the traffic controller from starting or running.

/// Startup and runtime errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// UAA / Cloud Controller clients could not be built.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
    /// A listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}
