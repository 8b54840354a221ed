//! rustls client configurations for connections that leave the platform:
//! syslog drains (system roots plus an operator CA plus the binding's CA,
//! optional client certificate from the binding's credentials, optional skip
//! of verification), syslog servers and HTTP APIs (Datadog).

use std::path::Path;
use std::sync::Arc;

use plumbing::tls::{TlsError, parse_certs, parse_key, provider};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Debian's bundle of system trust anchors.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How external servers are verified.
#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    /// Also trust the system bundle (`/etc/ssl/certs/ca-certificates.crt`).
    pub system_roots: bool,
    /// Additional trusted CA PEM (operator's `drain_ca_cert`).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (`drain_skip_cert_verify`).
    pub skip_verify: bool,
}

/// A client certificate (PEM) presented for mutual TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientPem<'a> {
    /// Certificate chain PEM.
    pub cert: &'a [u8],
    /// Private key PEM.
    pub key: &'a [u8],
}

/// Builds a client configuration trusting `trust` plus `binding_ca` (PEM,
/// may be empty) and presenting `client` when given. `alpn` lists the
/// protocols to offer (e.g. `http/1.1`).
pub fn client_config(
    trust: &TrustOptions,
    binding_ca: Option<&[u8]>,
    client: Option<ClientPem<'_>>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let label = Path::new("binding credentials");
    let mut roots = RootCertStore::empty();
    if trust.system_roots
        && let Ok(pem) = std::fs::read(SYSTEM_BUNDLE)
        && let Ok(certs) = parse_certs(&pem, Path::new(SYSTEM_BUNDLE))
    {
        roots.add_parsable_certificates(certs);
    }
    if let Some(pem) = &trust.extra_ca_pem {
        for c in parse_certs(pem, Path::new("drain CA"))? {
            roots.add(c).map_err(|e| TlsError::InvalidCa {
                path: "drain CA".into(),
                message: e.to_string(),
            })?;
        }
    }
    if let Some(pem) = binding_ca.filter(|p| !p.iter().all(u8::is_ascii_whitespace)) {
        for c in parse_certs(pem, label)? {
            roots.add(c).map_err(|e| TlsError::InvalidCa {
                path: label.to_owned(),
                message: e.to_string(),
            })?;
        }
    }
    let prov = provider(None);
    let builder = ClientConfig::builder_with_provider(prov.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => {
            let certs = parse_certs(c.cert, label)?;
            let key = parse_key(c.key, label)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::InvalidIdentity {
                    cert: "binding cert".into(),
                    key: "binding key".into(),
                    message: e.to_string(),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    if trust.skip_verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerify(prov)));
    }
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Parses a host as a TLS server name (DNS name or IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::InvalidServerName(host.to_owned()))
}

/// TLS handshake over `tcp` verifying `host` (DNS name or IP address); the
/// error is the text of the failure, `tls: ...` for the handshake itself.
pub(crate) async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let name = server_name(host).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))
}

/// Accepts every server certificate; signatures are still checked so the
/// handshake is well formed.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
