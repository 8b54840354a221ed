//! `loggregator logs --log-cache-url URL`: an app's logs read from Log Cache the way the cf CLI
//! reads them (log-cache-reference §1).
//!
//! - `/api/v1/info` first: the version must be semver >= 2.0.0 (the `/api/v1` paths).
//! - Recent logs: `GET /api/v1/read/<guid>?descending=true&envelope_types=LOG&limit=1000&
//!   start_time=<Go zero time>`, halving `limit` on 429 as the CLI does, printed oldest first.
//! - Following: after the recent logs, a walk from just after the newest line printed
//!   (`start_time = last + 1`, so there is neither a gap nor a duplicate), showing only lines
//!   at least `--walk-delay` old (the CLI's 2 s: lines from several nodes settle), asking again
//!   at once after a page and after 250 ms after an empty one. An error is retried 5 times
//!   250 ms apart, then reported.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::cflog;
use super::out::{self, Written};
use super::tc::authorization;

/// Go's zero `time.Time` in nanoseconds, which the cf CLI sends as "from the beginning".
pub(crate) const GO_ZERO_TIME: i64 = -6_795_364_578_871_345_152;
/// Most lines `--recent` asks for (the CLI's limit).
const RECENT_LIMIT: u32 = 1000;
/// Pause after an empty walk page.
const EMPTY_PAUSE: Duration = Duration::from_millis(250);
/// Retries of a failed walk request before giving up.
const RETRIES: u32 = 5;

/// One Log Cache endpoint and the caller's token.
pub(crate) struct LogCache {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// A log line as read from Log Cache's JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) timestamp: i64,
    pub(crate) source_type: String,
    pub(crate) instance: String,
    pub(crate) is_err: bool,
    pub(crate) payload: Vec<u8>,
    /// The envelope's JSON (for `--json`).
    pub(crate) json: Value,
}

