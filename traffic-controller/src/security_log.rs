//! Optional CEF security event log (reference §12.7,
//! `TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG`): one line per request, appended
//! to a file by a dedicated thread.
//!
//! Queue: bounded channel of [`QUEUE`] lines, drop newest when full (counted
//! in `doppler_proxy_security_log_dropped`); the request path never waits
//! for the disk.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use plumbing::metrics::Counter;

const QUEUE: usize = 4096;

/// Handle to the security event log.
#[derive(Debug, Clone)]
pub(crate) struct SecurityLog {
    tx: mpsc::SyncSender<String>,
    dst_ip: String,
    dropped: Counter,
}

/// The facts of one request.
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) peer: SocketAddr,
    pub(crate) local_port: u16,
}

impl SecurityLog {
    /// Opens (creates, appends to) `path`.
    pub(crate) fn open(path: &Path, dst_ip: String, dropped: Counter) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("tc-security-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    if let Err(e) = file.write_all(line.as_bytes()) {
                        tracing::error!(error = %e, "writing the security event log failed");
                    }
                }
            })?;
        Ok(Self {
            tx,
            dst_ip,
            dropped,
        })
    }

    /// Queues the line for one request.
    pub(crate) fn record(&self, facts: &RequestFacts<'_>) {
        if self
            .tx
            .try_send(line(facts, &self.dst_ip, now_ms()))
            .is_err()
        {
            self.dropped.inc();
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// CEF escaping of an extension value (`\`, `=` and line breaks).
fn ext(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// CEF escaping of a header field (`\` and `|`).
fn hdr(v: &str) -> String {
    v.replace('\\', "\\\\").replace('|', "\\|")
}

/// One CEF line (with the trailing newline).
pub(crate) fn line(f: &RequestFacts<'_>, dst_ip: &str, receipt_ms: u128) -> String {
    let name = hdr(&format!("{} {}", f.method, f.path));
    let request_id = f
        .headers
        .get("x-vcap-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request = match f.query {
        Some(q) if !q.is_empty() => format!("{}?{q}", f.path),
        _ => f.path.to_owned(),
    };
    let src = crate::server::client_address(f.headers, f.peer);
    let src_ip = src
        .parse::<SocketAddr>()
        .map(|s| s.ip().to_string())
        .unwrap_or(src);
    format!(
        "CEF:0|cloud_foundry|loggregator_trafficcontroller|1.0|{name}|{name}|0|rt={receipt_ms} \
         cs1Label=userAuthenticationMechanism cs1=oauth-access-token cs2Label=vcapRequestId cs2={} \
         request={} requestMethod={} src={} spt={} dst={} dpt={}\n",
        ext(request_id),
        ext(&request),
        ext(f.method),
        ext(&src_ip),
        f.peer.port(),
        ext(dst_ip),
        f.local_port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_line() {
        let mut h = HeaderMap::new();
        h.insert("x-vcap-request-id", http::HeaderValue::from_static("req-1"));
        let f = RequestFacts {
            method: "GET",
            path: "/firehose/sub",
            query: Some("filter-type=logs"),
            headers: &h,
            peer: "10.0.0.9:51234".parse().expect("addr"),
            local_port: 8081,
        };
        assert_eq!(
            line(&f, "10.0.0.1", 1700000000123),
            "CEF:0|cloud_foundry|loggregator_trafficcontroller|1.0|GET /firehose/sub|GET /firehose/sub|0|rt=1700000000123 \
             cs1Label=userAuthenticationMechanism cs1=oauth-access-token cs2Label=vcapRequestId cs2=req-1 \
             request=/firehose/sub?filter-type\\=logs requestMethod=GET src=10.0.0.9 spt=51234 dst=10.0.0.1 dpt=8081\n"
        );
        let mut h2 = h.clone();
        h2.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("1.2.3.4, 10.0.0.2"),
        );
        let f = RequestFacts {
            headers: &h2,
            query: None,
            ..f
        };
        assert!(
            line(&f, "ip", 1)
                .contains(" request=/firehose/sub requestMethod=GET src=1.2.3.4 spt=51234 ")
        );
    }
}
