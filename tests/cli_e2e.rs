//! End-to-end tests of the `loggregator` binary as a user runs it: `loggregator dev` in a child
//! process, `emit` by gRPC and by UDP, read back with `logs --recent`, `logs` (follow),
//! `logs --json` and `firehose`, comparing exact output lines (TZ=UTC).

#[path = "support/cli_dev.rs"]
mod cli_dev;

use std::time::Duration;

use cli_dev::{Dev, Lines, eventually, free_port, loggregator, run};

const T: Duration = Duration::from_secs(20);

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

/// `logs --recent` output once it has `n` lines.
fn recent_lines(dev: &Dev, app: &str, extra: &[&str], n: usize) -> Vec<String> {
    let mut last = Vec::new();
    let got = eventually(T, || {
        let out = run(
            dev.client("logs", &[&["--recent", app], extra].concat()),
            None,
            T,
        );
        last = ok(&out).lines().map(str::to_owned).collect::<Vec<_>>();
        (last.len() >= n).then(|| last.clone())
    });
    got.unwrap_or_else(|| {
        panic!(
            "expected {n} recent lines, last saw {last:#?}\ndev stderr:\n{}",
            dev.stderr()
        )
    })
}

/// Emits `probe` lines for `app` until the following `logs` shows one, so the live stream is
/// known to be subscribed on every doppler path before the real test lines are sent.
fn wait_until_live(dev: &Dev, follow: &Lines, app: &str) {
    let mut n = 0;
    let seen = eventually(T, || {
        n += 1;
        ok(&run(
            dev.emit(&[
                "--source-id",
                app,
                "--instance",
                "99",
                &format!("probe {n}"),
            ]),
            None,
            T,
        ));
        follow.next_matching(Duration::from_millis(500), |l| {
            l.contains("[APP/PROC/WEB/99] OUT probe")
        })
    });
    assert!(
        seen.is_some(),
        "the live stream never showed a probe; stderr: {}",
        follow.stderr()
    );
}

/// The next lines of `follow` for `timeout`, without probe lines.
fn lines_without_probes(follow: &Lines, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match follow.next(left) {
            Some(l) if l.contains("[APP/PROC/WEB/99] OUT probe") => {}
            Some(l) => out.push(l),
            None => break,
        }
    }
    out
}

#[test]
fn grpc_emit_then_recent_logs_in_cf_format_and_json() {
    let dev = Dev::start(&[]);
    let app = "0b5d7a52-1e3f-4c8a-9a61-0f1e2d3c4b5a";
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

    let lines = recent_lines(&dev, app, &[], 3);
    assert_eq!(
        lines,
        vec![
            "   2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/3] OUT hello world",
            "   2016-07-19T23:08:13.50+0000 [APP/TASK/migrate/] ERR panic: boom",
            "   2016-07-19T23:08:13.50+0000 [APP/TASK/migrate/] ERR \tat main.go:12",
        ]
    );

    // Colour only when asked for (stdout is a pipe here): CF_COLOR=true makes ERR red.
    let mut cmd = dev.client("logs", &["--recent", app]);
    cmd.env("CF_COLOR", "true");
    let coloured = ok(&run(cmd, None, T));
    assert!(coloured.contains(
        "   \x1b[31m2016-07-19T23:08:13.50+0000 [APP/TASK/migrate/] ERR panic: boom\x1b[0m\n"
    ));
    assert!(coloured.contains("   2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/3] OUT hello world\n"));

    // --json: one v2 JSON object per envelope.
    let json = ok(&run(
        dev.client("logs", &["--recent", "--json", app]),
        None,
        T,
    ));
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 2, "{json}");
    assert_eq!(objects[0]["source_id"], app);
    assert_eq!(objects[0]["instance_id"], "3");
    assert_eq!(objects[0]["timestamp"], "1468969692129000000");
    assert_eq!(objects[0]["tags"]["source_type"], "APP/PROC/WEB");
    assert_eq!(objects[0]["log"]["payload"], "aGVsbG8gd29ybGQ="); // "hello world"
    assert_eq!(objects[0]["log"]["type"], "OUT");
    assert_eq!(objects[1]["log"]["type"], "ERR");
    assert_eq!(objects[1]["timestamp"], "1468969693509999999");
}

#[test]
fn plaintext_dev_needs_no_certificates() {
    let dev = Dev::start(&["--plaintext"]);
    assert!(
        !dev.cert_dir().join("ca.crt").exists(),
        "--plaintext generates no certificates"
    );
    let app = "3d6f0a3e-5b1c-4e8f-9a2d-6c7b8e9f0a1b";
    let mut emit = loggregator();
    emit.args([
        "emit",
        "--agent-addr",
        &dev.agent_grpc,
        "--plaintext",
        "--source-id",
        app,
        "--timestamp",
        "2016-07-19T23:08:12.129Z",
        "over plaintext gRPC",
    ]);
    ok(&run(emit, None, T));
    assert_eq!(
        recent_lines(&dev, app, &[], 1),
        vec!["   2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/0] OUT over plaintext gRPC"]
    );
}

