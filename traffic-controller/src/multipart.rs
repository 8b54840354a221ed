//! `multipart/x-protobuf` bodies for recent logs and container metrics
//! (reference §15.1): a 60-character lowercase hex boundary, unquoted and the
//! last parameter of the content type; parts without headers, each one
//! marshalled v1 envelope.

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;

/// A fresh boundary: 30 random bytes as 60 lowercase hex characters.
pub(crate) fn boundary() -> String {
    let mut raw = [0u8; 30];
    rand::rng().fill_bytes(&mut raw);
    let mut s = String::with_capacity(60);
    for b in raw {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The `Content-Type` header value for `boundary`.
pub(crate) fn content_type(boundary: &str) -> String {
    format!("multipart/x-protobuf; boundary={boundary}")
}

/// Encodes `parts` exactly as Go's `mime/multipart.Writer` does with no part
/// headers: `--b\r\n\r\n<p1>\r\n--b\r\n\r\n<p2>\r\n--b--\r\n`, and
/// `\r\n--b--\r\n` for zero parts.
pub(crate) fn encode(boundary: &str, parts: &[Bytes]) -> Bytes {
    let len: usize = parts
        .iter()
        .map(|p| p.len() + boundary.len() + 8)
        .sum::<usize>()
        + boundary.len()
        + 8;
    let mut out = BytesMut::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"\r\n\r\n");
        out.put_slice(part);
    }
    out.put_slice(b"\r\n--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"--\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_is_60_lowercase_hex_and_random() {
        let b = boundary();
        assert_eq!(b.len(), 60);
        assert!(
            b.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(b, boundary());
        assert_eq!(
            content_type(&b),
            format!("multipart/x-protobuf; boundary={b}")
        );
    }

    #[test]
    fn layout_matches_go_multipart_writer() {
        let parts = [
            Bytes::from_static(b"one"),
            Bytes::from_static(b"\r\ntwo\r\n"),
        ];
        assert_eq!(
            &encode("b", &parts)[..],
            b"--b\r\n\r\none\r\n--b\r\n\r\n\r\ntwo\r\n\r\n--b--\r\n"
        );
        assert_eq!(&encode("b", &[])[..], b"\r\n--b--\r\n");
        assert_eq!(
            &encode("b", &parts[..1])[..],
            b"--b\r\n\r\none\r\n--b--\r\n"
        );
    }

    /// The PyPI client's parser: boundary up to the first space, split on
    /// `--b`, trim `\r\n` pairs from both ends.
    #[test]
    fn pypi_style_parser_recovers_parts() {
        let b = boundary();
        let parts = [
            Bytes::from_static(b"\x0a\x03abc"),
            Bytes::from_static(b"xyz"),
        ];
        let body = encode(&b, &parts);
        let ct = content_type(&b);
        let got_b = ct
            .split("boundary=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or("");
        assert_eq!(got_b, b);
        let delim = format!("--{got_b}");
        let text = body.to_vec();
        let mut found = Vec::new();
        let mut rest = &text[..];
        while let Some(pos) = find(rest, delim.as_bytes()) {
            let mut part = &rest[..pos];
            while part.starts_with(b"\r\n") {
                part = &part[2..];
            }
            while part.ends_with(b"\r\n") {
                part = &part[..part.len() - 2];
            }
            if !part.is_empty() && part != b"--" {
                found.push(part.to_vec());
            }
            rest = &rest[pos + delim.len()..];
        }
        assert_eq!(found, vec![b"\x0a\x03abc".to_vec(), b"xyz".to_vec()]);
    }

    fn find(h: &[u8], n: &[u8]) -> Option<usize> {
        h.windows(n.len()).position(|w| w == n)
    }
}
