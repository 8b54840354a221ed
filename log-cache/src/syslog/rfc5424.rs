//! One RFC 5424 message → one v2 envelope, mapped as log-cache-release's
//! syslog server maps it (`src/internal/syslog/server.go`).
//!
//! The grammar is RFC 5424 §6 as influxdata/go-syslog's strict parser
//! (the one upstream uses) reads it:
//!
//! ```text
//! <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
//! ```
//!
//! PRI 0–191 without leading zeros, VERSION 1–999, TIMESTAMP `-` or RFC 3339
//! (`T` and `Z` upper case, up to 6 fraction digits, offset `Z` or `±hh:mm`,
//! the day checked against its month), header fields printable US-ASCII of at
//! most 255/48/128/32 octets, SD names at most 32 octets, SD values UTF-8
//! with `"`, `\` and `]` escaped by a backslash (any other backslash is kept
//! with the character after it, RFC 5424 §6.3.3). An SD-ID may appear once.
//!
//! Mapping (upstream's):
//!
//! - `source_id` = APP-NAME; `-` is an error ("missing app name").
//! - `instance_id` = PROCID with `[`/`]` trimmed from both ends, then its last
//!   `/`-separated token: `[APP/PROC/WEB/0]` → `0`, `[RTR]` → `RTR`, `[]` → ``.
//!   `-` is an error ("missing proc id").
//! - `timestamp` = TIMESTAMP in ns since the epoch. Upstream dereferences a
//!   nil time on `-` (its goroutine panics); here `-` means "when it was
//!   received" (the caller's `received_at`).
//! - Structured data by SD-ID *prefix*: `counter…` (`name`, `delta`, `total`:
//!   decimal u64), `gauge…` (`name`, `value`: float, `unit`: required, may be
//!   empty), `timer…` (`name`, `start`, `stop`: decimal i64), `event…`
//!   (`title`, `body`), `tags…` (every parameter becomes a tag). Any other
//!   SD-ID rejects the message, as upstream does. Upstream applies the
//!   elements in Go map order (random); here they apply in message order: a
//!   later counter/timer/event replaces an earlier body, a later gauge
//!   element adds its metric to an earlier gauge (upstream would keep one
//!   metric at random).
//! - Without a counter/gauge/timer/event element the MSG becomes a log: the
//!   payload is MSG with leading and trailing Unicode white space removed (Go's
//!   `strings.TrimSpace`, upstream's default), type `ERR` iff PRI is 11
//!   (user.err), else `OUT`. No body and no MSG is an error.
//! - HOSTNAME and MSGID are not used; no other tags are added.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use envelope_proto::loggregator_v2::{
    Counter, Envelope, Event, Gauge, GaugeValue, Log, Timer, envelope::Message, log::Type,
};

/// Why a message was not turned into an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message does not follow the RFC 5424 grammar.
    #[error("invalid {field} at byte {at}")]
    Syntax {
        /// The part being read.
        field: &'static str,
        /// Offset of the first offending byte.
        at: usize,
    },
    /// APP-NAME is the NILVALUE.
    #[error("missing app name in syslog message")]
    MissingAppName,
    /// PROCID is the NILVALUE.
    #[error("missing proc id in syslog message")]
    MissingProcId,
    /// An SD-ID appears twice.
    #[error("duplicate structured data element id {0:?}")]
    DuplicateSdId(String),
    /// An SD-ID with none of the known prefixes.
    #[error("unknown envelope type for structured data: {0:?}")]
    UnknownSdId(String),
    /// A parameter of a counter, gauge or timer element is missing or unparsable.
    #[error("invalid {param} in structured data element {sd_id:?}")]
    InvalidParam {
        /// The element.
        sd_id: String,
        /// The parameter.
        param: &'static str,
    },
    /// Neither a counter/gauge/timer/event element nor a MSG.
    #[error("missing message data in syslog message")]
    MissingMessage,
}

/// RFC 5424 `NILVALUE`.
const NIL: &[u8] = b"-";
/// Distinct SD-IDs tracked in a list before a set is worth its allocation.
const SMALL_SD_COUNT: usize = 16;

