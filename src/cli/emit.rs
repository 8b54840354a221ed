//! `loggregator emit`: logs and metrics into an agent.
//!
//! Logs come from the arguments, or from stdin one envelope per line (`some-program |
//! loggregator emit --source-id APP`); lines are batched as they arrive (up to `--batch-size`,
//! sent as soon as input pauses) and the command exits 0 once everything was accepted. By
//! default envelopes go to the agent's v2 gRPC ingress (`loggregator.v2.Ingress/Send`) over
//! mutual TLS with the development certificates of `loggregator dev`; `--udp` sends v1
//! dropsonde datagrams (one envelope each) instead.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use envelope_proto::events;
use envelope_proto::loggregator_v2::{self as v2, envelope::Message};
use plumbing::backoff::Backoff;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use super::Common;
use super::devdir::ClientTlsArgs;

/// Lines buffered between the stdin reader and the sender; when full the reader waits
/// (policy `Block`): stdin is a pipe, so the producing program is slowed, nothing is lost.
const LINE_QUEUE: usize = 10_000;
/// Attempts to deliver one batch before giving up (the agent may still be starting).
const SEND_ATTEMPTS: u32 = 8;

/// `loggregator emit` options.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    loggregator emit --source-id my-app 'hello world'\n  \
    some-program | loggregator emit --source-id my-app --instance 1\n  \
    loggregator emit --source-id my-app --gauge cpu=12.5:percentage --gauge memory=1048576:bytes\n  \
    loggregator emit --source-id my-app --counter requests:1\n  \
    loggregator emit --udp --source-id my-app --err 'over v1 UDP'")]
pub(crate) struct Args {
    /// Log lines to send, one envelope each. Without any (and without metrics), lines are read
    /// from stdin until EOF.
    #[arg(value_name = "LINE")]
    pub(crate) lines: Vec<String>,
    /// source_id of every envelope (the app GUID for app logs; v1: app_id).
    #[arg(long, value_name = "ID", default_value = "loggregator-emit")]
    pub(crate) source_id: String,
    /// Log source type (v2 tag `source_type`, v1 `source_type`).
    #[arg(long, value_name = "TYPE", default_value = "APP/PROC/WEB")]
    pub(crate) source_type: String,
    /// Instance id (v1 `source_instance`).
    #[arg(long, value_name = "ID", default_value = "0")]
    pub(crate) instance: String,
    /// Send logs as ERR instead of OUT.
    #[arg(long)]
    pub(crate) err: bool,
    /// Gauge metric; repeat to send several metrics in one gauge envelope (cpu, memory, disk,
    /// memory_quota and disk_quota together form a container metric).
    #[arg(long, value_name = "NAME=VALUE[:UNIT]", value_parser = parse_gauge)]
    pub(crate) gauge: Vec<GaugeArg>,
    /// Counter increment, one envelope per flag.
    #[arg(long, value_name = "NAME:DELTA", value_parser = parse_counter)]
    pub(crate) counter: Vec<(String, u64)>,
    /// Event (gRPC only), one envelope per flag.
    #[arg(long, value_name = "TITLE:BODY", value_parser = parse_event)]
    pub(crate) event: Vec<(String, String)>,
    /// Extra tag on every envelope; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tag: Vec<(String, String)>,
    /// Envelope timestamp: nanoseconds since the Unix epoch or RFC 3339 [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    pub(crate) timestamp: Option<i64>,
    /// Agent v2 gRPC address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3458")]
    pub(crate) agent_addr: String,
    /// TLS server name the agent's certificate must carry.
    #[arg(long, value_name = "NAME", default_value = "metron")]
    pub(crate) server_name: String,
    /// Send v1 dropsonde over UDP (one datagram per envelope) instead of gRPC.
    #[arg(long)]
    pub(crate) udp: bool,
    /// Agent v1 UDP address (with --udp).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3457")]
    pub(crate) udp_addr: String,
    /// Maximum envelopes per gRPC batch.
    #[arg(long, value_name = "N", default_value = "100")]
    pub(crate) batch_size: NonZeroUsize,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// One `--gauge` metric.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GaugeArg {
    name: String,
    value: f64,
    unit: String,
}

