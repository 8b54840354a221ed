//! Zero-copy routing view over an encoded v2 `Envelope`.
//!
//! [`EnvelopeView::parse`] walks the bytes once, without allocating, and
//! accepts exactly what Go's `proto.Unmarshal` accepts into a
//! `loggregator.v2.Envelope`:
//!
//! - the last occurrence of a scalar field wins;
//! - the last member of the `message` oneof on the wire wins; repeated
//!   occurrences of the *same* member are merged (a counter name given twice
//!   keeps the last name, a `log` given twice keeps the payload of one and the
//!   type of the other);
//! - unknown fields, and known fields carrying an unexpected wire type, are
//!   skipped;
//! - every proto3 `string` (including map keys and values, deprecated tag
//!   texts, gauge units, timer names and event texts) must be valid UTF-8;
//! - malformed wire data (truncated varints or lengths, field number 0,
//!   reserved wire types, unmatched group ends) is an error.
//!
//! A router therefore keeps forwarding the original bytes and only drops what
//! a Go consumer would have refused to decode. Accessors for things a router
//! rarely needs (tags, the gauge name-set hash) rescan the bytes on demand.
//!
//! [`crc64`] is Go's `hash/crc64` with the ECMA table (CRC-64/XZ), used for
//! the gauge name-set key and for deterministic shard choice (reference §5.2,
//! §9.4).

use crate::wire::WireType::{Fixed64, Len, Varint};
use crate::wire::{Reader, WireError};

/// CRC-64/XZ ("ECMA" in Go's `hash/crc64`).
const CRC64_XZ: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// Gauges with at most this many map entries are de-duplicated by rescanning
/// (no allocation); larger ones are sorted in a temporary vector.
const GAUGE_SCAN_LIMIT: u32 = 16;

/// Go's `crc64.Checksum(b, crc64.MakeTable(crc64.ECMA))`: CRC-64/XZ.
#[inline]
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64_XZ.checksum(bytes)
}

/// Why bytes are not a decodable v2 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// A varint, length or fixed-size value runs past the end of the input.
    #[error("truncated protobuf data: a length or varint runs past the end")]
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("protobuf varint overflows 64 bits")]
    VarintOverflow,
    /// A tag carries field number 0 or one above 2^29-1.
    #[error("invalid protobuf field number")]
    InvalidFieldNumber,
    /// A tag carries reserved wire type 6 or 7, or is an end-group tag
    /// without a matching start-group tag (the shared reader,
    /// [`WireError::WireType`], does not tell the two apart).
    #[error("invalid protobuf wire type or unmatched end-group tag")]
    InvalidWireType,
    /// An end-group tag without a matching start-group tag. No longer
    /// produced: [`Self::InvalidWireType`] covers it; kept so that matches
    /// on this enum keep compiling.
    #[error("unmatched protobuf end-group tag")]
    UnexpectedEndGroup,
    /// Unknown groups nested deeper than the skip limit.
    #[error("protobuf groups nested too deeply")]
    RecursionLimit,
    /// A proto3 string field is not valid UTF-8.
    #[error("string field {field} contains invalid UTF-8")]
    InvalidUtf8 {
        /// Which field, as `message.field`.
        field: &'static str,
    },
}

impl From<WireError> for ViewError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => ViewError::Truncated,
            WireError::Overflow => ViewError::VarintOverflow,
            WireError::FieldNumber => ViewError::InvalidFieldNumber,
            WireError::WireType => ViewError::InvalidWireType,
            WireError::TooDeep => ViewError::RecursionLimit,
        }
    }
}

/// Which member of the envelope's `message` oneof is set (the last one on
/// the wire wins). Shared by every component that classifies envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// No member set.
    #[default]
    None,
    /// `log` (field 4).
    Log,
    /// `counter` (field 5).
    Counter,
    /// `gauge` (field 6).
    Gauge,
    /// `timer` (field 7).
    Timer,
    /// `event` (field 10).
    Event,
}

/// Routing fields of one encoded v2 envelope, borrowed from its bytes.
///
/// Kind-specific accessors return the proto3 default (`""`, `0`, empty)
/// when the envelope is of another kind.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeView<'a> {
    /// The whole encoded envelope, kept for rescans and forwarding.
    buf: &'a [u8],
    timestamp: i64,
    source_id: &'a str,
    instance_id: &'a str,
    kind: Kind,
    /// Offset of the first `tags` entry, where [`Self::tag`] starts
    /// scanning (`buf.len()` when there is none).
    tags_start: usize,
    /// At least one top-level `deprecated_tags` entry was seen.
    has_deprecated_tags: bool,
    /// Offset of the first oneof occurrence of the current member since the
    /// last switch: only occurrences from here on make up the message.
    run_start: usize,
    /// Counter/timer name, event title.
    text1: &'a str,
    /// Event body.
    text2: &'a str,
    /// Log payload.
    payload: &'a [u8],
    /// Log type, counter delta, timer start, gauge entry count.
    num1: u64,
    /// Counter total, timer stop.
    num2: u64,
}

