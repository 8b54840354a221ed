//! The external listener over server-only TLS: a WebSocket firehose through
//! `wss://` with a rustls client, and no plaintext on the TLS port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tc_cluster::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP: &str = "11111111-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firehose_over_tls() {
    let c = Cluster::start_with(2, true, |_| {}).await;
    let ca = c.pki.ca_path();
    let client_cfg =
        plumbing::tls::client_config_without_cert(&ca, &plumbing::tls::TlsOptions::default())
            .unwrap();
    let tcp = tokio::net::TcpStream::connect(c.tc_addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&client_cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("tls handshake");
    let req = format!("wss://localhost:{}/firehose/tls", c.tc_addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("websocket over tls");
    assert_eq!(resp.status(), 101);
    c.wait_subscriptions(1).await;
    c.push(1, &[log_env(APP, "secret")]).await;
    let e = next_envelope(&mut ws, Duration::from_secs(5))
        .await
        .expect("envelope");
    assert_eq!(log_text(&e).as_deref(), Some("secret"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(c.tc_addr).await.unwrap();
    plain
        .write_all(b"GET /firehose/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}