fn parse_gauge(s: &str) -> Result<GaugeArg, String> {
    let accepted = "expected NAME=VALUE[:UNIT], e.g. cpu=12.5:percentage";
    let (name, rest) = s.split_once('=').ok_or(accepted)?;
    let (value, unit) = rest.split_once(':').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(format!("empty name; {accepted}"));
    }
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number; {accepted}"))?;
    Ok(GaugeArg {
        name: name.to_owned(),
        value,
        unit: unit.to_owned(),
    })
}

fn parse_counter(s: &str) -> Result<(String, u64), String> {
    let accepted = "expected NAME:DELTA with DELTA a non-negative integer, e.g. requests:1";
    let (name, delta) = s.rsplit_once(':').ok_or(accepted)?;
    if name.is_empty() {
        return Err(format!("empty name; {accepted}"));
    }
    let delta = delta
        .parse()
        .map_err(|_| format!("{delta:?} is not a non-negative integer; {accepted}"))?;
    Ok((name.to_owned(), delta))
}

fn parse_event(s: &str) -> Result<(String, String), String> {
    let (title, body) = s
        .split_once(':')
        .ok_or("expected TITLE:BODY, e.g. 'deploy:version 42 rolled out'")?;
    Ok((title.to_owned(), body.to_owned()))
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or("expected KEY=VALUE, e.g. deployment=cf")?;
    if k.is_empty() {
        return Err("empty key; expected KEY=VALUE".to_owned());
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| {
            "expected nanoseconds since the Unix epoch or RFC 3339, e.g. 2026-01-02T03:04:05.5Z"
                .to_owned()
        })
}

/// Runs `loggregator emit`.
pub(crate) async fn main(args: Args) -> anyhow::Result<()> {
    if args.udp && !args.event.is_empty() {
        bail!("--event: v1 over UDP has no event type; send events over gRPC (without --udp)");
    }
    let read_stdin = args.lines.is_empty()
        && args.gauge.is_empty()
        && args.counter.is_empty()
        && args.event.is_empty();
    let mut sender = if args.udp {
        Sender::udp(&args.udp_addr).await?
    } else {
        Sender::grpc(&args)?
    };
    let metrics = metric_envelopes(&args);
    let mut sent = 0usize;
    if !metrics.is_empty() {
        sent += metrics.len();
        sender.send(&args, metrics).await?;
    }
    if !args.lines.is_empty() {
        let logs: Vec<_> = args
            .lines
            .iter()
            .map(|l| log_envelope(&args, Bytes::copy_from_slice(l.as_bytes())))
            .collect();
        for chunk in logs.chunks(args.batch_size.get()) {
            sent += chunk.len();
            sender.send(&args, chunk.to_vec()).await?;
        }
    }
    if read_stdin {
        sent += stream_stdin(&args, &mut sender).await?;
    }
    tracing::info!(envelopes = sent, "sent");
    Ok(())
}

/// Reads stdin line by line into a bounded queue and sends batches as lines arrive.
async fn stream_stdin(args: &Args, sender: &mut Sender) -> anyhow::Result<usize> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(LINE_QUEUE);
    let reader = tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = stdin.read_until(b'\n', &mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if tx.send(Bytes::copy_from_slice(&buf)).await.is_err() {
                return Ok(());
            }
        }
    });
    let mut sent = 0;
    let max = args.batch_size.get();
    let mut lines = Vec::with_capacity(max);
    while rx.recv_many(&mut lines, max).await > 0 {
        let batch: Vec<_> = lines.drain(..).map(|l| log_envelope(args, l)).collect();
        sent += batch.len();
        sender.send(args, batch).await?;
    }
    reader
        .await
        .map_err(|e| anyhow!("stdin reader failed: {e}"))?
        .context("reading stdin")?;
    Ok(sent)
}