/// Parses one RFC 5424 message (without framing) into an envelope.
/// `received_at` (ns) stands in for a `-` TIMESTAMP.
pub fn parse(message: &[u8], received_at: i64) -> Result<Envelope, ParseError> {
    let mut c = Cursor { b: message, i: 0 };
    let pri = c.pri()?;
    c.version()?;
    c.sp("timestamp")?;
    let timestamp = match c.timestamp()? {
        Some(t) => t,
        None => received_at,
    };
    c.sp("hostname")?;
    c.field("hostname", 255)?;
    c.sp("app name")?;
    let app_name = c.field("app name", 48)?;
    c.sp("proc id")?;
    let proc_id = c.field("proc id", 128)?;
    c.sp("msg id")?;
    c.field("msg id", 32)?;
    c.sp("structured data")?;

    let mut env = Envelope {
        timestamp,
        ..Envelope::default()
    };
    let mut body = None;
    c.structured_data(&mut env.tags, &mut body)?;
    let msg = match c.peek() {
        None => None,
        Some(b' ') => Some(&c.b[c.i + 1..]),
        Some(_) => return Err(c.err("structured data")),
    };

    // Checked after the grammar, in upstream's order.
    let proc_id = proc_id.ok_or(ParseError::MissingProcId)?;
    let app_name = app_name.ok_or(ParseError::MissingAppName)?;
    env.source_id = ascii(app_name);
    env.instance_id = ascii(instance_id(proc_id));
    env.message = Some(match (body, msg) {
        (Some(body), _) => body,
        (None, Some(msg)) => Message::Log(Log {
            payload: Bytes::copy_from_slice(trim_space(msg)),
            r#type: i32::from(if pri == 11 { Type::Err } else { Type::Out }),
        }),
        (None, None) => return Err(ParseError::MissingMessage),
    });
    Ok(env)
}

