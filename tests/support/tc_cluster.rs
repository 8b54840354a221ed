//! In-process cluster for traffic-controller tests: two dopplers and one
//! traffic controller sharing a generated dev PKI (mTLS everywhere inside),
//! real WebSocket clients, v1 envelope builders, and `eventually`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::events::{self, envelope::EventType, log_message::MessageType};
use envelope_proto::plumbing_v1::{EnvelopeData, doppler_ingestor_client::DopplerIngestorClient};
use futures::StreamExt;
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use prost::Message as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tonic::transport::Channel;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type RawWs = WebSocketStream<TcpStream>;

pub struct Doppler {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub shutdown: Shutdown,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub dopplers: Vec<Doppler>,
    pub tc_addr: SocketAddr,
    pub tc_gateway: SocketAddr,
    pub tc_admin: SocketAddr,
    pub tc_registry: Registry,
    pub tc_shutdown: Shutdown,
    pub tc_handle: tokio::task::JoinHandle<Result<(), traffic_controller::Error>>,
}

pub fn tls_paths(
    pki: &DevPki,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let f = pki.files(name);
    (f.ca.clone().unwrap(), f.cert.clone(), f.key.clone())
}

pub async fn start_doppler(pki: &DevPki) -> Doppler {
    let (ca, cert, key) = tls_paths(pki, "doppler");
    let config = doppler::Config::for_tests(Some(doppler::config::TlsPaths { ca, cert, key }));
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    tokio::spawn(doppler::run_with_registry(
        config,
        doppler::Listeners {
            grpc,
            admin: None,
            pprof: None,
        },
        shutdown.clone(),
        registry.clone(),
    ));
    Doppler {
        addr,
        registry,
        shutdown,
    }
}

impl Cluster {
    /// Two dopplers and a TC (`none` auth unless `tweak` changes it).
    pub async fn start(tweak: impl FnOnce(&mut traffic_controller::Config)) -> Cluster {
        Self::start_n(2, tweak).await
    }

    pub async fn start_n(n: usize, tweak: impl FnOnce(&mut traffic_controller::Config)) -> Cluster {
        Self::start_with(n, false, tweak).await
    }

    /// `tls_listener`: serve the external listeners over TLS with the
    /// `localhost` identity (server-only TLS).
    pub async fn start_with(
        n: usize,
        tls_listener: bool,
        tweak: impl FnOnce(&mut traffic_controller::Config),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(dir.path()).unwrap();
        let mut dopplers = Vec::new();
        for _ in 0..n {
            dopplers.push(start_doppler(&pki).await);
        }
        let (ca, cert, key) = tls_paths(&pki, "trafficcontroller");
        let mut config = traffic_controller::Config::for_tests(
            dopplers.iter().map(|d| d.addr.to_string()).collect(),
            Some(traffic_controller::config::TlsPaths { ca, cert, key }),
        );
        if tls_listener {
            let f = pki.files("localhost");
            config.listener_tls = Some((f.cert.clone(), f.key.clone()));
        }
        tweak(&mut config);
        let tc_registry = config.registry.clone();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tc_gateway = gateway.local_addr().unwrap();
        let tc_addr = ws.local_addr().unwrap();
        let tc_admin = admin.local_addr().unwrap();
        let tc_shutdown = Shutdown::new();
        let tc_handle = tokio::spawn(traffic_controller::run(
            config,
            traffic_controller::Listeners {
                ws,
                gateway: Some(gateway),
                admin: Some(admin),
            },
            tc_shutdown.clone(),
        ));
        Cluster {
            dir,
            pki,
            dopplers,
            tc_addr,
            tc_gateway,
            tc_admin,
            tc_registry,
            tc_shutdown,
            tc_handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.tc_addr, path)
    }

    /// WebSocket client on `path` with extra headers.
    pub async fn ws(&self, path: &str, headers: &[(&str, &str)]) -> Ws {
        let mut req = self.url(path).into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect")
            .0
    }

    /// WebSocket client whose socket has a small receive buffer (to stall it).
    pub async fn ws_small_buffer(&self, path: &str) -> RawWs {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let tcp = sock.connect(self.tc_addr).await.unwrap();
        let req = self.url(path).into_client_request().unwrap();
        tokio_tungstenite::client_async(req, tcp)
            .await
            .expect("websocket connect")
            .0
    }

    /// A TLS client channel to doppler `i` as the agent would connect.
    pub fn doppler_channel(&self, i: usize) -> Channel {
        let cfg = plumbing::tls::client_config(&self.pki.files("metron")).unwrap();
        plumbing::tls::grpc::channel(&self.dopplers[i].addr.to_string(), Some((cfg, "doppler")))
            .unwrap()
    }

    /// Pushes v1 envelopes into doppler `i` (one Pusher stream).
    pub async fn push(&self, i: usize, envs: &[events::Envelope]) {
        let msgs: Vec<EnvelopeData> = envs
            .iter()
            .map(|e| EnvelopeData {
                payload: Bytes::from(e.encode_to_vec()),
            })
            .collect();
        DopplerIngestorClient::new(self.doppler_channel(i))
            .pusher(futures::stream::iter(msgs))
            .await
            .unwrap();
    }