fn tags(args: &Args) -> BTreeMap<String, String> {
    args.tag.iter().cloned().collect()
}

fn log_envelope(args: &Args, payload: Bytes) -> v2::Envelope {
    let mut tags = tags(args);
    tags.insert("source_type".to_owned(), args.source_type.clone());
    v2::Envelope {
        timestamp: args
            .timestamp
            .unwrap_or_else(envelope_proto::timestamp::now),
        source_id: args.source_id.clone(),
        instance_id: args.instance.clone(),
        tags,
        message: Some(Message::Log(v2::Log {
            payload,
            r#type: if args.err {
                v2::log::Type::Err as i32
            } else {
                v2::log::Type::Out as i32
            },
        })),
        ..v2::Envelope::default()
    }
}

fn metric_envelopes(args: &Args) -> Vec<v2::Envelope> {
    let timestamp = args
        .timestamp
        .unwrap_or_else(envelope_proto::timestamp::now);
    let envelope = |message| v2::Envelope {
        timestamp,
        source_id: args.source_id.clone(),
        instance_id: args.instance.clone(),
        tags: tags(args),
        message: Some(message),
        ..v2::Envelope::default()
    };
    let mut out = Vec::new();
    if !args.gauge.is_empty() {
        let metrics = args
            .gauge
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    v2::GaugeValue {
                        unit: g.unit.clone(),
                        value: g.value,
                    },
                )
            })
            .collect();
        out.push(envelope(Message::Gauge(v2::Gauge { metrics })));
    }
    for (name, delta) in &args.counter {
        out.push(envelope(Message::Counter(v2::Counter {
            name: name.clone(),
            delta: *delta,
            total: 0,
        })));
    }
    for (title, body) in &args.event {
        out.push(envelope(Message::Event(v2::Event {
            title: title.clone(),
            body: body.clone(),
        })));
    }
    out
}

enum Sender {
    Grpc {
        client: v2::ingress_client::IngressClient<tonic::transport::Channel>,
        addr: String,
    },
    Udp {
        socket: tokio::net::UdpSocket,
        addr: String,
    },
}

impl Sender {
    fn grpc(args: &Args) -> anyhow::Result<Sender> {
        let tls = match args.tls.files()? {
            None => None,
            Some(files) => Some((
                plumbing::tls::client_config(&files)
                    .map_err(|e| anyhow!("client certificate: {e}"))?,
                args.server_name.as_str(),
            )),
        };
        let channel = plumbing::tls::grpc::channel(&args.agent_addr, tls)
            .map_err(|e| anyhow!("--agent-addr: {e}"))?;
        Ok(Sender::Grpc {
            client: v2::ingress_client::IngressClient::new(channel),
            addr: args.agent_addr.clone(),
        })
    }

