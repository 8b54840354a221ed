//! The Go-compatible v2 decoders on arbitrary bytes: never panic; an accepted
//! envelope converts to v1 without panicking.
#![no_main]

use bytes::Bytes;
use envelope_proto::{convert, v2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = v2::decode(data) {
        let _ = convert::to_v1(&env);
    }
    let raw = Bytes::copy_from_slice(data);
    let _ = v2::decode_bytes(&raw);
    let _ = v2::decode_batch(data);
});
