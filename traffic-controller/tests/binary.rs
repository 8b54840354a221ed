//! The standalone `traffic-controller` binary as a drop-in replacement
//! (upstream-config §4, §10): only upstream environment variables, ports 0,
//! the `ws bound to:` / `pprof bound to:` startup lines on stderr, SIGINT
//! exits 0, configuration errors exit non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn base_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT", "0")
        .env("TRAFFIC_CONTROLLER_PPROF_PORT", "0")
        .env("TRAFFIC_CONTROLLER_SYSTEM_DOMAIN", "sys.example.com")
        .env("TRAFFIC_CONTROLLER_IP", "127.0.0.1")
        .env("TRAFFIC_CONTROLLER_UAA_HOST", "http://127.0.0.1:1")
        .env("TRAFFIC_CONTROLLER_UAA_CLIENT", "")
        .env("TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET", "secret")
        .env("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL", "0s")
        .env("TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG", "")
        .env("AGENT_GRPC_ADDRESS", "127.0.0.1:0")
        .env("ROUTER_ADDRS", "127.0.0.1:1")
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .env("USE_RFC339", "false")
}

async fn get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_traffic-controller"));
    base_env(&mut cmd).env("TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL", "true");
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut ws, mut pprof) = (None, None);
    let port_of = |line: &str, key: &str| -> Option<u16> {
        let rest = line.split(key).nth(1)?;
        rest.rsplit(':').next()?.trim().parse().ok()
    };
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while ws.is_none() || pprof.is_none() {
            let Some(line) = lines.next_line().await.unwrap() else {
                break;
            };
            ws = ws.or(port_of(&line, "ws bound to: [::]"));
            pprof = pprof.or(port_of(&line, "pprof bound to: 127.0.0.1"));
            seen.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("startup lines not seen: {seen:?}"));
    let (ws, pprof) = (ws.expect("ws line"), pprof.expect("pprof line"));
    assert!(
        seen.iter()
            .any(|l| l.ends_with("Startup: Setting up the loggregator traffic controller")),
        "{seen:?}"
    );

    let (status, body) = get(pprof, "/health").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(ws, "/firehose/sub").await;
    assert_eq!(
        status, 400,
        "authorised (access control off) but not an upgrade"
    );
    let (status, body) = get(ws, "/v2/read").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.ends_with("{\"message\":\"query cannot be empty\",\"error\":\"empty_query\"}\n"),
        "{body}"
    );

    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = {
        let mut v = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            v.push(l);
        }
        v
    };
    assert!(
        rest.iter().any(|l| l.ends_with("Shutting down")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn uaa_mode_without_secret_fails_naming_the_variable() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_traffic-controller"));
    base_env(&mut cmd).env("TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET", "");
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "missing required environment variables: TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET"
        ),
        "{stderr}"
    );
}
