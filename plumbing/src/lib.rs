//! Shared runtime for the Loggregator components.
//!
//! `plumbing` is the layer between the wire types (`envelope-proto`) and the components (agent,
//! doppler, traffic controller, nozzles). It holds everything those components would otherwise
//! each write again: the drop-oldest rings ("diodes") that sit on every hop of the pipeline, the
//! mutual-TLS configuration used by all internal gRPC, the metrics registry and the admin HTTP
//! endpoint that serves it, the one shutdown mechanism, retry backoff, batching, and the upstream
//! rules for parsing environment variables and printing startup lines.
//!
//! # Layout
//!
//! - [`ring`]: [`ring::Ring`], a bounded drop-oldest diode (many producers, one consumer); the
//!   producer never blocks, the reader learns how many entries it lost.
//! - [`queue`]: [`queue::bounded`] channels with a named [`queue::FullPolicy`]
//!   (`DropOldest`, `DropNewest`, `Block`) and counted drops.
//! - [`turns`]: [`turns::Turns`], fair turns for tasks that feed a ring from a stream with
//!   input already buffered (yield every N items, or when the ring is half full).
//! - [`batch`]: [`batch::next_batch`], "wait for one, then take what is there" batching.
//! - [`tls`]: rustls server/client configuration from CA/cert/key files, cipher-suite parsing,
//!   [`tls::grpc`] (TLS accept stream for tonic servers, TLS channels for tonic clients) and
//!   [`tls::dev`] (a generated development PKI).
//! - [`dial`]: outbound TCP with `TCP_NODELAY` that refuses self-connections.
//! - [`http_client`]: [`http_client::HttpClient`], the one small HTTP/1.1(+TLS) client the
//!   components use for UAA and Cloud Controller (deadline, capped body, CA / client cert /
//!   server name / skip-verify).
//! - [`metrics`]: a registry passed in (never global) of counters and gauges, rendered as
//!   Prometheus text.
//! - [`listen`]: HTTP/1.1 serving for every listener strangers can reach: a cap on pending (not
//!   yet authenticated) connections, TLS-handshake, header and body deadlines.
//! - [`admin`]: the admin HTTP listener serving `/metrics` and `/health` (through [`listen`]).
//! - [`limited_log`]: one log line per cause per interval, with the count of those left out.
//! - [`emitter`]: a component's own metrics pushed to the local agent as v2 envelopes every
//!   interval ([`emitter::Description`] says what, [`emitter::run`] sends it).
//! - [`shutdown`]: [`shutdown::Shutdown`], a cancellation signal plus a task tracker, SIGTERM /
//!   Ctrl-C handling and a grace-period drain.
//! - [`rlimit`]: the soft open-file limit raised to the hard one at start-up, as Go does.
//! - [`backoff`]: capped exponential backoff with jitter.
//! - [`upstream`]: the doppler pool (static or DNS-resolved addresses) and the fan-in that
//!   subscribes a consumer's ring to every doppler in it.
//! - [`url`]: Go's query-string and path unescaping.
//! - [`env`]: upstream environment-variable parsing rules (empty means unset, Go durations, ...).
//! - [`logline`]: upstream-style startup lines on stderr and the `tracing` subscriber setup.
//!
//! # Dependency rule
//!
//! `plumbing` depends only on `envelope-proto` among this workspace's crates. Components depend
//! on `plumbing` and `envelope-proto`, never on each other.

pub mod admin;
pub mod backoff;
pub mod batch;
pub mod dial;
pub mod emitter;
pub mod env;
pub mod http_client;
pub mod limited_log;
pub mod listen;
pub mod logline;
pub mod metrics;
pub mod queue;
pub mod ring;
pub mod rlimit;
pub mod shutdown;
mod signal;
pub mod tls;
pub mod turns;
pub mod upstream;
pub mod url;
