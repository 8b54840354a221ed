//! Drain transports (reference §19.4): octet-counted TCP/TLS with one
//! persistent connection, HTTPS with one POST per message, and HTTPS batches
//! (512 KiB or 1 s). Writers only move bytes; retries are the forwarder's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::{DrainUrl, Scheme};
use crate::http::{HttpClient, HttpError};
use crate::syslog::framing::Framing;
use crate::syslog::rfc5424::Encoded;

/// Dial timeout for syslog connections.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Write deadline for syslog connections.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTPS request deadline (read and write 20 s upstream).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// https-batch: POST once the body reaches this size.
pub const BATCH_BYTES: usize = 512 * 1024;
/// https-batch: POST at least this often.
pub const BATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A failed write.
#[derive(Debug)]
pub struct WriteFailure {
    /// Messages (from the start of the slice given) that were delivered before the failure.
    pub done: usize,
    /// Whether the failure was connecting (the "Failed to connect" notice).
    pub connect: bool,
    /// What went wrong.
    pub reason: String,
}

type BoxedStream = Box<dyn AsyncWrite + Send + Unpin>;

/// An octet-counting syslog connection (`syslog://`, `syslog-tls://`).
pub struct SyslogConn {
    /// `host:port`.
    addr: String,
    /// TLS config and name for `syslog-tls`.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// The connection; plain TCP kept separately so a peer close can be seen before writing.
    stream: Option<BoxedStream>,
    /// The raw TCP stream of a plain connection (for the EOF probe).
    plain: Option<Arc<TcpStream>>,
    /// Frame buffer reused across writes.
    buf: Vec<u8>,
    /// End offset in `buf` of each message's frame.
    ends: Vec<usize>,
    /// How messages are delimited.
    framing: Framing,
    /// Write deadline ([`WRITE_TIMEOUT`]).
    write_timeout: Duration,
}

impl std::fmt::Debug for SyslogConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogConn")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A TcpStream shared between the writer and the EOF probe.
struct SharedTcp(Arc<TcpStream>);

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            match self.0.poll_write_ready(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return std::task::Poll::Ready(r),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl SyslogConn {
    /// A connection to `addr`, over TLS when `tls` is given.
    pub fn new(addr: String, tls: Option<(Arc<ClientConfig>, ServerName<'static>)>) -> Self {
        Self {
            addr,
            tls,
            stream: None,
            plain: None,
            buf: Vec::new(),
            ends: Vec::new(),
            framing: Framing::OctetCounting,
            write_timeout: WRITE_TIMEOUT,
        }
    }

    /// Uses `timeout` instead of [`WRITE_TIMEOUT`] as the write deadline.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Uses `framing` instead of octet counting.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Closes the connection (idle timeout, shutdown).
    pub fn close(&mut self) {
        self.stream = None;
        self.plain = None;
    }

    async fn connect(&mut self) -> Result<(), String> {
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, plumbing::dial::tcp(&self.addr))
            .await
            .map_err(|_| "dial timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        match &self.tls {
            Some((cfg, name)) => {
                let tls = tokio::time::timeout(
                    DIAL_TIMEOUT,
                    tokio_rustls::TlsConnector::from(cfg.clone()).connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| "tls handshake timed out".to_owned())?
                .map_err(|e| e.to_string())?;
                self.stream = Some(Box::new(tls));
                self.plain = None;
            }
            None => {
                let shared = Arc::new(tcp);
                self.plain = Some(shared.clone());
                self.stream = Some(Box::new(SharedTcp(shared)));
            }
        }
        Ok(())
    }

    /// True when a plain connection's peer has closed (reads EOF or error).
    fn peer_closed(&self) -> bool {
        let Some(tcp) = &self.plain else {
            return false;
        };
        let mut probe = [0u8; 512];
        match tcp.try_read(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }

    /// Writes `msgs` framed, as few writes as the socket takes. On failure (error or write
    /// deadline) the connection is closed and [`WriteFailure::done`] counts the messages whose
    /// whole frame the connection had already accepted: those were written (a peer that
    /// resumes reads them from the old connection) and must not be sent again; the retry
    /// starts at the first message not wholly accepted.
    pub async fn write(&mut self, msgs: &[&[u8]]) -> Result<(), WriteFailure> {
        if self.stream.is_some() && self.peer_closed() {
            self.close();
        }
        if self.stream.is_none() {
            self.connect().await.map_err(|reason| WriteFailure {
                done: 0,
                connect: true,
                reason,
            })?;
        }
        self.buf.clear();
        self.ends.clear();
        for m in msgs {
            self.framing.frame(m, &mut self.buf);
            self.ends.push(self.buf.len());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(WriteFailure {
                done: 0,
                connect: true,
                reason: "not connected".into(),
            });
        };
        let buf = &self.buf;
        let mut written = 0;
        let r = tokio::time::timeout(self.write_timeout, async {
            while written < buf.len() {
                match stream.write(&buf[written..]).await? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => written += n,
                }
            }
            stream.flush().await
        })
        .await;
        let reason = match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "write timed out".to_owned(),
        };
        let done = self.ends.iter().take_while(|end| **end <= written).count();
        self.close();
        Err(WriteFailure {
            done,
            connect: false,
            reason,
        })
    }
}