#[test]
fn udp_emit_from_stdin_then_recent_logs() {
    let dev = Dev::start(&[]);
    let app = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    ok(&run(
        dev.emit_udp(&["--source-id", app, "--instance", "1", "--err"]),
        Some("alpha\nbeta\r\n\ngamma"),
        T,
    ));
    let lines = recent_lines(&dev, app, &[], 4);
    let rest: Vec<&str> = lines
        .iter()
        .map(|l| {
            // "   2026-11-22T07:24:35.69+0000 " is 31 characters.
            let (ts, rest) = l.split_at(31);
            assert!(ts.starts_with("   20") && ts.ends_with("+0000 "), "{l:?}");
            assert_eq!(&ts[13..14], "T", "{l:?}");
            rest
        })
        .collect();
    assert_eq!(
        rest,
        vec![
            "[APP/PROC/WEB/1] ERR alpha",
            "[APP/PROC/WEB/1] ERR beta",
            "[APP/PROC/WEB/1] ERR ",
            "[APP/PROC/WEB/1] ERR gamma",
        ]
    );
}

#[test]
fn logs_follows_recent_then_live_without_duplicates() {
    let dev = Dev::start(&[]);
    let app = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
    for (ts, text) in [
        ("2020-01-01T00:00:01Z", "recent one"),
        ("2020-01-01T00:00:02Z", "recent two"),
    ] {
        ok(&run(
            dev.emit(&["--source-id", app, "--timestamp", ts, text]),
            None,
            T,
        ));
    }
    recent_lines(&dev, app, &[], 2);

    let follow = Lines::spawn(dev.client("logs", &[app]));
    assert_eq!(
        follow.next(T).as_deref(),
        Some("   2020-01-01T00:00:01.00+0000 [APP/PROC/WEB/0] OUT recent one")
    );
    assert_eq!(
        follow.next(T).as_deref(),
        Some("   2020-01-01T00:00:02.00+0000 [APP/PROC/WEB/0] OUT recent two")
    );
    wait_until_live(&dev, &follow, app);
    for (ts, text) in [
        ("2020-01-01T00:00:03.5Z", "live three"),
        ("2020-01-01T00:00:04.75Z", "live four"),
    ] {
        ok(&run(
            dev.emit(&["--source-id", app, "--timestamp", ts, text]),
            None,
            T,
        ));
    }
    // Everything that arrives in the next seconds: exactly the two live lines, once each.
    assert_eq!(
        lines_without_probes(&follow, Duration::from_secs(4)),
        vec![
            "   2020-01-01T00:00:03.50+0000 [APP/PROC/WEB/0] OUT live three",
            "   2020-01-01T00:00:04.75+0000 [APP/PROC/WEB/0] OUT live four",
        ]
    );
}

#[test]
fn firehose_prints_one_line_per_envelope_and_dev_stops_on_ctrl_c() {
    let mut dev = Dev::start(&[]);
    let app = "a3bb189e-8bf9-3888-9912-ace4e6543002";
    let marker = "9b2f0d6c-3a1e-4f5b-8c7d-6e5f4a3b2c1d";
    let firehose = Lines::spawn(dev.client(
        "firehose",
        &["--subscription-id", "cli-e2e", "--filter", "logs"],
    ));
    // Emit markers until the firehose is connected and shows one.
    let seen = eventually(T, || {
        ok(&run(dev.emit(&["--source-id", marker, "marker"]), None, T));
        firehose.next_matching(Duration::from_millis(500), |l| l.contains(marker))
    });
    assert!(
        seen.is_some(),
        "firehose never showed a marker; dev stderr:\n{}",
        dev.stderr()
    );

    ok(&run(
        dev.emit_udp(&[
            "--source-id",
            app,
            "--timestamp",
            "2016-07-19T23:08:15.25Z",
            "via udp",
        ]),
        None,
        T,
    ));
    let line = firehose.next_matching(T, |l| l.contains(app));
    assert_eq!(
        line.as_deref(),
        Some(
            "2016-07-19T23:08:15.25+0000 loggregator-emit LogMessage app=a3bb189e-8bf9-3888-9912-ace4e6543002 [APP/PROC/WEB/0] OUT via udp"
        )
    );
    ok(&run(
        dev.emit(&[
            "--source-id",
            app,
            "--instance",
            "2",
            "--err",
            "--timestamp",
            "2016-07-19T23:08:16Z",
            "via grpc\nsecond line",
        ]),
        None,
        T,
    ));
    let line = firehose
        .next_matching(T, |l| l.contains(app))
        .expect("grpc envelope");
    let (_, rest) = line.split_once(" LogMessage ").expect("LogMessage line");
    assert!(line.starts_with("2016-07-19T23:08:16.00+0000 "), "{line}");
    assert_eq!(
        rest,
        "app=a3bb189e-8bf9-3888-9912-ace4e6543002 [APP/PROC/WEB/2] ERR via grpc\\nsecond line"
    );

    let status = dev.process.interrupt(Duration::from_secs(30));
    assert!(
        status.success(),
        "dev exit status {status:?}\n{}",
        dev.stderr()
    );
    assert!(
        dev.stderr().contains("loggregator dev: stopped"),
        "{}",
        dev.stderr()
    );
}