impl<'a> EnvelopeView<'a> {
    /// Validates `buf` as an encoded `loggregator.v2.Envelope` (Go's rules,
    /// see the module doc) and records its routing fields. Never allocates.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ViewError> {
        let mut view = EnvelopeView {
            buf,
            timestamp: 0,
            source_id: "",
            instance_id: "",
            kind: Kind::None,
            tags_start: buf.len(),
            has_deprecated_tags: false,
            run_start: 0,
            text1: "",
            text2: "",
            payload: &[],
            num1: 0,
            num2: 0,
        };
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let start = r.pos();
            let (field, wt) = r.tag()?;
            match (field, wt) {
                (1, Varint) => view.timestamp = r.varint()? as i64,
                (2, Len) => view.source_id = utf8(r.bytes()?, "Envelope.source_id")?,
                (8, Len) => view.instance_id = utf8(r.bytes()?, "Envelope.instance_id")?,
                (3, Len) => {
                    check_deprecated_tag(r.bytes()?)?;
                    view.has_deprecated_tags = true;
                }
                (9, Len) => {
                    check_string_entry(r.bytes()?)?;
                    lower_to(&mut view.tags_start, start);
                }
                (4, Len) => {
                    let body = r.bytes()?;
                    view.enter(Kind::Log, start);
                    view.merge_log(body)?;
                }
                (5, Len) => {
                    let body = r.bytes()?;
                    view.enter(Kind::Counter, start);
                    view.merge_name_and_two(body, "Counter.name")?;
                }
                (6, Len) => {
                    let body = r.bytes()?;
                    view.enter(Kind::Gauge, start);
                    view.merge_gauge(body)?;
                }
                (7, Len) => {
                    let body = r.bytes()?;
                    view.enter(Kind::Timer, start);
                    view.merge_name_and_two(body, "Timer.name")?;
                }
                (10, Len) => {
                    let body = r.bytes()?;
                    view.enter(Kind::Event, start);
                    view.merge_event(body)?;
                }
                _ => r.skip(field, wt)?,
            }
        }
        Ok(view)
    }

    /// Switches the oneof to `kind` unless it already is `kind` (then the
    /// new occurrence is merged into the current one).
    #[inline]
    fn enter(&mut self, kind: Kind, start: usize) {
        if self.kind != kind {
            self.kind = kind;
            self.run_start = start;
            self.text1 = "";
            self.text2 = "";
            self.payload = &[];
            self.num1 = 0;
            self.num2 = 0;
        }
    }

    fn merge_log(&mut self, body: &'a [u8]) -> Result<(), ViewError> {
        let mut r = Reader::new(body);
        while !r.is_empty() {
            match r.tag()? {
                (1, Len) => self.payload = r.bytes()?,
                (2, Varint) => self.num1 = r.varint()?,
                (f, wt) => r.skip(f, wt)?,
            }
        }
        Ok(())
    }

    /// Counter and Timer share their layout: `string name = 1` then two
    /// varints (delta/total, start/stop). `name` is `"Counter.name"` or
    /// `"Timer.name"`.
    fn merge_name_and_two(&mut self, body: &'a [u8], name: &'static str) -> Result<(), ViewError> {
        let mut r = Reader::new(body);
        while !r.is_empty() {
            match r.tag()? {
                (1, Len) => self.text1 = utf8(r.bytes()?, name)?,
                (2, Varint) => self.num1 = r.varint()?,
                (3, Varint) => self.num2 = r.varint()?,
                (f, wt) => r.skip(f, wt)?,
            }
        }
        Ok(())
    }

    fn merge_gauge(&mut self, body: &'a [u8]) -> Result<(), ViewError> {
        let mut r = Reader::new(body);
        while !r.is_empty() {
            match r.tag()? {
                (1, Len) => {
                    check_gauge_entry(r.bytes()?)?;
                    self.num1 = self.num1.saturating_add(1);
                }
                (f, wt) => r.skip(f, wt)?,
            }
        }
        Ok(())
    }

    fn merge_event(&mut self, body: &'a [u8]) -> Result<(), ViewError> {
        let mut r = Reader::new(body);
        while !r.is_empty() {
            match r.tag()? {
                (1, Len) => self.text1 = utf8(r.bytes()?, "Event.title")?,
                (2, Len) => self.text2 = utf8(r.bytes()?, "Event.body")?,
                (f, wt) => r.skip(f, wt)?,
            }
        }
        Ok(())
    }

    /// The encoded envelope this view reads.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// `timestamp` (ns).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// `source_id`.
    #[inline]
    pub fn source_id(&self) -> &'a str {
        self.source_id
    }

    /// `instance_id`.
    #[inline]
    pub fn instance_id(&self) -> &'a str {
        self.instance_id
    }

    /// Which `message` oneof member is set.
    #[inline]
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the `tags` map (preferred tags) has at least one entry, i.e.
    /// whether the decoded envelope's `tags` is non-empty.
    #[inline]
    pub fn has_tags(&self) -> bool {
        // Every entry starts before the end of the buffer.
        self.tags_start < self.buf.len()
    }

    /// Whether the `deprecated_tags` map has at least one entry, i.e. whether
    /// the decoded envelope's `deprecated_tags` is non-empty.
    #[inline]
    pub fn has_deprecated_tags(&self) -> bool {
        self.has_deprecated_tags
    }

    /// `log.type` as the open enum value (`0` OUT, `1` ERR; other values are
    /// kept, like Go). `0` when not a log.
    #[inline]
    pub fn log_type(&self) -> i32 {
        match self.kind {
            // Go decodes an int32 enum from the low 32 bits of the varint.
            Kind::Log => self.num1 as i32,
            _ => 0,
        }
    }

    /// `log.payload`; empty when not a log.
    #[inline]
    pub fn log_payload(&self) -> &'a [u8] {
        self.payload
    }

    /// `counter.name`; `""` when not a counter.
    #[inline]
    pub fn counter_name(&self) -> &'a str {
        match self.kind {
            Kind::Counter => self.text1,
            _ => "",
        }
    }

    /// `counter.delta`; `0` when not a counter.
    #[inline]
    pub fn counter_delta(&self) -> u64 {
        match self.kind {
            Kind::Counter => self.num1,
            _ => 0,
        }
    }

    /// `counter.total`; `0` when not a counter.
    #[inline]
    pub fn counter_total(&self) -> u64 {
        match self.kind {
            Kind::Counter => self.num2,
            _ => 0,
        }
    }

    /// `timer.name`; `""` when not a timer.
    #[inline]
    pub fn timer_name(&self) -> &'a str {
        match self.kind {
            Kind::Timer => self.text1,
            _ => "",
        }
    }

    /// `timer.start` and `timer.stop` (ns); `(0, 0)` when not a timer.
    #[inline]
    pub fn timer_span(&self) -> (i64, i64) {
        match self.kind {
            Kind::Timer => (self.num1 as i64, self.num2 as i64),
            _ => (0, 0),
        }
    }

    /// `event.title` and `event.body`; `("", "")` when not an event.
    #[inline]
    pub fn event(&self) -> (&'a str, &'a str) {
        match self.kind {
            Kind::Event => (self.text1, self.text2),
            _ => ("", ""),
        }
    }

    /// The routing key of a gauge's metric-name set: the wrapping sum of
    /// [`crc64`] over its distinct metric names (reference §5.2, §9.4).
    /// `0` when not a gauge or when the gauge has no metrics.
    ///
    /// Allocates only for gauges with more than 16 map entries.
    pub fn gauge_names_hash(&self) -> u64 {
        if self.kind != Kind::Gauge || self.num1 == 0 {
            return 0;
        }
        if self.num1 <= u64::from(GAUGE_SCAN_LIMIT) {
            let mut sum = 0u64;
            let mut names = self.gauge_names();
            while let Some(name) = names.next() {
                // A later entry with the same key replaces this one: count
                // each distinct name once, at its last occurrence.
                let mut later = names.clone();
                if !later.any(|n| n == name) {
                    sum = sum.wrapping_add(crc64(name.as_bytes()));
                }
            }
            sum
        } else {
            let mut names: Vec<&str> = self.gauge_names().collect();
            names.sort_unstable();
            names.dedup();
            names
                .iter()
                .fold(0u64, |sum, n| sum.wrapping_add(crc64(n.as_bytes())))
        }
    }

    /// The metric names of a gauge in wire order, duplicates included (a
    /// later duplicate replaces the earlier entry in the decoded map).
    pub fn gauge_names(&self) -> GaugeNames<'a> {
        let start = if self.kind == Kind::Gauge {
            self.run_start
        } else {
            self.buf.len()
        };
        GaugeNames {
            outer: Reader::at(self.buf, start),
            inner: Reader::new(&[]),
        }
    }

    /// Value of preferred tag `key` (`tags` map); the last entry with that
    /// key wins, as in the decoded map.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        let found = self
            .tags()
            .filter(|(k, _)| *k == key.as_bytes())
            .last()
            .map(|(_, v)| v);
        // Validated by `parse`; `None` only if the bytes were not.
        found.and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every `tags` entry as raw (key, value) UTF-8 bytes, in wire order,
    /// duplicates included (a decoder keeps the last of each key).
    pub fn tags(&self) -> Tags<'a> {
        Tags {
            reader: Reader::at(self.buf, self.tags_start),
        }
    }
}

