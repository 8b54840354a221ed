//! Upstream-style log lines on stderr, and the `tracing` subscriber every binary installs.
//!
//! Upstream prefixes each line with `2006/01/02 15:04:05.000000 ` (microseconds), or with an
//! RFC 3339 UTC timestamp with nine fractional digits (`2026-11-22T04:38:20.091704218Z `) when
//! `USE_RFC339=true` (loggregator-release spelling) or `USE_RFC3339=true` (agent release) is set
//! (upstream-config §2). Both forms are written in UTC here. The choice is process-wide:
//! [`set_format`], or [`Format::from_env`] to follow the upstream variables.
//!
//! [`startup`] prints lines operators and scripts read (e.g. `grpc bound to: [::]:8082`);
//! [`init_tracing`] installs a stderr subscriber using the same timestamp prefix.
//! [`LineWatcher`] is the reading side: it collects another process's lines and waits for
//! expected ones (binary tests, supervisors).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

mod watch;

pub use watch::{LineWatcher, MissingLines};

/// Timestamp style for log line prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2006/01/02 15:04:05.000000` (Go `log.LstdFlags | log.Lmicroseconds`), UTC.
    GoMicros,
    /// `2026-11-22T04:38:20.091704218Z` (RFC 3339, nanoseconds, UTC).
    Rfc3339Nanos,
}

impl Format {
    /// `Rfc3339Nanos` when `USE_RFC339` or `USE_RFC3339` is `true`/`1`, else `GoMicros`.
    pub fn from_env() -> Format {
        let on = |name: &str| {
            std::env::var(name)
                .map(|v| crate::env::parse_bool(&v))
                .unwrap_or(false)
        };
        if on("USE_RFC339") || on("USE_RFC3339") {
            Format::Rfc3339Nanos
        } else {
            Format::GoMicros
        }
    }
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Sets the process-wide timestamp style used by [`startup`] and [`init_tracing`].
pub fn set_format(format: Format) {
    FORMAT.store(
        match format {
            Format::GoMicros => 0,
            Format::Rfc3339Nanos => 1,
        },
        Ordering::Relaxed,
    );
}

/// The current process-wide timestamp style.
pub fn format() -> Format {
    match FORMAT.load(Ordering::Relaxed) {
        1 => Format::Rfc3339Nanos,
        _ => Format::GoMicros,
    }
}

/// Writes the timestamp for `t` in `format` (no trailing space).
pub fn write_timestamp(out: &mut String, t: SystemTime, format: Format) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let _ = match format {
        Format::GoMicros => write!(
            out,
            "{y:04}/{m:02}/{d:02} {hh:02}:{mm:02}:{ss:02}.{:06}",
            nanos / 1000
        ),
        Format::Rfc3339Nanos => write!(
            out,
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z"
        ),
    };
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Builds a prefixed line (`<timestamp> <line>\n`) for time `t`.
pub fn format_line(line: &str, t: SystemTime, format: Format) -> String {
    let mut out = String::with_capacity(line.len() + 40);
    write_timestamp(&mut out, t, format);
    out.push(' ');
    out.push_str(line);
    out.push('\n');
    out
}

/// Prints a startup line to stderr with the upstream prefix, e.g.
/// `2026/11/22 04:38:20.091704 grpc bound to: [::]:8082`.
#[allow(clippy::print_stderr)]
pub fn startup(line: &str) {
    let text = format_line(line, SystemTime::now(), format());
    // One write call so concurrent lines do not interleave; stderr errors are not actionable.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Error installing the tracing subscriber.
#[derive(Debug, thiserror::Error)]
pub enum TracingInitError {
    /// The filter directive (level or `RUST_LOG`) does not parse.
    #[error("invalid log filter {directive:?}: {message}")]
    Filter {
        /// The directive as given.
        directive: String,
        /// The parser's complaint.
        message: String,
    },
    /// A global subscriber is already installed.
    #[error("tracing subscriber already installed: {0}")]
    AlreadyInstalled(String),
}

/// `tracing` timer writing the upstream prefix in the current [`format`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamTime;

impl FormatTime for UpstreamTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(32);
        write_timestamp(&mut s, SystemTime::now(), format());
        w.write_str(&s)
    }
}

/// Builds the filter: `RUST_LOG` when set and non-empty, else `level` (e.g. `info`,
/// `doppler=debug,info`).
pub fn filter(level: &str) -> Result<EnvFilter, TracingInitError> {
    filter_from(std::env::var("RUST_LOG").ok(), level)
}

fn filter_from(rust_log: Option<String>, level: &str) -> Result<EnvFilter, TracingInitError> {
    let directive = rust_log
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| level.to_owned());
    EnvFilter::try_new(&directive).map_err(|e| TracingInitError::Filter {
        directive,
        message: e.to_string(),
    })
}

/// Installs the global `tracing` subscriber: stderr, upstream timestamp prefix, env filter
/// (see [`filter`]). Also sets the timestamp style from `USE_RFC339`/`USE_RFC3339`.
pub fn init_tracing(level: &str) -> Result<(), TracingInitError> {
    set_format(Format::from_env());
    let filter = filter(level)?;
    // Colour only on a terminal: log files and supervisors get plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_timer(UpstreamTime)
        .with_target(true)
        .try_init()
        .map_err(|e| TracingInitError::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_micro_prefix() {
        // 2026-11-22T04:38:20.091704218Z
        let t = UNIX_EPOCH + Duration::new(1_795_322_300, 91_704_218);
        assert_eq!(
            format_line("grpc bound to: [::]:8082", t, Format::GoMicros),
            "2026/11/22 04:38:20.091704 grpc bound to: [::]:8082\n"
        );
        assert_eq!(
            format_line("x", t, Format::Rfc3339Nanos),
            "2026-11-22T04:38:20.091704218Z x\n"
        );
    }

    #[test]
    fn calendar_edges() {
        let mut s = String::new();
        write_timestamp(&mut s, UNIX_EPOCH, Format::GoMicros);
        assert_eq!(s, "1970/01/01 00:00:00.000000");
        s.clear();
        // 2024-02-29T23:59:59Z (leap day)
        write_timestamp(
            &mut s,
            UNIX_EPOCH + Duration::from_secs(1_709_251_199),
            Format::Rfc3339Nanos,
        );
        assert_eq!(s, "2024-02-29T23:59:59.000000000Z");
        s.clear();
        // 2000-03-01T00:00:00Z
        write_timestamp(
            &mut s,
            UNIX_EPOCH + Duration::from_secs(951_868_800),
            Format::GoMicros,
        );
        assert_eq!(s, "2000/03/01 00:00:00.000000");
    }

    #[test]
    fn filter_prefers_rust_log_and_reports_bad_directives() {
        let f = filter_from(Some("doppler=debug".into()), "info").expect("valid");
        assert_eq!(f.to_string(), "doppler=debug");
        let f = filter_from(Some(String::new()), "warn").expect("valid");
        assert_eq!(f.to_string(), "warn");
        let err = filter_from(None, "info,x=[").expect_err("invalid");
        assert!(
            matches!(&err, TracingInitError::Filter { directive, .. } if directive == "info,x=["),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid log filter \"info,x=[\": ")
        );
    }
}
