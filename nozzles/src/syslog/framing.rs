//! Octet-counting framing (RFC 6587 §3.4.1, RFC 5425): `<decimal length> SP
//! <message>`, nothing after the message beyond its own trailing newline.
//! Used by `syslog://` and `syslog-tls://` drains and the syslog nozzle.

use std::io::Write as _;

/// Appends the octet-counted frame of `msg` to `out`.
pub fn frame_octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "{} ", msg.len());
    out.extend_from_slice(msg);
}

/// How messages are delimited on a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// `<len> SP <msg>` (syslog over TCP/TLS).
    #[default]
    OctetCounting,
    /// The message as is; it must end with its own `\n` (JSON lines).
    NewlineDelimited,
}

impl Framing {
    /// Appends the frame of `msg` to `out`.
    pub fn frame(self, msg: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::OctetCounting => frame_octet_counted(msg, out),
            Framing::NewlineDelimited => out.extend_from_slice(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_decimal_length_and_space() {
        let mut out = Vec::new();
        frame_octet_counted(b"abcd\n", &mut out);
        assert_eq!(out, b"5 abcd\n");
        frame_octet_counted(b"", &mut out);
        assert_eq!(out, b"5 abcd\n0 ");
    }
}