#[test]
fn demo_stats_and_metrics_through_the_firehose() {
    let dev = Dev::start(&["--demo", "--stats", "--stats-interval", "500ms"]);
    // --stats: a line per interval with per-hop rates; the demo makes the agent see traffic.
    let stats = dev.process.next_matching(T, |l| {
        l.starts_with("stats: agent in ") && !l.starts_with("stats: agent in 0/s")
    });
    let stats = stats.expect("a stats line with agent traffic");
    assert!(stats.contains(" | dopplers in "), "{stats}");
    assert!(stats.contains(" | traffic controller in "), "{stats}");

    // The demo apps' logs are readable in the cf format.
    let demo_app = "6f1d2c3b-4a59-4e8f-9d10-2b3c4d5e6f70";
    let lines = recent_lines(&dev, demo_app, &[], 3);
    for l in &lines {
        let (_, rest) = l.split_at(31);
        assert!(
            ["[APP/PROC/WEB/", "[RTR/", "[API/", "[CELL/"]
                .iter()
                .any(|p| rest.starts_with(p)),
            "{l:?}"
        );
    }

    let app = "5c3f2a1b-0d9e-4f8a-b7c6-d5e4f3a2b1c0";
    let firehose = Lines::spawn(dev.client(
        "firehose",
        &["--subscription-id", "cli-metrics", "--filter", "metrics"],
    ));
    let line = eventually(T, || {
        ok(&run(
            dev.emit(&[
                "--source-id",
                app,
                "--timestamp",
                "2016-07-19T23:08:17Z",
                "--counter",
                "cli_e2e_requests:3",
            ]),
            None,
            T,
        ));
        firehose.next_matching(Duration::from_millis(500), |l| {
            l.contains("cli_e2e_requests")
        })
    })
    .expect("counter on the firehose");
    assert!(line.starts_with("2016-07-19T23:08:17.00+0000 "), "{line}");
    assert!(
        line.contains(" CounterEvent cli_e2e_requests delta=3 total="),
        "{line}"
    );
    // A metrics-only firehose shows no logs even though the demo writes many.
    assert!(!line.contains("LogMessage"));
    for _ in 0..20 {
        if let Some(l) = firehose.next(Duration::from_millis(100)) {
            assert!(!l.contains(" LogMessage "), "{l}");
        }
    }
}

#[test]
fn emit_without_dev_certificates_explains_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = loggregator();
    cmd.arg("emit")
        .arg("--cert-dir")
        .arg(dir.path())
        .arg("hello");
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: --ca-file: {}/ca.crt does not exist (start `loggregator dev` to generate the development certificates, pass --cert-dir or --ca-file, or use --plaintext)\n",
            dir.path().display()
        )
    );
}

#[test]
fn logs_reconnects_with_backoff_and_says_so() {
    let port = free_port();
    let tc = format!("127.0.0.1:{port}");
    let mut first = Dev::start(&["--tc-addr", &tc]);
    let app = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
    ok(&run(
        first.emit(&[
            "--source-id",
            app,
            "--timestamp",
            "2021-05-06T07:08:09.10Z",
            "before",
        ]),
        None,
        T,
    ));
    recent_lines(&first, app, &[], 1);
    let follow = Lines::spawn(first.client("logs", &[app]));
    assert_eq!(
        follow.next(T).as_deref(),
        Some("   2021-05-06T07:08:09.10+0000 [APP/PROC/WEB/0] OUT before")
    );

    // The traffic controller goes away: the client says so and keeps retrying.
    assert!(first.process.interrupt(Duration::from_secs(30)).success());
    let lost = eventually(T, || {
        follow
            .stderr()
            .contains("lost the log stream")
            .then_some(())
    });
    assert!(lost.is_some(), "stderr: {}", follow.stderr());

    // A new pipeline on the same traffic controller port: the client reconnects and shows
    // what is emitted there.
    let second = Dev::start(&["--tc-addr", &tc]);
    let reconnected = eventually(Duration::from_secs(40), || {
        follow
            .stderr()
            .contains("reconnected to ws://")
            .then_some(())
    });
    assert!(reconnected.is_some(), "stderr: {}", follow.stderr());
    wait_until_live(&second, &follow, app);
    ok(&run(
        second.emit(&[
            "--source-id",
            app,
            "--timestamp",
            "2021-05-06T07:08:10.20Z",
            "after",
        ]),
        None,
        T,
    ));
    let after = follow.next_matching(T, |l| !l.contains("[APP/PROC/WEB/99] OUT probe"));
    assert_eq!(
        after.as_deref(),
        Some("   2021-05-06T07:08:10.20+0000 [APP/PROC/WEB/0] OUT after")
    );
    assert!(
        follow.stderr().contains("; reconnecting in "),
        "stderr: {}",
        follow.stderr()
    );
}
