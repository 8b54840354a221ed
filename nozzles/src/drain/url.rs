//! Drain URL parsing (reference §19.2): scheme, host and port, the
//! `drain-type` / `drain-data` / `include-metrics-deprecated` mode (in that
//! precedence, lowest first), `disable-metadata` (alias `omit-metadata`),
//! `ssl-strict-internal`, and `include-log-types` / `exclude-log-types`.

use std::fmt;

use envelope_proto::loggregator_v2::{Envelope, envelope::Message};

/// The transport of a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `syslog://`: TCP, octet counting.
    Syslog,
    /// `syslog-tls://`: TLS, octet counting.
    SyslogTls,
    /// `https://`: one POST per message.
    Https,
    /// `https-batch://`: batched POSTs (sent to the `https` URL).
    HttpsBatch,
}

impl Scheme {
    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Syslog => "syslog",
            Scheme::SyslogTls => "syslog-tls",
            Scheme::Https => "https",
            Scheme::HttpsBatch => "https-batch",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Syslog => 514,
            Scheme::SyslogTls => 6514,
            Scheme::Https | Scheme::HttpsBatch => 443,
        }
    }
}

/// What a drain receives (the drain mode of §19.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DrainData {
    /// Logs and events (the default, `drain-data=logs`).
    Logs,
    /// Logs only (`drain-type=logs`).
    LogsNoEvents,
    /// Counters and gauges (`drain-type=metrics`, `drain-data=metrics`).
    Metrics,
    /// Logs, counters and gauges (`drain-type=all`).
    LogsAndMetrics,
    /// Timers (`drain-data=traces`).
    Traces,
    /// Everything (`drain-data=all`, `include-metrics-deprecated`).
    All,
}

/// Which envelope kinds a mode lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds {
    /// Logs.
    pub logs: bool,
    /// Events.
    pub events: bool,
    /// Counters and gauges.
    pub metrics: bool,
    /// Timers.
    pub timers: bool,
}

impl Kinds {
    /// Union of two sets.
    pub fn union(self, o: Kinds) -> Kinds {
        Kinds {
            logs: self.logs || o.logs,
            events: self.events || o.events,
            metrics: self.metrics || o.metrics,
            timers: self.timers || o.timers,
        }
    }
}

impl DrainData {
    /// The envelope kinds this mode delivers.
    pub fn kinds(self) -> Kinds {
        let (logs, events, metrics, timers) = match self {
            DrainData::Logs => (true, true, false, false),
            DrainData::LogsNoEvents => (true, false, false, false),
            DrainData::Metrics => (false, false, true, false),
            DrainData::LogsAndMetrics => (true, false, true, false),
            DrainData::Traces => (false, false, false, true),
            DrainData::All => (true, true, true, true),
        };
        Kinds {
            logs,
            events,
            metrics,
            timers,
        }
    }
}

/// Log source types known to the include/exclude filters.
const KNOWN_LOG_TYPES: &[&str] = &["api", "app", "cell", "lgr", "rtr", "ssh", "stg", "sys"];

/// `include-log-types` / `exclude-log-types`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogTypeFilter {
    /// No filter.
    #[default]
    All,
    /// Only these types (lower case); unknown types are dropped.
    Include(Vec<String>),
    /// All but these types; unknown types are kept.
    Exclude(Vec<String>),
}

impl LogTypeFilter {
    /// Whether a log with this `source_type` tag passes. The type is the
    /// first `/`-separated segment, lower-cased (`APP/PROC/WEB` -> `app`).
    pub fn allows(&self, source_type: &str) -> bool {
        let first = source_type.split('/').next().unwrap_or("");
        let known = KNOWN_LOG_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(first));
        match self {
            LogTypeFilter::All => true,
            LogTypeFilter::Include(list) => known.is_some_and(|k| list.iter().any(|l| l == k)),
            LogTypeFilter::Exclude(list) => !known.is_some_and(|k| list.iter().any(|l| l == k)),
        }
    }
}

/// A drain URL that did not parse; the text names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://`.
    #[error("Cannot parse syslog drain URL.")]
    Unparseable,
    /// A scheme other than syslog, syslog-tls, https, https-batch (upstream notice text).
    #[error("Invalid Scheme {scheme} for syslog drain url {url}")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
        /// The URL without userinfo and query.
        url: String,
    },
    /// Empty host.
    #[error("No hostname found in syslog drain url {0}")]
    NoHost(String),
    /// Port not a number in 1..=65535.
    #[error("invalid port in syslog drain url {0}")]
    BadPort(String),
    /// An IPv4 address written with leading zeros.
    #[error("ip address with leading zeros in syslog drain url {0}")]
    LeadingZeros(String),
    /// Both include-log-types and exclude-log-types.
    #[error("include-log-types and exclude-log-types are mutually exclusive")]
    BothLogTypeFilters,
}

