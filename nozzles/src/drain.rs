//! `syslog-drain`: the app syslog drain forwarder (reference §19).
//!
//! Bindings ([`bindings`]) are polled from a file or a Cloud
//! Controller-shaped endpoint; the [`manager`] runs one [`forwarder`] per
//! (URL, app) with its own drop-oldest ring and [`writer`]; the
//! [`subscriber`] reads the bound apps' envelopes from every doppler's v2
//! egress and the manager's dispatcher routes them into the rings. Drops
//! are counted ([`metrics`]) and announced in the app's own stream
//! ([`notice`]). [`url`] parses drain URLs, [`retry`] holds the §19.5
//! schedule; [`config`], [`server`] and [`cli`] assemble the program.

pub mod bindings;
pub mod cli;
pub mod config;
pub mod forwarder;
pub mod manager;
pub mod metrics;
pub mod notice;
pub mod retry;
pub mod server;
pub mod subscriber;
pub mod url;
pub mod writer;

pub use config::Config;
pub use server::{Listeners, run};