impl LogCache {
    /// Checks `url` (`http://host:port`; the API sits at the root of its host) and the server's
    /// `/api/v1/info`.
    pub(crate) async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<LogCache> {
        let base = url.trim_end_matches('/');
        let Some(rest) = base.strip_prefix("http://") else {
            bail!(
                "--log-cache-url: {url}: accepted form: http://HOST:PORT (TLS is not supported by this client)"
            );
        };
        if rest.is_empty() || rest.contains('/') {
            bail!(
                "--log-cache-url: {url}: accepted form: http://HOST:PORT (Log Cache serves its API at the root)"
            );
        }
        let lc = LogCache {
            base: base.to_owned(),
            token: token.map(str::to_owned),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let (status, body) = lc.get("/api/v1/info").await?;
        if status != 200 {
            bail!(
                "{}/api/v1/info: unexpected status code {status}: this is not a Log Cache 2.0 or later",
                lc.base
            );
        }
        let info: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{}/api/v1/info: not JSON", lc.base))?;
        let version = info["version"].as_str().unwrap_or_default();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major.is_none_or(|m| m < 2) || version.split('.').count() != 3 {
            bail!(
                "{}/api/v1/info: version {version:?} is not semver 2.0.0 or later",
                lc.base
            );
        }
        Ok(lc)
    }

    async fn get(&self, path_and_query: &str) -> anyhow::Result<(u16, Bytes)> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = http::Request::get(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, authorization(token));
        }
        let request = request
            .header(
                http::header::USER_AGENT,
                concat!("loggregator/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| anyhow!("{url}: {e}"))?;
        let response = self.client.request(request).await.map_err(|e| {
            anyhow!("cannot reach Log Cache at {url}: {e} (is `loggregator dev` running? see --log-cache-url)")
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{url}: reading the answer"))?
            .to_bytes();
        Ok((status, body))
    }

    /// One read; `Err` carries the CLI's wording for a non-200 answer.
    async fn read(&self, guid: &str, query: &str) -> anyhow::Result<Vec<Line>> {
        let path = format!("/api/v1/read/{guid}?{query}");
        let (status, body) = self.get(&path).await?;
        if status != 200 {
            bail!(
                "Failed to retrieve logs from Log Cache: unexpected status code {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        parse_batch(&body).with_context(|| format!("{}{path}", self.base))
    }

    /// The recent logs, oldest first (the CLI's request, `limit` halved on 429).
    pub(crate) async fn recent(&self, guid: &str) -> anyhow::Result<Vec<Line>> {
        let mut limit = RECENT_LIMIT;
        loop {
            let query = format!(
                "descending=true&envelope_types=LOG&limit={limit}&start_time={GO_ZERO_TIME}"
            );
            match self.read(guid, &query).await {
                Ok(mut lines) => {
                    lines.reverse();
                    return Ok(lines);
                }
                Err(e) if e.to_string().contains("unexpected status code 429") && limit > 1 => {
                    limit /= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `{"envelopes":{"batch":[...]}}` into log lines (other envelope types skipped). int64 fields
/// are accepted as strings or numbers, as protojson readers do.
pub(crate) fn parse_batch(body: &[u8]) -> anyhow::Result<Vec<Line>> {
    let v: Value = serde_json::from_slice(body).context("answer is not JSON")?;
    let batch = v["envelopes"]["batch"]
        .as_array()
        .ok_or_else(|| anyhow!("answer has no envelopes.batch"))?;
    let mut out = Vec::with_capacity(batch.len());
    for e in batch {
        let Some(log) = e.get("log") else {
            continue;
        };
        let timestamp = match &e["timestamp"] {
            Value::String(s) => s.parse().unwrap_or_default(),
            Value::Number(n) => n.as_i64().unwrap_or_default(),
            _ => 0,
        };
        let payload = log["payload"]
            .as_str()
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .unwrap_or_default();
        out.push(Line {
            timestamp,
            source_type: e["tags"]["source_type"].as_str().unwrap_or("").to_owned(),
            instance: e["instance_id"].as_str().unwrap_or("").to_owned(),
            is_err: log["type"] == "ERR" || log["type"] == 1,
            payload,
            json: e.clone(),
        });
    }
    Ok(out)
}

/// How lines are printed.
pub(crate) struct Printer {
    pub(crate) json: bool,
    pub(crate) color: bool,
}

impl Printer {
    fn print(&self, lines: &[Line]) -> anyhow::Result<Written> {
        let mut text = String::new();
        for l in lines {
            if self.json {
                text.push_str(&l.json.to_string());
                text.push('\n');
                continue;
            }
            let line = cflog::LogLine {
                timestamp: l.timestamp,
                source_type: &l.source_type,
                instance: &l.instance,
                is_err: l.is_err,
                payload: &l.payload,
            };
            cflog::format_local(&mut text, &line, self.color);
        }
        if text.is_empty() {
            return Ok(Written::Ok);
        }
        Ok(out::stdout(&text)?)
    }
}

/// `logs --log-cache-url`: recent lines, then (unless `recent_only`) the walk.
pub(crate) async fn run(
    lc: &LogCache,
    guid: &str,
    printer: &Printer,
    recent_only: bool,
    walk_delay: Duration,
) -> anyhow::Result<()> {
    let recent = lc.recent(guid).await?;
    if printer.print(&recent)? == Written::Closed || recent_only {
        return Ok(());
    }
    // Continue just after the newest line printed; with none, from one second before the
    // newest envelope of any type (the CLI's peek), or from now.
    let mut cursor = match recent.last() {
        Some(l) => l.timestamp + 1,
        None => envelope_proto::timestamp::now() - 1_000_000_000,
    };
    let mut failures = 0;
    loop {
        let query = format!("envelope_types=LOG&start_time={cursor}");
        let lines = match lc.read(guid, &query).await {
            Ok(lines) => {
                failures = 0;
                lines
            }
            Err(e) => {
                failures += 1;
                if failures > RETRIES {
                    return Err(e);
                }
                tokio::time::sleep(EMPTY_PAUSE).await;
                continue;
            }
        };
        let cutoff =
            envelope_proto::timestamp::now() - i64::try_from(walk_delay.as_nanos()).unwrap_or(0);
        let shown: Vec<Line> = lines
            .into_iter()
            .filter(|l| l.timestamp <= cutoff)
            .collect();
        let Some(last) = shown.last() else {
            tokio::time::sleep(EMPTY_PAUSE).await;
            continue;
        };
        cursor = last.timestamp + 1;
        if printer.print(&shown)? == Written::Closed {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_logs_and_skips_other_types() {
        let body = br#"{"envelopes":{"batch":[
            {"timestamp":"1700000000123456789","source_id":"a","instance_id":"1","deprecated_tags":{},"tags":{"source_type":"APP/PROC/WEB"},"log":{"payload":"SGVsbG8=","type":"ERR"}},
            {"timestamp":99,"source_id":"a","instance_id":"","tags":{},"counter":{"name":"c","delta":"1","total":"2"}},
            {"timestamp":99,"source_id":"a","log":{"payload":"","type":"OUT"}}
        ]}}"#;
        let lines = parse_batch(body).expect("valid");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].timestamp, 1_700_000_000_123_456_789);
        assert_eq!(lines[0].payload, b"Hello");
        assert!(lines[0].is_err);
        assert_eq!(lines[0].instance, "1");
        assert_eq!(lines[1].timestamp, 99, "int64 as a JSON number is accepted");
        assert!(!lines[1].is_err);
        assert!(parse_batch(b"{}").is_err());
    }
}
