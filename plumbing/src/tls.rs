//! Mutual-TLS configuration for all internal gRPC (reference §6), with rustls and the `ring`
//! crypto provider.
//!
//! - Versions: TLS 1.2 and TLS 1.3 (nothing older is possible: rustls implements neither).
//! - TLS 1.3 suites: rustls defaults.
//! - TLS 1.2 suites: upstream's `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` and
//!   `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`. **Deviation**: the default set also allows the
//!   ECDSA equivalents (`TLS_ECDHE_ECDSA_WITH_AES_{128,256}_GCM_*`), because the development PKI
//!   ([`dev`]) has to use ECDSA P-256 keys (rcgen with the `ring` backend cannot generate RSA
//!   keys). An explicit list from [`parse_cipher_suites`] (the `*_CIPHER_SUITES` variables)
//!   allows exactly the listed RSA suites, like upstream.
//! - Server ([`server_config`]): when a CA is given, requires a client certificate chaining to
//!   it (the client's name is not checked).
//! - Client ([`client_config`]): trusts only the given CA; the server name to verify is passed
//!   per connection (e.g. `doppler`, see [`grpc::channel`]).
//!
//! Certificates are read from PEM files; private keys may be PKCS#1 (`RSA PRIVATE KEY`),
//! PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Errors name the file and what is wrong.

pub mod dev;
pub mod grpc;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring as ring_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};

