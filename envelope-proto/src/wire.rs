//! The crate's one protobuf wire-format reader, with the exact acceptance
//! rules of Go's `google.golang.org/protobuf` decoder (the reference
//! implementation). [`crate::v1`], [`crate::v2`], [`crate::view`] and
//! [`crate::batch`] all read through it.
//!
//! Rules reproduced here (each one is exercised by a fixture in
//! `shared/fixtures/v1/invalid.json` or `v2/invalid.json`):
//! - a varint is at most 10 bytes, and its 10th byte may only be `0` or `1`;
//!   non-minimal encodings are accepted;
//! - a message's field number must be in `1..=2^29-1`; inside a skipped group
//!   Go's `protowire.ConsumeTag` accepts any number in `1..=i32::MAX`;
//! - wire types 6 and 7 do not exist, and an END_GROUP (4) with no matching
//!   START_GROUP is invalid;
//! - a field whose wire type does not match its declaration is *not* an error:
//!   the caller treats it as an unknown field and skips it (`Reader::skip`);
//! - groups are skipped field by field up to the END_GROUP with the same
//!   number, nested at most 10000 deep (Go's
//!   `protowire.DefaultRecursionLimit`).
//!
//! The reader never panics and never recurses. It allocates only to skip
//! groups nested more than 32 deep (the open group numbers are kept inline up
//! to that depth), which no Loggregator peer sends. Varints of one or two
//! bytes (tags, and lengths below 16 KiB) take an inlined fast path: the view
//! and the batch splitter rely on it for their per-envelope budget.

/// Largest valid field number of a message field (`2^29 - 1`).
const MAX_FIELD: u64 = (1 << 29) - 1;
/// Largest field number Go accepts for fields *inside* a skipped group.
const MAX_GROUP_FIELD: u64 = i32::MAX as u64;
/// Deepest group nesting that is skipped before giving up, Go's
/// `protowire.DefaultRecursionLimit`.
pub(crate) const GROUP_DEPTH: usize = 10_000;
/// Group levels tracked without allocating.
const INLINE_GROUPS: usize = 32;

/// Why the bytes are not valid protobuf (Go reports all of these as
/// `proto: cannot parse invalid wire-format data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A varint, length or fixed-width value runs past the end of the input.
    #[error("truncated input: a length or value runs past the end")]
    Truncated,
    /// A varint longer than 10 bytes, or one that overflows 64 bits.
    #[error("varint overflows 64 bits")]
    Overflow,
    /// Field number 0 or above `2^29 - 1`.
    #[error("invalid field number")]
    FieldNumber,
    /// Wire type 6 or 7, or an END_GROUP without its START_GROUP.
    #[error("invalid wire type or unmatched end group")]
    WireType,
    /// Groups nested deeper than 10000 levels.
    #[error("groups nested too deeply")]
    TooDeep,
}

/// Protobuf wire types (6 and 7 are rejected by [`Reader::tag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum WireType {
    /// 0: varint.
    Varint = 0,
    /// 1: 8 bytes little endian.
    Fixed64 = 1,
    /// 2: length-delimited.
    Len = 2,
    /// 3: start of a group.
    StartGroup = 3,
    /// 4: end of a group.
    EndGroup = 4,
    /// 5: 4 bytes little endian.
    Fixed32 = 5,
}

impl WireType {
    /// The wire type in the low three bits of a tag.
    #[inline]
    fn of(tag: u64) -> Result<Self, WireError> {
        Ok(match tag & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(WireError::WireType),
        })
    }
}

