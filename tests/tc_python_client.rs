//! The independent PyPI client `cloudfoundry-client` against our traffic
//! controller: recent logs, the v1 app stream and the RLP gateway SSE reader
//! (tests/python/test_cf_client.py), with a fake Cloud Controller + UAA and
//! the traffic controller in `uaa` mode.
//!
//! The interpreter comes from `LOGGREGATOR_TEST_PYTHON` (a venv with
//! `cloudfoundry-client`; `.ci/run` creates it). Unset, the test fails,
//! unless `LOGGREGATOR_SKIP_PYTHON=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;
#[path = "support/tc_fake_cf.rs"]
mod tc_fake_cf;

use std::time::Duration;

use tc_cluster::*;
use tc_fake_cf::ALLOWED_APP as APP;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pypi_cloudfoundry_client_reads_recent_logs_stream_and_rlp() {
    let python = match std::env::var("LOGGREGATOR_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("LOGGREGATOR_SKIP_PYTHON").as_deref() == Ok("1") {
                return;
            }
            panic!(
                "LOGGREGATOR_TEST_PYTHON is not set: point it at a python with cloudfoundry-client \
                 (python3 -m venv .venv && .venv/bin/pip install cloudfoundry-client), \
                 or set LOGGREGATOR_SKIP_PYTHON=1 to skip this test"
            );
        }
    };
    let cf = tc_fake_cf::start().await;
    let url = cf.url();
    let c = Cluster::start(move |config| {
        config.auth = traffic_controller::AuthMode::Uaa(Box::new(
            traffic_controller::config::UaaAuth::plain(&url, &url),
        ));
    })
    .await;
    cf.set_links(
        &format!("ws://{}", c.tc_addr),
        &format!("http://{}", c.tc_gateway),
    );

    let recent: Vec<String> = (0..4).map(|i| format!("recent line {i}")).collect();
    for (i, text) in recent.iter().enumerate() {
        c.push(i % 2, &[log_env(APP, text)]).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Wait until both dopplers' caches answer.
    eventually_async(&c, &recent).await;

    // Keep producing live lines while the client runs.
    let stop = tokio_util_like_flag();
    let producer = {
        let stop = stop.clone();
        let c = &c;
        async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                c.push((n % 2) as usize, &[log_env(APP, &format!("live-{n}"))])
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/test_cf_client.py"
    );
    let run = async {
        let out = tokio::process::Command::new(&python)
            .arg(script)
            .env("CF_TARGET", cf.url())
            .env("APP_GUID", APP)
            .env("RECENT_EXPECTED", recent.join("|"))
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(90), out)
            .await
            .expect("python client finished in time")
            .expect("python runs");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    };
    let (out, ()) = tokio::join!(run, producer);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.starts_with("OK recent="), "{stdout}");
    assert!(
        stdout.contains(" stream=live-") && stdout.contains(" rlp=live-"),
        "{stdout}"
    );

    // The client's own spellings reached us: `Bearer` on v1, bare on the gateway;
    // Cloud Controller saw the normalised `bearer <token>` each time.
    assert!(
        cf.authorizations("/internal/v4/log_access/")
            .iter()
            .all(|a| a == "bearer user-token")
    );
    assert!(!cf.authorizations("/internal/v4/log_access/").is_empty());
}

fn tokio_util_like_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

async fn eventually_async(c: &Cluster, recent: &[String]) {
    let path = format!("/apps/{APP}/recentlogs");
    for _ in 0..100 {
        let r = c
            .http("GET", &path, &[("authorization", "bearer user-token")], "")
            .await;
        if r.status == 200
            && recent
                .iter()
                .all(|t| r.body.windows(t.len()).any(|w| w == t.as_bytes()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("recent logs never showed the pushed lines");
}
