//! One drain's pipeline: a bounded drop-oldest ring of 10000 envelopes (the
//! dispatcher never waits for a drain), then a task that formats and writes
//! with the §19.5 retry schedule. Each drain has its own task, so a slow or
//! failing drain only ever loses its own oldest envelopes.

use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::Envelope;
use plumbing::ring::Ring;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::DrainMetrics;
use super::notice::{Notices, connect_failed_text, lost_text};
use super::retry;
use super::url::{DrainUrl, Scheme};
use super::writer::{BATCH_INTERVAL, WriteFailure, Writer};
use crate::syslog::rfc5424::{Encoded, Rfc5424Encoder};

/// Per-drain buffer size (reference §19.1).
pub const BUFFER_SIZE: usize = 10_000;
/// Envelopes formatted per write.
const READ_BATCH: usize = 1_000;
/// Close a drain connection idle this long (`IDLE_DRAIN_TIMEOUT`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Envelopes waiting for one drain.
pub type DrainRing = Ring<Arc<Envelope>>;

/// Everything one drain task needs.
pub struct Forwarder {
    /// The parsed URL.
    pub url: Arc<DrainUrl>,
    /// App GUID for notices; `None` for aggregate drains (no app-visible notices).
    pub app_id: Option<String>,
    /// Envelopes to write.
    pub ring: Arc<DrainRing>,
    /// The formatter (binding hostname, metadata option).
    pub encoder: Rfc5424Encoder,
    /// The transport.
    pub writer: Writer,
    /// Shared metrics.
    pub metrics: DrainMetrics,
    /// App-visible notices.
    pub notices: Notices,
    /// Idle timeout for the connection.
    pub idle_timeout: Duration,
    /// Limits concurrent https-batch retries process-wide (4 upstream).
    pub batch_retry_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("url", &self.url.anonymized)
            .finish()
    }
}

