//! `loggregator logs APP_GUID`: an app's logs in the `cf logs` format.
//!
//! Following (the default) has no gap and no duplicates between the recent logs and the live
//! stream: the WebSocket `/apps/{guid}/stream` is opened first and read into a queue, then
//! `/apps/{guid}/recentlogs` is fetched and printed (sorted by timestamp), then the queued and
//! live envelopes are printed, skipping any already printed. Printed envelopes are remembered
//! by (timestamp, source type, instance, message type, payload hash) in a bounded set.
//! A lost stream is reopened with backoff (said on stderr), and the recent logs fetched again
//! fill the gap. When they cannot (the window is full and none of it reaches back to the last
//! line printed before the break), stderr says that lines between those two times may be
//! missing instead of leaving a silent hole.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::io::IsTerminal as _;
use std::time::Duration;

use envelope_proto::events::{Envelope, LogMessage, log_message};
use plumbing::backoff::Backoff;

use super::out::{self, Written};
use super::tc::{self, Endpoint, WsEvent};
use super::{Common, cflog, describe, logcache};

/// How many printed envelopes are remembered for de-duplication.
const SEEN_CAPACITY: usize = 20_000;
/// Recent logs a doppler keeps per app by default (`--max-retained-logs`): a reconnect whose
/// recent logs hold at least this many, none of them printed before, may have missed lines.
const RECENT_WINDOW: usize = 100;

/// `loggregator logs` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// The app's GUID (v1 app id, v2 source id).
    #[arg(value_name = "APP_GUID")]
    pub(crate) app_guid: String,
    /// Print the recent logs and exit instead of following the live stream.
    #[arg(long)]
    pub(crate) recent: bool,
    /// Print one JSON object per envelope (the v2 form `/v2/read` uses) instead of the cf format.
    #[arg(long)]
    pub(crate) json: bool,
    /// Traffic controller base URL (http:// or ws://).
    #[arg(long, value_name = "URL", env = "LOGGREGATOR_TC_URL", default_value = tc::DEFAULT_URL)]
    pub(crate) tc_url: String,
    /// OAuth token, sent as `Authorization: bearer <token>` (not needed with `loggregator dev`).
    #[arg(long, value_name = "TOKEN", env = "CF_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Ask the traffic controller for at most this many recent logs [default: the server's].
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Read from Log Cache at this URL (http://HOST:PORT, e.g. `loggregator dev`'s
    /// http://127.0.0.1:8083) as the cf CLI does, instead of the traffic controller.
    #[arg(long, value_name = "URL", env = "LOGGREGATOR_LOG_CACHE_URL")]
    pub(crate) log_cache_url: Option<String>,
    /// With --log-cache-url: show followed lines once they are this old, as the cf CLI's 2 s
    /// walk delay does (lines arriving late are still shown in order).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_walk_delay)]
    pub(crate) walk_delay: Duration,
    #[command(flatten)]
    pub(crate) common: Common,
}

fn parse_walk_delay(s: &str) -> Result<Duration, String> {
    plumbing::env::parse_go_duration(s)
        .map_err(|e| format!("{e}; expected a Go duration such as 2s or 500ms"))
}