/// Iterator over the `tags` entries, see [`EnvelopeView::tags`].
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The bytes were validated by `parse`; any error just ends the walk.
        while !self.reader.is_empty() {
            let (field, wt) = self.reader.tag().ok()?;
            if (field, wt) == (9, Len) {
                return raw_string_entry(self.reader.bytes().ok()?).ok();
            }
            self.reader.skip(field, wt).ok()?;
        }
        None
    }
}

/// Iterator over a gauge's metric names, see [`EnvelopeView::gauge_names`].
#[derive(Debug, Clone)]
pub struct GaugeNames<'a> {
    /// Envelope fields from the start of the current gauge run.
    outer: Reader<'a>,
    /// Map entries of the gauge occurrence being read.
    inner: Reader<'a>,
}

impl<'a> Iterator for GaugeNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // The bytes were validated by `parse`; any error just ends the walk.
        loop {
            while !self.inner.is_empty() {
                let (field, wt) = self.inner.tag().ok()?;
                if (field, wt) == (1, Len) {
                    let entry = self.inner.bytes().ok()?;
                    return gauge_key(entry).ok();
                }
                self.inner.skip(field, wt).ok()?;
            }
            if self.outer.is_empty() {
                return None;
            }
            let (field, wt) = self.outer.tag().ok()?;
            if (field, wt) == (6, Len) {
                self.inner = Reader::new(self.outer.bytes().ok()?);
            } else {
                self.outer.skip(field, wt).ok()?;
            }
        }
    }
}

