//! v1 UDP reader: one envelope per datagram (≤ 65535 bytes). The reader only
//! copies datagrams into the v1 ring (drop-oldest; reference §8.2 step 1);
//! decoding happens on the egress side, so the socket is drained as fast as
//! possible and overload shows up as counted ring drops rather than silent
//! kernel drops.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;
use plumbing::turns::Turns;
use tokio::net::UdpSocket;

use crate::metrics::Metrics;

/// Largest datagram read (upstream reader buffer).
pub const MAX_DATAGRAM: usize = 65_535;

/// Requested kernel receive buffer (capped by `net.core.rmem_max`): absorbs
/// bursts while the reader task is not scheduled.
pub const RECV_BUFFER: usize = 8 << 20;

/// Reads `socket` until shutdown, pushing every datagram into `ring`.
pub async fn run(socket: UdpSocket, ring: Arc<Ring<Bytes>>, metrics: Metrics, shutdown: Shutdown) {
    if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "could not enlarge the UDP receive buffer");
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut arena = BytesMut::with_capacity(256 * 1024);
    let mut turns = Turns::on_pressure();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = socket.readable() => if let Err(e) = r {
                tracing::warn!(error = %e, "udp socket not readable");
                continue;
            }
        }
        let mut read = 0u64;
        // Drain everything queued, then wait for readiness again.
        loop {
            match socket.try_recv(&mut buf) {
                Ok(n) => {
                    read += 1;
                    if arena.capacity() < n {
                        arena.reserve(n.max(256 * 1024));
                    }
                    arena.extend_from_slice(&buf[..n]);
                    ring.push(arena.split().freeze());
                    if read >= 1024 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "udp read failed");
                    break;
                }
            }
        }
        metrics.ingress_v1.add(read);
        // Fairness: let the v1 egress task run when the ring fills up (the
        // kernel buffer absorbs the datagrams meanwhile). Never waits.
        turns.handled(read as usize, &ring).await;
    }
}
