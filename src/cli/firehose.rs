//! `loggregator firehose`: the traffic controller's firehose (`/firehose/{subscription_id}`).
//!
//! Consumers sharing a subscription id split the firehose; different ids each get all of it.
//! Output: one readable line per envelope, `--json` one JSON object per envelope, or with
//! `--stats` only a line per second with the rate and the losses the server reported in the
//! stream (rate-control warnings: the `LGR` log message and the
//! `TruncatingBuffer.DroppedMessages` counter).

use std::time::{Duration, Instant};

use envelope_proto::events::Envelope;
use envelope_proto::events::envelope::EventType;
use plumbing::backoff::Backoff;

use super::out::{self, Written};
use super::tc::{self, Endpoint, WsEvent};
use super::{Common, describe};

/// Which envelopes the traffic controller sends (`filter-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Filter {
    /// Log messages only.
    Logs,
    /// Everything but log messages.
    Metrics,
}

/// `loggregator firehose` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Subscription id: consumers with the same id share the firehose between them.
    #[arg(long, value_name = "ID", default_value = "loggregator-cli")]
    pub(crate) subscription_id: String,
    /// Only logs or only metrics [default: everything].
    #[arg(long, value_enum, value_name = "FILTER")]
    pub(crate) filter: Option<Filter>,
    /// Print one JSON object per envelope (the v2 form `/v2/read` uses).
    #[arg(long, conflicts_with = "stats")]
    pub(crate) json: bool,
    /// Print only a line per second: envelopes/s and the drops reported by rate-control
    /// warnings, instead of the envelopes.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Traffic controller base URL (http:// or ws://).
    #[arg(long, value_name = "URL", env = "LOGGREGATOR_TC_URL", default_value = tc::DEFAULT_URL)]
    pub(crate) tc_url: String,
    /// OAuth token with the `doppler.firehose` scope, sent as `Authorization: bearer <token>`
    /// (not needed with `loggregator dev`).
    #[arg(long, value_name = "TOKEN", env = "CF_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// Runs `loggregator firehose`.
pub(crate) async fn main(args: Args) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.tc_url)?;
    let filter = match args.filter {
        None => "",
        Some(Filter::Logs) => "filter-type=logs",
        Some(Filter::Metrics) => "filter-type=metrics",
    };
    let url = format!("{}/firehose/{}?{filter}", endpoint.ws, args.subscription_id);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut connected_before = false;
    let mut stats = Stats::new();
    loop {
        let reason = match tc::open_stream(&url, args.token.as_deref()).await {
            Ok(rx) => {
                if connected_before {
                    out::notice(&format!("reconnected to {url}"));
                }
                connected_before = true;
                backoff.reset();
                match read(&args, rx, &mut stats).await? {
                    Some(reason) => reason,
                    None => return Ok(()),
                }
            }
            Err(e) if !connected_before => return Err(e),
            Err(e) => format!("{e:#}"),
        };
        let delay = backoff.next_delay();
        out::notice(&format!(
            "lost the firehose ({reason}); reconnecting in {:.1}s",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    }
}

/// Reads until the stream ends (`Some(reason)`) or stdout is closed (`None`).
async fn read(
    args: &Args,
    mut rx: tokio::sync::mpsc::Receiver<WsEvent>,
    stats: &mut Stats,
) -> anyhow::Result<Option<String>> {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut text = String::new();
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else {
                    return Ok(Some("connection closed".to_owned()));
                };
                let frame = match event {
                    WsEvent::Frame(frame) => frame,
                    WsEvent::Ended(reason) => return Ok(Some(reason)),
                };
                handle(args, &frame, stats, &mut text);
                while text.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(WsEvent::Frame(frame)) => handle(args, &frame, stats, &mut text),
                        Ok(WsEvent::Ended(reason)) => {
                            if !text.is_empty() && out::stdout(&text)? == Written::Closed {
                                return Ok(None);
                            }
                            return Ok(Some(reason));
                        }
                        Err(_) => break,
                    }
                }
                if !text.is_empty() && out::stdout(&text)? == Written::Closed {
                    return Ok(None);
                }
                text.clear();
            }
            _ = ticker.tick(), if args.stats => {
                let line = stats.take_line();
                if out::stdout(&line)? == Written::Closed {
                    return Ok(None);
                }
            }
        }
    }
}

fn handle(args: &Args, frame: &[u8], stats: &mut Stats, text: &mut String) {
    let Ok(env) = envelope_proto::v1::decode(frame) else {
        stats.undecodable += 1;
        return;
    };
    stats.observe(&env);
    if args.stats {
        return;
    }
    if args.json {
        describe::json_line(text, &env);
    } else {
        describe::one_line(text, &env);
    }
    text.push('\n');
}

