//! Support for the CLI end-to-end tests: the built `loggregator` binary run as a user runs it,
//! and a `loggregator dev` child process on ephemeral ports (so tests run in parallel).

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_loggregator");

/// A `Command` for the binary with a deterministic environment (UTC, no colour override,
/// no inherited dev settings).
pub(crate) fn loggregator() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("TZ", "UTC")
        .env_remove("CF_COLOR")
        .env_remove("CF_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("LOGGREGATOR_DEV_DIR")
        .env_remove("LOGGREGATOR_TC_URL")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion (killed after `timeout`), feeding `stdin` if given.
pub(crate) fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn loggregator");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for loggregator"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("loggregator did not finish within {timeout:?}");
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Retries `f` every 200 ms until it returns `Some` or `timeout` passes.
pub(crate) fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child whose stdout is read line by line.
pub(crate) struct Lines {
    pub(crate) child: Child,
    rx: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Lines {
    /// Spawns `cmd` with stdout piped and read on a thread.
    pub(crate) fn spawn(mut cmd: Command) -> Lines {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn loggregator");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr_pipe = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Lines { child, rx, stderr }
    }

    /// What the child wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The next line, or `None` after `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Option<String> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next line satisfying `pred`, skipping others, or `None` after `timeout`.
    pub(crate) fn next_matching(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.next(left)?;
            if pred(&line) {
                return Some(line);
            }
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `timeout` for the exit status.
    pub(crate) fn interrupt(&mut self, timeout: Duration) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {timeout:?} after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `loggregator dev` on ephemeral ports with its own certificate directory.
pub(crate) struct Dev {
    pub(crate) process: Lines,
    pub(crate) dir: tempfile::TempDir,
    /// Agent v2 gRPC `host:port`.
    pub(crate) agent_grpc: String,
    /// Agent v1 UDP `host:port`.
    pub(crate) agent_udp: String,
    /// Traffic controller `http://host:port`.
    pub(crate) tc_url: String,
    /// Log Cache HTTP API `http://host:port`, unless started with `--log-cache-addr off`.
    pub(crate) log_cache_url: Option<String>,
    /// The start-up banner (stdout up to and including the `ready` line).
    pub(crate) banner: Vec<String>,
}

impl Dev {
    /// Starts `loggregator dev` with every port 0 plus `extra` flags (an address flag given in
    /// `extra` replaces the port-0 default) and waits for `ready`.
    pub(crate) fn start(extra: &[&str]) -> Dev {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = std::fs::File::create(dir.path().join("dev.stderr")).expect("stderr file");
        let mut cmd = loggregator();
        cmd.arg("dev")
            .arg("--cert-dir")
            .arg(dir.path().join("certs"));
        for (flag, value) in [
            ("--agent-udp-addr", "127.0.0.1:0"),
            ("--agent-grpc-addr", "127.0.0.1:0"),
            ("--agent-admin-addr", "127.0.0.1:0"),
            ("--doppler-addrs", "127.0.0.1:0,127.0.0.1:0"),
            ("--doppler-admin-addrs", "127.0.0.1:0,127.0.0.1:0"),
            ("--tc-addr", "127.0.0.1:0"),
            ("--gateway-addr", "127.0.0.1:0"),
            ("--tc-admin-addr", "127.0.0.1:0"),
            ("--log-cache-addr", "127.0.0.1:0"),
            ("--log-cache-grpc-addr", "127.0.0.1:0"),
        ] {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(extra);
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().expect("spawn loggregator dev");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let process = Lines {
            child,
            rx,
            stderr: Default::default(),
        };
        let mut banner = Vec::new();
        loop {
            let Some(line) = process.next(Duration::from_secs(60)) else {
                let err =
                    std::fs::read_to_string(dir.path().join("dev.stderr")).unwrap_or_default();
                panic!("loggregator dev did not become ready; stdout {banner:#?}; stderr:\n{err}");
            };
            let ready = line.starts_with("ready;");
            banner.push(line);
            if ready {
                break;
            }
        }
        let field = |label: &str| -> String {
            banner
                .iter()
                .find_map(|l| l.trim_start().strip_prefix(label))
                .map(|rest| rest.trim().to_owned())
                .unwrap_or_else(|| panic!("no {label:?} row in the banner {banner:#?}"))
        };
        let agent_grpc = if banner.iter().any(|l| l.contains("(plaintext)")) {
            field("agent v2 gRPC (plaintext)")
        } else {
            field("agent v2 gRPC (mTLS)")
        };
        let agent_udp = field("agent v1 UDP (dropsonde)");
        let tc = field("traffic controller (WebSocket)");
        let tc_url = tc.replacen("ws://", "http://", 1);
        let log_cache_url = banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix("log cache (cf CLI API)"))
            .map(|rest| rest.trim().to_owned());
        Dev {
            process,
            dir,
            agent_grpc,
            agent_udp,
            tc_url,
            log_cache_url,
            banner,
        }
    }

    /// The certificate directory given to dev.
    pub(crate) fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// What dev wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dev.stderr")).unwrap_or_default()
    }

    /// `loggregator emit` over gRPC to this dev's agent with its certificates, plus `args`.
    pub(crate) fn emit(&self, args: &[&str]) -> Command {
        let mut cmd = loggregator();
        cmd.arg("emit")
            .arg("--agent-addr")
            .arg(&self.agent_grpc)
            .arg("--cert-dir")
            .arg(self.cert_dir())
            .args(args);
        cmd
    }

    /// `loggregator emit --udp` to this dev's agent, plus `args`.
    pub(crate) fn emit_udp(&self, args: &[&str]) -> Command {
        let mut cmd = loggregator();
        cmd.args(["emit", "--udp", "--udp-addr", &self.agent_udp])
            .args(args);
        cmd
    }

    /// `loggregator <sub>` against this dev's traffic controller, plus `args`.
    pub(crate) fn client(&self, sub: &str, args: &[&str]) -> Command {
        let mut cmd = loggregator();
        cmd.args([sub, "--tc-url", &self.tc_url]).args(args);
        cmd
    }
}
