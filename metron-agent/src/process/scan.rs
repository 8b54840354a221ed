//! One pass over the top-level fields of an encoded v2 envelope, deciding
//! whether the fast path (forward the original bytes, maybe with default tag
//! entries appended) is enough.
//!
//! The scan allocates nothing. Anything unusual (a known field with an
//! unexpected wire type, groups, a map entry with extra fields, invalid UTF-8)
//! makes the scan give up with [`Irregular`]; the caller then takes the slow
//! path, whose full Go-compatible decode decides whether the envelope is
//! valid at all.

use envelope_proto::view::Kind;
use prost::encoding::decode_varint;

/// What the fast path needs to know about one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// `source_id` is empty (needs origin mapping: slow path).
    pub source_id_empty: bool,
    /// `deprecated_tags` has at least one entry (slow path).
    pub has_deprecated_tags: bool,
    /// The message member (the last oneof field on the wire wins).
    pub member: Kind,
    /// Bit `i` set: default tag key `i` is present in `tags`.
    pub present: u64,
}

/// The scan gave up: the envelope needs the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irregular;

/// Maximum number of default tags the fast path tracks (bits of
/// [`Scan::present`]).
pub const MAX_DEFAULT_TAGS: usize = 64;

/// Scans `buf`; `default_keys` are the agent's default tag keys (at most
/// [`MAX_DEFAULT_TAGS`]).
pub fn scan<K: AsRef<[u8]>>(mut buf: &[u8], default_keys: &[K]) -> Result<Scan, Irregular> {
    let mut out = Scan {
        source_id_empty: true,
        has_deprecated_tags: false,
        member: Kind::None,
        present: 0,
    };
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).map_err(|_| Irregular)?;
        let field = key >> 3;
        let wire = (key & 7) as u8;
        if field == 0 {
            return Err(Irregular);
        }
        match wire {
            0 => {
                if field != 1 && field <= 10 {
                    // Only timestamp is a known top-level varint.
                    return Err(Irregular);
                }
                decode_varint(&mut buf).map_err(|_| Irregular)?;
            }
            2 => {
                let len = decode_varint(&mut buf).map_err(|_| Irregular)?;
                let len = usize::try_from(len).map_err(|_| Irregular)?;
                if len > buf.len() {
                    return Err(Irregular);
                }
                let (body, rest) = buf.split_at(len);
                buf = rest;
                match field {
                    2 => {
                        std::str::from_utf8(body).map_err(|_| Irregular)?;
                        out.source_id_empty = body.is_empty();
                    }
                    8 => {
                        std::str::from_utf8(body).map_err(|_| Irregular)?;
                    }
                    3 => out.has_deprecated_tags = true,
                    9 => {
                        let k = map_entry_key(body)?;
                        for (i, dk) in default_keys.iter().enumerate() {
                            if dk.as_ref() == k {
                                out.present |= 1 << i;
                            }
                        }
                    }
                    4 => out.member = Kind::Log,
                    5 => out.member = Kind::Counter,
                    6 => out.member = Kind::Gauge,
                    7 => out.member = Kind::Timer,
                    10 => out.member = Kind::Event,
                    1 => return Err(Irregular),
                    _ => {}
                }
            }
            1 => {
                if field <= 10 || buf.len() < 8 {
                    return Err(Irregular);
                }
                buf = &buf[8..];
            }
            5 => {
                if field <= 10 || buf.len() < 4 {
                    return Err(Irregular);
                }
                buf = &buf[4..];
            }
            _ => return Err(Irregular),
        }
    }
    Ok(out)
}

/// Key of one `tags` map entry (`key = 1`, `value = 2`, both strings);
/// validates both as UTF-8. A missing key is the empty string.
fn map_entry_key(mut entry: &[u8]) -> Result<&[u8], Irregular> {
    let mut key: &[u8] = &[];
    while !entry.is_empty() {
        let tag = decode_varint(&mut entry).map_err(|_| Irregular)?;
        if tag != 0x0a && tag != 0x12 {
            return Err(Irregular);
        }
        let len = decode_varint(&mut entry).map_err(|_| Irregular)?;
        let len = usize::try_from(len).map_err(|_| Irregular)?;
        if len > entry.len() {
            return Err(Irregular);
        }
        let (s, rest) = entry.split_at(len);
        entry = rest;
        std::str::from_utf8(s).map_err(|_| Irregular)?;
        if tag == 0x0a {
            key = s;
        }
    }
    Ok(key)
}

/// Appends one encoded `tags` map entry (field 9) for `key` = `value`.
pub fn encode_tag_entry(key: &str, value: &str, out: &mut Vec<u8>) {
    use prost::encoding::{encode_varint, encoded_len_varint};
    let inner = 1
        + encoded_len_varint(key.len() as u64)
        + key.len()
        + 1
        + encoded_len_varint(value.len() as u64)
        + value.len();
    out.push(0x4a);
    encode_varint(inner as u64, out);
    out.push(0x0a);
    encode_varint(key.len() as u64, out);
    out.extend_from_slice(key.as_bytes());
    out.push(0x12);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_proto::loggregator_v2::{Envelope, Log, Value, envelope::Message};
    use prost::Message as _;

    fn enc(env: &Envelope) -> Vec<u8> {
        env.encode_to_vec()
    }

    #[test]
    fn classifies_a_plain_log() {
        let mut env = Envelope {
            source_id: "app".into(),
            message: Some(Message::Log(Log::default())),
            ..Default::default()
        };
        env.tags.insert("job".into(), "j".into());
        let s = scan(&enc(&env), &["deployment", "job"]).expect("regular");
        assert!(!s.source_id_empty);
        assert!(!s.has_deprecated_tags);
        assert_eq!(s.member, Kind::Log);
        assert_eq!(s.present, 0b10);
    }

    #[test]
    fn flags_empty_source_and_deprecated_tags() {
        let mut env = Envelope::default();
        env.deprecated_tags.insert("a".into(), Value::default());
        let s = scan::<&str>(&enc(&env), &[]).expect("regular");
        assert!(s.source_id_empty);
        assert!(s.has_deprecated_tags);
        assert_eq!(s.member, Kind::None);
    }

    #[test]
    fn appended_entries_decode_as_tags() {
        let env = Envelope {
            source_id: "app".into(),
            ..Default::default()
        };
        let mut buf = enc(&env);
        encode_tag_entry("k", "v", &mut buf);
        encode_tag_entry(&"x".repeat(200), "", &mut buf);
        let back = Envelope::decode(buf.as_slice()).expect("decodes");
        assert_eq!(back.tags["k"], "v");
        assert_eq!(back.tags[&"x".repeat(200)], "");
    }

    #[test]
    fn irregular_inputs_give_up_instead_of_guessing() {
        assert_eq!(
            scan::<&str>(&[0x12, 0x05, b'a'], &[]),
            Err(Irregular),
            "truncated"
        );
        assert_eq!(
            scan::<&str>(&[0x10, 0x01], &[]),
            Err(Irregular),
            "source_id as varint"
        );
        assert_eq!(
            scan::<&str>(&[0x12, 0x01, 0xff], &[]),
            Err(Irregular),
            "bad utf-8"
        );
        assert_eq!(scan::<&str>(&[0x00], &[]), Err(Irregular), "field 0");
    }
}
