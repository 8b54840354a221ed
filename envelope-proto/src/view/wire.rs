//! A zero-allocation protobuf wire reader, shared by [`crate::view`] and
//! [`crate::batch`].
//!
//! It follows the Go decoder (`google.golang.org/protobuf`) on every point that
//! decides between "accepted" and "error": varints of at most ten bytes (the
//! tenth at most `1`), field numbers `1..=2^29-1`, wire types 6 and 7 rejected,
//! unknown groups skipped to their matching end tag, and a stray end-group tag
//! rejected. Group nesting is limited to [`GROUP_DEPTH`] levels, Go's
//! `protowire.DefaultRecursionLimit`; skipping uses an explicit stack (inline
//! for the first 32 levels, so only inputs with deeply nested unknown groups,
//! which no Loggregator peer sends, cause an allocation) instead of recursion.

use super::ViewError;

/// Largest valid protobuf field number.
const MAX_FIELD: u64 = (1 << 29) - 1;
/// Largest field number Go accepts for fields *inside* a skipped group.
const MAX_GROUP_FIELD: u64 = i32::MAX as u64;
/// Deepest group nesting that is skipped before giving up.
pub(crate) const GROUP_DEPTH: usize = 10_000;
/// Group levels tracked without allocating.
const INLINE_GROUPS: usize = 32;

/// Wire type 0: varint.
pub(crate) const VARINT: u8 = 0;
/// Wire type 1: 8 little-endian bytes.
pub(crate) const FIXED64: u8 = 1;
/// Wire type 2: length-delimited.
pub(crate) const LEN: u8 = 2;
/// Wire type 3: start of a group.
const START_GROUP: u8 = 3;
/// Wire type 4: end of a group.
const END_GROUP: u8 = 4;
/// Wire type 5: 4 little-endian bytes.
const FIXED32: u8 = 5;

