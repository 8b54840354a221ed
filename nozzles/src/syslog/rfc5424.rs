//! RFC 5424 formatting of v2 envelopes exactly as the syslog agent does it
//! (reference §19.3, fixtures `syslog/cases.json`).
//!
//! Layout: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD[ SP MSG]`. Logs
//! carry their payload as MSG; gauges produce one message per metric; counters,
//! timers and events produce one message with their own SD element. Framing is
//! not done here (see [`super::framing`]).
//!
//! The encoder writes into a reusable [`Encoded`] buffer, so formatting a
//! stream of envelopes allocates nothing once the buffer has grown.

use std::io::Write as _;

use envelope_proto::loggregator_v2::{Envelope, envelope::Message};

/// Maximum APP-NAME length (RFC 5424 §6).
const MAX_APP_NAME: usize = 48;
/// Maximum PROCID length.
const MAX_PROC_ID: usize = 128;
/// Maximum HOSTNAME length.
const MAX_HOSTNAME: usize = 255;
/// Maximum length of each hostname part rebuilt from the CF name tags.
const MAX_HOST_PART: usize = 63;
/// Maximum SD-NAME length.
const MAX_SD_NAME: usize = 32;

/// A message that cannot be written as RFC 5424; nothing is sent for the
/// envelope. The text is the upstream wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Message cannot be serialized because {property} is invalid: {value}")]
pub struct FormatError {
    /// The RFC 5424 field at fault (`Hostname`, `AppName`, `ProcessID`, `StructuredData/Name`).
    pub property: &'static str,
    /// The offending value (lossy UTF-8).
    pub value: String,
}

/// Zero or more formatted messages in one contiguous buffer.
#[derive(Debug, Default, Clone)]
pub struct Encoded {
    /// All message bytes back to back.
    buf: Vec<u8>,
    /// End offset of each message in `buf`.
    ends: Vec<usize>,
    /// Scratch for number formatting (kept to avoid per-metric allocation).
    scratch: String,
}

impl Encoded {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all messages, keeping the capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all messages.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The messages in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let m = &self.buf[start..end];
            start = end;
            m
        })
    }

    fn rollback(&mut self, buf_len: usize, count: usize) {
        self.buf.truncate(buf_len);
        self.ends.truncate(count);
    }
}

/// Formats envelopes for one drain binding.
#[derive(Debug, Clone)]
pub struct Rfc5424Encoder {
    /// The binding's hostname (`org.space.app` from Cloud Controller), already
    /// truncated to 255 bytes; used unless the envelope carries CF name tags.
    hostname: Vec<u8>,
    /// Whether `hostname` is printable US-ASCII (checked once, reported per message).
    hostname_valid: bool,
    /// `?disable-metadata=true`: leave out the `tags@47450` element.
    omit_metadata: bool,
}

impl Rfc5424Encoder {
    /// An encoder for a binding with default `hostname`; `omit_metadata`
    /// leaves out the envelope tags (the metric SD element stays).
    pub fn new(hostname: &str, omit_metadata: bool) -> Self {
        let mut h = hostname.as_bytes().to_vec();
        h.truncate(MAX_HOSTNAME);
        let hostname_valid = printable(&h);
        Self {
            hostname: h,
            hostname_valid,
            omit_metadata,
        }
    }

    /// Appends the messages for `env` to `out` and returns how many were
    /// added (0 for an envelope without message or a gauge without metrics).
    /// On error nothing is appended.
    pub fn encode(&self, env: &Envelope, out: &mut Encoded) -> Result<usize, FormatError> {
        let start_len = out.buf.len();
        let start_count = out.ends.len();
        let r = self.encode_inner(env, out);
        match r {
            Ok(()) => Ok(out.ends.len() - start_count),
            Err(e) => {
                out.rollback(start_len, start_count);
                Err(e)
            }
        }
    }