    async fn udp(addr: &str) -> anyhow::Result<Sender> {
        let target: std::net::SocketAddr = tokio::net::lookup_host(addr)
            .await
            .with_context(|| format!("--udp-addr: cannot resolve {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("--udp-addr: {addr} resolves to nothing"))?;
        let bind: std::net::SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .context("binding a UDP socket")?;
        socket
            .connect(target)
            .await
            .with_context(|| format!("--udp-addr: {addr}"))?;
        Ok(Sender::Udp {
            socket,
            addr: addr.to_owned(),
        })
    }

    async fn send(&mut self, args: &Args, batch: Vec<v2::Envelope>) -> anyhow::Result<()> {
        match self {
            Sender::Grpc { client, addr } => {
                let request = v2::EnvelopeBatch { batch };
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match client.send(request.clone()).await {
                        Ok(_) => return Ok(()),
                        Err(status)
                            if attempt < SEND_ATTEMPTS
                                && status.code() == tonic::Code::Unavailable =>
                        {
                            tracing::debug!(%status, attempt, "agent unavailable, retrying");
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                        Err(status) => {
                            bail!(
                                "sending to the agent at {addr} failed: {}: {}",
                                status.code(),
                                describe_status(&status)
                            )
                        }
                    }
                }
            }
            Sender::Udp { socket, addr } => {
                for v1 in batch.iter().flat_map(|env| to_v1(args, env)) {
                    let bytes = envelope_proto::v1::encode(&v1)
                        .map_err(|e| anyhow!("encoding a v1 envelope: {e}"))?;
                    socket
                        .send(&bytes)
                        .await
                        .with_context(|| format!("sending to {addr}"))?;
                }
                Ok(())
            }
        }
    }
}

fn describe_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The v1 form of an envelope built by this command: a LogMessage (app_id = source id), one
/// ValueMetric per gauge metric, or a CounterEvent. Every v1 envelope carries the tag
/// `source_id`.
fn to_v1(args: &Args, env: &v2::Envelope) -> Vec<events::Envelope> {
    use events::envelope::EventType;
    let mut tags = tags(args);
    tags.insert("source_id".to_owned(), env.source_id.clone());
    let base = |event_type: EventType| events::Envelope {
        origin: Some("loggregator-emit".to_owned()),
        event_type: Some(event_type as i32),
        timestamp: Some(env.timestamp),
        tags: tags.clone(),
        ..events::Envelope::default()
    };
    match &env.message {
        Some(Message::Log(log)) => {
            let mut out = base(EventType::LogMessage);
            out.log_message = Some(events::LogMessage {
                message: Some(log.payload.clone()),
                message_type: Some(if log.r#type == v2::log::Type::Err as i32 {
                    events::log_message::MessageType::Err as i32
                } else {
                    events::log_message::MessageType::Out as i32
                }),
                timestamp: Some(env.timestamp),
                app_id: Some(env.source_id.clone()),
                source_type: Some(args.source_type.clone()),
                source_instance: Some(env.instance_id.clone()),
            });
            vec![out]
        }
        Some(Message::Counter(c)) => {
            let mut out = base(EventType::CounterEvent);
            out.counter_event = Some(events::CounterEvent {
                name: Some(c.name.clone()),
                delta: Some(c.delta),
                total: None,
            });
            vec![out]
        }
        Some(Message::Gauge(g)) => g
            .metrics
            .iter()
            .map(|(name, v)| {
                let mut out = base(EventType::ValueMetric);
                out.value_metric = Some(events::ValueMetric {
                    name: Some(name.clone()),
                    value: Some(v.value),
                    unit: Some(v.unit.clone()),
                });
                out
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_argument_forms() {
        assert_eq!(
            parse_gauge("cpu=12.5:percentage"),
            Ok(GaugeArg {
                name: "cpu".into(),
                value: 12.5,
                unit: "percentage".into()
            })
        );
        assert_eq!(parse_gauge("x=1").map(|g| g.unit), Ok(String::new()));
        assert!(parse_gauge("cpu").is_err());
        assert!(parse_gauge("cpu=abc:x").is_err());
        assert!(parse_gauge("=1").is_err());
    }

    #[test]
    fn counter_event_tag_timestamp_forms() {
        assert_eq!(parse_counter("requests:3"), Ok(("requests".into(), 3)));
        assert!(parse_counter("requests:-1").is_err());
        assert!(parse_counter("requests").is_err());
        assert_eq!(
            parse_event("deploy:v42: done"),
            Ok(("deploy".into(), "v42: done".into()))
        );
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_timestamp("123"), Ok(123));
        assert_eq!(
            parse_timestamp("2016-07-19T23:08:12.12Z"),
            Ok(1_468_969_692_120_000_000)
        );
        assert!(parse_timestamp("yesterday").is_err());
    }
}
