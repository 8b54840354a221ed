//! `logcache.v1` messages read and written without decoding the envelopes
//! inside, for a store that keeps envelopes encoded.
//!
//! - [`send_request`]: the batch and `local_only` of an encoded
//!   `SendRequest` (`EnvelopeBatch envelopes = 1; bool local_only = 2`).
//! - [`encode_read_response`]: an encoded `ReadResponse`
//!   (`EnvelopeBatch envelopes = 1`) from encoded envelopes.
//! - [`read_response_batch`]: the batch of an encoded `ReadResponse`, for a
//!   node proxying a read to its owner.
//! - [`encode_send_request`]: the other direction of [`send_request`], for
//!   forwarding to a peer.

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchError};
use crate::wire::WireType::{Len, Varint};
use crate::wire::{Reader, put_varint, varint_len};

/// The parts of an encoded `SendRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRequest<'a> {
    /// The encoded `EnvelopeBatch` (framing checked), empty when absent.
    pub batch: &'a [u8],
    /// Store locally, do not forward.
    pub local_only: bool,
}

/// Reads an encoded `SendRequest`: the last occurrence of each field wins
/// (Go would merge two `envelopes` fields; no client sends two).
pub fn send_request(buf: &[u8]) -> Result<SendRequest<'_>, BatchError> {
    let mut r = Reader::new(buf);
    let mut out = SendRequest {
        batch: &[],
        local_only: false,
    };
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => {
                out.batch = r.bytes()?;
            }
            (2, Varint) => out.local_only = r.varint()? != 0,
            (field, wt) => r.skip(field, wt)?,
        }
    }
    batch::count(out.batch)?;
    Ok(out)
}

/// The encoded `EnvelopeBatch` of an encoded `ReadResponse` (framing
/// checked; empty when absent; the last `envelopes` field wins).
pub fn read_response_batch(buf: &[u8]) -> Result<&[u8], BatchError> {
    let mut r = Reader::new(buf);
    let mut batch: &[u8] = &[];
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => batch = r.bytes()?,
            (field, wt) => r.skip(field, wt)?,
        }
    }
    batch::count(batch)?;
    Ok(batch)
}

/// An encoded `SendRequest` holding `items` (encoded envelopes).
pub fn encode_send_request<B: AsRef<[u8]>>(items: &[B], local_only: bool) -> Bytes {
    let inner = batch::encoded_len(items);
    let mut out = BytesMut::with_capacity(1 + varint_len(inner as u64) + inner + 2);
    out.extend_from_slice(&[0x0a]);
    put_varint(inner as u64, &mut out);
    batch::encode(items, &mut out);
    if local_only {
        out.extend_from_slice(&[0x10, 0x01]);
    }
    out.freeze()
}

/// Size of the `ReadResponse` [`encode_read_response`] writes for `items`.
pub fn read_response_len<B: AsRef<[u8]>>(items: &[B]) -> usize {
    let inner = batch::encoded_len(items);
    1 + varint_len(inner as u64) + inner
}

/// An encoded `ReadResponse` holding `items` (encoded envelopes, in order).
/// An empty result is still an encoded empty batch, as Go's encoder writes
/// a set message field.
pub fn encode_read_response<B: AsRef<[u8]>>(items: &[B]) -> Bytes {
    let inner = batch::encoded_len(items);
    let mut out = BytesMut::with_capacity(1 + varint_len(inner as u64) + inner);
    out.extend_from_slice(&[0x0a]);
    put_varint(inner as u64, &mut out);
    batch::encode(items, &mut out);
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::logcache_v1::{ReadResponse, SendRequest as Typed};
    use crate::loggregator_v2::{Envelope, EnvelopeBatch};

    fn env(ts: i64) -> Envelope {
        Envelope {
            timestamp: ts,
            source_id: "s".into(),
            ..Envelope::default()
        }
    }

    #[test]
    fn raw_and_typed_agree() {
        let envs = vec![env(1), env(2)];
        let encoded: Vec<Vec<u8>> = envs.iter().map(Message::encode_to_vec).collect();
        let typed = Typed {
            envelopes: Some(EnvelopeBatch {
                batch: envs.clone(),
            }),
            local_only: true,
        }
        .encode_to_vec();
        assert_eq!(encode_send_request(&encoded, true)[..], typed[..]);
        let parsed = send_request(&typed).unwrap();
        assert!(parsed.local_only);
        assert_eq!(batch::count(parsed.batch).unwrap(), 2);

        let read = encode_read_response(&encoded);
        assert_eq!(read.len(), read_response_len(&encoded));
        let inner: Vec<&[u8]> = batch::entries(read_response_batch(&read).unwrap())
            .unwrap()
            .collect();
        assert_eq!(inner, encoded.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let back = ReadResponse::decode(&read[..]).unwrap();
        assert_eq!(back.envelopes.unwrap().batch, envs);
        let empty = ReadResponse::decode(&encode_read_response::<Vec<u8>>(&[])[..]).unwrap();
        assert_eq!(empty.envelopes, Some(EnvelopeBatch::default()));
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert!(send_request(&[0x0a, 0x05, 0x0a]).is_err());
        assert!(send_request(&[0x0a, 0x02, 0x0a, 0x09]).is_err());
        assert!(read_response_batch(&[0x0a, 0x02, 0x0a, 0x09]).is_err());
        assert_eq!(read_response_batch(&[]).unwrap(), &[] as &[u8]);
        assert_eq!(send_request(&[]).unwrap().batch, &[] as &[u8]);
    }
}
