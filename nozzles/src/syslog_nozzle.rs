//! `nozzle syslog`: the firehose (traffic controller WebSocket, v1) to a
//! syslog server, as RFC 5424 with octet counting over TCP or TLS, or as
//! JSON lines.
//!
//! Pipeline: [`crate::firehose::websocket`] -> [`Feed`](crate::firehose::Feed) (bounded
//! drop-oldest, "missed N") -> event-type filter -> v1 to v2 conversion ->
//! RFC 5424 ([`crate::syslog::rfc5424`]) or JSON -> one persistent syslog
//! connection. When the syslog server goes away the writer retries with
//! backoff while the firehose keeps being read into the feed, so the
//! subscription survives; what does not fit in the feed is counted.

pub mod cli;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::events::envelope::EventType;
use plumbing::backoff::Backoff;
use plumbing::metrics::{Counter, Registry};
use plumbing::shutdown::Shutdown;
use rustls::ClientConfig;

use crate::Error;
pub use crate::admin::Listeners;
use crate::drain::writer::SyslogConn;
use crate::firehose::websocket::{self, FilterType, WsConfig};
use crate::firehose::{DEFAULT_BUFFER, FirehoseMetrics};
use crate::syslog::framing::Framing;
use crate::syslog::rfc5424::{Encoded, Rfc5424Encoder};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 5424 with octet counting.
    Rfc5424,
    /// One v2 protojson envelope per line.
    Json,
}

/// Event types (v1 names) forwarded.
pub const EVENT_NAMES: [&str; 6] = [
    "LogMessage",
    "ValueMetric",
    "CounterEvent",
    "ContainerMetric",
    "HttpStartStop",
    "Error",
];

/// Parses `--events` (comma separated v1 event type names).
pub fn parse_events(list: &str) -> Result<BTreeSet<i32>, Error> {
    let mut out = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = EventType::from_str_name(name).ok_or_else(|| {
            Error::Config(format!(
                "events: unknown event type {name:?}; accepted values are {}",
                EVENT_NAMES.join(", ")
            ))
        })?;
        out.insert(t as i32);
    }
    if out.is_empty() {
        return Err(Error::Config(
            "events: at least one event type is required".into(),
        ));
    }
    Ok(out)
}

/// Validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Firehose connection.
    pub firehose: WsConfig,
    /// Event types forwarded.
    pub events: BTreeSet<i32>,
    /// Syslog server `host:port`.
    pub syslog_addr: String,
    /// TLS to the syslog server (`tcp+tls`); `None` = plain TCP.
    pub syslog_tls: Option<(Arc<ClientConfig>, String)>,
    /// Output format.
    pub format: Format,
    /// HOSTNAME for envelopes without CF name tags.
    pub hostname: String,
    /// Feed capacity.
    pub buffer_size: usize,
    /// Metrics registry.
    pub registry: Registry,
    /// Shutdown grace.
    pub grace: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("firehose", &self.firehose)
            .field("syslog_addr", &self.syslog_addr)
            .field("format", &self.format)
            .finish()
    }
}

impl Config {
    /// A test configuration: firehose at `tc_url`, logs only, plain TCP to `syslog_addr`.
    pub fn for_tests(tc_url: &str, subscription_id: &str, syslog_addr: &str) -> Self {
        Self {
            firehose: WsConfig::new(tc_url, subscription_id, FilterType::Logs),
            events: [EventType::LogMessage as i32].into_iter().collect(),
            syslog_addr: syslog_addr.into(),
            syslog_tls: None,
            format: Format::Rfc5424,
            hostname: "loggregator".into(),
            buffer_size: DEFAULT_BUFFER,
            registry: Registry::new(),
            grace: Duration::from_secs(1),
        }
    }
}

/// The TC filter that covers `events`.
pub fn filter_for(events: &BTreeSet<i32>) -> FilterType {
    let log = EventType::LogMessage as i32;
    if events.len() == 1 && events.contains(&log) {
        FilterType::Logs
    } else if !events.contains(&log) {
        FilterType::Metrics
    } else {
        FilterType::All
    }
}