/// Runs `loggregator logs`.
pub(crate) async fn main(args: Args) -> anyhow::Result<()> {
    let color = cflog::color_enabled(
        std::env::var("CF_COLOR").ok().as_deref(),
        std::io::stdout().is_terminal(),
    );
    if let Some(url) = &args.log_cache_url {
        let lc = logcache::LogCache::connect(url, args.token.as_deref()).await?;
        let printer = logcache::Printer {
            json: args.json,
            color,
        };
        return logcache::run(&lc, &args.app_guid, &printer, args.recent, args.walk_delay).await;
    }
    let endpoint = Endpoint::parse(&args.tc_url)?;
    let mut printer = Printer {
        json: args.json,
        color,
        seen: Seen::new(SEEN_CAPACITY),
        printed_up_to: None,
    };
    if args.recent {
        let recent = fetch_recent(&endpoint, &args).await?;
        printer.print_recent(&recent)?;
        return Ok(());
    }
    let stream_url = format!("{}/apps/{}/stream", endpoint.ws, args.app_guid);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut connected_before = false;
    loop {
        let reason = match tc::open_stream(&stream_url, args.token.as_deref()).await {
            Ok(rx) => {
                if connected_before {
                    out::notice(&format!("reconnected to {stream_url}"));
                }
                connected_before = true;
                backoff.reset();
                match follow(&endpoint, &args, &mut printer, rx).await? {
                    Flow::Ended(reason) => reason,
                    Flow::OutputClosed => return Ok(()),
                }
            }
            Err(e) if !connected_before => return Err(e),
            Err(e) => format!("{e:#}"),
        };
        let delay = backoff.next_delay();
        out::notice(&format!(
            "lost the log stream ({reason}); reconnecting in {:.1}s",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    }
}

enum Flow {
    /// The stream ended for this reason; reconnect.
    Ended(String),
    /// stdout was closed; stop.
    OutputClosed,
}

async fn follow(
    endpoint: &Endpoint,
    args: &Args,
    printer: &mut Printer,
    mut rx: tokio::sync::mpsc::Receiver<WsEvent>,
) -> anyhow::Result<Flow> {
    match fetch_recent(endpoint, args).await {
        Ok(recent) => {
            let window = args.limit.map_or(RECENT_WINDOW, |n| n as usize);
            if let Some(notice) = gap_notice(printer.printed_up_to, &recent, window) {
                out::notice(&notice);
            }
            if printer.print_recent(&recent)? == Written::Closed {
                return Ok(Flow::OutputClosed);
            }
        }
        Err(e) => out::notice(&format!("recent logs unavailable: {e:#}")),
    }
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            WsEvent::Frame(frame) => {
                let Ok(env) = envelope_proto::v1::decode(&frame) else {
                    tracing::debug!("undecodable frame skipped");
                    continue;
                };
                printer.render(&mut text, &env, false);
                // Write what has queued up in one go, then flush.
                while text.len() < 64 * 1024 {
                    let Ok(WsEvent::Frame(frame)) = rx.try_recv().map_err(|_| ()) else {
                        break;
                    };
                    if let Ok(env) = envelope_proto::v1::decode(&frame) {
                        printer.render(&mut text, &env, false);
                    }
                }
                if !text.is_empty() && out::stdout(&text)? == Written::Closed {
                    return Ok(Flow::OutputClosed);
                }
                text.clear();
            }
            WsEvent::Ended(reason) => return Ok(Flow::Ended(reason)),
        }
    }
    Ok(Flow::Ended("connection closed".to_owned()))
}

async fn fetch_recent(endpoint: &Endpoint, args: &Args) -> anyhow::Result<Vec<Envelope>> {
    let mut url = format!("{}/apps/{}/recentlogs", endpoint.http, args.app_guid);
    if let Some(limit) = args.limit {
        url.push_str(&format!("?limit={limit}"));
    }
    let parts = tc::get_multipart(&url, args.token.as_deref()).await?;
    let mut envelopes: Vec<Envelope> = parts
        .iter()
        .filter_map(|p| envelope_proto::v1::decode(p).ok())
        .filter(envelope_proto::v1::is_log)
        .collect();
    envelopes.sort_by_key(log_timestamp);
    Ok(envelopes)
}

/// The time shown for a log: the LogMessage's own timestamp, else the envelope's.
fn log_timestamp(env: &Envelope) -> i64 {
    env.log_message
        .as_ref()
        .and_then(|m| m.timestamp)
        .or(env.timestamp)
        .unwrap_or_default()
}

struct Printer {
    json: bool,
    color: bool,
    seen: Seen,
    /// Timestamp of the newest log printed so far.
    printed_up_to: Option<i64>,
}

/// After a reconnect: the notice to print when the recent logs may not cover the break. They
/// cover it when one of them is at or before the newest line printed earlier, or when they do
/// not fill the window (nothing was evicted). Otherwise an unknown number of lines between the
/// two times may be missing.
fn gap_notice(printed_up_to: Option<i64>, recent: &[Envelope], window: usize) -> Option<String> {
    let last = printed_up_to?;
    let oldest = recent.iter().map(log_timestamp).min()?;
    if oldest <= last || recent.len() < window {
        return None;
    }
    let (mut from, mut to) = (String::new(), String::new());
    cflog::write_timestamp(&mut from, last, &chrono::Local);
    cflog::write_timestamp(&mut to, oldest, &chrono::Local);
    Some(format!(
        "logs between {from} and {to} may be missing: the traffic controller's recent logs ({} lines) no longer reach back to the last line printed before the reconnect",
        recent.len()
    ))
}

impl Printer {
    fn print_recent(&mut self, recent: &[Envelope]) -> anyhow::Result<Written> {
        let mut text = String::new();
        for env in recent {
            self.render(&mut text, env, true);
        }
        if text.is_empty() {
            return Ok(Written::Ok);
        }
        Ok(out::stdout(&text)?)
    }

