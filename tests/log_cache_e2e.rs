//! End to end through Log Cache: `loggregator dev` (agent → two dopplers → log cache fed by
//! its doppler subscription), `emit` by gRPC and by UDP, read back with
//! `logs --log-cache-url` (recent, then the walk) in the exact cf CLI line format (TZ=UTC).

#[path = "support/cli_dev.rs"]
mod cli_dev;

use std::time::Duration;

use cli_dev::{Dev, Lines, eventually, run};

const T: Duration = Duration::from_secs(30);

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn log_cache_url(dev: &Dev) -> String {
    dev.log_cache_url
        .clone()
        .unwrap_or_else(|| panic!("no log cache row in the banner {:#?}", dev.banner))
}

fn recent(dev: &Dev, app: &str, n: usize) -> Vec<String> {
    let url = log_cache_url(dev);
    let mut last = Vec::new();
    eventually(T, || {
        let out = run(
            dev.client("logs", &["--recent", "--log-cache-url", &url, app]),
            None,
            T,
        );
        last = ok(&out).lines().map(str::to_owned).collect::<Vec<_>>();
        (last.len() >= n).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("expected {n} lines from log cache, last saw {last:#?}"))
}

#[test]
fn emitted_logs_reach_log_cache_through_the_dopplers_in_cf_format() {
    let dev = Dev::start(&[]);
    let app = "5e0c1f3a-2b4d-4e6f-8a9b-0c1d2e3f4a5b";
    ok(&run(
        dev.emit(&[
            "--source-id",
            app,
            "--instance",
            "3",
            "--timestamp",
            "2016-07-19T23:08:12.129Z",
            "hello world",
        ]),
        None,
        T,
    ));
    ok(&run(
        dev.emit(&[
            "--source-id",
            app,
            "--source-type",
            "APP/TASK/migrate",
            "--instance",
            "",
            "--err",
            "--timestamp",
            "1468969693509999999",
            "panic: boom\r\n\tat main.go:12",
        ]),
        None,
        T,
    ));
    // v1 dropsonde over UDP, converted to v2 by the agent.
    ok(&run(
        dev.emit_udp(&[
            "--source-id",
            app,
            "--timestamp",
            "2016-07-19T23:08:14Z",
            "over udp",
        ]),
        None,
        T,
    ));
    assert_eq!(
        recent(&dev, app, 4),
        vec![
            "   2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/3] OUT hello world",
            "   2016-07-19T23:08:13.50+0000 [APP/TASK/migrate/] ERR panic: boom",
            "   2016-07-19T23:08:13.50+0000 [APP/TASK/migrate/] ERR \tat main.go:12",
            "   2016-07-19T23:08:14.00+0000 [APP/PROC/WEB/0] OUT over udp",
        ]
    );
    // --json prints the envelopes as Log Cache returned them.
    let url = log_cache_url(&dev);
    let json = ok(&run(
        dev.client(
            "logs",
            &["--recent", "--json", "--log-cache-url", &url, app],
        ),
        None,
        T,
    ));
    let first: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["timestamp"], "1468969692129000000");
    assert_eq!(first["instance_id"], "3");
    assert_eq!(first["log"]["payload"], "aGVsbG8gd29ybGQ=");
}

#[test]
fn following_log_cache_prints_recent_then_live_once_each() {
    let dev = Dev::start(&[]);
    let app = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d";
    ok(&run(
        dev.emit(&[
            "--source-id",
            app,
            "--timestamp",
            "2020-01-01T00:00:01Z",
            "recent one",
        ]),
        None,
        T,
    ));
    recent(&dev, app, 1);
    let url = log_cache_url(&dev);
    let follow = Lines::spawn(dev.client("logs", &["--log-cache-url", &url, app]));
    assert_eq!(
        follow.next(T).as_deref(),
        Some("   2020-01-01T00:00:01.00+0000 [APP/PROC/WEB/0] OUT recent one")
    );
    // Live lines (stamped now) are shown once they are 2 s old, each once, in order.
    for text in ["live two", "live three"] {
        ok(&run(dev.emit(&["--source-id", app, text]), None, T));
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let line = follow.next(T).unwrap_or_else(|| {
            panic!(
                "walk stalled after {got:?}; logs stderr:\n{}",
                follow.stderr()
            )
        });
        got.push(line);
    }
    assert!(got[0].ends_with("[APP/PROC/WEB/0] OUT live two"), "{got:?}");
    assert!(
        got[1].ends_with("[APP/PROC/WEB/0] OUT live three"),
        "{got:?}"
    );
    assert_eq!(
        follow.next(Duration::from_secs(4)),
        None,
        "nothing printed twice"
    );
}