/// Builds POST requests for an HTTPS drain.
#[derive(Debug, Clone)]
struct PostTemplate {
    path_and_query: String,
    authorization: Option<String>,
}

impl PostTemplate {
    fn new(url: &DrainUrl) -> Self {
        let authorization = url.userinfo.as_ref().map(|u| {
            let decoded = u.replace("%40", "@").replace("%3A", ":");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            )
        });
        Self {
            path_and_query: url.path_and_query.clone(),
            authorization,
        }
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(&self.path_and_query)
            .header(header::CONTENT_TYPE, "text/plain");
        if let Some(a) = &self.authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Full::new(body)).unwrap_or_else(|_| {
            // The path came from a parsed URL; fall back to `/` if http rejects it.
            let mut r = Request::new(Full::new(Bytes::new()));
            *r.method_mut() = Method::POST;
            r
        })
    }
}

fn http_failure(done: usize, e: HttpError) -> WriteFailure {
    WriteFailure {
        done,
        connect: e.is_connect(),
        reason: e.to_string(),
    }
}

/// The HTTPS client of a drain at `url`, verifying `name`.
fn drain_client(url: &DrainUrl, tls: Arc<ClientConfig>, name: ServerName<'static>) -> HttpClient {
    HttpClient::new(
        url.authority(),
        url.authority(),
        Some((tls, name)),
        HTTP_TIMEOUT,
    )
}

/// An `https://` drain: one POST per message, body = the bare message.
#[derive(Debug)]
pub struct HttpsPost {
    client: HttpClient,
    template: PostTemplate,
}

impl HttpsPost {
    /// A drain writer for `url` using `tls`.
    pub fn new(url: &DrainUrl, tls: Arc<ClientConfig>, name: ServerName<'static>) -> Self {
        Self {
            client: drain_client(url, tls, name),
            template: PostTemplate::new(url),
        }
    }

    /// POSTs each message in order; stops at the first failure.
    pub async fn write(&mut self, msgs: &[&[u8]]) -> Result<(), WriteFailure> {
        for (i, m) in msgs.iter().enumerate() {
            let req = self.template.request(Bytes::copy_from_slice(m));
            self.client
                .send_ok(req)
                .await
                .map_err(|e| http_failure(i, e))?;
        }
        Ok(())
    }

    /// Closes the connection.
    pub fn close(&mut self) {
        self.client.close();
    }
}

/// An `https-batch://` drain: messages concatenated, POSTed at 512 KiB or every second.
#[derive(Debug)]
pub struct HttpsBatch {
    client: HttpClient,
    template: PostTemplate,
    /// The body being built.
    pending: Vec<u8>,
    /// Messages in `pending`.
    pending_count: usize,
}

impl HttpsBatch {
    /// A batching writer for `url` using `tls`.
    pub fn new(url: &DrainUrl, tls: Arc<ClientConfig>, name: ServerName<'static>) -> Self {
        Self {
            client: drain_client(url, tls, name),
            template: PostTemplate::new(url),
            pending: Vec::new(),
            pending_count: 0,
        }
    }

    /// Appends messages to the pending body; returns true when it reached
    /// [`BATCH_BYTES`] and should be posted now.
    pub fn append(&mut self, msgs: &[&[u8]]) -> bool {
        for m in msgs {
            self.pending.extend_from_slice(m);
            self.pending_count += 1;
        }
        self.pending.len() >= BATCH_BYTES
    }

    /// Messages waiting to be posted.
    pub fn pending_count(&self) -> usize {
        self.pending_count
    }

