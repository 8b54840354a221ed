//! v1 processing (reference §8.2 steps 2–4): decode and validate, default the
//! `source_id` tag to `origin`, counter totals, identity fields where absent.
//!
//! Every v1 envelope is modified (at least its `source_id` tag), so this path
//! always decodes and re-encodes; one datagram is one envelope.

use envelope_proto::events::{Envelope, envelope::EventType};
use envelope_proto::v1;
use parking_lot::Mutex;

use super::Identity;
use super::counters::{Rule, Totals};

/// Why a datagram was discarded.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    /// Not a decodable dropsonde envelope.
    #[error("failed to unmarshal envelope: {0}")]
    Decode(#[from] v1::DecodeError),
    /// Decoded, but the event field does not match `eventType`.
    #[error("invalid envelope: {0}")]
    Invalid(#[from] v1::InvalidEnvelope),
    /// Could not be encoded again (a required field is missing).
    #[error("failed to marshal envelope: {0}")]
    Encode(#[from] v1::EncodeError),
}

/// Processes v1 envelopes (one UDP reader uses it; the lock is uncontended).
#[derive(Debug)]
pub struct V1Processor {
    identity: Identity,
    totals: Mutex<Totals>,
}

impl V1Processor {
    /// A processor filling absent identity fields from `identity`.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            totals: Mutex::new(Totals::new(Rule::V1)),
        }
    }

    /// Processes one datagram into the encoded envelope to forward.
    pub fn process(&self, datagram: &[u8]) -> Result<Vec<u8>, V1Error> {
        let mut env = v1::decode(datagram)?;
        self.modify(&mut env)?;
        Ok(v1::encode(&env)?)
    }

    /// Processes one datagram and appends it to `out` wrapped as an encoded
    /// `plumbing.EnvelopeData{payload}` (encoded in place, no intermediate
    /// buffer). Returns the envelope's encoded size.
    pub fn process_into(
        &self,
        datagram: &[u8],
        out: &mut bytes::BytesMut,
    ) -> Result<usize, V1Error> {
        use prost::Message as _;
        let mut env = v1::decode(datagram)?;
        self.modify(&mut env)?;
        v1::check_required(&env).map_err(v1::EncodeError::from)?;
        let len = env.encoded_len();
        out.reserve(1 + prost::encoding::encoded_len_varint(len as u64) + len);
        out.extend_from_slice(&[0x0a]);
        prost::encoding::encode_varint(len as u64, out);
        env.encode_raw(out);
        Ok(len)
    }

    /// The modifications on a decoded envelope.
    pub fn modify(&self, env: &mut Envelope) -> Result<(), V1Error> {
        if env.tags.get("source_id").is_none_or(|s| s.is_empty()) {
            let origin = env.origin.clone().unwrap_or_default();
            env.tags.insert("source_id".to_owned(), origin);
        }
        v1::check_event(env)?;
        if env.event_type == Some(EventType::CounterEvent as i32)
            && let Some(c) = env.counter_event.as_mut()
        {
            let total = self.totals.lock().apply(
                c.name.as_deref().unwrap_or_default(),
                env.origin.as_deref().unwrap_or_default(),
                &env.tags,
                c.delta.unwrap_or_default(),
                c.total.unwrap_or_default(),
            );
            c.total = Some(total);
        }
        let id = &self.identity;
        for (field, value) in [
            (&mut env.deployment, &id.deployment),
            (&mut env.job, &id.job),
            (&mut env.index, &id.index),
            (&mut env.ip, &id.ip),
        ] {
            if field.is_none() {
                *field = Some(value.clone());
            }
        }
        Ok(())
    }
}
