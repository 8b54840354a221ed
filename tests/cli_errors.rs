//! Command-line errors of the `loggregator` binary: bad flags and bad config files produce the
//! documented one-line errors and non-zero exit codes (2 for usage, 1 for configuration), and
//! `--help` documents every option's default.

#[path = "support/cli_dev.rs"]
mod cli_dev;

use std::time::Duration;

use cli_dev::{loggregator, run};

const T: Duration = Duration::from_secs(20);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn invalid_value_names_the_option_and_the_accepted_values() {
    let mut cmd = loggregator();
    cmd.args(["firehose", "--filter", "x"]);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: invalid value 'x' for '--filter <FILTER>': accepted values: logs, metrics\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let mut cmd = loggregator();
    cmd.args(["logs", "--nope", "app"]);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: unexpected argument '--nope' found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_metric_flag_says_what_is_expected() {
    let mut cmd = loggregator();
    cmd.args(["emit", "--gauge", "cpu"]);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "error: invalid value 'cpu' for '--gauge <NAME=VALUE[:UNIT]>': expected NAME=VALUE[:UNIT], e.g. cpu=12.5:percentage\n"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_config_file_names_the_field_and_the_accepted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doppler.toml");
    std::fs::write(&path, "grpc_port = 5\n").expect("write config");
    let mut cmd = loggregator();
    cmd.arg("doppler").arg("--config").arg(&path);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("unknown field `grpc_port`, expected one of `grpc_addr`"),
        "{err}"
    );
    assert_eq!(
        err.matches("unknown field").count(),
        1,
        "reported once: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn dev_rejects_mismatched_doppler_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = loggregator();
    cmd.arg("dev").arg("--cert-dir").arg(dir.path()).args([
        "--doppler-addrs",
        "127.0.0.1:0,127.0.0.1:0",
        "--doppler-admin-addrs",
        "127.0.0.1:0",
    ]);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: --doppler-admin-addrs: 1 addresses given for 2 dopplers (--doppler-addrs); give one admin address per doppler\n"
    );
}

#[test]
fn unreachable_traffic_controller_is_reported_without_a_backtrace() {
    let mut cmd = loggregator();
    cmd.args(["logs", "--recent", "--tc-url", "http://127.0.0.1:1", "app"]);
    let out = run(cmd, None, T);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: GET http://127.0.0.1:1/apps/app/recentlogs"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn help_documents_defaults() {
    for (sub, expected) in [
        (
            "logs",
            vec![
                "[default: http://127.0.0.1:8081]",
                "--recent",
                "--json",
                "CF_TOKEN",
            ],
        ),
        (
            "firehose",
            vec![
                "[default: loggregator-cli]",
                "- logs:",
                "- metrics:",
                "--stats",
            ],
        ),
        (
            "emit",
            vec![
                "[default: 127.0.0.1:3458]",
                "[default: 127.0.0.1:3457]",
                "[default: APP/PROC/WEB]",
                "--plaintext",
            ],
        ),
        (
            "dev",
            vec![
                "[default: 127.0.0.1:8081]",
                "[default: 127.0.0.1:8082,127.0.0.1:8092]",
                "--demo",
                "--stats",
            ],
        ),
    ] {
        let mut cmd = loggregator();
        cmd.args([sub, "--help"]);
        let out = run(cmd, None, T);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for e in expected {
            assert!(help.contains(e), "`{sub} --help` lacks {e:?}:\n{help}");
        }
    }
}