    /// POSTs the pending body (nothing if empty). On success the body is cleared.
    pub async fn post(&mut self) -> Result<(), WriteFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let req = self.template.request(Bytes::copy_from_slice(&self.pending));
        self.client
            .send_ok(req)
            .await
            .map_err(|e| http_failure(0, e))?;
        self.pending.clear();
        self.pending_count = 0;
        Ok(())
    }

    /// Forgets the pending body (after the last retry) and returns how many messages it held.
    pub fn discard(&mut self) -> usize {
        self.pending.clear();
        std::mem::take(&mut self.pending_count)
    }

    /// Closes the connection.
    pub fn close(&mut self) {
        self.client.close();
    }
}

/// The writer of one drain.
#[derive(Debug)]
pub enum Writer {
    /// `syslog://` or `syslog-tls://`.
    Syslog(SyslogConn),
    /// `https://`.
    Https(HttpsPost),
    /// `https-batch://`.
    HttpsBatch(HttpsBatch),
}

impl Writer {
    /// The writer for `url`; `tls` must be given for TLS schemes.
    pub fn for_url(url: &DrainUrl, tls: Option<Arc<ClientConfig>>) -> Result<Writer, String> {
        let name = || crate::tlsutil::server_name(&url.host).map_err(|e| e.to_string());
        let need_tls = || {
            tls.clone()
                .ok_or_else(|| "missing TLS configuration".to_owned())
        };
        Ok(match url.scheme {
            Scheme::Syslog => Writer::Syslog(SyslogConn::new(url.authority(), None)),
            Scheme::SyslogTls => Writer::Syslog(SyslogConn::new(
                url.authority(),
                Some((need_tls()?, name()?)),
            )),
            Scheme::Https => Writer::Https(HttpsPost::new(url, need_tls()?, name()?)),
            Scheme::HttpsBatch => Writer::HttpsBatch(HttpsBatch::new(url, need_tls()?, name()?)),
        })
    }

    /// Closes any open connection.
    pub fn close(&mut self) {
        match self {
            Writer::Syslog(w) => w.close(),
            Writer::Https(w) => w.close(),
            Writer::HttpsBatch(w) => w.close(),
        }
    }
}

/// Helper: the messages of an [`Encoded`] as slices.
pub fn slices(enc: &Encoded) -> Vec<&[u8]> {
    enc.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Complete octet-counted frames in `data`, as message indices (`msg-N ...`).
    fn frames(data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(sp) = rest.iter().position(|b| *b == b' ') {
            let Ok(len) = std::str::from_utf8(&rest[..sp])
                .unwrap_or("")
                .parse::<usize>()
            else {
                break;
            };
            let body = &rest[sp + 1..];
            if body.len() < len {
                break;
            }
            let text = String::from_utf8_lossy(&body[..len]);
            let idx = text
                .strip_prefix("msg-")
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("message index");
            out.push(idx);
            rest = &body[len..];
        }
        out
    }

    #[tokio::test]
    async fn a_stalled_write_counts_what_the_connection_took_and_the_retry_sends_only_the_rest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut conn = SyslogConn::new(addr, None).with_write_timeout(Duration::from_millis(300));
        let payload = "p".repeat(4000);
        let owned: Vec<Vec<u8>> = (0..5000)
            .map(|i| format!("msg-{i} {payload}").into_bytes())
            .collect();
        let msgs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        // The server accepts but does not read: ~20 MB cannot all fit in the socket buffers.
        let write = conn.write(&msgs);
        let accept = listener.accept();
        let (failure, first) = tokio::join!(write, accept);
        let failure = failure.expect_err("the write stalls");
        let (mut first, _) = first.expect("accept");
        assert!(
            failure.done > 0 && failure.done < msgs.len(),
            "part was taken: {}",
            failure.done
        );
        // The server resumes: the first connection holds exactly the messages counted done.
        let mut got = Vec::new();
        first.read_to_end(&mut got).await.expect("read");
        let delivered = frames(&got);
        assert_eq!(delivered, (0..failure.done).collect::<Vec<_>>());
        // The retry, as the forwarder makes it, sends the rest on a new connection.
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            buf
        });
        conn.write(&msgs[failure.done..])
            .await
            .expect("the retry is written");
        conn.close();
        let second_bytes = reader.await.expect("reader");
        let second = frames(&second_bytes);
        let mut all = delivered;
        all.extend(second);
        assert_eq!(
            all,
            (0..msgs.len()).collect::<Vec<_>>(),
            "each message once, in order"
        );
    }
}