#[derive(Debug, Clone)]
struct Metrics {
    egress: Counter,
    filtered: Counter,
    format_errors: Counter,
    write_errors: Counter,
}

/// Runs the nozzle until `shutdown` triggers.
pub async fn run(config: Config, listeners: Listeners, shutdown: Shutdown) -> Result<(), Error> {
    let fm = FirehoseMetrics::new(&config.registry, "syslog");
    let m = Metrics {
        egress: config.registry.counter(
            "syslog_nozzle_egress",
            "Messages written to the syslog server",
            &[],
        ),
        filtered: config.registry.counter(
            "syslog_nozzle_filtered",
            "Envelopes not selected by --events",
            &[],
        ),
        format_errors: config.registry.counter(
            "syslog_nozzle_format_errors",
            "Envelopes not formattable",
            &[],
        ),
        write_errors: config.registry.counter(
            "syslog_nozzle_write_errors",
            "Failed syslog writes",
            &[],
        ),
    };
    listeners.serve_admin(&config.registry, &shutdown);
    let (feed, cancel) =
        websocket::spawn(config.firehose.clone(), config.buffer_size, fm, &shutdown);

    let tls = match &config.syslog_tls {
        Some((cfg, name)) => Some((
            cfg.clone(),
            crate::tlsutil::server_name(name).map_err(|e| Error::Tls(e.to_string()))?,
        )),
        None => None,
    };
    let framing = match config.format {
        Format::Rfc5424 => Framing::OctetCounting,
        Format::Json => Framing::NewlineDelimited,
    };
    let mut conn = SyslogConn::new(config.syslog_addr.clone(), tls).with_framing(framing);
    let encoder = Rfc5424Encoder::new(&config.hostname, false);
    let mut batch = Vec::with_capacity(1000);
    let mut encoded = Encoded::new();
    let mut json_lines: Vec<Vec<u8>> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        batch.clear();
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = feed.next_batch(&mut batch, 1000) => n,
        };
        if n == 0 {
            break;
        }
        encoded.clear();
        json_lines.clear();
        for env in &batch {
            if !env.event_type.is_some_and(|t| config.events.contains(&t)) {
                m.filtered.inc();
                continue;
            }
            let v2 = envelope_proto::convert::to_v2(env, true);
            match config.format {
                Format::Rfc5424 => {
                    if let Err(e) = encoder.encode(&v2, &mut encoded) {
                        m.format_errors.inc();
                        tracing::debug!(error = %e, "envelope not formattable");
                    }
                }
                Format::Json => {
                    let mut line = envelope_proto::json::envelope_to_json(&v2).into_bytes();
                    line.push(b'\n');
                    json_lines.push(line);
                }
            }
        }
        let msgs: Vec<&[u8]> = match config.format {
            Format::Rfc5424 => encoded.iter().collect(),
            Format::Json => json_lines.iter().map(Vec::as_slice).collect(),
        };
        if msgs.is_empty() {
            continue;
        }
        // Retry until written or shut down; the feed buffers meanwhile.
        loop {
            match conn.write(&msgs).await {
                Ok(()) => {
                    m.egress.add(msgs.len() as u64);
                    backoff.reset();
                    break;
                }
                Err(f) => {
                    m.write_errors.inc();
                    tracing::warn!(addr = %config.syslog_addr, reason = %f.reason, "syslog write failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
    cancel.cancel();
    conn.close();
    shutdown.drain(config.grace).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_filter_mapping() {
        let e = parse_events("LogMessage").expect("valid");
        assert_eq!(filter_for(&e), FilterType::Logs);
        let e = parse_events("ValueMetric, CounterEvent").expect("valid");
        assert_eq!(filter_for(&e), FilterType::Metrics);
        let e = parse_events("LogMessage,HttpStartStop").expect("valid");
        assert_eq!(filter_for(&e), FilterType::All);
        assert!(parse_events("Nope").is_err());
        assert!(parse_events("").is_err());
    }
}