    pub fn doppler_subscriptions(&self, i: usize) -> i64 {
        self.dopplers[i]
            .registry
            .gauge_value("subscriptions", &[])
            .unwrap_or(0)
    }

    /// Waits until every doppler has `n` subscriptions.
    pub async fn wait_subscriptions(&self, n: i64) {
        eventually(
            || (0..self.dopplers.len()).all(|i| self.doppler_subscriptions(i) == n),
            &format!("{n} subscriptions on every doppler"),
        )
        .await;
    }

    pub fn tc_gauge(&self, name: &str) -> i64 {
        self.tc_registry.gauge_value(name, &[]).unwrap_or(0)
    }

    pub fn tc_counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.tc_registry.counter_value(name, labels).unwrap_or(0)
    }

    /// Plain HTTP/1.1 request to the TC; returns status, headers, body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpReply {
        http_request(self.tc_addr, method, path, headers, body).await
    }
}

pub struct HttpReply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Full<Bytes>>(
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    HttpReply {
        status,
        headers,
        body,
    }
}

/// Polls `cond` every 20 ms for up to 10 s.
pub async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

pub fn log_env(app: &str, msg: &str) -> events::Envelope {
    let ts = now_nanos();
    events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::LogMessage as i32),
        timestamp: Some(ts),
        log_message: Some(events::LogMessage {
            message: Some(Bytes::from(msg.to_owned())),
            message_type: Some(MessageType::Out as i32),
            timestamp: Some(ts),
            app_id: Some(app.into()),
            source_type: Some("APP/PROC/WEB".into()),
            source_instance: Some("0".into()),
        }),
        ..Default::default()
    }
}

pub fn counter_env(name: &str, delta: u64) -> events::Envelope {
    events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::CounterEvent as i32),
        timestamp: Some(now_nanos()),
        counter_event: Some(events::CounterEvent {
            name: Some(name.into()),
            delta: Some(delta),
            total: Some(delta),
        }),
        ..Default::default()
    }
}

pub fn container_env(app: &str, index: i32, cpu: f64) -> events::Envelope {
    events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::ContainerMetric as i32),
        timestamp: Some(now_nanos()),
        container_metric: Some(events::ContainerMetric {
            application_id: Some(app.into()),
            instance_index: Some(index),
            cpu_percentage: Some(cpu),
            memory_bytes: Some(1024),
            disk_bytes: Some(2048),
            memory_bytes_quota: Some(4096),
            disk_bytes_quota: Some(8192),
        }),
        ..Default::default()
    }
}

/// Next binary frame decoded as a v1 envelope (skips pings), with a deadline.
pub async fn next_envelope<S>(ws: &mut S, within: Duration) -> Option<events::Envelope>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg {
            Ok(Message::Binary(b)) => {
                return Some(events::Envelope::decode(b.as_ref()).expect("valid v1 envelope"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Log message text of a v1 envelope, if it is a LogMessage.
pub fn log_text(e: &events::Envelope) -> Option<String> {
    e.log_message
        .as_ref()
        .and_then(|l| l.message.as_ref())
        .map(|m| String::from_utf8_lossy(m).into_owned())
}

/// Parses a `multipart/x-protobuf` reply exactly as reference §15.1 lays it
/// out, asserting the boundary format on the way.
pub fn multipart_envelopes(r: &HttpReply) -> Vec<events::Envelope> {
    let ct = r.header("content-type");
    let boundary = ct
        .strip_prefix("multipart/x-protobuf; boundary=")
        .expect("content type");
    assert_eq!(boundary.len(), 60, "{ct}");
    assert!(
        boundary
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{ct}"
    );
    let body = &r.body[..];
    let close = format!("--{boundary}--\r\n");
    assert!(body.ends_with(close.as_bytes()), "closing delimiter");
    if body == format!("\r\n{close}").as_bytes() {
        return Vec::new();
    }
    let delim = format!("--{boundary}\r\n\r\n");
    let sep = format!("\r\n--{boundary}\r\n\r\n");
    let inner = body
        .strip_prefix(delim.as_bytes())
        .and_then(|b| b.strip_suffix(format!("\r\n{close}").as_bytes()))
        .expect("framing");
    split_on(inner, sep.as_bytes())
        .into_iter()
        .map(|p| envelope_proto::v1::decode(p).expect("part is one envelope"))
        .collect()
}

fn split_on<'a>(mut hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(pos) = hay.windows(sep.len()).position(|w| w == sep) {
        out.push(&hay[..pos]);
        hay = &hay[pos + sep.len()..];
    }
    out.push(hay);
    out
}

/// A `/v2/read` SSE stream read event by event.
pub struct Sse {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    buf: bytes::BytesMut,
    _sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>,
}

/// `GET path` as an SSE request over `tcp` (connected to `addr`) with extra `headers`.
pub async fn open_sse(
    tcp: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Sse {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    Sse {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.into_body(),
        buf: bytes::BytesMut::new(),
        _sender: sender,
    }
}

impl Sse {
    /// The next complete event (text up to and including the blank line), or
    /// None at the end of the body / after `within`.
    pub async fn event(&mut self, within: Duration) -> Option<String> {
        use http_body_util::BodyExt as _;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let ev = self.buf.split_to(pos + 2);
                return Some(String::from_utf8(ev.to_vec()).unwrap());
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}