/// Paths of the CA certificate, the certificate chain and the private key of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// CA bundle: on a server, clients must present a certificate chaining to it (mTLS); on a
    /// client, the server's certificate must chain to it. `None` on a server means no client
    /// certificate is requested.
    pub ca: Option<PathBuf>,
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key (PKCS#1, PKCS#8 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Files for mutual TLS (all three given).
    pub fn new(ca: impl Into<PathBuf>, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            ca: Some(ca.into()),
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Files for a server that does not ask for client certificates.
    pub fn server_only(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            ca: None,
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// TLS configuration errors. Messages name the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {what} file {}: {}", path.display(), io_reason(source))]
    Read {
        /// `certificate`, `private key` or `CA certificate`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("invalid PEM in {}: {message}", path.display())]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// A certificate file holds no certificate.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no private key.
    #[error("no private key found in {}", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate was rejected as a trust anchor.
    #[error("invalid CA certificate in {}: {message}", path.display())]
    InvalidCa {
        /// The file.
        path: PathBuf,
        /// rustls/webpki's complaint.
        message: String,
    },
    /// The certificate and key do not form a usable identity, or rustls refused the config.
    #[error("invalid TLS identity ({cert} / {key}): {message}")]
    InvalidIdentity {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls's complaint.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
    /// A cipher-suite list with no recognised name.
    #[error("no valid ciphers provided for TLS configuration")]
    NoValidCiphers,
    /// A client configuration needs a CA to verify servers.
    #[error("client TLS configuration needs a CA file")]
    MissingCa,
    /// Invalid gRPC endpoint address.
    #[error("invalid gRPC endpoint {addr:?}: {message}")]
    InvalidEndpoint {
        /// The address as given.
        addr: String,
        /// What is wrong.
        message: String,
    },
    /// Invalid server name for certificate verification.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// Generating the development PKI failed.
    #[error("generating development certificates: {0}")]
    Generate(String),
    /// Writing the development PKI failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// Upstream's two recognised TLS 1.2 cipher-suite names.
pub const RECOGNISED_CIPHER_SUITES: [&str; 2] = [
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
];

/// Parses a cipher-suite list (upstream-config §1): names separated by `:` or `,` (spaces
/// trimmed); only [`RECOGNISED_CIPHER_SUITES`] are recognised, other names are ignored; no
/// recognised name at all is [`TlsError::NoValidCiphers`].
pub fn parse_cipher_suites(list: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in list.split([':', ',']).map(str::trim) {
        let suite = match name {
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
                ring_provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            }
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
                ring_provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            }
            _ => continue,
        };
        if !out.iter().any(|s| s.suite() == suite.suite()) {
            out.push(suite);
        }
    }
    if out.is_empty() {
        return Err(TlsError::NoValidCiphers);
    }
    Ok(out)
}

/// [`parse_cipher_suites`] for a list already split into names (a config-file array or a
/// repeated/comma-separated flag); `None` (use the defaults) stays `None`.
pub fn parse_cipher_suite_names(
    names: Option<&[String]>,
) -> Result<Option<Vec<SupportedCipherSuite>>, TlsError> {
    names
        .map(|list| parse_cipher_suites(&list.join(",")))
        .transpose()
}

/// The default TLS 1.2 suites: upstream's two ECDHE-RSA AES-GCM suites plus their ECDSA
/// equivalents (see the module doc for why).
pub fn default_tls12_suites() -> Vec<SupportedCipherSuite> {
    use ring_provider::cipher_suite as cs;
    vec![
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ]
}

/// Options beyond the files.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// TLS 1.2 suites; `None` = [`default_tls12_suites`].
    pub tls12_suites: Option<Vec<SupportedCipherSuite>>,
    /// ALPN protocols to offer/accept; `None` = `h2` and `http/1.1` on servers, none on
    /// clients ([`grpc::channel`] sets `h2` itself).
    pub alpn: Option<Vec<Vec<u8>>>,
}

/// The crypto provider: `ring`, TLS 1.3 default suites, TLS 1.2 suites as given.
pub fn provider(tls12_suites: Option<&[SupportedCipherSuite]>) -> Arc<CryptoProvider> {
    let base = ring_provider::default_provider();
    let tls12: Vec<SupportedCipherSuite> = match tls12_suites {
        Some(s) => s.to_vec(),
        None => default_tls12_suites(),
    };
    let mut suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    suites.extend(
        tls12
            .into_iter()
            .filter(|s| s.version() == &rustls::version::TLS12),
    );
    Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..base
    })
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// PEM material for one identity held in memory; `label`s name the source in errors.
#[derive(Debug, Clone)]
pub struct PemIdentity<'a> {
    /// CA PEM and its label (usually the path).
    pub ca: Option<(&'a [u8], &'a Path)>,
    /// Certificate chain PEM and its label.
    pub cert: (&'a [u8], &'a Path),
    /// Private key PEM and its label.
    pub key: (&'a [u8], &'a Path),
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Parses every certificate in a PEM buffer; none is [`TlsError::NoCertificate`].
pub fn parse_certs(pem: &[u8], label: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut reader = pem;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidPem {
            path: label.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: label.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#1, PKCS#8 or SEC1) in a PEM buffer.
pub fn parse_key(pem: &[u8], label: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut reader = pem;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|e| TlsError::InvalidPem {
            path: label.to_owned(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: label.to_owned(),
        })
}

/// Reads a certificate chain file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(&read_file("certificate", path)?, path)
}

/// Reads a private key file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(&read_file("private key", path)?, path)
}

fn root_store(pem: &[u8], label: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem, label)? {
        roots.add(cert).map_err(|e| TlsError::InvalidCa {
            path: label.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn identity_error(cert: &Path, key: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::InvalidIdentity {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        message: e.to_string(),
    }
}

/// Server configuration from files, with default options (see [`server_config_with`]).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(files, &TlsOptions::default())
}

/// Server configuration from files.
pub fn server_config_with(
    files: &TlsFiles,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = read_file("certificate", &files.cert)?;
    let key = read_file("private key", &files.key)?;
    let ca = match &files.ca {
        Some(p) => Some((read_file("CA certificate", p)?, p.as_path())),
        None => None,
    };
    server_config_from_pem(
        &PemIdentity {
            ca: ca.as_ref().map(|(b, p)| (b.as_slice(), *p)),
            cert: (&cert, &files.cert),
            key: (&key, &files.key),
        },
        options,
    )
}

/// Server configuration from PEM held in memory.
pub fn server_config_from_pem(
    id: &PemIdentity<'_>,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = parse_certs(id.cert.0, id.cert.1)?;
    let key = parse_key(id.key.0, id.key.1)?;
    let provider = provider(options.tls12_suites.as_deref());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match id.ca {
        Some((pem, label)) => {
            let roots = Arc::new(root_store(pem, label)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::InvalidCa {
                    path: label.to_owned(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| identity_error(id.cert.1, id.key.1, e))?;
    config.alpn_protocols = options
        .alpn
        .clone()
        .unwrap_or_else(|| vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    Ok(Arc::new(config))
}

/// Client configuration from files, with default options (see [`client_config_with`]).
///
/// `files.ca` is required (it is what the server certificate must chain to); the certificate
/// and key are presented to servers that ask for one.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with(files, &TlsOptions::default())
}

/// Client configuration from files.
pub fn client_config_with(
    files: &TlsFiles,
    options: &TlsOptions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca_path = files.ca.as_deref().ok_or(TlsError::MissingCa)?;
    let ca = read_file("CA certificate", ca_path)?;
    let cert = read_file("certificate", &files.cert)?;
    let key = read_file("private key", &files.key)?;
    client_config_from_pem(
        &PemIdentity {
            ca: Some((&ca, ca_path)),
            cert: (&cert, &files.cert),
            key: (&key, &files.key),
        },
        options,
    )
}

/// Client configuration from PEM held in memory (`id.ca` required).
pub fn client_config_from_pem(
    id: &PemIdentity<'_>,
    options: &TlsOptions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let (ca_pem, ca_label) = id.ca.ok_or(TlsError::MissingCa)?;
    let roots = root_store(ca_pem, ca_label)?;
    let certs = parse_certs(id.cert.0, id.cert.1)?;
    let key = parse_key(id.key.0, id.key.1)?;
    let mut config = ClientConfig::builder_with_provider(provider(options.tls12_suites.as_deref()))
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| identity_error(id.cert.1, id.key.1, e))?;
    config.alpn_protocols = options.alpn.clone().unwrap_or_default();
    Ok(Arc::new(config))
}

/// Client configuration that verifies servers against `ca` but presents no certificate (e.g.
/// a CLI connecting to a server-only TLS listener).
pub fn client_config_without_cert(
    ca: &Path,
    options: &TlsOptions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let pem = read_file("CA certificate", ca)?;
    let roots = root_store(&pem, ca)?;
    let mut config = ClientConfig::builder_with_provider(provider(options.tls12_suites.as_deref()))
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = options.alpn.clone().unwrap_or_default();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
