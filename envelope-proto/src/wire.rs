//! A small protobuf wire-format reader with the exact acceptance rules of Go's
//! `google.golang.org/protobuf` decoder (the reference implementation).
//!
//! Rules reproduced here (each one is exercised by a fixture in
//! `shared/fixtures/v1/invalid.json` or `v2/invalid.json`):
//! - a varint is at most 10 bytes, and its 10th byte may only be `0` or `1`;
//! - a tag with field number 0 or above `2^29 - 1` is invalid;
//! - wire types 6 and 7 do not exist, and an END_GROUP (4) with no matching
//!   START_GROUP is invalid;
//! - a field whose wire type does not match its declaration is *not* an error:
//!   the caller treats it as an unknown field and skips it (`Reader::skip`);
//! - groups are skipped field by field up to the END_GROUP with the same number,
//!   nested at most 10000 deep (Go's recursion limit).
//!
//! The reader never panics; it allocates only to skip groups (a stack of the
//! open group numbers, 4 bytes per START_GROUP present in the input).

/// Largest valid field number (`2^29 - 1`).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;
/// Nesting limit for groups and messages, Go's `protowire.DefaultRecursionLimit`.
const MAX_DEPTH: u32 = 10_000;

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

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    /// 0: varint.
    Varint,
    /// 1: 8 bytes little endian.
    Fixed64,
    /// 2: length-delimited.
    Len,
    /// 3: start of a group.
    StartGroup,
    /// 4: end of a group.
    EndGroup,
    /// 5: 4 bytes little endian.
    Fixed32,
}

/// Cursor over protobuf-encoded bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// True when every byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads one varint with Go's limits.
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated);
            };
            self.pos += 1;
            if i == 9 {
                if b > 1 {
                    return Err(WireError::Overflow);
                }
                return Ok(value | (u64::from(b) << 63));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::Overflow)
    }

    /// Reads a tag: field number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, WireType), WireError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::FieldNumber);
        }
        let wire_type = match tag & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(WireError::WireType),
        };
        // Checked above: the number fits in 29 bits.
        Ok((number as u32, wire_type))
    }

    /// Reads the payload of a length-delimited field.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let rest = self.buf.len().saturating_sub(self.pos);
        if len > rest as u64 {
            return Err(WireError::Truncated);
        }
        // len <= rest, so it fits in usize.
        let end = self.pos + len as usize;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads a fixed 64-bit little-endian value.
    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let end = self.pos.checked_add(8).ok_or(WireError::Truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(slice);
        self.pos = end;
        Ok(u64::from_le_bytes(raw))
    }

    /// Reads a fixed 32-bit little-endian value.
    fn fixed32(&mut self) -> Result<u32, WireError> {
        let end = self.pos.checked_add(4).ok_or(WireError::Truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        let mut raw = [0u8; 4];
        raw.copy_from_slice(slice);
        self.pos = end;
        Ok(u32::from_le_bytes(raw))
    }

    /// Skips the value of a field whose key was just read (an unknown field or
    /// one whose wire type does not match its declaration).
    pub(crate) fn skip(&mut self, number: u32, wire_type: WireType) -> Result<(), WireError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.fixed32().map(drop),
            WireType::EndGroup => Err(WireError::WireType),
            WireType::StartGroup => self.skip_group(number),
        }
    }

    /// Skips fields up to the END_GROUP closing group `number`, following
    /// nested groups. Nothing in Loggregator uses groups, so they only come
    /// from odd or hostile input: open groups are tracked with an explicit
    /// stack (4 bytes per START_GROUP actually present in the input, at most
    /// [`MAX_DEPTH`]) so that nesting cannot exhaust the thread stack.
    fn skip_group(&mut self, number: u32) -> Result<(), WireError> {
        let mut open: Vec<u32> = vec![number];
        loop {
            if open.len() > MAX_DEPTH as usize {
                return Err(WireError::TooDeep);
            }
            if self.is_empty() {
                return Err(WireError::Truncated);
            }
            let (n, wt) = self.key()?;
            match wt {
                WireType::EndGroup => {
                    if open.last() != Some(&n) {
                        return Err(WireError::WireType);
                    }
                    open.pop();
                    if open.is_empty() {
                        return Ok(());
                    }
                }
                WireType::StartGroup => open.push(n),
                other => self.skip(n, other)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_limits_follow_go() {
        assert_eq!(Reader::new(&[0x01]).varint(), Ok(1));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&overflow).varint(), Err(WireError::Overflow));
        let eleven = [0xff; 11];
        assert_eq!(Reader::new(&eleven).varint(), Err(WireError::Overflow));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn keys_reject_field_zero_and_bad_wire_types() {
        assert_eq!(Reader::new(&[0x00]).key(), Err(WireError::FieldNumber));
        assert_eq!(Reader::new(&[0x0f]).key(), Err(WireError::WireType));
        assert_eq!(Reader::new(&[0x0e]).key(), Err(WireError::WireType));
        assert_eq!(Reader::new(&[0x0a]).key(), Ok((1, WireType::Len)));
    }

    #[test]
    fn groups_are_skipped_to_their_matching_end() {
        // field 1 start group, field 2 varint 5, field 3 group { }, end group 1, then byte 0x08.
        let buf = [0x0b, 0x10, 0x05, 0x1b, 0x1c, 0x0c, 0x08];
        let mut r = Reader::new(&buf);
        let (n, wt) = r.key().expect("key");
        assert_eq!(r.skip(n, wt), Ok(()));
        assert_eq!(r.pos, 6);
        // Mismatched end group.
        let mut r = Reader::new(&[0x0b, 0x14]);
        let (n, wt) = r.key().expect("key");
        assert_eq!(r.skip(n, wt), Err(WireError::WireType));
        // Unterminated group.
        let mut r = Reader::new(&[0x0b, 0x10, 0x05]);
        let (n, wt) = r.key().expect("key");
        assert_eq!(r.skip(n, wt), Err(WireError::Truncated));
        // Deep nesting is bounded, not a stack overflow.
        let deep = vec![0x0b; 20_000];
        let mut r = Reader::new(&deep);
        let (n, wt) = r.key().expect("key");
        assert_eq!(r.skip(n, wt), Err(WireError::TooDeep));
    }

    #[test]
    fn lengths_past_the_end_are_truncation() {
        assert_eq!(
            Reader::new(&[0x05, 0x01]).bytes(),
            Err(WireError::Truncated)
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&huge).bytes(), Err(WireError::Truncated));
    }
}