    fn encode_inner(&self, env: &Envelope, out: &mut Encoded) -> Result<(), FormatError> {
        let Some(message) = &env.message else {
            return Ok(());
        };
        match message {
            Message::Log(log) => {
                let pri = match log.r#type {
                    0 => 14,
                    1 => 11,
                    _ => -1,
                };
                self.header(env, pri, true, out)?;
                self.sd(env, None::<fn(&mut Vec<u8>)>, out)?;
                out.buf.push(b' ');
                out.buf
                    .extend(log.payload.iter().copied().filter(|&b| b != 0));
                // An empty or all-NUL payload leaves the separator space last.
                if out.buf.last() != Some(&b'\n') {
                    out.buf.push(b'\n');
                }
                out.ends.push(out.buf.len());
            }
            Message::Gauge(g) => {
                for (name, v) in &g.metrics {
                    let mut value = std::mem::take(&mut out.scratch);
                    value.clear();
                    envelope_proto::gofmt::write_g(&mut value, v.value);
                    let element = |b: &mut Vec<u8>| {
                        b.extend_from_slice(b"[gauge@47450 name=\"");
                        escape_sd(name.as_bytes(), b);
                        b.extend_from_slice(b"\" value=\"");
                        b.extend_from_slice(value.as_bytes());
                        b.extend_from_slice(b"\" unit=\"");
                        escape_sd(v.unit.as_bytes(), b);
                        b.extend_from_slice(b"\"]");
                    };
                    let r = self.metric(env, element, out);
                    out.scratch = value;
                    r?;
                }
            }
            Message::Counter(c) => {
                let element = |b: &mut Vec<u8>| {
                    b.extend_from_slice(b"[counter@47450 name=\"");
                    escape_sd(c.name.as_bytes(), b);
                    let _ = write!(b, "\" total=\"{}\" delta=\"{}\"]", c.total, c.delta);
                };
                self.metric(env, element, out)?;
            }
            Message::Timer(t) => {
                let element = |b: &mut Vec<u8>| {
                    b.extend_from_slice(b"[timer@47450 name=\"");
                    escape_sd(t.name.as_bytes(), b);
                    let _ = write!(b, "\" start=\"{}\" stop=\"{}\"]", t.start, t.stop);
                };
                self.metric(env, element, out)?;
            }
            Message::Event(e) => {
                let element = |b: &mut Vec<u8>| {
                    b.extend_from_slice(b"[event@47450 title=\"");
                    escape_sd(e.title.as_bytes(), b);
                    b.extend_from_slice(b"\" body=\"");
                    escape_sd(e.body.as_bytes(), b);
                    b.extend_from_slice(b"\"]");
                };
                self.metric(env, element, out)?;
            }
        }
        Ok(())
    }

    /// Appends one metric message: header with PRI 14, SD starting with
    /// `element`, no MSG.
    fn metric(
        &self,
        env: &Envelope,
        element: impl FnOnce(&mut Vec<u8>),
        out: &mut Encoded,
    ) -> Result<(), FormatError> {
        self.header(env, 14, false, out)?;
        self.sd(env, Some(element), out)?;
        out.buf.extend_from_slice(b" \n");
        out.ends.push(out.buf.len());
        Ok(())
    }

    /// Writes `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - ` (with the trailing space).
    fn header(
        &self,
        env: &Envelope,
        pri: i32,
        is_log: bool,
        out: &mut Encoded,
    ) -> Result<(), FormatError> {
        let b = &mut out.buf;
        let _ = write!(b, "<{pri}>1 ");
        write_timestamp(env.timestamp, b);
        b.push(b' ');

        // HOSTNAME
        let tags = &env.tags;
        let org = tags.get("organization_name");
        let space = tags.get("space_name");
        let app = tags.get("app_name");
        if org.is_some() || space.is_some() || app.is_some() {
            // Rebuilt parts are sanitised to [-a-zA-Z0-9] and at most 3*63+2
            // bytes long, so they are always valid.
            host_part(org.map_or("", String::as_str), b);
            b.push(b'.');
            host_part(space.map_or("", String::as_str), b);
            b.push(b'.');
            host_part(app.map_or("", String::as_str), b);
        } else if !self.hostname_valid {
            return Err(FormatError {
                property: "Hostname",
                value: String::from_utf8_lossy(&self.hostname).into_owned(),
            });
        } else if self.hostname.is_empty() {
            b.push(b'-');
        } else {
            b.extend_from_slice(&self.hostname);
        }
        b.push(b' ');

        // APP-NAME
        let sid = env.source_id.as_bytes();
        let sid = &sid[..sid.len().min(MAX_APP_NAME)];
        if !printable(sid) {
            return Err(FormatError {
                property: "AppName",
                value: String::from_utf8_lossy(sid).into_owned(),
            });
        }
        if sid.is_empty() {
            b.push(b'-');
        } else {
            b.extend_from_slice(sid);
        }
        b.push(b' ');

        // PROCID
        let start = b.len();
        b.push(b'[');
        if is_log {
            source_type(tags.get("source_type").map_or("", String::as_str), b);
            if !env.instance_id.is_empty() {
                b.push(b'/');
                b.extend_from_slice(env.instance_id.as_bytes());
            }
        } else {
            b.extend_from_slice(env.instance_id.as_bytes());
        }
        b.push(b']');
        if b.len() - start > MAX_PROC_ID {
            b.truncate(start + MAX_PROC_ID);
        }
        if !printable(&b[start..]) {
            return Err(FormatError {
                property: "ProcessID",
                value: String::from_utf8_lossy(&b[start..]).into_owned(),
            });
        }
        b.extend_from_slice(b" - ");
        Ok(())
    }

    /// Writes the structured data: the metric element (if any) then the tags
    /// element (unless metadata is omitted or there are no tags); `-` if both
    /// are absent.
    fn sd(
        &self,
        env: &Envelope,
        element: Option<impl FnOnce(&mut Vec<u8>)>,
        out: &mut Encoded,
    ) -> Result<(), FormatError> {
        let b = &mut out.buf;
        let with_tags = !self.omit_metadata && !env.tags.is_empty();
        let has_element = element.is_some();
        if let Some(f) = element {
            f(b);
        }
        if with_tags {
            b.extend_from_slice(b"[tags@47450");
            for (k, v) in &env.tags {
                if !valid_sd_name(k.as_bytes()) {
                    return Err(FormatError {
                        property: "StructuredData/Name",
                        value: k.clone(),
                    });
                }
                b.push(b' ');
                b.extend_from_slice(k.as_bytes());
                b.extend_from_slice(b"=\"");
                escape_sd(v.as_bytes(), b);
                b.push(b'"');
            }
            b.push(b']');
        }
        if !has_element && !with_tags {
            b.push(b'-');
        }
        Ok(())
    }
}

