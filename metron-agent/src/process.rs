//! Per-envelope processing between ingress and the ring: v1 validation and
//! identity fields, v2 origin mapping, tagging and counter totals.

pub mod counters;
pub mod scan;
pub mod tagger;
pub mod v1;
pub mod v2;

/// The agent's identity, written into v1 envelopes that lack the field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// `AGENT_DEPLOYMENT`.
    pub deployment: String,
    /// `AGENT_JOB`.
    pub job: String,
    /// `AGENT_INDEX`.
    pub index: String,
    /// `AGENT_IP`.
    pub ip: String,
}
