//! Starts the components under test as separate processes, configured only through the upstream
//! environment variables (so the same runner can start any implementation honouring that
//! contract), and learns their ports from the upstream `<name> bound to: <addr>` stderr lines.

use plumbing::tls::TlsFiles;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running component process; killed when dropped.
#[derive(Debug)]
pub struct Proc {
    /// Label used in reports.
    pub name: String,
    child: Child,
    lines: Arc<parking_lot::Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `program args…` with exactly `env` added to a cleared environment (plus PATH),
    /// capturing stderr.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name} ({}): {e}", program.display()))?;
        let lines = Arc::new(parking_lot::Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = sink.lock();
                    if l.len() < 10_000 {
                        l.push(line);
                    }
                }
            });
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            lines,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line `… <what> bound to: <addr>` and returns `127.0.0.1:<port>`.
    pub fn bound(&mut self, what: &str, timeout: Duration) -> anyhow::Result<String> {
        let needle = format!("{what} bound to: ");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(addr) = self
                .lines
                .lock()
                .iter()
                .find_map(|l| l.split_once(&needle).map(|(_, a)| a.trim().to_owned()))
            {
                let port = addr
                    .rsplit_once(':')
                    .map(|(_, p)| p.to_owned())
                    .ok_or_else(|| anyhow::anyhow!("{}: no port in {addr:?}", self.name))?;
                return Ok(format!("127.0.0.1:{port}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!(
                    "{} exited with {status} before binding {what}:\n{}",
                    self.name,
                    self.stderr_tail(30)
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} did not report `{needle}` within {timeout:?}:\n{}",
                    self.name,
                    self.stderr_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Last `n` stderr lines, for error messages.
    pub fn stderr_tail(&self, n: usize) -> String {
        let l = self.lines.lock();
        l[l.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates for the run (generated fresh).
#[derive(Debug)]
pub struct Pki {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    files: HashMap<String, TlsFiles>,
}

impl Pki {
    /// Generates a CA and leaf certificates into a temporary directory.
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pki = plumbing::tls::dev::DevPki::generate(dir.path())?;
        let mut files = HashMap::new();
        for name in [
            "doppler",
            "metron",
            "trafficcontroller",
            "log-cache",
            "client",
        ] {
            files.insert(name.to_owned(), pki.files(name));
        }
        Ok(Self { _dir: dir, files })
    }

    /// CA/cert/key of `name`.
    pub fn files(&self, name: &str) -> anyhow::Result<&TlsFiles> {
        self.files
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no certificate for {name}"))
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn ca(files: &TlsFiles) -> String {
    files.ca.as_deref().map(s).unwrap_or_default()
}

/// The system under test: dopplers, optionally an agent and a traffic controller.
#[derive(Debug)]
pub struct Cluster {
    /// Component processes (dopplers first).
    pub procs: Vec<Proc>,
    /// gRPC addresses of the dopplers.
    pub dopplers: Vec<String>,
    /// Admin (metrics) addresses by process name.
    pub admin: Vec<(String, String)>,
    /// Agent v2 gRPC and UDP addresses, when an agent runs.
    pub agent: Option<(String, String)>,
    /// Traffic controller HTTP address, when one runs.
    pub tc: Option<String>,
}

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `loggregator` binary (its subcommands start each component).
    pub binary: PathBuf,
    /// Number of dopplers.
    pub dopplers: usize,
    /// Whether to start an agent in front of the dopplers.
    pub agent: bool,
    /// Whether to start a traffic controller behind them.
    pub tc: bool,
}

impl Cluster {
    /// Starts everything and waits until every listener is bound.
    pub fn start(spec: &ClusterSpec, pki: &Pki) -> anyhow::Result<Self> {
        let t = Duration::from_secs(20);
        let mut procs = Vec::new();
        let mut dopplers = Vec::new();
        let mut admin = Vec::new();
        let d = pki.files("doppler")?;
        for i in 0..spec.dopplers {
            let name = format!("doppler-{i}");
            let mut p = Proc::spawn(
                &name,
                &spec.binary,
                // Our doppler's admin endpoint (upstream dopplers have none; a binary that does
                // not know the flag is started without it by the operator's own wrapper).
                &["doppler", "--admin-addr", "127.0.0.1:0"],
                &[
                    ("ROUTER_PORT", "0".into()),
                    ("ROUTER_CA_FILE", ca(d)),
                    ("ROUTER_CERT_FILE", s(&d.cert)),
                    ("ROUTER_KEY_FILE", s(&d.key)),
                    ("INGRESS_BUFFER_SIZE", "10000".into()),
                    ("EGRESS_BUFFER_SIZE", "1000".into()),
                    ("ROUTER_PPROF_PORT", "0".into()),
                ],
            )?;
            dopplers.push(p.bound("grpc", t)?);
            if let Ok(a) = p.bound("metrics", Duration::from_secs(2)) {
                admin.push((name.clone(), a));
            }
            procs.push(p);
        }
        let mut agent = None;
        if spec.agent {
            let a = pki.files("metron")?;
            let mut p = Proc::spawn(
                "agent",
                &spec.binary,
                &["agent"],
                &[
                    ("AGENT_PORT", "0".into()),
                    ("AGENT_INCOMING_UDP_PORT", "0".into()),
                    ("METRICS_PORT", "0".into()),
                    ("ROUTER_ADDR", dopplers.first().cloned().unwrap_or_default()),
                    ("AGENT_CA_FILE", ca(a)),
                    ("AGENT_CERT_FILE", s(&a.cert)),
                    ("AGENT_KEY_FILE", s(&a.key)),
                    ("AGENT_DEPLOYMENT", "bench".into()),
                    ("AGENT_JOB", "bench".into()),
                    ("AGENT_INDEX", "0".into()),
                    ("AGENT_IP", "127.0.0.1".into()),
                ],
            )?;
            let grpc = p.bound("grpc", t)?;
            let udp = p.bound("udp", t)?;
            if let Ok(m) = p.bound("metrics", Duration::from_secs(2)) {
                admin.push(("agent".into(), m));
            }
            agent = Some((grpc, udp));
            procs.push(p);
        }
        let mut tc = None;
        if spec.tc {
            let c = pki.files("trafficcontroller")?;
            let mut p = Proc::spawn(
                "tc",
                &spec.binary,
                &["traffic-controller"],
                &[
                    ("TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT", "0".into()),
                    ("TRAFFIC_CONTROLLER_SYSTEM_DOMAIN", "bench.local".into()),
                    ("TRAFFIC_CONTROLLER_IP", "127.0.0.1".into()),
                    ("TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET", "unused".into()),
                    ("TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL", "true".into()),
                    ("TRAFFIC_CONTROLLER_PPROF_PORT", "0".into()),
                    ("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL", "0s".into()),
                    ("ROUTER_ADDRS", dopplers.join(",")),
                    ("ROUTER_CA_FILE", ca(c)),
                    ("ROUTER_CERT_FILE", s(&c.cert)),
                    ("ROUTER_KEY_FILE", s(&c.key)),
                ],
            )?;
            tc = Some(p.bound("ws", t)?);
            // The traffic controller serves /metrics on its pprof/admin listener.
            if let Ok(m) = p.bound("pprof", Duration::from_secs(2)) {
                admin.push(("tc".into(), m));
            }
            procs.push(p);
        }
        Ok(Self {
            procs,
            dopplers,
            admin,
            agent,
            tc,
        })
    }

    /// An mTLS channel to `addr` verifying `server_name`, with the `client` identity.
    pub fn channel(
        pki: &Pki,
        addr: &str,
        server_name: &str,
    ) -> anyhow::Result<tonic::transport::Channel> {
        let cfg = plumbing::tls::client_config(pki.files("client")?)?;
        Ok(plumbing::tls::grpc::channel(
            addr,
            Some((cfg, server_name)),
        )?)
    }
}