/// A parsed drain URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainUrl {
    /// The URL as bound (identity of the drain).
    pub raw: String,
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (scheme default when absent).
    pub port: u16,
    /// `user:password` from the URL, used as HTTP basic auth.
    pub userinfo: Option<String>,
    /// Path plus `?query` for HTTP drains (`/` when empty).
    pub path_and_query: String,
    /// The URL with userinfo and query removed (notices, logs, metrics).
    pub anonymized: String,
    /// What the drain receives.
    pub mode: DrainData,
    /// Leave out the `tags@47450` structured data.
    pub omit_metadata: bool,
    /// `ssl-strict-internal=true`.
    pub ssl_strict_internal: bool,
    /// Log source-type filter.
    pub log_types: LogTypeFilter,
}

impl fmt::Display for DrainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.anonymized)
    }
}

/// Percent-decodes a query component (`+` is a space, as Go's `ParseQuery`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query pairs in order.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(p), String::new()),
        })
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `raw` without userinfo, query and fragment (for messages).
pub fn anonymize(raw: &str) -> String {
    let base = raw.split(['?', '#']).next().unwrap_or("");
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let auth_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(auth_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_owned(),
    }
}

fn has_leading_zeros(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        && parts.iter().any(|p| p.len() > 1 && p.starts_with('0'))
}

