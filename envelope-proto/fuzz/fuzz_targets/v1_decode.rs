//! The Go-compatible v1 (dropsonde) decoder on arbitrary bytes: never panics;
//! whatever it accepts can be encoded again and decodes again.
#![no_main]

use envelope_proto::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = v1::decode(data) {
        let bytes = v1::encode(&env).expect("decoded envelopes have their required fields");
        v1::decode(&bytes).expect("re-encoded envelope decodes");
        let _ = v1::check_event(&env);
        let _ = v1::app_id(&env);
    }
});
