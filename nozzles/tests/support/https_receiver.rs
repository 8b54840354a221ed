//! A local HTTPS receiver (hyper + tokio-rustls) that records every request
//! and can fail the first N with 500.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub authorization: String,
    pub body: Bytes,
}

/// The receiver's shared state.
#[derive(Clone, Default)]
pub struct HttpsReceiver {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests still to answer with 500.
    pub fail_next: Arc<AtomicUsize>,
}

impl HttpsReceiver {
    /// Starts serving on a loopback port with `tls`; returns the receiver and port.
    pub async fn start(tls: Arc<rustls::ServerConfig>) -> (HttpsReceiver, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rx = HttpsReceiver::default();
        let state = rx.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let h = |n: http::header::HeaderName| {
                                parts
                                    .headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let status = if state
                                .fail_next
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok()
                            {
                                StatusCode::INTERNAL_SERVER_ERROR
                            } else {
                                state.requests.lock().push(Recorded {
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    content_type: h(http::header::CONTENT_TYPE),
                                    authorization: h(http::header::AUTHORIZATION),
                                    body,
                                });
                                StatusCode::OK
                            };
                            let mut resp = Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = status;
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (rx, port)
    }
}

/// A server-only TLS config for the `localhost` identity of `pki`.
pub fn server_only(pki: &plumbing::tls::dev::DevPki) -> Arc<rustls::ServerConfig> {
    let labels = pki.files("localhost");
    let mut id = pki.pem_identity("localhost", &labels).unwrap();
    id.ca = None;
    plumbing::tls::server_config_from_pem(&id, &plumbing::tls::TlsOptions::default()).unwrap()
}