impl Forwarder {
    /// Runs until `cancel` fires (binding removed, shutdown).
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut batch: Vec<Arc<Envelope>> = Vec::with_capacity(READ_BATCH);
        let mut encoded = Encoded::new();
        let mut connect_failed_reported = false;
        let is_batch = matches!(self.writer, Writer::HttpsBatch(_));
        let mut last_activity = Instant::now();
        let mut next_post = Instant::now() + BATCH_INTERVAL;
        loop {
            let idle_at = last_activity + self.idle_timeout;
            let post_at = if is_batch { next_post } else { idle_at };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = self.ring.ready() => {}
                _ = tokio::time::sleep_until(post_at), if is_batch => {
                    next_post = Instant::now() + BATCH_INTERVAL;
                    self.post_batch(&cancel).await;
                    continue;
                }
                _ = tokio::time::sleep_until(idle_at) => {
                    self.writer.close();
                    last_activity = Instant::now();
                    continue;
                }
            }
            if self.ring.is_closed() && self.ring.is_empty() {
                break;
            }
            let lost = self.ring.take_dropped();
            if lost > 0 {
                self.report_lost(lost);
            }
            batch.clear();
            self.ring.drain_into(&mut batch, READ_BATCH);
            if batch.is_empty() {
                continue;
            }
            last_activity = Instant::now();
            encoded.clear();
            for env in &batch {
                if let Err(e) = self.encoder.encode(env, &mut encoded) {
                    self.metrics.format_errors.inc();
                    tracing::debug!(error = %e, drain = %self.url, "envelope not formattable");
                }
            }
            if encoded.is_empty() {
                continue;
            }
            let msgs: Vec<&[u8]> = encoded.iter().collect();
            if is_batch {
                let full = match &mut self.writer {
                    Writer::HttpsBatch(w) => w.append(&msgs),
                    _ => false,
                };
                if full {
                    next_post = Instant::now() + BATCH_INTERVAL;
                    self.post_batch(&cancel).await;
                }
            } else {
                self.deliver(&msgs, &cancel, &mut connect_failed_reported)
                    .await;
            }
        }
        if is_batch {
            // Best effort: one attempt for what is pending at shutdown.
            if let Writer::HttpsBatch(w) = &mut self.writer {
                let n = w.pending_count() as u64;
                if w.post().await.is_ok() {
                    self.metrics.scheme(Scheme::HttpsBatch).egress.add(n);
                }
            }
        }
        self.writer.close();
    }

    fn report_lost(&self, lost: u64) {
        self.metrics.scheme(self.url.scheme).dropped.add(lost);
        match &self.app_id {
            Some(app) => {
                tracing::warn!(
                    "Dropped {lost} {} logs for {app}'s app drain with url {}",
                    self.url.scheme.as_str(),
                    self.url.anonymized
                );
                self.notices
                    .send(app, &lost_text(lost, app, &self.url.anonymized));
            }
            None => tracing::warn!(
                "Dropped {lost} {} logs for aggregate drain with url {}",
                self.url.scheme.as_str(),
                self.url.anonymized
            ),
        }
    }

    /// Writes `msgs` (syslog / https) with retries; drops them after the last attempt.
    async fn deliver(
        &mut self,
        msgs: &[&[u8]],
        cancel: &CancellationToken,
        connect_reported: &mut bool,
    ) {
        let m = self.metrics.scheme(self.url.scheme).clone();
        let mut done = 0;
        for attempt in 0..retry::MAX_ATTEMPTS {
            let r = match &mut self.writer {
                Writer::Syslog(w) => w.write(&msgs[done..]).await,
                Writer::Https(w) => w.write(&msgs[done..]).await,
                Writer::HttpsBatch(_) => Ok(()),
            };
            match r {
                Ok(()) => {
                    m.egress.add((msgs.len() - done) as u64);
                    *connect_reported = false;
                    return;
                }
                Err(WriteFailure {
                    done: d,
                    connect,
                    reason,
                }) => {
                    m.egress.add(d as u64);
                    done += d;
                    m.write_errors.inc();
                    tracing::debug!(drain = %self.url, attempt, %reason, "drain write failed");
                    if connect && !*connect_reported {
                        *connect_reported = true;
                        if let Some(app) = &self.app_id {
                            self.notices
                                .send(app, &connect_failed_text(&self.url.anonymized));
                        }
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(retry::delay(attempt)) => {}
            }
        }
        let lost = (msgs.len() - done) as u64;
        m.retry_dropped.add(lost);
        tracing::error!(drain = %self.url, count = lost, "dropped messages after {} attempts", retry::MAX_ATTEMPTS);
    }

    /// POSTs the pending https-batch body: first attempt immediate, retries
    /// hold one of the process-wide retry slots.
    async fn post_batch(&mut self, cancel: &CancellationToken) {
        let m = self.metrics.scheme(Scheme::HttpsBatch).clone();
        let Writer::HttpsBatch(w) = &mut self.writer else {
            return;
        };
        let count = w.pending_count() as u64;
        if count == 0 {
            return;
        }
        match w.post().await {
            Ok(()) => {
                m.egress.add(count);
                return;
            }
            Err(e) => {
                m.write_errors.inc();
                tracing::debug!(drain = %self.url, reason = %e.reason, "batch post failed");
            }
        }
        let Ok(_slot) = self.batch_retry_slots.clone().acquire_owned().await else {
            return;
        };
        for attempt in 0..retry::MAX_ATTEMPTS - 1 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(retry::delay(attempt)) => {}
            }
            match w.post().await {
                Ok(()) => {
                    m.egress.add(count);
                    return;
                }
                Err(e) => {
                    m.write_errors.inc();
                    tracing::debug!(drain = %self.url, attempt, reason = %e.reason, "batch post failed");
                }
            }
        }
        let lost = w.discard() as u64;
        m.retry_dropped.add(lost);
        tracing::error!(drain = %self.url, count = lost, "dropped batch after {} attempts", retry::MAX_ATTEMPTS);
    }
}
