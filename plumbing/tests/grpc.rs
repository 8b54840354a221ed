//! `tls::grpc`: real tonic servers and clients over loopback, with and without mutual TLS.

use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::ingress_client::IngressClient;
use envelope_proto::loggregator_v2::ingress_server::{Ingress, IngressServer};
use envelope_proto::loggregator_v2::{
    BatchSenderResponse, Envelope, EnvelopeBatch, IngressResponse, SendResponse,
};
use parking_lot::Mutex;
use plumbing::metrics::Counter;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use plumbing::tls::grpc::{
    self, ChannelOptions, IncomingOptions, serve_incoming, serve_incoming_with,
};
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tonic::{Request, Response, Status, Streaming};

/// Records the source ids it receives and the peer address tonic reports.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    peers: Arc<Mutex<Vec<std::net::SocketAddr>>>,
}

#[tonic::async_trait]
impl Ingress for Recorder {
    async fn sender(
        &self,
        _request: Request<Streaming<Envelope>>,
    ) -> Result<Response<IngressResponse>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn batch_sender(
        &self,
        _request: Request<Streaming<EnvelopeBatch>>,
    ) -> Result<Response<BatchSenderResponse>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn send(
        &self,
        request: Request<EnvelopeBatch>,
    ) -> Result<Response<SendResponse>, Status> {
        if let Some(peer) = request.remote_addr() {
            self.peers.lock().push(peer);
        }
        let mut seen = self.seen.lock();
        for e in &request.get_ref().batch {
            seen.push(e.source_id.clone());
        }
        Ok(Response::new(SendResponse {}))
    }
}

struct TestServer {
    addr: std::net::SocketAddr,
    recorder: Recorder,
    shutdown: Shutdown,
    failures: Counter,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn start(tls: Option<Arc<ServerConfig>>, handshake_timeout: Duration) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let recorder = Recorder::default();
    let shutdown = Shutdown::new();
    let failures = Counter::detached();
    let incoming = serve_incoming_with(
        listener,
        tls,
        IncomingOptions {
            handshake_timeout,
            handshake_failures: failures.clone(),
            ..IncomingOptions::default()
        },
    );
    let sd = shutdown.clone();
    let task = tokio::spawn(
        grpc::server_builder()
            .add_service(IngressServer::new(recorder.clone()))
            .serve_with_incoming_shutdown(incoming, async move { sd.cancelled().await }),
    );
    TestServer {
        addr,
        recorder,
        shutdown,
        failures,
        task,
    }
}

fn batch(ids: &[&str]) -> EnvelopeBatch {
    EnvelopeBatch {
        batch: ids
            .iter()
            .map(|id| Envelope {
                source_id: (*id).to_owned(),
                ..Envelope::default()
            })
            .collect(),
    }
}

async fn stop(server: TestServer) {
    server.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server stops")
        .expect("join")
        .expect("serve ok");
}

#[tokio::test]
async fn grpc_over_mutual_tls() {
    let pki = DevPki::in_memory().expect("pki");
    let server = start(
        Some(pki.server_config("doppler").expect("server")),
        Duration::from_secs(5),
    )
    .await;
    let channel = grpc::channel(
        &server.addr.to_string(),
        Some((pki.client_config("metron").expect("client"), "doppler")),
    )
    .expect("channel");
    let mut client = IngressClient::new(channel);
    client.send(batch(&["a", "b"])).await.expect("send 1");
    client.send(batch(&["c"])).await.expect("send 2");
    assert_eq!(*server.recorder.seen.lock(), vec!["a", "b", "c"]);
    // ServerIo's connect info reaches the service.
    let peers = server.recorder.peers.lock().clone();
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p.ip().is_loopback()));
    assert_eq!(server.failures.get(), 0);
    stop(server).await;
}

#[tokio::test]
async fn grpc_over_plain_tcp() {
    let server = start(None, Duration::from_secs(5)).await;
    let channel = grpc::channel(&server.addr.to_string(), None).expect("channel");
    let mut client = IngressClient::new(channel);
    client.send(batch(&["plain"])).await.expect("send");
    assert_eq!(*server.recorder.seen.lock(), vec!["plain"]);
    stop(server).await;
}

#[tokio::test]
async fn client_expecting_other_server_name_fails() {
    let pki = DevPki::in_memory().expect("pki");
    let server = start(
        Some(pki.server_config("doppler").expect("server")),
        Duration::from_secs(5),
    )
    .await;
    let channel = grpc::channel(
        &server.addr.to_string(),
        Some((
            pki.client_config("client").expect("client"),
            "reverselogproxy",
        )),
    )
    .expect("channel");
    let err = IngressClient::new(channel)
        .send(batch(&["x"]))
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(server.recorder.seen.lock().is_empty());
    stop(server).await;
}

