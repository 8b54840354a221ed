//! `Shutdown::wait_for_signal` with real signals (own test binary: the signal goes to this
//! process only).

#![cfg(unix)]

use std::time::Duration;

use plumbing::shutdown::Shutdown;

fn send_to_self(signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(std::process::id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_triggers_shutdown_and_tasks_drain() {
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let worker = shutdown.spawn(async move {
        sd.cancelled().await;
        "stopped"
    });
    let waiter = tokio::spawn(shutdown.clone().wait_for_signal());
    // Let the waiter install its handlers before the signal is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!shutdown.is_triggered());
    send_to_self("TERM");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("signal seen")
        .expect("join");
    assert_eq!(got, Some("SIGTERM"));
    assert!(shutdown.is_triggered());
    assert!(shutdown.drain(Duration::from_secs(2)).await);
    assert_eq!(worker.await.expect("join"), "stopped");

    // SIGINT (Ctrl-C) works the same way, on a fresh Shutdown.
    let shutdown = Shutdown::new();
    let waiter = tokio::spawn(shutdown.clone().wait_for_signal());
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_to_self("INT");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("signal seen")
        .expect("join");
    assert_eq!(got, Some("SIGINT"));
    assert!(shutdown.is_triggered());
}
