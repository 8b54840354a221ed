//! The crate's error type.

/// Errors returned by the nozzles' setup and run functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// I/O failure (binding a socket, reading a file).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A binding source answered with something unusable.
    #[error("bindings: {0}")]
    Bindings(String),
}