/// A cursor over protobuf-encoded bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Reads `buf` from offset `pos` (clamped to the end).
    #[inline]
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// True when every byte has been consumed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the next unread byte.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The unread bytes.
    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Reads one varint (Go rules: at most 10 bytes, the 10th at most 1;
    /// non-minimal encodings are accepted).
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let rest = self.rest();
        match *rest {
            [b, ..] if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            // Two bytes: lengths of 128..16383 (a typical envelope in a batch).
            [b0, b1, ..] if b1 < 0x80 => {
                self.pos += 2;
                Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
            }
            [_, ..] => self.varint_slow(rest),
            [] => Err(WireError::Truncated),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self, rest: &[u8]) -> Result<u64, WireError> {
        if let Some(b) = rest.first_chunk::<10>() {
            // Common case, unrolled without bounds checks.
            let mut value = 0u64;
            for (i, &byte) in b[..9].iter().enumerate() {
                value |= u64::from(byte & 0x7f) << (7 * i);
                if byte < 0x80 {
                    self.pos += i + 1;
                    return Ok(value);
                }
            }
            if b[9] > 1 {
                return Err(WireError::Overflow);
            }
            self.pos += 10;
            return Ok(value | (u64::from(b[9]) << 63));
        }
        // Fewer than 10 bytes left: the varint must end within them.
        let mut value = 0u64;
        for (i, &b) in rest.iter().enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(WireError::Truncated)
    }

    /// Reads a field tag of a message: field number `1..=2^29-1` and a wire
    /// type (6 and 7 are errors).
    #[inline]
    pub(crate) fn tag(&mut self) -> Result<(u32, WireType), WireError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > MAX_FIELD {
            return Err(WireError::FieldNumber);
        }
        // Lossless: field <= 2^29-1.
        Ok((field as u32, WireType::of(key)?))
    }

    /// Reads a length-delimited value and returns its bytes.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let rest = self.rest();
        // Compared as u64 first: a length claiming 2^60 bytes fails here,
        // before anything is allocated or sliced.
        if len > rest.len() as u64 {
            return Err(WireError::Truncated);
        }
        let len = len as usize;
        self.pos += len;
        Ok(&rest[..len])
    }

    /// Reads 8 little-endian bytes.
    #[inline]
    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        match self.rest().first_chunk::<8>() {
            Some(b) => {
                self.pos += 8;
                Ok(u64::from_le_bytes(*b))
            }
            None => Err(WireError::Truncated),
        }
    }

    /// Skips `n` bytes.
    #[inline]
    fn advance(&mut self, n: usize) -> Result<(), WireError> {
        if self.rest().len() < n {
            return Err(WireError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Skips the value of a field whose tag was just read (an unknown field,
    /// or a known field with an unexpected wire type).
    pub(crate) fn skip(&mut self, field: u32, wire_type: WireType) -> Result<(), WireError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.advance(8),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.advance(4),
            WireType::StartGroup => self.skip_group(field),
            WireType::EndGroup => Err(WireError::WireType),
        }
    }

    /// Skips a group's contents up to and including its matching end tag,
    /// with an explicit stack of open group numbers instead of recursion.
    fn skip_group(&mut self, field: u32) -> Result<(), WireError> {
        let mut inline = [0u32; INLINE_GROUPS];
        let mut spill: Vec<u32> = Vec::new();
        let mut depth = 1;
        inline[0] = field;
        while depth > 0 {
            let key = self.varint()?;
            let inner = key >> 3;
            if inner == 0 || inner > MAX_GROUP_FIELD {
                return Err(WireError::FieldNumber);
            }
            // Lossless: inner <= i32::MAX.
            let inner = inner as u32;
            match WireType::of(key)? {
                WireType::Varint => self.varint().map(drop)?,
                WireType::Fixed64 => self.advance(8)?,
                WireType::Len => self.bytes().map(drop)?,
                WireType::Fixed32 => self.advance(4)?,
                WireType::StartGroup => {
                    if depth == GROUP_DEPTH {
                        return Err(WireError::TooDeep);
                    }
                    match inline.get_mut(depth) {
                        Some(slot) => *slot = inner,
                        None => spill.push(inner),
                    }
                    depth += 1;
                }
                WireType::EndGroup => {
                    depth -= 1;
                    let open = match inline.get(depth) {
                        Some(&f) => f,
                        None => spill.pop().unwrap_or(0),
                    };
                    if open != inner {
                        return Err(WireError::WireType);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a decoder's `bytes` fields come from: a copy of the input, or a
/// zero-copy slice of the caller's [`bytes::Bytes`].
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The whole input, when the caller has it as `Bytes`.
    pub(crate) whole: Option<&'a bytes::Bytes>,
}

impl Source<'_> {
    /// `part` (a sub-slice of the input) as `Bytes`.
    pub(crate) fn bytes(&self, part: &[u8]) -> bytes::Bytes {
        match self.whole {
            Some(whole) if !part.is_empty() => whole.slice_ref(part),
            _ => bytes::Bytes::copy_from_slice(part),
        }
    }
}

/// Number of bytes `value` takes as a varint.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a varint.
#[inline]
pub(crate) fn put_varint(mut value: u64, out: &mut impl bytes::BufMut) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use WireType::{EndGroup, Len, StartGroup, Varint};

    #[test]
    fn varint_rules_follow_go() {
        assert_eq!(Reader::new(&[0x01]).varint(), Ok(1));
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        // non-minimal encodings are accepted
        assert_eq!(Reader::new(&[0x80, 0x80, 0x00]).varint(), Ok(0));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&over).varint(), Err(WireError::Overflow));
        assert_eq!(Reader::new(&[0x80; 11]).varint(), Err(WireError::Overflow));
        assert_eq!(Reader::new(&[0xff; 10]).varint(), Err(WireError::Overflow));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[0x80; 9]).varint(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn tags_reject_bad_field_numbers_and_wire_types() {
        assert_eq!(Reader::new(&[0x00]).tag(), Err(WireError::FieldNumber));
        assert_eq!(Reader::new(&[0x02]).tag(), Err(WireError::FieldNumber));
        assert_eq!(Reader::new(&[0x0e]).tag(), Err(WireError::WireType));
        assert_eq!(Reader::new(&[0x0f]).tag(), Err(WireError::WireType));
        assert_eq!(Reader::new(&[0x0a]).tag(), Ok((1, Len)));
        // field 2^29 (too large) with wire type 0
        let mut buf = Vec::new();
        put_varint(1 << 32, &mut buf);
        assert_eq!(Reader::new(&buf).tag(), Err(WireError::FieldNumber));
        let mut buf = Vec::new();
        put_varint(((1 << 29) - 1) << 3 | 2, &mut buf);
        assert_eq!(Reader::new(&buf).tag(), Ok(((1 << 29) - 1, Len)));
    }

    #[test]
    fn groups_are_skipped_to_their_matching_end() {
        // field 5 start group, inner field 1 varint 7, nested group 6 { }, end 5; then byte 0x08
        let buf = [0x2b, 0x08, 0x07, 0x33, 0x34, 0x2c, 0x08];
        let mut r = Reader::new(&buf);
        assert_eq!(r.tag(), Ok((5, StartGroup)));
        assert_eq!(r.skip(5, StartGroup), Ok(()));
        assert_eq!(r.pos(), 6);
        // mismatched end tag
        let mut r = Reader::new(&[0x2b, 0x34]);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(WireError::WireType));
        // unterminated group
        let mut r = Reader::new(&[0x2b, 0x08, 0x01]);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(WireError::Truncated));
        // deep but matched nesting (spills past the inline stack)
        let mut nested = vec![0x2b; 100];
        nested.extend(vec![0x2c; 100]);
        let mut r = Reader::new(&nested);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Ok(()));
        assert!(r.is_empty());
        // exactly at the limit, then one level too deep
        let mut limit = vec![0x2b; GROUP_DEPTH];
        limit.extend(vec![0x2c; GROUP_DEPTH]);
        let mut r = Reader::new(&limit);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Ok(()));
        let deep = vec![0x2b; GROUP_DEPTH + 1];
        let mut r = Reader::new(&deep);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(WireError::TooDeep));
    }

    #[test]
    fn fields_inside_groups_may_use_numbers_up_to_i32_max() {
        // group 1 { field i32::MAX varint 0 } : accepted, as protowire.ConsumeTag does
        let mut buf = vec![0x0b];
        put_varint(u64::from(i32::MAX as u32) << 3, &mut buf);
        buf.extend([0x00, 0x0c]);
        let mut r = Reader::new(&buf);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Ok(()));
        assert!(r.is_empty());
        // i32::MAX + 1 is invalid even inside a group
        let mut buf = vec![0x0b];
        put_varint((u64::from(i32::MAX as u32) + 1) << 3, &mut buf);
        buf.extend([0x00, 0x0c]);
        let mut r = Reader::new(&buf);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(WireError::FieldNumber));
        // but not outside one
        let mut buf = Vec::new();
        put_varint(u64::from(i32::MAX as u32) << 3, &mut buf);
        assert_eq!(Reader::new(&buf).tag(), Err(WireError::FieldNumber));
    }

    #[test]
    fn stray_end_group_is_an_error() {
        let mut r = Reader::new(&[0x0c]);
        assert_eq!(r.tag(), Ok((1, EndGroup)));
        assert_eq!(r.skip(1, EndGroup), Err(WireError::WireType));
    }

    #[test]
    fn lengths_past_the_end_are_truncation() {
        assert_eq!(
            Reader::new(&[0x05, 0x01]).bytes(),
            Err(WireError::Truncated)
        );
        // a length claiming 2^60 bytes fails without allocating
        let mut buf = Vec::new();
        put_varint(1 << 60, &mut buf);
        assert_eq!(Reader::new(&buf).bytes(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[0; 7]).fixed64(), Err(WireError::Truncated));
        let mut r = Reader::new(&[0x08]);
        assert_eq!(r.tag(), Ok((1, Varint)));
        assert_eq!(r.skip(1, WireType::Fixed32), Err(WireError::Truncated));
    }

    #[test]
    fn varint_len_matches_encoding() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(v, &mut buf);
            assert_eq!(varint_len(v), buf.len(), "{v}");
            assert_eq!(Reader::new(&buf).varint(), Ok(v));
        }
    }
}
