//! Syslog output: the RFC 5424 formatter ([`rfc5424`]) and the octet-counting
//! framer ([`framing`]), kept as separate encoders so the same message bytes
//! can be framed for TCP/TLS or posted bare over HTTPS.

pub mod framing;
pub mod rfc5424;

pub use framing::{Framing, frame_octet_counted};
pub use rfc5424::{Encoded, FormatError, Rfc5424Encoder};
