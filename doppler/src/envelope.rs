//! One ingested envelope as it travels through the ingress ring to the
//! router, and its preparation at ingress.
//!
//! Preparation happens on the ingress stream's task (many run in parallel),
//! so the single router task only looks up subscriptions and pushes refcounted
//! [`Bytes`]. Everything a subscriber may need is computed here **once per
//! envelope**, and only when some current subscriber needs it ([`Needs`]):
//! - the routing key ([`RouteKey`]) from a zero-copy [`EnvelopeView`];
//! - the v1 form(s) for v1 subscribers (v2 ingress: plain logs straight from
//!   the wire with [`convert::log_to_v1`], everything else `to_v1` then
//!   marshal; v1 ingress: the original bytes);
//! - a `deprecated_tags` re-encode for `use_preferred_tags=false` subscribers,
//!   only when the envelope has `tags`;
//! - a `tags` re-encode for `use_preferred_tags=true` subscribers, only when the
//!   envelope has `deprecated_tags`.
//!
//! Envelopes without either re-encode are delivered to every v2 subscriber as
//! the original bytes.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use envelope_proto::convert;
use envelope_proto::events;
use envelope_proto::loggregator_v2 as v2;
use envelope_proto::view::{EnvelopeView, Kind};
use prost::Message;

use crate::router::key::{RouteKey, V1Class, V1Routed};
use crate::subscriptions::Needs;

/// An envelope on its way from ingress to the router.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Routing key.
    pub key: RouteKey,
    /// The v2 envelope as received (or as converted from v1, encoded once).
    pub v2: Bytes,
    /// Re-encode with deprecated tags folded into `tags`, when it differs.
    pub v2_preferred: Option<Bytes>,
    /// Re-encode with `tags` moved into `deprecated_tags`, when it differs.
    pub v2_deprecated: Option<Bytes>,
    /// v1 forms with their v1 routing keys (empty when no v1 subscriber).
    pub v1: Vec<V1Routed>,
    /// The v1 bytes this envelope arrived as (Pusher ingress), for the caches.
    pub v1_original: Option<Bytes>,
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// It does not parse.
    Invalid,
}

fn route_key(buf: &Bytes, view: &EnvelopeView<'_>) -> RouteKey {
    let kind = view.kind();
    let (counter_name, name_hash) = match kind {
        Kind::Counter => {
            let name = view.counter_name();
            (
                slice_of(buf, name.as_bytes()),
                envelope_proto::view::crc64(name.as_bytes()),
            )
        }
        Kind::Gauge => (Bytes::new(), view.gauge_names_hash()),
        _ => (Bytes::new(), 0),
    };
    RouteKey {
        source_id: slice_of(buf, view.source_id().as_bytes()),
        kind,
        counter_name,
        name_hash,
    }
}

/// Zero-copy slice of `buf` when `part` lies inside it, a copy otherwise.
fn slice_of(buf: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        return Bytes::new();
    }
    let start = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= start + buf.len() {
        buf.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

fn encode_v2(env: &v2::Envelope) -> Bytes {
    Bytes::from(env.encode_to_vec())
}

/// v1 routing info of a decoded v1 envelope.
fn v1_routed(env: &events::Envelope, bytes: Bytes) -> V1Routed {
    V1Routed {
        bytes,
        app_id: envelope_proto::v1::app_id(env).into(),
        class: if envelope_proto::v1::is_log(env) {
            V1Class::Log
        } else {
            V1Class::Metric
        },
    }
}

/// Counts of side effects of preparing one envelope.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrepStats {
    /// v1 forms that could not be marshalled (dropped for v1 subscribers).
    pub v1_encode_failures: u64,
}

/// Prepares an envelope that arrived on v2 ingress.
pub fn from_v2(buf: Bytes, needs: &Needs, stats: &mut PrepStats) -> Result<Ingested, Rejected> {
    let view = EnvelopeView::parse(&buf).map_err(|_| Rejected::Invalid)?;
    let key = route_key(&buf, &view);
    let want_v1 = needs.v1.load(Ordering::Relaxed);
    let want_dep = needs.deprecated_tags.load(Ordering::Relaxed) && view.has_tags();
    let want_pref = needs.preferred_tags.load(Ordering::Relaxed) && view.has_deprecated_tags();
    let mut item = Ingested {
        key,
        v2: Bytes::new(),
        v2_preferred: None,
        v2_deprecated: None,
        v1: Vec::new(),
        v1_original: None,
    };
    // Plain logs (the bulk of traffic) convert straight from the wire; the rest below.
    let mut v1 = Vec::new();
    let want_v1 = if want_v1 && convert::log_to_v1(&view, &mut v1) {
        item.v1.push(V1Routed {
            bytes: Bytes::from(v1),
            app_id: view.source_id().into(),
            class: V1Class::Log,
        });
        false
    } else {
        want_v1
    };
    if want_v1 || want_dep || want_pref {
        let decoded = envelope_proto::v2::decode(&buf).map_err(|_| Rejected::Invalid)?;
        if want_v1 {
            for e in convert::to_v1(&decoded) {
                match envelope_proto::v1::encode(&e) {
                    Ok(bytes) => item.v1.push(v1_routed(&e, Bytes::from(bytes))),
                    Err(_) => stats.v1_encode_failures += 1,
                }
            }
        }
        if want_dep {
            let mut d = decoded.clone();
            convert::converge_tags(&mut d, false);
            item.v2_deprecated = Some(encode_v2(&d));
        }
        if want_pref {
            let mut d = decoded;
            convert::converge_tags(&mut d, true);
            item.v2_preferred = Some(encode_v2(&d));
        }
    }
    item.v2 = buf;
    Ok(item)
}

