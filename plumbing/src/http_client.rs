//! A small HTTP/1.1 client for the components' UAA and Cloud Controller checks.
//!
//! One connection per request (callers cache the answers, so the checks are
//! rare), plain `http://` or `https://` through rustls with an optional CA, an
//! optional client certificate (Cloud Controller's mutual TLS), a server-name
//! override and an explicit skip-verify switch. Every request has a deadline
//! and every response body is capped ([`DEFAULT_MAX_BODY`] unless set).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

/// Largest response body read unless [`HttpClient::with_max_body`] says otherwise.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Why a request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL has no host or an unsupported scheme.
    #[error("invalid url {0}: {1}")]
    Url(String, &'static str),
    /// TCP or TLS connection failed.
    #[error("connect {0}: {1}")]
    Connect(String, std::io::Error),
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(String),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Why a TLS client configuration could not be built.
pub type TlsSetupError = crate::tls::TlsError;

/// A status and body.
#[derive(Debug)]
pub struct HttpResponse {
    /// Response status.
    pub status: StatusCode,
    /// Response body (at most the client's body cap, [`DEFAULT_MAX_BODY`] unless set).
    pub body: Bytes,
}

/// HTTP client for one upstream service (UAA or Cloud Controller).
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    /// Overrides the TLS server name (Cloud Controller's `CC_SERVER_NAME`).
    server_name: Option<String>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl HttpClient {
    /// A client using `tls` for `https://` URLs.
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        server_name: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            tls,
            server_name,
            timeout,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The same client reading response bodies of up to `bytes` (a longer
    /// body fails the request with [`ClientError::Http`]).
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sends `req` (absolute URI) and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        match tokio::time::timeout(self.timeout, self.send_inner(req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    async fn send_inner(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        let uri = req.uri().clone();
        let url = uri.to_string();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ClientError::Url(url, "scheme must be http or https")),
        };
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Url(url.clone(), "missing host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = crate::dial::tcp((host.as_str(), port))
            .await
            .map_err(|e| ClientError::Connect(url.clone(), e))?;
        let (mut parts, body) = req.into_parts();
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        parts.uri = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .parse::<Uri>()
            .map_err(|_| ClientError::Url(url.clone(), "bad path"))?;
        if let Ok(v) = http::HeaderValue::from_str(&authority) {
            parts.headers.entry(http::header::HOST).or_insert(v);
        }
        let req = Request::from_parts(parts, body);
        if https {
            let name = self.server_name.clone().unwrap_or_else(|| host.clone());
            let name = ServerName::try_from(name)
                .map_err(|_| ClientError::Url(url.clone(), "invalid tls server name"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Connect(url.clone(), e))?;
            exchange(TokioIo::new(tls), req, self.max_body).await
        } else {
            exchange(TokioIo::new(tcp), req, self.max_body).await
        }
    }
}

async fn exchange<I>(
    io: I,
    req: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<HttpResponse, ClientError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(HttpResponse { status, body })
    }
    .await;
    conn_task.abort();
    result
}

/// Builds a rustls client configuration: trust `ca` (or, without one, trust
/// nothing but still allow `skip_verify`), present `cert_key` when given, and
/// skip server verification entirely when `skip_verify` is set. PEM loading
/// and the crypto provider come from [`crate::tls`].
pub fn tls_config(
    ca: Option<&Path>,
    cert_key: Option<(&Path, &Path)>,
    skip_verify: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    use crate::tls::{TlsError, load_certs, load_key, provider};
    let provider = provider(None);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = ca {
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| TlsError::InvalidCa {
                    path: ca.to_owned(),
                    message: e.to_string(),
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match cert_key {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError::Config(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The `*_SKIP_CERT_VERIFY=true` switches: accept any server certificate
/// (signatures are still checked so the handshake stays well-formed).
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