/// Upstream's `instanceIdFromPID`: trim `[` and `]` from both ends, keep the
/// last `/`-separated token.
fn instance_id(proc_id: &[u8]) -> &[u8] {
    let start = proc_id
        .iter()
        .position(|&b| b != b'[' && b != b']')
        .unwrap_or(proc_id.len());
    let end = proc_id
        .iter()
        .rposition(|&b| b != b'[' && b != b']')
        .map_or(start, |i| i + 1);
    let trimmed = &proc_id[start..end];
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Header fields are checked printable US-ASCII.
fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Go's `strings.TrimSpace` on bytes that need not be UTF-8: strips
/// leading and trailing characters with the Unicode `White_Space` property.
fn trim_space(mut b: &[u8]) -> &[u8] {
    loop {
        match b.first() {
            Some(&x) if x.is_ascii() => {
                if is_space_ascii(x) {
                    b = &b[1..];
                    continue;
                }
                break;
            }
            Some(_) => match first_char(b) {
                Some((ch, n)) if ch.is_whitespace() => b = &b[n..],
                _ => break,
            },
            None => break,
        }
    }
    loop {
        match b.last() {
            Some(&x) if x.is_ascii() => {
                if is_space_ascii(x) {
                    b = &b[..b.len() - 1];
                    continue;
                }
                break;
            }
            Some(_) => match last_char(b) {
                Some((ch, n)) if ch.is_whitespace() => b = &b[..b.len() - n],
                _ => break,
            },
            None => break,
        }
    }
    b
}

/// `\t \n \v \f \r` and space (Go's ASCII white space, also Rust's).
fn is_space_ascii(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// The first character of `b` and its length, if `b` starts with valid UTF-8.
fn first_char(b: &[u8]) -> Option<(char, usize)> {
    (2..=4.min(b.len())).find_map(|n| {
        std::str::from_utf8(&b[..n])
            .ok()
            .and_then(|s| s.chars().next().map(|c| (c, n)))
    })
}

/// The last character of `b` and its length, if `b` ends with valid UTF-8.
fn last_char(b: &[u8]) -> Option<(char, usize)> {
    (2..=4.min(b.len())).find_map(|n| {
        std::str::from_utf8(&b[b.len() - n..])
            .ok()
            .and_then(|s| s.chars().next().map(|c| (c, n)))
    })
}

fn is_print_ascii(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// SD-NAME: printable US-ASCII except `=`, space, `]` and `"`.
fn is_sd_name(b: u8) -> bool {
    is_print_ascii(b) && !matches!(b, b'=' | b']' | b'"')
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, field: &'static str) -> ParseError {
        ParseError::Syntax { field, at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, byte: u8, field: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(field))
        }
    }

    fn sp(&mut self, field: &'static str) -> Result<(), ParseError> {
        self.expect(b' ', field)
    }

    /// Up to `max` decimal digits (at least one) as a number.
    fn digits(&mut self, max: usize, field: &'static str) -> Result<(u32, usize), ParseError> {
        let start = self.i;
        let mut v: u32 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.i - start == max {
                return Err(self.err(field));
            }
            v = v * 10 + u32::from(d - b'0');
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err(field));
        }
        Ok((v, self.i - start))
    }

    /// Exactly `n` digits.
    fn fixed(&mut self, n: usize, field: &'static str) -> Result<u32, ParseError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(d - b'0');
                    self.i += 1;
                }
                _ => return Err(self.err(field)),
            }
        }
        Ok(v)
    }

    fn pri(&mut self) -> Result<u32, ParseError> {
        self.expect(b'<', "priority")?;
        let start = self.i;
        let (v, n) = self.digits(3, "priority")?;
        if (n > 1 && self.b[start] == b'0') || v > 191 {
            return Err(ParseError::Syntax {
                field: "priority",
                at: start,
            });
        }
        self.expect(b'>', "priority")?;
        Ok(v)
    }

    fn version(&mut self) -> Result<(), ParseError> {
        if self.peek() == Some(b'0') {
            return Err(self.err("version"));
        }
        self.digits(3, "version").map(|_| ())
    }

    /// `-` (None) or an RFC 3339 timestamp in ns.
    fn timestamp(&mut self) -> Result<Option<i64>, ParseError> {
        const F: &str = "timestamp";
        if self.peek() == Some(b'-') {
            self.i += 1;
            return Ok(None);
        }
        let start = self.i;
        let bad = || ParseError::Syntax {
            field: F,
            at: start,
        };
        let year = self.fixed(4, F)?;
        self.expect(b'-', F)?;
        let month = self.fixed(2, F)?;
        self.expect(b'-', F)?;
        let day = self.fixed(2, F)?;
        self.expect(b'T', F)?;
        let hour = self.fixed(2, F)?;
        self.expect(b':', F)?;
        let minute = self.fixed(2, F)?;
        self.expect(b':', F)?;
        let second = self.fixed(2, F)?;
        let mut nanos: i64 = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let (frac, n) = self.digits(6, F)?;
            nanos = i64::from(frac) * 10i64.pow(9 - n as u32);
        }
        let offset: i64 = match self.peek() {
            Some(b'Z') => {
                self.i += 1;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                self.i += 1;
                let h = self.fixed(2, F)?;
                self.expect(b':', F)?;
                let m = self.fixed(2, F)?;
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                let secs = i64::from(h * 3600 + m * 60);
                if sign == b'-' { -secs } else { secs }
            }
            _ => return Err(self.err(F)),
        };
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let days = days_from_civil(i64::from(year), month, day);
        let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
        secs.checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(nanos))
            .map(Some)
            .ok_or_else(bad)
    }

    /// A header field of 1..=`max` printable US-ASCII octets; `-` is None.
    fn field(&mut self, name: &'static str, max: usize) -> Result<Option<&'a [u8]>, ParseError> {
        let start = self.i;
        while self.peek().is_some_and(is_print_ascii) {
            if self.i - start == max {
                return Err(self.err(name));
            }
            self.i += 1;
        }
        match &self.b[start..self.i] {
            [] => Err(self.err(name)),
            NIL => Ok(None),
            v => Ok(Some(v)),
        }
    }

    fn sd_name(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let start = self.i;
        while self.peek().is_some_and(is_sd_name) {
            if self.i - start == 32 {
                return Err(self.err(field));
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err(field));
        }
        Ok(&self.b[start..self.i])
    }

    /// A quoted PARAM-VALUE, unescaped.
    fn param_value(&mut self) -> Result<String, ParseError> {
        self.expect(b'"', "structured data parameter value")?;
        let start = self.i;
        let mut escapes = false;
        loop {
            match self.peek() {
                None | Some(b']') => return Err(self.err("structured data parameter value")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escapes = true;
                    self.i += if self.b.get(self.i + 1).is_some() {
                        2
                    } else {
                        1
                    };
                }
                Some(_) => self.i += 1,
            }
        }
        let raw = &self.b[start..self.i];
        self.i += 1; // the closing quote
        let raw = std::str::from_utf8(raw).map_err(|e| ParseError::Syntax {
            field: "structured data parameter value (UTF-8)",
            at: start + e.valid_up_to(),
        })?;
        if !escapes {
            return Ok(raw.to_owned());
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(ch) = chars.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            match chars.next() {
                Some(e @ ('"' | '\\' | ']')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        Ok(out)
    }

    /// `-` or SD-ELEMENTs, applied to `tags` and `body`.
    fn structured_data(
        &mut self,
        tags: &mut BTreeMap<String, String>,
        body: &mut Option<Message>,
    ) -> Result<(), ParseError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            return Ok(());
        }
        if self.peek() != Some(b'[') {
            return Err(self.err("structured data"));
        }
        let mut seen = SeenIds::default();
        let mut params: Vec<(&'a [u8], String)> = Vec::new();
        while self.peek() == Some(b'[') {
            self.i += 1;
            let id = self.sd_name("structured data id")?;
            params.clear();
            loop {
                match self.peek() {
                    Some(b']') => {
                        self.i += 1;
                        break;
                    }
                    Some(b' ') => {
                        self.i += 1;
                        let name = self.sd_name("structured data parameter name")?;
                        self.expect(b'=', "structured data parameter")?;
                        let value = self.param_value()?;
                        params.push((name, value));
                    }
                    _ => return Err(self.err("structured data element")),
                }
            }
            if !seen.insert(id) {
                return Err(ParseError::DuplicateSdId(ascii(id)));
            }
            apply_element(id, &mut params, tags, body)?;
        }
        Ok(())
    }
}

/// SD-IDs seen so far: a list while short, a set after.
#[derive(Default)]
struct SeenIds<'a> {
    list: Vec<&'a [u8]>,
    set: Option<HashSet<&'a [u8]>>,
}

impl<'a> SeenIds<'a> {
    fn insert(&mut self, id: &'a [u8]) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(id);
        }
        if self.list.contains(&id) {
            return false;
        }
        self.list.push(id);
        if self.list.len() > SMALL_SD_COUNT {
            self.set = Some(self.list.drain(..).collect());
        }
        true
    }
}

