//! Batch splitting on arbitrary bytes: never panics; whenever the
//! Go-compatible batch decoder accepts, split yields as many envelopes, and
//! re-encoding the parts is stable.
#![no_main]

use bytes::{Bytes, BytesMut};
use envelope_proto::{batch, v2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = Bytes::copy_from_slice(data);
    let split = batch::split(&raw);
    if let Ok(decoded) = v2::decode_batch(data) {
        let parts: Vec<Bytes> = split.expect("Go accepts, so framing is fine").collect();
        assert_eq!(parts.len(), decoded.batch.len());
        let mut out = BytesMut::new();
        batch::encode(&parts, &mut out);
        let again: Vec<Bytes> = batch::split(&out.freeze()).expect("own output").collect();
        assert_eq!(again, parts);
    } else if let Ok(parts) = split {
        for p in parts {
            let _ = envelope_proto::view::EnvelopeView::parse(&p);
        }
    }
});
