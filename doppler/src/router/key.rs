//! What the router needs to know about one envelope, extracted once at
//! ingress (on the ingress connection's task, so the single router task does
//! no parsing).

use bytes::Bytes;
use envelope_proto::view::Kind;

/// Routing key of one v2 envelope.
#[derive(Debug, Clone)]
pub struct RouteKey {
    /// `source_id` (a zero-copy slice of the envelope bytes when possible).
    pub source_id: Bytes,
    /// Which message the envelope carries (`Kind::None` never matches a
    /// selector).
    pub kind: Kind,
    /// Counter name for counters, empty otherwise. Needed for exact-name selectors.
    pub counter_name: Bytes,
    /// crc64-ECMA of the counter name (counters) or the wrapping sum of the
    /// crc64-ECMA of the gauge metric names (gauges); 0 otherwise. Used both for
    /// the exact-set gauge rule and for deterministic shard choice.
    pub name_hash: u64,
}

impl RouteKey {
    /// Hash used for deterministic member choice: `None` means "random" (logs,
    /// timers, events), as upstream does.
    pub fn deterministic_hash(&self) -> Option<u64> {
        match self.kind {
            Kind::Counter | Kind::Gauge => Some(self.name_hash),
            _ => None,
        }
    }
}

/// v1 type class used by v1 filters (reference §9.3): `LogMessage` is `Log`,
/// everything else is `Metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum V1Class {
    /// `LogMessage` envelopes.
    Log,
    /// Every other event type.
    Metric,
}

/// One encoded v1 envelope plus its v1 routing key.
#[derive(Debug, Clone)]
pub struct V1Routed {
    /// Marshalled `events.Envelope`.
    pub bytes: Bytes,
    /// App ID per reference §3.7 (`system` for non-app envelopes).
    pub app_id: Box<str>,
    /// Type class.
    pub class: V1Class,
}
