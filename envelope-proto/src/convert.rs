//! Conversion between v1 and v2 envelopes, exactly as go-loggregator's
//! `conversion.ToV2` / `conversion.ToV1` (reference §7), plus the RLP's tag
//! convergence (§7.3). Every case of `shared/fixtures/to_v2` and `to_v1`
//! reproduces (see `tests/fixtures_to_v2.rs`, `tests/fixtures_to_v1.rs`).
//!
//! Layout: [`to_v2`] (`convert/to_v2.rs`), [`to_v1`] (`convert/to_v1.rs`),
//! [`log_to_v1`] (`convert/to_v1_wire.rs`, the allocation-free fast path for plain logs),
//! [`converge_tags`] (`convert/tags.rs`), and the Go number conversions they
//! share (`convert/go_num.rs`).

mod go_num;
#[cfg(test)]
mod props;
mod tags;
mod to_v1;
mod to_v1_wire;
mod to_v2;

pub use tags::converge_tags;
pub use to_v1::to_v1;
pub use to_v1_wire::log_to_v1;
pub use to_v2::to_v2;
