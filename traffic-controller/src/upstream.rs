//! The doppler side: which dopplers exist ([`pool`]) and the per-consumer
//! fan-in that subscribes to every one of them ([`fanin`]).

pub(crate) mod backoff;
pub(crate) mod fanin;
pub(crate) mod pool;
