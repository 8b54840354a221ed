//! The one shutdown mechanism: a signal every task watches plus a tracker `run` awaits.
//!
//! A component's `run` receives a [`Shutdown`], spawns its tasks with [`Shutdown::spawn`] (or
//! tracks them via [`Shutdown::tracker`]), has them stop when [`Shutdown::cancelled`] resolves,
//! and after the trigger calls [`Shutdown::drain`] with its grace period. `main` calls
//! [`Shutdown::wait_for_signal`] to turn SIGTERM / Ctrl-C (SIGINT) into a trigger.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cancellation signal plus task tracker. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Triggers shutdown: every [`Shutdown::cancelled`] resolves.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown is triggered.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// The underlying cancellation token (e.g. to derive child tokens).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// A child shutdown: triggered when this one is, or on its own; shares the task tracker.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
            tracker: self.tracker.clone(),
        }
    }

    /// The task tracker that [`Shutdown::drain`] waits for.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Spawns a tracked task.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Waits for SIGTERM or SIGINT (Ctrl-C), or for another trigger, then triggers shutdown.
    ///
    /// Returns the name of the signal received (`"SIGTERM"`, `"SIGINT"`) or `None` when shutdown
    /// was triggered by other means. If signal handlers cannot be installed, only Ctrl-C via
    /// [`tokio::signal::ctrl_c`] is watched.
    pub async fn wait_for_signal(self) -> Option<&'static str> {
        let got = wait_signal(&self.token).await;
        self.trigger();
        got
    }

    /// Stops accepting new tracked tasks and waits up to `grace` for tracked tasks to finish.
    ///
    /// Returns `true` when every tracked task finished within the grace period. Does not trigger
    /// shutdown itself: call [`Shutdown::trigger`] first, or tasks may never end.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                remaining = self.tracker.len(),
                grace_ms = grace.as_millis() as u64,
                "tasks still running after shutdown grace period"
            );
        }
        done
    }
}

#[cfg(unix)]
async fn wait_signal(token: &CancellationToken) -> Option<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => Some("SIGTERM"),
            _ = int.recv() => Some("SIGINT"),
            _ = token.cancelled() => None,
        },
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot install signal handlers; watching ctrl-c only");
            ctrl_c_or_cancel(token).await
        }
    }
}

#[cfg(not(unix))]
async fn wait_signal(token: &CancellationToken) -> Option<&'static str> {
    ctrl_c_or_cancel(token).await
}

async fn ctrl_c_or_cancel(token: &CancellationToken) -> Option<&'static str> {
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.ok().map(|()| "SIGINT"),
        _ = token.cancelled() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_tasks_and_drain_reports_finished() {
        let sd = Shutdown::new();
        let s2 = sd.clone();
        let h = sd.spawn(async move {
            s2.cancelled().await;
            42
        });
        assert!(!sd.is_triggered());
        sd.trigger();
        assert!(sd.is_triggered());
        assert!(sd.drain(Duration::from_secs(2)).await);
        assert_eq!(h.await.expect("join"), 42);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_reports_timeout_when_task_ignores_signal() {
        let sd = Shutdown::new();
        sd.spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        sd.trigger();
        assert!(!sd.drain(Duration::from_millis(100)).await);
    }

    #[tokio::test]
    async fn child_triggers_with_parent_and_shares_tracker() {
        let sd = Shutdown::new();
        let child = sd.child();
        child.spawn(async {});
        let other_child = sd.child();
        other_child.trigger();
        assert!(!sd.is_triggered());
        sd.trigger();
        assert!(child.is_triggered());
        assert!(sd.drain(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn wait_for_signal_returns_on_trigger() {
        let sd = Shutdown::new();
        let waiter = tokio::spawn(sd.clone().wait_for_signal());
        sd.trigger();
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("returns")
            .expect("join");
        assert_eq!(got, None);
    }
}
