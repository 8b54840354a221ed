//! The doppler side of every consumer of dopplers (traffic controller, log
//! cache): which dopplers exist ([`pool`]: static addresses or DNS names,
//! re-resolved), a fan-in that subscribes a ring to every one of them and
//! follows the set as it changes ([`fanin`]), and the upstream re-subscribe
//! schedule ([`backoff`]).

pub mod backoff;
pub mod fanin;
pub mod pool;