    /// Appends `env` to `text` unless it is not a log or was printed already.
    fn render(&mut self, text: &mut String, env: &Envelope, from_recent: bool) {
        let Some(m) = env
            .log_message
            .as_ref()
            .filter(|_| envelope_proto::v1::is_log(env))
        else {
            return;
        };
        let timestamp = log_timestamp(env);
        if !self.seen.insert(key(m, timestamp), timestamp, from_recent) {
            return;
        }
        self.printed_up_to = Some(self.printed_up_to.map_or(timestamp, |t| t.max(timestamp)));
        if self.json {
            describe::json_line(text, env);
            text.push('\n');
            return;
        }
        let line = cflog::LogLine {
            timestamp,
            source_type: m.source_type.as_deref().unwrap_or_default(),
            instance: m.source_instance.as_deref().unwrap_or_default(),
            is_err: m.message_type == Some(log_message::MessageType::Err as i32),
            payload: m.message.as_deref().unwrap_or_default(),
        };
        cflog::format_local(text, &line, self.color);
    }
}

fn key(m: &LogMessage, timestamp: i64) -> u64 {
    let mut h = DefaultHasher::new();
    timestamp.hash(&mut h);
    m.source_type.hash(&mut h);
    m.source_instance.hash(&mut h);
    m.message_type.hash(&mut h);
    m.message.hash(&mut h);
    h.finish()
}

/// Keys of printed envelopes, oldest evicted first.
struct Seen {
    set: HashSet<u64>,
    order: VecDeque<(u64, i64)>,
    capacity: usize,
    /// Newest timestamp among evicted keys: recent logs at or before it may have been printed
    /// and can no longer be recognised, so they are skipped.
    evicted_up_to: Option<i64>,
}

impl Seen {
    fn new(capacity: usize) -> Seen {
        Seen {
            set: HashSet::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            evicted_up_to: None,
        }
    }

    /// Records `key`; false when it was printed already (or, for recent logs, may have been).
    fn insert(&mut self, key: u64, timestamp: i64, from_recent: bool) -> bool {
        if from_recent && self.evicted_up_to.is_some_and(|t| timestamp <= t) {
            return false;
        }
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back((key, timestamp));
        if self.order.len() > self.capacity
            && let Some((old, ts)) = self.order.pop_front()
        {
            self.set.remove(&old);
            self.evicted_up_to = Some(self.evicted_up_to.map_or(ts, |t| t.max(ts)));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_skips_duplicates_and_is_bounded() {
        let mut seen = Seen::new(2);
        assert!(seen.insert(1, 10, true));
        assert!(!seen.insert(1, 10, false));
        assert!(seen.insert(2, 20, false));
        assert!(seen.insert(3, 30, false));
        assert_eq!(seen.set.len(), 2);
        // Key 1 was evicted: a live copy is printed again, a recent one at or before the
        // evicted timestamp is not.
        assert!(!seen.insert(1, 10, true));
        assert!(seen.insert(1, 10, false));
    }

    fn log_at(ts: i64) -> Envelope {
        Envelope {
            event_type: Some(envelope_proto::events::envelope::EventType::LogMessage as i32),
            log_message: Some(LogMessage {
                message: Some(bytes::Bytes::from_static(b"x")),
                message_type: Some(1),
                timestamp: Some(ts),
                ..LogMessage::default()
            }),
            ..Envelope::default()
        }
    }

    #[test]
    fn a_reconnect_whose_full_window_starts_after_the_last_line_reports_a_gap() {
        let full: Vec<Envelope> = (0..100).map(|i| log_at(2_000_000_000 + i)).collect();
        // Nothing printed before: nothing to miss.
        assert_eq!(gap_notice(None, &full, 100), None);
        // The window reaches back to the last line printed: covered.
        assert_eq!(gap_notice(Some(2_000_000_050), &full, 100), None);
        // The window is not full: nothing was evicted, covered.
        assert_eq!(gap_notice(Some(1_000_000_000), &full[..40], 100), None);
        // Full and newer than the last line: lines in between may be missing.
        let notice = gap_notice(Some(1_000_000_000), &full, 100).expect("a gap");
        assert!(notice.starts_with("logs between "), "{notice}");
        assert!(notice.contains("may be missing"), "{notice}");
        assert!(notice.contains("(100 lines)"), "{notice}");
    }

    #[test]
    fn printer_dedupes_recent_then_live() {
        let mut p = Printer {
            json: false,
            color: false,
            seen: Seen::new(10),
            printed_up_to: None,
        };
        let env = Envelope {
            origin: Some("o".into()),
            event_type: Some(envelope_proto::events::envelope::EventType::LogMessage as i32),
            timestamp: Some(5),
            log_message: Some(LogMessage {
                message: Some(bytes::Bytes::from_static(b"hi")),
                message_type: Some(1),
                timestamp: Some(1_000_000_000),
                app_id: Some("a".into()),
                source_type: Some("APP".into()),
                source_instance: Some("0".into()),
            }),
            ..Envelope::default()
        };
        let mut text = String::new();
        p.render(&mut text, &env, true);
        assert!(text.ends_with("[APP/0] OUT hi\n"), "{text:?}");
        text.clear();
        p.render(&mut text, &env, false);
        assert!(text.is_empty());
    }
}