/// Prepares an envelope that arrived on v1 ingress (`Pusher`): decoded once,
/// converted with `to_v2(preferred = true)` and encoded once; the original v1
/// bytes go to v1 subscribers.
pub fn from_v1(buf: Bytes, needs: &Needs) -> Result<Ingested, Rejected> {
    let env = envelope_proto::v1::decode(&buf).map_err(|_| Rejected::Invalid)?;
    let v2env = convert::to_v2(&env, true);
    let v2 = encode_v2(&v2env);
    let view = EnvelopeView::parse(&v2).map_err(|_| Rejected::Invalid)?;
    let key = route_key(&v2, &view);
    let v2_deprecated = if needs.deprecated_tags.load(Ordering::Relaxed) && !v2env.tags.is_empty() {
        let mut d = v2env;
        convert::converge_tags(&mut d, false);
        Some(encode_v2(&d))
    } else {
        None
    };
    Ok(Ingested {
        key,
        v2,
        v2_preferred: None,
        v2_deprecated,
        v1: vec![v1_routed(&env, buf.clone())],
        v1_original: Some(buf),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn enc(tags: bool, dep: bool) -> Vec<u8> {
        let mut e = v2::Envelope {
            source_id: "s".into(),
            timestamp: 5,
            message: Some(v2::envelope::Message::Log(v2::Log::default())),
            ..Default::default()
        };
        if tags {
            e.tags = BTreeMap::from([("a".into(), "b".into())]);
        }
        if dep {
            e.deprecated_tags = BTreeMap::from([(
                "c".into(),
                v2::Value {
                    data: Some(v2::value::Data::Integer(3)),
                },
            )]);
        }
        e.encode_to_vec()
    }

    #[test]
    fn re_encodes_only_when_the_other_tag_map_is_present() {
        let needs = Needs::default();
        needs.deprecated_tags.store(true, Ordering::Relaxed);
        needs.preferred_tags.store(true, Ordering::Relaxed);
        for (tags, dep) in [(false, false), (true, false), (false, true), (true, true)] {
            let item = from_v2(
                Bytes::from(enc(tags, dep)),
                &needs,
                &mut PrepStats::default(),
            )
            .unwrap();
            assert_eq!(item.v2_deprecated.is_some(), tags, "tags={tags} dep={dep}");
            assert_eq!(item.v2_preferred.is_some(), dep, "tags={tags} dep={dep}");
            assert_eq!(item.key.kind, Kind::Log);
        }
    }

    /// v1 forms: plain logs take the wire fast path, the rest the general
    /// conversion; both give what `to_v1` gives, routed by the app id.
    #[test]
    fn v1_forms_agree_with_the_general_conversion() {
        let needs = Needs::default();
        needs.v1.store(true, Ordering::Relaxed);
        let log = |payload: &'static [u8], dep: bool| {
            let mut e = v2::Envelope::decode(&enc(true, dep)[..]).unwrap();
            e.instance_id = "3".into();
            e.message = Some(v2::envelope::Message::Log(v2::Log {
                payload: Bytes::from_static(payload),
                r#type: 1,
            }));
            e
        };
        let counter = v2::Envelope {
            source_id: "s".into(),
            message: Some(v2::envelope::Message::Counter(v2::Counter {
                name: "c".into(),
                delta: 1,
                total: 2,
            })),
            ..Default::default()
        };
        // Fast path, deprecated tags (general path), a counter (general path).
        for env in [log(b"hello", false), log(b"hello", true), counter] {
            let item = from_v2(
                Bytes::from(env.encode_to_vec()),
                &needs,
                &mut PrepStats::default(),
            )
            .unwrap();
            let want = convert::to_v1(&env);
            assert_eq!(item.v1.len(), want.len(), "{env:?}");
            for (got, want) in item.v1.iter().zip(&want) {
                assert_eq!(envelope_proto::v1::decode(&got.bytes).unwrap(), *want);
                assert_eq!(&*got.app_id, envelope_proto::v1::app_id(want));
            }
        }
        // An empty log payload cannot be marshalled as v1 (Go refuses too).
        let mut stats = PrepStats::default();
        let item = from_v2(
            Bytes::from(log(b"", false).encode_to_vec()),
            &needs,
            &mut stats,
        )
        .unwrap();
        assert!(item.v1.is_empty());
        assert_eq!(stats.v1_encode_failures, 1);
    }
}
