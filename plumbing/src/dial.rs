//! Outbound TCP connections for every client in the workspace.
//!
//! [`tcp`] is `TcpStream::connect` with two habits every caller wants: `TCP_NODELAY` (our writes
//! are already batched) and a refusal of *self-connections*. On Linux, a client that keeps
//! retrying a loopback port inside the ephemeral range while nothing listens there can be given
//! that very port as its source port; TCP's simultaneous open then connects the socket to itself.
//! The "connection" accepts every write and delivers it back to the writer, so a drain or
//! firehose client would silently black-hole its data instead of retrying. Go's `net` package
//! rejects such connections too; so do we, as a refused connection the caller retries.

use std::io;

use tokio::net::{TcpStream, ToSocketAddrs};

/// Connects to `addr`, sets `TCP_NODELAY`, and fails with `ConnectionRefused` when the socket
/// connected to itself (nothing listens on `addr`).
pub async fn tcp(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    refuse_self_connect(&stream)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn refuse_self_connect(stream: &TcpStream) -> io::Result<()> {
    let local = stream.local_addr()?;
    if local == stream.peer_addr()? {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("connection to {local} reached itself: nothing listens there"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_with_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("io");
        let addr = listener.local_addr().expect("io");
        let s = tcp(addr).await.expect("io");
        assert!(s.nodelay().expect("io"));
        assert_eq!(s.peer_addr().expect("io"), addr);
    }

    /// A loopback socket bound to a fresh port, not listening.
    fn bound() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().expect("io");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("io");
        let addr = socket.local_addr().expect("io");
        (socket, addr)
    }

    #[tokio::test]
    async fn refused_when_nothing_listens() {
        // A bound but not listening socket holds the port, so nothing else can take it.
        let (_holder, addr) = bound();
        let err = tcp(addr).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn a_socket_connected_to_itself_is_refused() {
        // Build the simultaneous-open case on purpose: bind a socket and connect it to its own
        // address, which Linux completes as a self-connection.
        let (socket, addr) = bound();
        let stream = socket.connect(addr).await.expect("io");
        assert_eq!(
            stream.local_addr().expect("io"),
            stream.peer_addr().expect("io")
        );
        let err = refuse_self_connect(&stream).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("reached itself"), "{err}");
    }
}
