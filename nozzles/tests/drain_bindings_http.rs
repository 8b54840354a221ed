//! Bindings polled page by page from a Cloud Controller-shaped endpoint
//! (`/internal/v5/syslog_drain_urls?batch_size=N&next_id=M`), over plain
//! HTTP and over mutual TLS.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nozzles::drain::bindings::{CcSource, Source, flatten};
use nozzles::http::HttpClient;
use parking_lot::Mutex;

/// Serves three bindings in pages of `batch_size`, recording request URIs.
async fn cc(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let uri = req.uri().clone();
                        seen.lock().push(uri.to_string());
                        let q: Vec<(String, String)> = uri
                            .query()
                            .unwrap_or("")
                            .split('&')
                            .filter_map(|p| p.split_once('='))
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect();
                        let get = |k: &str| {
                            q.iter()
                                .find(|(a, _)| a == k)
                                .map(|(_, v)| v.parse::<usize>().unwrap())
                        };
                        let batch = get("batch_size").unwrap();
                        let next = get("next_id").unwrap();
                        let all: Vec<serde_json::Value> = (0..3)
                            .map(|i| {
                                serde_json::json!({
                                    "url": format!("syslog://drain-{i}.example.com:514"),
                                    "credentials": [{"cert": "", "key": "", "ca": "",
                                        "apps": [{"hostname": "org.space.app", "app_id": format!("app-{i}")}]}]
                                })
                            })
                            .collect();
                        let page: Vec<_> = all.iter().skip(next).take(batch).cloned().collect();
                        let next_id = if next + batch < all.len() {
                            serde_json::json!(next + batch)
                        } else {
                            serde_json::Value::Null
                        };
                        let status = if uri.path() == "/internal/v5/syslog_drain_urls" {
                            200
                        } else {
                            404
                        };
                        let body =
                            serde_json::json!({"results": page, "next_id": next_id}).to_string();
                        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                match tls {
                    Some(cfg) => {
                        let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                            return;
                        };
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    }
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn pages_are_followed_until_next_id_is_null() {
    let (port, seen) = cc(None).await;
    let client = HttpClient::new(
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
        None,
        Duration::from_secs(5),
    );
    let mut source = Source::Http(CcSource::new(client, String::new(), 2));
    let bindings = source.fetch().await.unwrap();
    assert_eq!(bindings.len(), 3);
    assert_eq!(
        *seen.lock(),
        [
            "/internal/v5/syslog_drain_urls?batch_size=2&next_id=0",
            "/internal/v5/syslog_drain_urls?batch_size=2&next_id=2"
        ]
    );
    let specs = flatten(&bindings, 5);
    assert_eq!(
        specs.iter().map(|s| s.app_id.as_str()).collect::<Vec<_>>(),
        ["app-0", "app-1", "app-2"]
    );
}

#[tokio::test]
async fn mutual_tls_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let pki = plumbing::tls::dev::DevPki::generate(dir.path()).unwrap();
    let (port, _) = cc(Some(pki.server_config("localhost").unwrap())).await;
    let cfg = plumbing::tls::client_config(&pki.files("client")).unwrap();
    let name = nozzles::tlsutil::server_name("localhost").unwrap();
    let client = HttpClient::new(
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        Some((cfg, name)),
        Duration::from_secs(5),
    );
    let mut source = Source::Http(CcSource::new(client, String::new(), 1000));
    assert_eq!(source.fetch().await.unwrap().len(), 3);

    // Without a client certificate the handshake is refused and the fetch fails.
    let no_cert =
        plumbing::tls::client_config_without_cert(&pki.ca_path(), &Default::default()).unwrap();
    let client = HttpClient::new(
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        Some((no_cert, nozzles::tlsutil::server_name("localhost").unwrap())),
        Duration::from_secs(5),
    );
    let mut source = Source::Http(CcSource::new(client, String::new(), 1000));
    assert!(source.fetch().await.is_err());
}
