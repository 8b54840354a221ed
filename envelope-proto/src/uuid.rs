//! v1 `events.UUID` packing (reference §3.6): the 16 bytes of a UUID in
//! canonical order are `LE64(low) ‖ LE64(high)`.
//!
//! `f47ac10b-58cc-4372-a567-0e02b2c3d479` ↔ `low=0x7243cc580bc17af4`,
//! `high=0x79d4c3b2020e67a5`.

use crate::events::Uuid;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The 16 canonical bytes of a UUID (an absent `low`/`high` counts as 0).
pub fn to_bytes(id: &Uuid) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&id.low.unwrap_or(0).to_le_bytes());
    out[8..].copy_from_slice(&id.high.unwrap_or(0).to_le_bytes());
    out
}

/// Packs 16 canonical bytes into a UUID with both halves present.
pub fn from_bytes(bytes: [u8; 16]) -> Uuid {
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    high.copy_from_slice(&bytes[8..]);
    Uuid {
        low: Some(u64::from_le_bytes(low)),
        high: Some(u64::from_le_bytes(high)),
    }
}

/// Appends the lowercase hyphenated form (`8-4-4-4-12` hex digits).
pub fn write(out: &mut String, id: &Uuid) {
    let bytes = to_bytes(id);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// The lowercase hyphenated form, e.g. `f47ac10b-58cc-4372-a567-0e02b2c3d479`.
pub fn format(id: &Uuid) -> String {
    let mut s = String::with_capacity(36);
    write(&mut s, id);
    s
}

/// True when both halves are zero (or absent): conversion treats such an
/// application id as "no application".
pub fn is_zero(id: &Uuid) -> bool {
    id.low.unwrap_or(0) == 0 && id.high.unwrap_or(0) == 0
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses a 36-character UUID the way go-loggregator's `ToV1` does: exactly
/// 36 bytes, the characters at positions 8, 13, 18 and 23 are *skipped*
/// (not checked to be hyphens), the other 32 must be hex digits of either
/// case. Anything else gives `None`.
pub fn parse(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let v = hex_value(c)?;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                out[n] = (h << 4) | v;
                n += 1;
            }
        }
    }
    Some(from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_example_round_trips() {
        let id = Uuid {
            low: Some(0x7243cc580bc17af4),
            high: Some(0x79d4c3b2020e67a5),
        };
        assert_eq!(format(&id), "f47ac10b-58cc-4372-a567-0e02b2c3d479");
        assert_eq!(parse("f47ac10b-58cc-4372-a567-0e02b2c3d479"), Some(id));
        assert_eq!(parse("F47AC10B-58CC-4372-A567-0E02B2C3D479"), Some(id));
    }

    #[test]
    fn parse_rejects_wrong_length_and_non_hex() {
        assert_eq!(parse("not-a-uuid"), None);
        assert_eq!(parse("g47ac10b-58cc-4372-a567-0e02b2c3d479"), None);
        assert_eq!(parse("f47ac10b-58cc-4372-a567-0e02b2c3d4799"), None);
        // Separator positions are not checked (as in Go).
        assert!(parse("f47ac10bx58ccx4372xa567x0e02b2c3d479").is_some());
    }

    #[test]
    fn zero_and_absent_halves() {
        assert!(is_zero(&Uuid::default()));
        assert_eq!(
            format(&Uuid::default()),
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
