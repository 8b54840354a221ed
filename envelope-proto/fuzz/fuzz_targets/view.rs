//! The routing view on arbitrary bytes: never panics, and accepts exactly
//! what the Go-compatible decoder accepts, with the same field values.
#![no_main]

use envelope_proto::loggregator_v2::envelope::Message;
use envelope_proto::v2;
use envelope_proto::view::{EnvelopeView, crc64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let view = EnvelopeView::parse(data);
    let decoded = v2::decode(data);
    assert_eq!(view.is_ok(), decoded.is_ok(), "{view:?} vs {decoded:?}");
    let (Ok(view), Ok(env)) = (view, decoded) else {
        return;
    };
    assert_eq!(view.timestamp(), env.timestamp);
    assert_eq!(view.source_id(), env.source_id);
    assert_eq!(view.instance_id(), env.instance_id);
    for (k, v) in &env.tags {
        assert_eq!(view.tag(k), Some(v.as_str()));
    }
    match &env.message {
        Some(Message::Log(l)) => {
            assert_eq!(view.log_type(), l.r#type);
            assert_eq!(view.log_payload(), &l.payload[..]);
        }
        Some(Message::Counter(c)) => assert_eq!(view.counter_name(), c.name),
        Some(Message::Gauge(g)) => {
            let sum = g
                .metrics
                .keys()
                .fold(0u64, |s, n| s.wrapping_add(crc64(n.as_bytes())));
            assert_eq!(view.gauge_names_hash(), sum);
        }
        Some(Message::Timer(t)) => assert_eq!(view.timer_name(), t.name),
        Some(Message::Event(e)) => assert_eq!(view.event(), (e.title.as_str(), e.body.as_str())),
        None => {}
    }
});