/// Per-interval and total counts for `--stats`.
#[derive(Debug)]
struct Stats {
    started: Instant,
    last: Instant,
    envelopes: u64,
    total: u64,
    /// Drops reported by `TruncatingBuffer.DroppedMessages` counter deltas.
    counter_drops: u64,
    /// Drops reported in the text of LGR warning log messages.
    log_drops: u64,
    total_drops: u64,
    warnings: u64,
    total_warnings: u64,
    undecodable: u64,
}

impl Stats {
    fn new() -> Stats {
        let now = Instant::now();
        Stats {
            started: now,
            last: now,
            envelopes: 0,
            total: 0,
            counter_drops: 0,
            log_drops: 0,
            total_drops: 0,
            warnings: 0,
            total_warnings: 0,
            undecodable: 0,
        }
    }

    fn observe(&mut self, env: &Envelope) {
        self.envelopes += 1;
        match warning(env) {
            Some(Warning::Counter(n)) => {
                self.counter_drops += n;
                self.warnings += 1;
            }
            Some(Warning::Log(n)) => {
                self.log_drops += n;
                self.warnings += 1;
            }
            None => {}
        }
    }

    /// The stats line for the interval since the last call, and a reset of the interval.
    fn take_line(&mut self) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64().max(1e-3);
        // An unfiltered subscription gets both forms of each warning: count the larger.
        let drops = self.counter_drops.max(self.log_drops);
        self.total += self.envelopes;
        self.total_drops += drops;
        self.total_warnings += self.warnings;
        let line = format!(
            "{:>6.0}s  {:>10.0} envelopes/s  total {}  dropped {} (total {})  rate-control warnings {} (total {})  undecodable {}\n",
            now.duration_since(self.started).as_secs_f64(),
            self.envelopes as f64 / secs,
            self.total,
            drops,
            self.total_drops,
            self.warnings,
            self.total_warnings,
            self.undecodable,
        );
        self.last = now;
        self.envelopes = 0;
        self.counter_drops = 0;
        self.log_drops = 0;
        self.warnings = 0;
        line
    }
}

/// A rate-control warning found in the stream, with the number of dropped envelopes.
#[derive(Debug, PartialEq, Eq)]
enum Warning {
    /// `TruncatingBuffer.DroppedMessages` counter with this delta.
    Counter(u64),
    /// LGR ERR log message `Log message output is too high. N messages dropped ...`.
    Log(u64),
}

fn warning(env: &Envelope) -> Option<Warning> {
    match env.event_type.and_then(|t| EventType::try_from(t).ok())? {
        EventType::CounterEvent => {
            let c = env.counter_event.as_ref()?;
            (c.name.as_deref() == Some("TruncatingBuffer.DroppedMessages"))
                .then(|| Warning::Counter(c.delta.unwrap_or_default()))
        }
        EventType::LogMessage => {
            let m = env.log_message.as_ref()?;
            if m.source_type.as_deref() != Some("LGR") {
                return None;
            }
            let text = std::str::from_utf8(m.message.as_deref()?).ok()?;
            let rest = text.strip_prefix("Log message output is too high. ")?;
            let n = rest.split(' ').next()?.parse().ok()?;
            Some(Warning::Log(n))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use envelope_proto::events::{CounterEvent, LogMessage};

    #[test]
    fn recognises_both_warning_forms() {
        let log = Envelope {
            event_type: Some(EventType::LogMessage as i32),
            log_message: Some(LogMessage {
                message: Some(Bytes::from_static(
                    b"Log message output is too high. 42 messages dropped (Total 99 messages dropped) from DopplerServer to 127.0.0.1:1.",
                )),
                message_type: Some(2),
                source_type: Some("LGR".into()),
                ..LogMessage::default()
            }),
            ..Envelope::default()
        };
        assert_eq!(warning(&log), Some(Warning::Log(42)));
        let counter = Envelope {
            event_type: Some(EventType::CounterEvent as i32),
            counter_event: Some(CounterEvent {
                name: Some("TruncatingBuffer.DroppedMessages".into()),
                delta: Some(42),
                total: Some(99),
            }),
            ..Envelope::default()
        };
        assert_eq!(warning(&counter), Some(Warning::Counter(42)));
        let mut s = Stats::new();
        s.observe(&log);
        s.observe(&counter);
        let line = s.take_line();
        assert!(line.contains("dropped 42 (total 42)"), "{line}");
        assert!(line.contains("rate-control warnings 2 (total 2)"), "{line}");
    }
}
