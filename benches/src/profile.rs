//! Envelope mixes offered by the load generator, pre-encoded once so the generator's own cost
//! per envelope is a copy plus a timestamp patch.
//!
//! Every template starts with field 1 (`timestamp`) encoded as a 9-byte varint: nanosecond Unix
//! times between 2^56 and 2^63 always take exactly 9 bytes, so the send time can be written into
//! bytes `1..10` in place and subscribers read it back as the latency origin.

use bytes::Bytes;
use envelope_proto::loggregator_v2::{
    Counter, Envelope, Gauge, GaugeValue, Log, Timer, envelope::Message, log,
};
use prost::Message as _;
use std::collections::BTreeMap;

/// Which envelopes the generator offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// ~200-byte logs: 100-byte payload and 2 tags (the reference benchmark envelope).
    Logs,
    /// 50 % logs, 30 % counters, 15 % container-metric gauges (5 metrics), 5 % timers.
    Mixed,
}

/// Earliest timestamp that still encodes as a 9-byte varint: 2^56 ns, early 1972.
const MIN_9_BYTE: i64 = 1 << 56;

/// A set of encoded envelopes to cycle through, each with a patchable timestamp.
#[derive(Debug, Clone)]
pub struct Templates {
    items: Vec<Bytes>,
    /// Source number of each template.
    source_of: Vec<usize>,
    /// Number of distinct source ids the templates are spread across.
    pub sources: usize,
}

impl Templates {
    /// Builds the templates for `profile`, spreading envelopes evenly over `sources` source ids.
    pub fn new(profile: Profile, sources: usize) -> Self {
        Self::with_noisy(profile, sources, 0.0)
    }

    /// Like [`Self::new`], but source 0 carries `noisy_share` (0 ≤ share < 1) of all envelopes and
    /// the other sources share the rest evenly.
    pub fn with_noisy(profile: Profile, sources: usize, noisy_share: f64) -> Self {
        let sources = sources.max(1);
        let order: Vec<usize> = if noisy_share > 0.0 && sources > 1 {
            let quiet = sources - 1;
            let total = (quiet as f64 / (1.0 - noisy_share)).round() as usize;
            // Spread the quiet sources evenly through the cycle (Bresenham): exactly `quiet`
            // slots go to sources 1..=quiet, the rest to source 0.
            let mut v = Vec::with_capacity(total);
            let mut q = 0;
            for i in 0..total {
                if ((i + 1) * quiet) / total > (i * quiet) / total {
                    q += 1;
                    v.push(q);
                } else {
                    v.push(0);
                }
            }
            v
        } else {
            (0..sources).collect()
        };
        let mut items = Vec::new();
        let mut source_of = Vec::new();
        let pattern: &[Kind] = match profile {
            Profile::Logs => &[Kind::Log],
            Profile::Mixed => &[
                Kind::Log,
                Kind::Counter,
                Kind::Log,
                Kind::Gauge,
                Kind::Log,
                Kind::Counter,
                Kind::Log,
                Kind::Counter,
                Kind::Log,
                Kind::Gauge,
                Kind::Log,
                Kind::Log,
                Kind::Counter,
                Kind::Log,
                Kind::Counter,
                Kind::Log,
                Kind::Gauge,
                Kind::Counter,
                Kind::Log,
                Kind::Timer,
            ],
        };
        // Enough templates that every source id appears with every kind in the pattern.
        let count = order.len().max(pattern.len());
        for i in 0..count {
            let kind = pattern[i % pattern.len()];
            let src = order[i % order.len()];
            items.push(encode(kind, &source_id(src), i));
            source_of.push(src);
        }
        Self {
            items,
            source_of,
            sources,
        }
    }

    /// How many of the first `sent` envelopes of a cycle went to source number `source`.
    pub fn sent_to(&self, source: usize, sent: u64) -> u64 {
        let len = self.items.len() as u64;
        let per_cycle = self.source_of.iter().filter(|&&s| s == source).count() as u64;
        let rest = (sent % len) as usize;
        (sent / len) * per_cycle
            + self.source_of[..rest]
                .iter()
                .filter(|&&s| s == source)
                .count() as u64
    }

    /// Template `i` (cycling).
    pub fn get(&self, i: usize) -> &[u8] {
        &self.items[i % self.items.len()]
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no templates (never true for a built set).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Encoded size of the first template, for reports.
    pub fn first_size(&self) -> usize {
        self.items.first().map_or(0, Bytes::len)
    }
}

/// The source id used for source number `i`: GUID-shaped, like an app id.
pub fn source_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Log,
    Counter,
    Gauge,
    Timer,
}

