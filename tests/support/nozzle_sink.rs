//! A TCP receiver of octet-counted (or newline-delimited) frames that can be
//! stopped (listener and connections closed) and restarted on the same port.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

pub struct Sink {
    pub port: u16,
    stop: watch::Sender<bool>,
}

impl Sink {
    /// Listens on `port` (0 = any) and sends every complete frame to `tx`.
    pub async fn start(port: u16, octet_counted: bool, tx: UnboundedSender<Vec<u8>>) -> Sink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, s) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let mut s1 = s.clone();
                let accepted = tokio::select! {
                    _ = s1.wait_for(|v| *v) => return,
                    a = listener.accept() => a,
                };
                let Ok((mut conn, _)) = accepted else { return };
                let tx = tx.clone();
                let mut s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        let n = tokio::select! {
                            _ = s.wait_for(|v| *v) => return,
                            r = conn.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        loop {
                            if octet_counted {
                                let Some(sp) = buf.iter().position(|&b| b == b' ') else {
                                    break;
                                };
                                let len: usize =
                                    std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                                if buf.len() < sp + 1 + len {
                                    break;
                                }
                                let msg = buf[sp + 1..sp + 1 + len].to_vec();
                                buf.drain(..sp + 1 + len);
                                let _ = tx.send(msg);
                            } else {
                                let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                                    break;
                                };
                                let msg: Vec<u8> = buf.drain(..=nl).collect();
                                let _ = tx.send(msg);
                            }
                        }
                    }
                });
            }
        });
        Sink { port, stop }
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