impl DrainUrl {
    /// Parses `raw`. `default_metadata` is the operator's
    /// `DEFAULT_DRAIN_METADATA` (true upstream): with it, `disable-metadata=true`
    /// omits metadata; without it, metadata is omitted unless the URL says
    /// `disable-metadata=false`.
    pub fn parse(raw: &str, default_metadata: bool) -> Result<DrainUrl, UrlError> {
        let raw_trim = raw.trim();
        let (scheme_str, rest) = raw_trim.split_once("://").ok_or(UrlError::Unparseable)?;
        let scheme = match scheme_str.to_ascii_lowercase().as_str() {
            "syslog" => Scheme::Syslog,
            "syslog-tls" => Scheme::SyslogTls,
            "https" => Scheme::Https,
            "https-batch" => Scheme::HttpsBatch,
            other => {
                return Err(UrlError::UnsupportedScheme {
                    scheme: other.to_owned(),
                    url: anonymize(raw_trim),
                });
            }
        };
        let rest = rest.split('#').next().unwrap_or("");
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, q),
            None => (tail, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port_str) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(UrlError::Unparseable)?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let anonymized_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port_part = port_str.map(|p| format!(":{p}")).unwrap_or_default();
        let anonymized = format!("{}://{anonymized_host}{port_part}{path}", scheme.as_str());
        if host.is_empty() {
            return Err(UrlError::NoHost(anonymized));
        }
        if has_leading_zeros(host) {
            return Err(UrlError::LeadingZeros(anonymized));
        }
        let port = match port_str {
            None | Some("") => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(UrlError::BadPort(anonymized)),
            },
        };
        let pairs = query_pairs(query);

        let mut mode = DrainData::Logs;
        match first(&pairs, "drain-type") {
            Some("logs") => mode = DrainData::LogsNoEvents,
            Some("metrics") => mode = DrainData::Metrics,
            Some("all") => mode = DrainData::LogsAndMetrics,
            _ => {}
        }
        match first(&pairs, "drain-data") {
            Some("logs") => mode = DrainData::Logs,
            Some("metrics") => mode = DrainData::Metrics,
            Some("traces") => mode = DrainData::Traces,
            Some("all") => mode = DrainData::All,
            _ => {}
        }
        if first(&pairs, "include-metrics-deprecated").is_some_and(|v| !v.is_empty()) {
            mode = DrainData::All;
        }

        let disable = first(&pairs, "disable-metadata").or_else(|| first(&pairs, "omit-metadata"));
        let omit_metadata = if default_metadata {
            disable == Some("true")
        } else {
            disable != Some("false")
        };

        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let log_types = match (
            first(&pairs, "include-log-types").filter(|v| !v.is_empty()),
            first(&pairs, "exclude-log-types").filter(|v| !v.is_empty()),
        ) {
            (Some(_), Some(_)) => return Err(UrlError::BothLogTypeFilters),
            (Some(i), None) => LogTypeFilter::Include(list(i)),
            (None, Some(e)) => LogTypeFilter::Exclude(list(e)),
            (None, None) => LogTypeFilter::All,
        };

        let mut path_and_query = if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        if !query.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }

        Ok(DrainUrl {
            raw: raw.to_owned(),
            scheme,
            host: host.to_owned(),
            port,
            userinfo,
            path_and_query,
            anonymized,
            mode,
            omit_metadata,
            ssl_strict_internal: first(&pairs, "ssl-strict-internal") == Some("true"),
            log_types,
        })
    }

    /// Whether the drain wants this envelope (mode and log-type filter).
    pub fn wants(&self, env: &Envelope) -> bool {
        let kinds = self.mode.kinds();
        match &env.message {
            Some(Message::Log(_)) => {
                kinds.logs
                    && self
                        .log_types
                        .allows(env.tags.get("source_type").map_or("", String::as_str))
            }
            Some(Message::Event(_)) => kinds.events,
            Some(Message::Counter(_)) | Some(Message::Gauge(_)) => kinds.metrics,
            Some(Message::Timer(_)) => kinds.timers,
            None => false,
        }
    }

    /// `host:port` to dial (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DrainUrl {
        DrainUrl::parse(s, true).expect("parses")
    }

    #[test]
    fn schemes_and_ports() {
        let u = p("syslog://logs.example.com:1234");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Syslog, "logs.example.com", 1234)
        );
        assert_eq!(p("syslog-tls://h").port, 6514);
        assert_eq!(p("syslog://h").port, 514);
        let h = p("https://user:pw@h.example/path/x?drain-type=all&token=1");
        assert_eq!(h.scheme, Scheme::Https);
        assert_eq!(h.port, 443);
        assert_eq!(h.userinfo.as_deref(), Some("user:pw"));
        assert_eq!(h.path_and_query, "/path/x?drain-type=all&token=1");
        assert_eq!(h.anonymized, "https://h.example/path/x");
        assert_eq!(p("https-batch://h:8443").scheme, Scheme::HttpsBatch);
        assert_eq!(p("https-batch://h:8443").path_and_query, "/");
        let v6 = p("syslog://[::1]:99");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority()),
            ("::1", 99, "[::1]:99".to_owned())
        );
        let e = DrainUrl::parse("http://u:p@h/x?y=1", true).expect_err("http is refused");
        assert_eq!(
            e.to_string(),
            "Invalid Scheme http for syslog drain url http://h/x"
        );
        assert_eq!(
            DrainUrl::parse("nonsense", true),
            Err(UrlError::Unparseable)
        );
        assert_eq!(
            DrainUrl::parse("syslog://:99", true),
            Err(UrlError::NoHost("syslog://:99".into()))
        );
        assert!(matches!(
            DrainUrl::parse("syslog://h:x", true),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            DrainUrl::parse("syslog://h:0", true),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            DrainUrl::parse("syslog://010.0.0.1:5", true),
            Err(UrlError::LeadingZeros(_))
        ));
        assert_eq!(p("syslog://10.0.0.1:5").host, "10.0.0.1");
    }

    #[test]
    fn mode_precedence() {
        assert_eq!(p("syslog://h:1").mode, DrainData::Logs);
        assert_eq!(
            p("syslog://h:1?drain-type=logs").mode,
            DrainData::LogsNoEvents
        );
        assert_eq!(
            p("syslog://h:1?drain-type=metrics").mode,
            DrainData::Metrics
        );
        assert_eq!(
            p("syslog://h:1?drain-type=all").mode,
            DrainData::LogsAndMetrics
        );
        assert_eq!(p("syslog://h:1?drain-data=traces").mode, DrainData::Traces);
        assert_eq!(p("syslog://h:1?drain-data=all").mode, DrainData::All);
        assert_eq!(
            p("syslog://h:1?drain-type=metrics&drain-data=logs").mode,
            DrainData::Logs
        );
        assert_eq!(
            p("syslog://h:1?drain-data=logs&include-metrics-deprecated=1").mode,
            DrainData::All
        );
        assert_eq!(
            p("syslog://h:1?include-metrics-deprecated=").mode,
            DrainData::Logs
        );
        let k = DrainData::LogsAndMetrics.kinds();
        assert!(k.logs && !k.events && k.metrics && !k.timers);
    }

    #[test]
    fn metadata_options() {
        assert!(!p("syslog://h:1").omit_metadata);
        assert!(p("syslog://h:1?disable-metadata=true").omit_metadata);
        assert!(p("syslog://h:1?omit-metadata=true").omit_metadata);
        assert!(!p("syslog://h:1?disable-metadata=yes").omit_metadata);
        let off = |s: &str| DrainUrl::parse(s, false).expect("parses").omit_metadata;
        assert!(off("syslog://h:1"));
        assert!(off("syslog://h:1?disable-metadata=true"));
        assert!(!off("syslog://h:1?disable-metadata=false"));
        assert!(p("syslog-tls://h:1?ssl-strict-internal=true").ssl_strict_internal);
    }

    #[test]
    fn log_type_filters() {
        let inc = p("syslog://h:1?include-log-types=app,rtr").log_types;
        assert!(inc.allows("APP/PROC/WEB"));
        assert!(inc.allows("RTR"));
        assert!(!inc.allows("STG"));
        assert!(!inc.allows("MYTHING"));
        let exc = p("syslog://h:1?exclude-log-types=stg").log_types;
        assert!(!exc.allows("STG"));
        assert!(exc.allows("APP/PROC/WEB"));
        assert!(exc.allows("MYTHING"));
        assert_eq!(
            DrainUrl::parse(
                "syslog://h:1?include-log-types=app&exclude-log-types=stg",
                true
            ),
            Err(UrlError::BothLogTypeFilters)
        );
    }

    #[test]
    fn query_is_percent_decoded() {
        assert_eq!(
            p("syslog://h:1?drain%2Dtype=metrics").mode,
            DrainData::Metrics
        );
    }
}