fn encode(kind: Kind, source_id: &str, i: usize) -> Bytes {
    let mut tags = BTreeMap::new();
    tags.insert("source_type".to_owned(), "APP/PROC/WEB".to_owned());
    tags.insert("origin".to_owned(), crate::LOAD_ORIGIN.to_owned());
    if matches!(kind, Kind::Timer) {
        // Without a request id a timer cannot become a v1 HttpStartStop (reference §7.4).
        tags.remove("source_type");
        tags.insert(
            "request_id".to_owned(),
            "f47ac10b-58cc-4372-a567-0e02b2c3d479".to_owned(),
        );
    }
    let message = match kind {
        Kind::Log => Message::Log(Log {
            // 100 bytes of payload.
            payload: Bytes::from(format!("{:0<100}", format!("bench log line {i} ")).into_bytes()),
            r#type: log::Type::Out as i32,
        }),
        Kind::Counter => Message::Counter(Counter {
            name: format!("requests_{}", i % 8),
            delta: 1,
            total: 0,
        }),
        Kind::Gauge => {
            let mut metrics = BTreeMap::new();
            for (name, unit, value) in [
                ("cpu", "percentage", 12.5),
                ("memory", "bytes", 123_456_789.0),
                ("disk", "bytes", 987_654_321.0),
                ("memory_quota", "bytes", 1_073_741_824.0),
                ("disk_quota", "bytes", 2_147_483_648.0),
            ] {
                metrics.insert(
                    name.to_owned(),
                    GaugeValue {
                        unit: unit.to_owned(),
                        value,
                    },
                );
            }
            Message::Gauge(Gauge { metrics })
        }
        Kind::Timer => Message::Timer(Timer {
            name: "http".to_owned(),
            start: MIN_9_BYTE,
            stop: MIN_9_BYTE + 1_000_000,
        }),
    };
    let env = Envelope {
        timestamp: MIN_9_BYTE,
        source_id: source_id.to_owned(),
        instance_id: (i % 4).to_string(),
        deprecated_tags: BTreeMap::new(),
        tags,
        message: Some(message),
    };
    Bytes::from(env.encode_to_vec())
}

/// Writes `ts` (ns, ≥ 2^56) as the 9-byte varint at bytes `1..10` of an encoded v2 template copy.
pub fn patch_timestamp(encoded: &mut [u8], ts: i64) {
    debug_assert_eq!(encoded[0], 0x08, "template must start with field 1 varint");
    write_varint9(&mut encoded[1..10], ts);
}

/// Writes `ts` (clamped to ≥ 2^56 so it needs exactly 9 bytes) as a varint into `out[..9]`.
fn write_varint9(out: &mut [u8], ts: i64) {
    let mut v = ts.max(MIN_9_BYTE) as u64;
    for b in out.iter_mut().take(8) {
        *b = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
    }
    out[8] = (v as u8) & 0x7f;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_patch_and_decode() {
        for profile in [Profile::Logs, Profile::Mixed] {
            let t = Templates::new(profile, 10);
            assert!(!t.is_empty());
            for i in 0..t.len() {
                let mut copy = t.get(i).to_vec();
                let now = 1_763_800_000_123_456_789;
                patch_timestamp(&mut copy, now);
                let env = Envelope::decode(copy.as_slice()).expect("template decodes");
                assert_eq!(env.timestamp, now);
                assert!(env.message.is_some());
            }
        }
        let noisy = Templates::with_noisy(Profile::Logs, 1000, 0.9);
        let n = noisy.len() as u64;
        let zero = noisy.sent_to(0, n);
        assert!(
            (zero as f64 / n as f64 - 0.9).abs() < 0.01,
            "noisy share {zero}/{n}"
        );
        assert_eq!(noisy.sent_to(5, n), 1);
        let logs = Templates::new(Profile::Logs, 1);
        let size = logs.first_size();
        assert!((190..=215).contains(&size), "log template is {size} bytes");
    }
}

/// v1 dropsonde equivalents of a template set (for UDP load), each with the byte offset of its
/// 9-byte timestamp varint (envelope field 6).
#[derive(Debug, Clone)]
pub struct V1Templates {
    items: Vec<(Vec<u8>, usize)>,
}

impl V1Templates {
    /// Converts every v2 template with `to_v1` and locates the timestamp bytes.
    pub fn from_v2(templates: &Templates) -> Self {
        let mut items = Vec::new();
        for i in 0..templates.len() {
            let Ok(v2) = Envelope::decode(templates.get(i)) else {
                continue;
            };
            for v1 in envelope_proto::convert::to_v1(&v2) {
                let Ok(bytes) = envelope_proto::v1::encode(&v1) else {
                    continue;
                };
                if let Some(at) = find_timestamp(&bytes) {
                    items.push((bytes, at));
                }
            }
        }
        Self { items }
    }

    /// Template `i` (cycling) and the offset of its timestamp varint.
    pub fn get(&self, i: usize) -> (&[u8], usize) {
        let (bytes, at) = &self.items[i % self.items.len()];
        (bytes, *at)
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no template could be converted.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Writes `ts` into a copy of a v1 template at the offset returned by [`V1Templates::get`].
pub fn patch_v1_timestamp(encoded: &mut [u8], at: usize, ts: i64) {
    write_varint9(&mut encoded[at..at + 9], ts);
}

/// Offset of the first byte of the 9-byte varint following tag 0x30 (field 6, varint) whose value
/// is the template timestamp.
fn find_timestamp(bytes: &[u8]) -> Option<usize> {
    let mut want = [0u8; 10];
    want[0] = 0x30;
    write_varint9(&mut want[1..], MIN_9_BYTE);
    bytes.windows(10).position(|w| w == want).map(|p| p + 1)
}