#[tokio::test]
async fn client_with_foreign_certificate_fails_and_is_counted() {
    let pki = DevPki::in_memory().expect("pki");
    let other = DevPki::in_memory().expect("other");
    let server = start(
        Some(pki.server_config("doppler").expect("server")),
        Duration::from_secs(5),
    )
    .await;
    // The other PKI's client does not trust this server either; both sides fail.
    let channel = grpc::channel(
        &server.addr.to_string(),
        Some((other.client_config("metron").expect("client"), "doppler")),
    )
    .expect("channel");
    let err = IngressClient::new(channel)
        .send(batch(&["x"]))
        .await
        .expect_err("must fail");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    wait_for(|| server.failures.get() >= 1).await;
    stop(server).await;
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}

/// A client that connects and never sends a ClientHello must not stall other clients, and its
/// handshake times out and is counted.
#[tokio::test]
async fn stalled_handshake_does_not_block_other_clients() {
    let pki = DevPki::in_memory().expect("pki");
    let server = start(
        Some(pki.server_config("doppler").expect("server")),
        Duration::from_millis(300),
    )
    .await;
    let _silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let channel = grpc::channel(
        &server.addr.to_string(),
        Some((pki.client_config("metron").expect("client"), "doppler")),
    )
    .expect("channel");
    tokio::time::timeout(
        Duration::from_secs(2),
        IngressClient::new(channel).send(batch(&["fast"])),
    )
    .await
    .expect("not stalled")
    .expect("send");
    assert_eq!(*server.recorder.seen.lock(), vec!["fast"]);
    // The garbage client fails at once, the silent one after the 300 ms timeout.
    wait_for(|| server.failures.get() == 2).await;
    stop(server).await;
}

#[tokio::test]
async fn serve_incoming_yields_tls_streams_with_h2_alpn() {
    use futures::StreamExt;
    let pki = DevPki::in_memory().expect("pki");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut incoming = Box::pin(serve_incoming(
        listener,
        Some(pki.server_config("doppler").expect("server")),
    ));
    let mut config = (*pki.client_config("metron").expect("client")).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = connector
            .connect("doppler".try_into().expect("name"), tcp)
            .await
            .expect("handshake");
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(tls);
    });
    let io = tokio::time::timeout(Duration::from_secs(5), incoming.next())
        .await
        .expect("in time")
        .expect("stream open")
        .expect("io");
    assert!(matches!(io, grpc::ServerIo::Tls(_)));
    assert_eq!(io.alpn(), Some(&b"h2"[..]));
    assert!(io.tcp().nodelay().expect("nodelay"));
    client.await.expect("client");
}

#[tokio::test]
async fn dropping_incoming_stream_closes_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = serve_incoming(listener, None);
    drop(incoming);
    // The accept task notices on its next wake-up (a connection attempt) and exits.
    let _ = TcpStream::connect(addr).await;
    wait_for_async(|| async move { TcpStream::connect(addr).await.is_err() }).await;
}

async fn wait_for_async<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}

#[test]
fn invalid_endpoints_are_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let _guard = rt.enter();
    for addr in ["", "no port here", "http://"] {
        assert!(grpc::channel(addr, None).is_err(), "{addr:?}");
    }
    let pki = DevPki::in_memory().expect("pki");
    let err = grpc::channel_with(
        "127.0.0.1:1",
        Some((pki.client_config("metron").expect("client"), "bad name!")),
        &ChannelOptions::traffic_controller(),
    )
    .expect_err("bad server name");
    assert_eq!(err.to_string(), "invalid TLS server name \"bad name!\"");
}

#[tokio::test]
async fn non_grpc_content_types_are_refused_with_415_as_grpc_go_does() {
    let server = start(None, Duration::from_secs(5)).await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    for content_type in [Some("application/json"), Some("text/html"), None] {
        let mut req = http::Request::post(format!(
            "http://{}/loggregator.v2.Ingress/Send",
            server.addr
        ));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"{\"batch\":[]}"));
        let resp = send
            .send_request(req.body(body).expect("request"))
            .await
            .expect("answer");
        assert_eq!(resp.status(), 415, "{content_type:?}");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "3");
        assert_eq!(
            resp.headers()["grpc-message"],
            format!(
                "invalid gRPC request content-type {:?}",
                content_type.unwrap_or("")
            )
            .as_str()
        );
    }
    assert!(
        server.recorder.seen.lock().is_empty(),
        "no service saw them"
    );
    // The same connection still serves real gRPC.
    let channel = grpc::channel(&server.addr.to_string(), None).expect("channel");
    IngressClient::new(channel)
        .send(batch(&["after"]))
        .await
        .expect("grpc call");
    assert_eq!(*server.recorder.seen.lock(), vec!["after".to_owned()]);
    stop(server).await;
}

#[test]
fn grpc_content_types() {
    for ok in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
        "Application/GRPC",
    ] {
        assert!(grpc::is_grpc_content_type(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "",
        "application/json",
        "application/grpcx",
        "application/grp",
        "text/html",
    ] {
        assert!(!grpc::is_grpc_content_type(bad.as_bytes()), "{bad}");
    }
}