/// Printable US-ASCII (33..=126); the empty string passes.
fn printable(s: &[u8]) -> bool {
    s.iter().all(|&c| (33..=126).contains(&c))
}

/// SD-NAME: at most 32 printable characters other than `=`, `]` and `"`.
fn valid_sd_name(s: &[u8]) -> bool {
    s.len() <= MAX_SD_NAME
        && s.iter()
            .all(|&c| (33..=126).contains(&c) && c != b'=' && c != b']' && c != b'"')
}

/// Escapes `\`, `"` and `]` with a backslash (SD-PARAM value rules).
fn escape_sd(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        if c == b'\\' || c == b'"' || c == b']' {
            out.push(b'\\');
        }
        out.push(c);
    }
}

/// One hostname part rebuilt from a CF name tag: whitespace runs become `-`,
/// characters outside `[-a-zA-Z0-9]` are removed, trailing `-` stripped,
/// truncated to 63 characters.
fn host_part(s: &str, out: &mut Vec<u8>) {
    let start = out.len();
    let mut in_ws = false;
    for ch in s.chars() {
        if ch.is_whitespace() {
            if !in_ws {
                out.push(b'-');
            }
            in_ws = true;
            continue;
        }
        in_ws = false;
        if ch.is_ascii_alphanumeric() || ch == '-' {
            out.push(ch as u8);
        }
    }
    while out.len() > start && out.last() == Some(&b'-') {
        out.pop();
    }
    if out.len() - start > MAX_HOST_PART {
        out.truncate(start + MAX_HOST_PART);
    }
}

/// The PROCID source type: whitespace runs become `-`, non-graphic characters
/// are removed, trailing `-` stripped, upper-cased.
fn source_type(s: &str, out: &mut Vec<u8>) {
    let start = out.len();
    let mut in_ws = false;
    let mut tmp = [0u8; 4];
    for ch in s.chars() {
        if ch.is_whitespace() {
            if !in_ws {
                out.push(b'-');
            }
            in_ws = true;
            continue;
        }
        in_ws = false;
        if ch.is_control() {
            continue;
        }
        for up in ch.to_uppercase() {
            out.extend_from_slice(up.encode_utf8(&mut tmp).as_bytes());
        }
    }
    while out.len() > start && out.last() == Some(&b'-') {
        out.pop();
    }
}

/// Writes `ts` (Unix nanoseconds) as `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`:
/// microseconds truncated, trailing zeros trimmed, no fraction when zero.
pub fn write_timestamp(ts: i64, out: &mut Vec<u8>) {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        y,
        m,
        d,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    let mut micros = nanos / 1000;
    if micros != 0 {
        let mut digits = 6;
        while micros % 10 == 0 {
            micros /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{micros:0digits$}");
    }
    out.extend_from_slice(b"+00:00");
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(t: i64) -> String {
        let mut b = Vec::new();
        write_timestamp(t, &mut b);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn timestamps_truncate_and_trim() {
        assert_eq!(
            ts(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456+00:00"
        );
        assert_eq!(ts(1_700_000_000_500_000_000), "2023-11-14T22:13:20.5+00:00");
        assert_eq!(ts(1_700_000_000_000_000_999), "2023-11-14T22:13:20+00:00");
        assert_eq!(ts(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(ts(951_782_400_000_000_000), "2000-02-29T00:00:00+00:00");
        assert_eq!(ts(-1_000), "1969-12-31T23:59:59.999999+00:00");
    }

    #[test]
    fn host_parts_are_sanitised() {
        let mut b = Vec::new();
        host_part("My Org!! ", &mut b);
        assert_eq!(b, b"My-Org");
        b.clear();
        host_part(" dev\tspace", &mut b);
        assert_eq!(b, b"-dev-space");
    }

    #[test]
    fn source_type_is_upper_cased_and_trimmed() {
        let mut b = Vec::new();
        source_type("app/proc web  \t", &mut b);
        assert_eq!(b, b"APP/PROC-WEB");
    }
}
