//! The TCP socket under a WebSocket consumer, kept from filling up so a slow
//! consumer's farewell (warning and close frame) always fits.
//!
//! At the upgrade the connection is taken back from hyper as the concrete
//! stream the listener made (plain TCP or server-side TLS over TCP), and the
//! socket gets `TCP_NOTSENT_LOWAT` = [`UNSENT_LIMIT`]: the kernel accepts new
//! bytes only while fewer than that are waiting to be sent, so a consumer
//! that stops reading leaves the send buffer with at most about
//! `UNSENT_LIMIT` plus one segment (64 KiB) queued, far below its size.
//! Bytes in flight are not limited, so throughput to a consumer that keeps
//! up is unchanged; only the backlog the kernel would hold for a stalled one
//! shrinks (the consumer's ring holds that instead).
//!
//! When the consumer is cut, [`Socket::make_room`] lifts the limit and, if
//! the send buffer is small, grows it, so the bytes still buffered in the
//! WebSocket and TLS layers plus the farewell fit behind what is queued.

use std::os::fd::{AsFd, OwnedFd};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::session::Socket;

/// Unsent bytes the kernel holds for a consumer before its writer waits.
pub(crate) const UNSENT_LIMIT: u32 = 32 * 1024;
/// Send buffer requested at the cut when the current one is smaller: twice
/// Linux's default `net.core.wmem_max`, i.e. at least 416 KiB after the
/// kernel's doubling, which leaves > 300 KiB for the farewell behind the
/// queued bytes.
const FAREWELL_SNDBUF: usize = 2 * 212_992;

/// Any byte stream a WebSocket can run on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The consumer's connection, back from hyper.
pub(crate) struct Conn {
    /// The byte stream (the concrete stream when it was recognised).
    pub(crate) io: Box<dyn Io>,
    /// Bytes hyper read past the upgrade request.
    pub(crate) read_buf: Vec<u8>,
    /// A duplicate of the TCP socket's descriptor for socket options, when
    /// the stream was recognised. Dropped with the session so the socket
    /// closes with the stream.
    pub(crate) socket: Limited,
}

/// A consumer socket with the unsent-byte limit applied (or nothing, when
/// the transport was not recognised: then the farewell is best effort).
#[derive(Debug)]
pub(crate) struct Limited(Option<OwnedFd>);

impl Limited {
    fn new(tcp: &TcpStream) -> Self {
        let fd = match tcp.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(error = %e, "cannot duplicate consumer socket");
                return Limited(None);
            }
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(&fd).set_tcp_notsent_lowat(UNSENT_LIMIT) {
            tracing::debug!(error = %e, "cannot limit unsent bytes on consumer socket");
        }
        Limited(Some(fd))
    }
}

impl Socket for Limited {
    fn make_room(&self) {
        let Some(fd) = &self.0 else { return };
        let sock = socket2::SockRef::from(fd);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = sock.set_tcp_notsent_lowat(i32::MAX as u32) {
            tracing::debug!(error = %e, "cannot lift unsent-byte limit");
        }
        // Only ever grows: the kernel doubles the request (capped at
        // wmem_max >= 208 KiB), so the result is at least FAREWELL_SNDBUF.
        match sock.send_buffer_size() {
            Ok(cur) if cur < FAREWELL_SNDBUF => {
                if let Err(e) = sock.set_send_buffer_size(FAREWELL_SNDBUF) {
                    tracing::debug!(error = %e, "cannot grow send buffer");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read send buffer size"),
        }
    }
}

/// Takes the connection back from hyper as the listener's concrete stream.
pub(crate) fn take(upgraded: Upgraded) -> Conn {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let tcp = parts.io.into_inner();
            let socket = Limited::new(&tcp);
            return Conn {
                io: Box::new(tcp),
                read_buf: parts.read_buf.to_vec(),
                socket,
            };
        }
        Err(u) => u,
    };
    type Tls = tokio_rustls::server::TlsStream<TcpStream>;
    match upgraded.downcast::<TokioIo<Tls>>() {
        Ok(parts) => {
            let tls = parts.io.into_inner();
            let socket = Limited::new(tls.get_ref().0);
            Conn {
                io: Box::new(tls),
                read_buf: parts.read_buf.to_vec(),
                socket,
            }
        }
        Err(upgraded) => {
            tracing::debug!(
                "unrecognised consumer transport: slow-consumer farewell is best effort"
            );
            Conn {
                io: Box::new(TokioIo::new(upgraded)),
                read_buf: Vec::new(),
                socket: Limited(None),
            }
        }
    }
}
