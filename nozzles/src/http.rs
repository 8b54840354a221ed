//! A small HTTP/1.1 client over one persistent connection (plain TCP or
//! rustls), reconnecting on demand. Used by HTTPS drains (one connection per
//! drain, requests in order), the Datadog flusher and the Cloud Controller
//! binding poller. Every request has a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::Error;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connection or the TLS handshake failed.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        reason: String,
    },
    /// The request could not be sent or the response not read.
    #[error("request: {0}")]
    Request(String),
    /// The deadline passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered outside 2xx.
    #[error("unexpected status {0}")]
    Status(StatusCode),
}

impl HttpError {
    /// Whether the failure happened while connecting.
    pub fn is_connect(&self) -> bool {
        matches!(self, HttpError::Connect { .. })
    }
}

/// Splits an `http://` or `https://` URL into whether it is https, the
/// authority (`host[:port]`) and the path (possibly empty); `what` names the
/// URL in errors (`datadog`, `bindings`).
pub(crate) fn split_url<'a>(url: &'a str, what: &str) -> Result<(bool, &'a str, &'a str), Error> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::Config(format!(
            "{what} url {url:?}: missing scheme (http:// or https://)"
        ))
    })?;
    let secure = match scheme {
        "https" => true,
        "http" => false,
        other => {
            return Err(Error::Config(format!(
                "{what} url scheme {other:?}: accepted values are http, https"
            )));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    Ok((secure, authority, path))
}

/// HTTP/1.1 handshake over `io`; the connection is driven in its own task.
pub(crate) async fn handshake<T, B>(io: T) -> hyper::Result<SendRequest<B>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response: status and whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

/// One keep-alive HTTP/1.1 connection to one origin.
pub struct HttpClient {
    /// `host:port` to dial.
    addr: String,
    /// Value of the `Host` header.
    host_header: String,
    /// TLS settings and the name to verify; `None` = plain HTTP.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// The live connection, if any.
    conn: Option<SendRequest<Full<Bytes>>>,
    /// Per-request deadline (connect + send + read).
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpClient {
    /// A client for `addr` (`host:port`) with `Host: host_header`.
    pub fn new(
        addr: String,
        host_header: String,
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
        timeout: Duration,
    ) -> Self {
        Self {
            addr,
            host_header,
            tls,
            conn: None,
            timeout,
        }
    }

    /// Drops the connection (idle drains, after errors).
    pub fn close(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let err = |reason: String| HttpError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let tcp = plumbing::dial::tcp(&self.addr)
            .await
            .map_err(|e| err(e.to_string()))?;
        let sender = match &self.tls {
            Some((cfg, name)) => {
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                handshake(TokioIo::new(tls)).await
            }
            None => handshake(TokioIo::new(tcp)).await,
        };
        sender.map_err(|e| err(e.to_string()))
    }

    /// Sends `req` (the `Host` header is added) and reads the whole
    /// response. Any status is returned; see [`HttpClient::send_ok`].
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Response, HttpError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send_inner(&mut req)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(HttpError::Timeout(timeout))
            }
        }
    }

    /// Like [`HttpClient::send`], but a status outside 2xx is an error.
    pub async fn send_ok(&mut self, req: Request<Full<Bytes>>) -> Result<Response, HttpError> {
        let r = self.send(req).await?;
        if r.status.is_success() {
            Ok(r)
        } else {
            Err(HttpError::Status(r.status))
        }
    }

    async fn send_inner(&mut self, req: &mut Request<Full<Bytes>>) -> Result<Response, HttpError> {
        let mut sender = match self.conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
        }
        if let Ok(v) = header::HeaderValue::from_str(&self.host_header) {
            req.headers_mut().insert(header::HOST, v);
        }
        let owned = std::mem::take(req);
        let resp = sender
            .send_request(owned)
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let status = resp.status();
        let keep = !resp
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?
            .to_bytes();
        if keep {
            self.conn = Some(sender);
        }
        Ok(Response { status, body })
    }
}