#[inline]
fn lower_to(slot: &mut usize, offset: usize) {
    *slot = (*slot).min(offset);
}

#[inline]
fn utf8<'a>(b: &'a [u8], field: &'static str) -> Result<&'a str, ViewError> {
    std::str::from_utf8(b).map_err(|_| ViewError::InvalidUtf8 { field })
}

/// Checks that `b` is valid UTF-8 without producing a `&str` (ASCII, the
/// common case, is checked word-at-a-time first).
#[inline]
fn check_utf8(b: &[u8], field: &'static str) -> Result<(), ViewError> {
    if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        Ok(())
    } else {
        Err(ViewError::InvalidUtf8 { field })
    }
}

/// Reads a `map<string, string>` entry as raw (key, value) bytes: last
/// occurrence wins, missing parts are empty.
fn raw_string_entry(b: &[u8]) -> Result<(&[u8], &[u8]), ViewError> {
    let (mut key, mut value): (&[u8], &[u8]) = (b"", b"");
    let mut r = Reader::new(b);
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => key = r.bytes()?,
            (2, Len) => value = r.bytes()?,
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok((key, value))
}

/// Validates a `map<string, string>` entry of `tags`. Every occurrence of
/// key and value is checked, as Go checks each while decoding.
#[inline]
fn check_string_entry(b: &[u8]) -> Result<(), ViewError> {
    let mut r = Reader::new(b);
    while !r.is_empty() {
        match r.tag()? {
            (1 | 2, Len) => check_utf8(r.bytes()?, "Envelope.tags")?,
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(())
}

/// Validates a `map<string, Value>` entry of `deprecated_tags`.
fn check_deprecated_tag(b: &[u8]) -> Result<(), ViewError> {
    let mut r = Reader::new(b);
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => {
                check_utf8(r.bytes()?, "Envelope.deprecated_tags")?;
            }
            (2, Len) => {
                let mut v = Reader::new(r.bytes()?);
                while !v.is_empty() {
                    match v.tag()? {
                        (1, Len) => {
                            check_utf8(v.bytes()?, "Value.text")?;
                        }
                        (2, Varint) => {
                            v.varint()?;
                        }
                        (3, Fixed64) => {
                            v.fixed64()?;
                        }
                        (f, wt) => v.skip(f, wt)?,
                    }
                }
            }
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(())
}

/// Validates a `map<string, GaugeValue>` entry.
fn check_gauge_entry(b: &[u8]) -> Result<(), ViewError> {
    let mut r = Reader::new(b);
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => {
                check_utf8(r.bytes()?, "Gauge.metrics")?;
            }
            (2, Len) => {
                let mut v = Reader::new(r.bytes()?);
                while !v.is_empty() {
                    match v.tag()? {
                        (1, Len) => {
                            check_utf8(v.bytes()?, "GaugeValue.unit")?;
                        }
                        (2, Fixed64) => {
                            v.fixed64()?;
                        }
                        (f, wt) => v.skip(f, wt)?,
                    }
                }
            }
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(())
}

/// The key of a (validated) gauge map entry.
fn gauge_key(b: &[u8]) -> Result<&str, ViewError> {
    let mut key = "";
    let mut r = Reader::new(b);
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => key = utf8(r.bytes()?, "Gauge.metrics")?,
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_crc64_xz() {
        assert_eq!(crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn empty_input_is_an_empty_envelope() {
        let v = EnvelopeView::parse(&[]).expect("empty is valid");
        assert_eq!(v.kind(), Kind::None);
        assert_eq!(v.source_id(), "");
        assert_eq!(v.timestamp(), 0);
        assert_eq!(v.gauge_names_hash(), 0);
        assert_eq!(v.tag("x"), None);
        assert!(!v.has_tags());
        assert!(!v.has_deprecated_tags());
    }

    #[test]
    fn empty_map_entries_still_count_as_entries() {
        // deprecated_tags {} (key "", no value), tags {} (key "", value "")
        let v = EnvelopeView::parse(&[0x1a, 0x00]).expect("valid");
        assert!(v.has_deprecated_tags());
        assert!(!v.has_tags());
        let v = EnvelopeView::parse(&[0x4a, 0x00]).expect("valid");
        assert!(!v.has_deprecated_tags());
        assert!(v.has_tags());
        assert_eq!(v.tag(""), Some(""));
    }

    #[test]
    fn tag_maps_with_a_wrong_wire_type_are_skipped() {
        // deprecated_tags and tags as varints: skipped like Go, so absent
        let v = EnvelopeView::parse(&[0x18, 0x01, 0x48, 0x01]).expect("valid");
        assert!(!v.has_deprecated_tags());
        assert!(!v.has_tags());
    }

    #[test]
    fn oneof_switch_discards_the_earlier_member_state() {
        // log{type=1}, counter{name="c"}, log{payload="p"} -> log OUT, payload p
        let buf = [
            0x22, 0x02, 0x10, 0x01, 0x2a, 0x03, 0x0a, 0x01, b'c', 0x22, 0x03, 0x0a, 0x01, b'p',
        ];
        let v = EnvelopeView::parse(&buf).expect("valid");
        assert_eq!(v.kind(), Kind::Log);
        assert_eq!(v.log_type(), 0);
        assert_eq!(v.log_payload(), b"p");
        assert_eq!(v.counter_name(), "");
    }

    #[test]
    fn gauge_hash_counts_each_distinct_name_once_in_the_current_run() {
        // gauge{cpu}, counter{}, gauge{mem, mem}, gauge{disk}
        let entry = |name: &[u8]| {
            let mut e = vec![0x0a, name.len() as u8];
            e.extend_from_slice(name);
            let mut m = vec![0x0a, e.len() as u8];
            m.extend(e);
            m
        };
        let gauge = |entries: Vec<Vec<u8>>| {
            let body: Vec<u8> = entries.concat();
            let mut g = vec![0x32, body.len() as u8];
            g.extend(body);
            g
        };
        let mut buf = gauge(vec![entry(b"cpu")]);
        buf.extend([0x2a, 0x00]);
        buf.extend(gauge(vec![entry(b"mem"), entry(b"mem")]));
        buf.extend(gauge(vec![entry(b"disk")]));
        let v = EnvelopeView::parse(&buf).expect("valid");
        assert_eq!(v.kind(), Kind::Gauge);
        assert_eq!(v.gauge_names().collect::<Vec<_>>(), ["mem", "mem", "disk"]);
        assert_eq!(
            v.gauge_names_hash(),
            crc64(b"mem").wrapping_add(crc64(b"disk"))
        );
    }
}
