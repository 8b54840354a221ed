//! The standalone `log-cache` binary: started from the upstream `log-cache`
//! job's variables (ports 0), it announces its ports on stderr, serves, and
//! SIGINT exits 0 with upstream's `Closing Log Cache.`; a bad configuration
//! exits non-zero naming the variable and the way out, before binding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn base_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("ADDR", "127.0.0.1:0")
        .env("METRICS_PORT", "0")
        .env("MEMORY_LIMIT_BYTES", "10000000")
        .env("MAX_PER_SOURCE", "1000")
        .env("TRUNCATION_INTERVAL", "1s")
        .env("USE_RFC339", "false")
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn starts_from_upstream_env_announces_ports_and_stops_on_sigint() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-cache"));
    base_env(&mut cmd)
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .env("SYSLOG_PORT", "0")
        .args(["--auth", "none"]);
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port_of = |line: &str, key: &str| -> Option<u16> {
        let rest = line.split(key).nth(1)?;
        rest.rsplit(':').next()?.trim().parse().ok()
    };
    let (mut grpc, mut http, mut admin, mut syslog) = (None, None, None, None);
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while grpc.is_none() || http.is_none() || admin.is_none() || syslog.is_none() {
            let Some(line) = lines.next_line().await.unwrap() else {
                break;
            };
            grpc = grpc.or(port_of(&line, "gRPC bound to: "));
            http = http.or(port_of(&line, "HTTP API bound to: "));
            admin = admin.or(port_of(&line, "metrics bound to: "));
            syslog = syslog.or(port_of(&line, "syslog bound to: "));
            seen.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("startup lines not seen: {seen:?}"));
    assert!(
        seen.iter().any(|l| l.ends_with("Starting Log Cache...")),
        "{seen:?}"
    );
    let (http, admin) = (http.unwrap(), admin.unwrap());
    let (status, body) = get(http, "/api/v1/info").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"version\":\""), "{body}");
    // An upstream syslog agent's frame (octet counting) is stored and readable.
    let msg = "<14>1 2016-07-19T23:08:12.129Z host my-app [APP/PROC/WEB/0] - [tags@47450 source_type=\"APP/PROC/WEB\"] hello syslog\n";
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", syslog.unwrap()))
        .await
        .unwrap();
    tcp.write_all(format!("{} {msg}", msg.len()).as_bytes())
        .await
        .unwrap();
    let mut stored = String::new();
    for _ in 0..100 {
        let (_, body) = get(
            http,
            "/api/v1/read/my-app?start_time=0&end_time=1500000000000000000",
        )
        .await;
        if body.contains("aGVsbG8gc3lzbG9n") {
            stored = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored.contains("\"instance_id\":\"0\""), "{stored}");
    let (status, body) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("log_cache_ingress"), "{body}");

    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Ok(Some(l)) = lines.next_line().await {
        rest.push(l);
    }
    assert!(
        rest.iter().any(|l| l.ends_with("Closing Log Cache.")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn bad_configuration_fails_before_binding_and_says_how_to_fix_it() {
    for (extra, expect) in [
        (("GATEWAY_ADDR", "127.0.0.1:0"), "--auth none"),
        (("CA_PATH", "/nonexistent/ca.crt"), "CA_PATH"),
        (("NODE_INDEX", "3"), "NODE_INDEX"),
        (("QUERY_TIMEOUT", "ten"), "QUERY_TIMEOUT"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-cache"));
        base_env(&mut cmd)
            .env(extra.0, extra.1)
            .env("NODE_ADDRS", "127.0.0.1:1,127.0.0.1:2");
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .unwrap()
            .unwrap();
        assert!(!out.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{extra:?}: {stderr}");
        assert!(!stderr.contains("bound to"), "{extra:?}: {stderr}");
    }
}