/// Takes parameter `name` (the last one of that name, as Go's map keeps).
fn take(params: &mut [(&[u8], String)], name: &str) -> Option<String> {
    params
        .iter_mut()
        .rev()
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| std::mem::take(v))
}

fn apply_element(
    id: &[u8],
    params: &mut Vec<(&[u8], String)>,
    tags: &mut BTreeMap<String, String>,
    body: &mut Option<Message>,
) -> Result<(), ParseError> {
    let invalid = |param| ParseError::InvalidParam {
        sd_id: ascii(id),
        param,
    };
    if id.starts_with(b"counter") {
        let delta = take(params, "delta").and_then(|v| parse_u64(&v));
        let total = take(params, "total").and_then(|v| parse_u64(&v));
        *body = Some(Message::Counter(Counter {
            name: take(params, "name").unwrap_or_default(),
            delta: delta.ok_or_else(|| invalid("delta"))?,
            total: total.ok_or_else(|| invalid("total"))?,
        }));
    } else if id.starts_with(b"gauge") {
        let unit = take(params, "unit").ok_or_else(|| invalid("unit"))?;
        let value = take(params, "value")
            .and_then(|v| parse_f64(&v))
            .ok_or_else(|| invalid("value"))?;
        let name = take(params, "name").unwrap_or_default();
        let metric = GaugeValue { unit, value };
        match body {
            Some(Message::Gauge(g)) => {
                g.metrics.insert(name, metric);
            }
            _ => {
                *body = Some(Message::Gauge(Gauge {
                    metrics: BTreeMap::from([(name, metric)]),
                }));
            }
        }
    } else if id.starts_with(b"event") {
        *body = Some(Message::Event(Event {
            title: take(params, "title").unwrap_or_default(),
            body: take(params, "body").unwrap_or_default(),
        }));
    } else if id.starts_with(b"timer") {
        let start = take(params, "start").and_then(|v| parse_i64(&v));
        let stop = take(params, "stop").and_then(|v| parse_i64(&v));
        *body = Some(Message::Timer(Timer {
            name: take(params, "name").unwrap_or_default(),
            start: start.ok_or_else(|| invalid("start"))?,
            stop: stop.ok_or_else(|| invalid("stop"))?,
        }));
    } else if id.starts_with(b"tags") {
        for (name, value) in params.drain(..) {
            tags.insert(ascii(name), value);
        }
    } else {
        return Err(ParseError::UnknownSdId(ascii(id)));
    }
    Ok(())
}

/// Go's `strconv.ParseUint(s, 10, 64)`: digits only.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, digits.
fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input: `NaN`, `±Inf`,
/// `±Infinity` (any case), decimal with exponent; out of range is an error.
fn parse_f64(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(v)
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