/// A cursor over encoded protobuf bytes.
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

    /// Reads one varint (Go rules: at most 10 bytes, the 10th at most 1;
    /// non-minimal encodings are accepted).
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, ViewError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
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
            [] => Err(ViewError::Truncated),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self, rest: &[u8]) -> Result<u64, ViewError> {
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
                return Err(ViewError::VarintOverflow);
            }
            self.pos += 10;
            return Ok(value | (u64::from(b[9]) << 63));
        }
        let mut value = 0u64;
        for (i, &b) in rest.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return Err(ViewError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if rest.len() >= 10 {
            Err(ViewError::VarintOverflow)
        } else {
            Err(ViewError::Truncated)
        }
    }

    /// Reads a field tag of a message: field number `1..=2^29-1` and a wire
    /// type. Wire types 6 and 7 are returned and rejected by [`Self::skip`].
    #[inline]
    pub(crate) fn tag(&mut self) -> Result<(u32, u8), ViewError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > MAX_FIELD {
            return Err(ViewError::InvalidFieldNumber);
        }
        // Lossless: field <= 2^29-1 and the wire type is 3 bits.
        Ok((field as u32, (key & 7) as u8))
    }

    /// Reads a length-delimited value and returns its bytes.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ViewError> {
        let len = self.varint()?;
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        // Compared as u64 first: a length claiming 2^60 bytes fails here,
        // before anything is allocated or sliced.
        if len > rest.len() as u64 {
            return Err(ViewError::Truncated);
        }
        let len = len as usize;
        self.pos += len;
        Ok(&rest[..len])
    }

    /// Reads 8 little-endian bytes.
    #[inline]
    pub(crate) fn fixed64(&mut self) -> Result<u64, ViewError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.first_chunk::<8>() {
            Some(b) => {
                self.pos += 8;
                Ok(u64::from_le_bytes(*b))
            }
            None => Err(ViewError::Truncated),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ViewError> {
        if self.buf.len() - self.pos < n {
            return Err(ViewError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Skips the value of a field whose tag was just read (an unknown field,
    /// or a known field with an unexpected wire type).
    pub(crate) fn skip(&mut self, field: u32, wire_type: u8) -> Result<(), ViewError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.advance(8),
            LEN => self.bytes().map(drop),
            FIXED32 => self.advance(4),
            START_GROUP => self.skip_group(field),
            END_GROUP => Err(ViewError::UnexpectedEndGroup),
            _ => Err(ViewError::InvalidWireType),
        }
    }

    /// Skips a group's contents up to and including its matching end tag,
    /// with an explicit stack instead of recursion.
    fn skip_group(&mut self, field: u32) -> Result<(), ViewError> {
        let mut inline = [0u32; INLINE_GROUPS];
        let mut spill: Vec<u32> = Vec::new();
        let mut depth = 1;
        inline[0] = field;
        while depth > 0 {
            let key = self.varint()?;
            let inner = key >> 3;
            if inner == 0 || inner > MAX_GROUP_FIELD {
                return Err(ViewError::InvalidFieldNumber);
            }
            let inner = inner as u32;
            match (key & 7) as u8 {
                VARINT => self.varint().map(drop)?,
                FIXED64 => self.advance(8)?,
                LEN => self.bytes().map(drop)?,
                FIXED32 => self.advance(4)?,
                START_GROUP => {
                    if depth == GROUP_DEPTH {
                        return Err(ViewError::RecursionLimit);
                    }
                    match inline.get_mut(depth) {
                        Some(slot) => *slot = inner,
                        None => spill.push(inner),
                    }
                    depth += 1;
                }
                END_GROUP => {
                    depth -= 1;
                    let open = match inline.get(depth) {
                        Some(&f) => f,
                        None => spill.pop().unwrap_or(0),
                    };
                    if open != inner {
                        return Err(ViewError::UnexpectedEndGroup);
                    }
                }
                _ => return Err(ViewError::InvalidWireType),
            }
        }
        Ok(())
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

    #[test]
    fn varint_rules_follow_go() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        // non-minimal encodings are accepted
        assert_eq!(Reader::new(&[0x80, 0x80, 0x00]).varint(), Ok(0));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&over).varint(), Err(ViewError::VarintOverflow));
        let eleven = [0x80; 11];
        assert_eq!(
            Reader::new(&eleven).varint(),
            Err(ViewError::VarintOverflow)
        );
        assert_eq!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(ViewError::Truncated)
        );
        assert_eq!(Reader::new(&[]).varint(), Err(ViewError::Truncated));
    }

    #[test]
    fn tags_reject_field_zero_and_too_large_numbers() {
        assert_eq!(
            Reader::new(&[0x02]).tag(),
            Err(ViewError::InvalidFieldNumber)
        );
        // field 2^29 (too large) with wire type 0
        let mut buf = Vec::new();
        put_varint(1 << 32, &mut buf);
        assert_eq!(Reader::new(&buf).tag(), Err(ViewError::InvalidFieldNumber));
        let mut buf = Vec::new();
        put_varint(((1 << 29) - 1) << 3 | 2, &mut buf);
        assert_eq!(Reader::new(&buf).tag(), Ok(((1 << 29) - 1, 2)));
    }

    #[test]
    fn groups_are_skipped_to_their_matching_end() {
        // field 5 start group, inner field 1 varint 7, nested group 6 { }, end 5; then byte 0x08
        let buf = [0x2b, 0x08, 0x07, 0x33, 0x34, 0x2c, 0x08];
        let mut r = Reader::new(&buf);
        assert_eq!(r.tag(), Ok((5, START_GROUP)));
        assert_eq!(r.skip(5, START_GROUP), Ok(()));
        assert_eq!(r.pos(), 6);
        // mismatched end tag
        let bad = [0x2b, 0x34];
        let mut r = Reader::new(&bad);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(ViewError::UnexpectedEndGroup));
        // unterminated group
        let open = [0x2b, 0x08, 0x01];
        let mut r = Reader::new(&open);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(ViewError::Truncated));
        // deep but matched nesting (spills past the inline stack)
        let mut nested = vec![0x2b; 100];
        nested.extend(vec![0x2c; 100]);
        let mut r = Reader::new(&nested);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Ok(()));
        assert!(r.is_empty());
        // too deep
        let deep = vec![0x2b; GROUP_DEPTH + 1];
        let mut r = Reader::new(&deep);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(ViewError::RecursionLimit));
    }

    #[test]
    fn stray_end_group_and_reserved_wire_types_are_errors() {
        let mut r = Reader::new(&[0x0c]);
        let (f, w) = r.tag().expect("tag");
        assert_eq!(r.skip(f, w), Err(ViewError::UnexpectedEndGroup));
        for wt in [6u8, 7] {
            let b = [0x08 | wt];
            let mut r = Reader::new(&b);
            let (f, w) = r.tag().expect("tag");
            assert_eq!(r.skip(f, w), Err(ViewError::InvalidWireType));
        }
    }

    #[test]
    fn huge_length_prefix_fails_without_allocating() {
        let mut buf = vec![0x12];
        put_varint(1 << 60, &mut buf);
        let mut r = Reader::new(&buf);
        r.tag().expect("tag");
        assert_eq!(r.bytes(), Err(ViewError::Truncated));
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
