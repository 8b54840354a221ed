//! v2 processing: origin mapping, `LOGS_DISABLED`, tagging, counter totals.
//!
//! Fast path: when [`scan`](super::scan::scan) shows a non-empty `source_id`, no
//! `deprecated_tags` and no counter, the original bytes are forwarded; absent
//! default tags are appended as extra encoded `tags` map entries (a protobuf
//! map is a repeated field, so appended entries add keys without touching the
//! rest). Slow path: full Go-compatible decode, modify, encode.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::{Envelope, envelope::Message};
use envelope_proto::view::Kind;
use parking_lot::Mutex;
use prost::Message as _;

use super::counters::{Rule, Totals};
use super::scan::{self, encode_tag_entry};
use super::tagger::tag_envelope;

/// What happened to one envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Forward these bytes (original or rewritten).
    Forward {
        /// The encoded envelope to forward.
        bytes: Bytes,
        /// `source_id` was taken from an `origin` tag (`origin_mappings`).
        origin_mapped: bool,
    },
    /// A log dropped because logs are disabled.
    LogDisabled,
    /// Not a decodable v2 envelope.
    Invalid,
}

/// Processes v2 envelopes; shared by every ingress connection.
#[derive(Debug)]
pub struct V2Processor {
    defaults: BTreeMap<String, String>,
    default_keys: Vec<Vec<u8>>,
    /// Pre-encoded `tags` map entries, one per default tag (same order as
    /// `default_keys`).
    default_entries: Vec<Vec<u8>>,
    all_mask: u64,
    fast_path: bool,
    logs_disabled: bool,
    totals: Mutex<Totals>,
}

impl V2Processor {
    /// A processor adding `defaults` where absent; drops logs when
    /// `logs_disabled`.
    pub fn new(defaults: BTreeMap<String, String>, logs_disabled: bool) -> Self {
        let default_keys: Vec<Vec<u8>> = defaults.keys().map(|k| k.as_bytes().to_vec()).collect();
        let default_entries = defaults
            .iter()
            .map(|(k, v)| {
                let mut e = Vec::new();
                encode_tag_entry(k, v, &mut e);
                e
            })
            .collect();
        let n = defaults.len();
        let fast_path = n <= scan::MAX_DEFAULT_TAGS;
        let all_mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        Self {
            defaults,
            default_keys,
            default_entries,
            all_mask,
            fast_path,
            logs_disabled,
            totals: Mutex::new(Totals::new(Rule::V2)),
        }
    }

    /// Processes one encoded envelope. Rewritten envelopes are carved out of
    /// `arena`, so a batch of rewrites shares a few allocations.
    pub fn process(&self, env: Bytes, arena: &mut BytesMut) -> Outcome {
        if self.fast_path
            && let Ok(s) = scan::scan(&env, &self.default_keys)
            && !s.source_id_empty
            && !s.has_deprecated_tags
            && s.member != Kind::Counter
        {
            if self.logs_disabled && s.member == Kind::Log {
                return Outcome::LogDisabled;
            }
            let missing = !s.present & self.all_mask;
            if missing == 0 {
                return Outcome::Forward {
                    bytes: env,
                    origin_mapped: false,
                };
            }
            let extra: usize = self
                .default_entries
                .iter()
                .enumerate()
                .filter(|(i, _)| missing & (1 << i) != 0)
                .map(|(_, e)| e.len())
                .sum();
            let need = env.len() + extra;
            if arena.capacity() - arena.len() < need {
                arena.reserve(need.max(64 * 1024));
            }
            arena.extend_from_slice(&env);
            for (i, e) in self.default_entries.iter().enumerate() {
                if missing & (1 << i) != 0 {
                    arena.extend_from_slice(e);
                }
            }
            return Outcome::Forward {
                bytes: arena.split().freeze(),
                origin_mapped: false,
            };
        }
        self.slow(&env)
    }

    fn slow(&self, buf: &[u8]) -> Outcome {
        let Ok(mut env) = envelope_proto::v2::decode(buf) else {
            return Outcome::Invalid;
        };
        let origin_mapped = map_origin(&mut env);
        if self.logs_disabled && matches!(env.message, Some(Message::Log(_))) {
            return Outcome::LogDisabled;
        }
        self.tag_and_total(&mut env);
        Outcome::Forward {
            bytes: Bytes::from(env.encode_to_vec()),
            origin_mapped,
        }
    }

    /// Tagging then counter totals on a decoded envelope (the upstream
    /// `CounterAggregator(Tagger)` pipeline).
    pub fn tag_and_total(&self, env: &mut Envelope) {
        tag_envelope(env, &self.defaults);
        if let Some(Message::Counter(c)) = &mut env.message {
            c.total =
                self.totals
                    .lock()
                    .apply(&c.name, &env.source_id, &env.tags, c.delta, c.total);
        }
    }
}

/// Upstream ingress rule: an empty `source_id` is taken from tag `origin`,
/// else from deprecated tag `origin` (its text). Returns whether it mapped.
pub fn map_origin(env: &mut Envelope) -> bool {
    if !env.source_id.is_empty() {
        return false;
    }
    if let Some(o) = env.tags.get("origin") {
        env.source_id = o.clone();
        return true;
    }
    if let Some(o) = env.deprecated_tags.get("origin") {
        env.source_id = match &o.data {
            Some(envelope_proto::loggregator_v2::value::Data::Text(t)) => t.clone(),
            _ => String::new(),
        };
        return true;
    }
    false
}
