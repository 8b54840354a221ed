//! `loggregator dev`: the whole pipeline in one process on loopback.
//!
//! An agent, two dopplers, a traffic controller (with its RLP gateway) and a log cache
//! (fed by the dopplers, serving the cf CLI's API), each started
//! in-process through its crate's `run(config, listeners, shutdown)` on the default local
//! ports, with mutual TLS between them using certificates generated at start-up into the
//! well-known development directory (see `devdir`), and access control off. `--demo` adds a
//! realistic emitter, `--stats` prints per-hop rates. Ctrl-C (or SIGTERM) stops everything
//! cleanly.
//!
//! # Layout
//!
//! - `dev/demo`: the demo emitter (apps writing logs, router access logs, container metrics,
//!   counters, gauges) over the agent's v2 gRPC ingress.
//! - `dev/stats`: per-hop envelopes/s and drops read from the components' metrics registries.

mod demo;
mod stats;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use super::{Common, devdir, out};

/// How long components get to finish after Ctrl-C before `dev` exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start-up waits for the agent's doppler streams before printing `ready` anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// `loggregator dev` options. Every address accepts port 0 (an ephemeral port, printed at
/// start-up).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Add a demo emitter: several apps and instances writing OUT and ERR logs (some
    /// multi-line), router access logs, container metrics, counters and gauges.
    #[arg(long)]
    pub(crate) demo: bool,
    /// Envelopes per second written by the demo emitter.
    #[arg(long, value_name = "N", default_value = "20", requires = "demo")]
    pub(crate) demo_rate: u32,
    /// Print envelopes/s and drops per hop every --stats-interval.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Interval of the --stats lines (Go duration, e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) stats_interval: Duration,
    /// Plaintext gRPC between the components instead of mutual TLS (no certificates are
    /// generated; pass --plaintext to `emit` too).
    #[arg(long)]
    pub(crate) plaintext: bool,
    /// Directory for the generated certificates (the client commands look there)
    /// [default: $XDG_RUNTIME_DIR/loggregator-dev, else /tmp/loggregator-dev-$UID].
    #[arg(long, value_name = "DIR", env = devdir::ENV)]
    pub(crate) cert_dir: Option<PathBuf>,
    /// Agent v1 dropsonde UDP address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3457")]
    pub(crate) agent_udp_addr: SocketAddr,
    /// Agent v2 gRPC (mTLS) address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3458")]
    pub(crate) agent_grpc_addr: SocketAddr,
    /// Agent admin (/metrics, /health) address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:14824")]
    pub(crate) agent_admin_addr: SocketAddr,
    /// Doppler gRPC addresses, comma-separated: one doppler per address.
    #[arg(
        long,
        value_name = "ADDR,...",
        value_delimiter = ',',
        default_value = "127.0.0.1:8082,127.0.0.1:8092"
    )]
    pub(crate) doppler_addrs: Vec<SocketAddr>,
    /// Doppler admin addresses, comma-separated, one per doppler.
    #[arg(
        long,
        value_name = "ADDR,...",
        value_delimiter = ',',
        default_value = "127.0.0.1:14825,127.0.0.1:14826"
    )]
    pub(crate) doppler_admin_addrs: Vec<SocketAddr>,
    /// Traffic controller address (WebSocket firehose and app streams, recent logs, /v2/read).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub(crate) tc_addr: SocketAddr,
    /// RLP gateway address (/v2/read Server-Sent Events), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8088", value_parser = parse_optional_addr)]
    pub(crate) gateway_addr: OptionalAddr,
    /// Traffic controller admin (/metrics, /health) address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:14830")]
    pub(crate) tc_admin_addr: SocketAddr,
    /// Log Cache HTTP API (what `cf logs` and `loggregator logs --log-cache-url` read), or
    /// `off` for no Log Cache.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8083", value_parser = parse_optional_addr)]
    pub(crate) log_cache_addr: OptionalAddr,
    /// Log Cache gRPC (logcache.v1 Egress, Ingress, PromQL) address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) log_cache_grpc_addr: SocketAddr,
    /// Log Cache store budget in bytes.
    #[arg(long, value_name = "BYTES", default_value = "268435456")]
    pub(crate) log_cache_memory: u64,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// An address or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptionalAddr(Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s == "off" {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|_| "expected HOST:PORT with an IP address, or off".to_owned())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match plumbing::env::parse_go_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than zero".to_owned()),
        Err(e) => Err(format!("{e}; expected a Go duration such as 5s or 500ms")),
    }
}

/// Sockets bound at start-up, before anything runs, so a busy port fails fast.
struct Bound {
    agent_udp: UdpSocket,
    agent_grpc: TcpListener,
    agent_admin: TcpListener,
    dopplers: Vec<(TcpListener, TcpListener)>,
    tc: TcpListener,
    gateway: Option<TcpListener>,
    tc_admin: TcpListener,
    /// Log Cache HTTP API and gRPC.
    log_cache: Option<(TcpListener, TcpListener)>,
}

async fn bind_tcp(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{flag} {addr}: cannot listen"))
}

async fn bind_all(args: &Args) -> anyhow::Result<Bound> {
    if args.doppler_addrs.is_empty() {
        bail!("--doppler-addrs: at least one address is required");
    }
    if args.doppler_addrs.len() != args.doppler_admin_addrs.len() {
        bail!(
            "--doppler-admin-addrs: {} addresses given for {} dopplers (--doppler-addrs); give one admin address per doppler",
            args.doppler_admin_addrs.len(),
            args.doppler_addrs.len()
        );
    }
    let agent_udp = UdpSocket::bind(args.agent_udp_addr)
        .await
        .with_context(|| format!("--agent-udp-addr {}: cannot listen", args.agent_udp_addr))?;
    let agent_grpc = bind_tcp("--agent-grpc-addr", args.agent_grpc_addr).await?;
    let agent_admin = bind_tcp("--agent-admin-addr", args.agent_admin_addr).await?;
    let mut dopplers = Vec::with_capacity(args.doppler_addrs.len());
    for (grpc, admin) in args.doppler_addrs.iter().zip(&args.doppler_admin_addrs) {
        dopplers.push((
            bind_tcp("--doppler-addrs", *grpc).await?,
            bind_tcp("--doppler-admin-addrs", *admin).await?,
        ));
    }
    let tc = bind_tcp("--tc-addr", args.tc_addr).await?;
    let gateway = match args.gateway_addr.0 {
        Some(addr) => Some(bind_tcp("--gateway-addr", addr).await?),
        None => None,
    };
    let tc_admin = bind_tcp("--tc-admin-addr", args.tc_admin_addr).await?;
    let log_cache = match args.log_cache_addr.0 {
        Some(addr) => Some((
            bind_tcp("--log-cache-addr", addr).await?,
            bind_tcp("--log-cache-grpc-addr", args.log_cache_grpc_addr).await?,
        )),
        None => None,
    };
    Ok(Bound {
        agent_udp,
        agent_grpc,
        agent_admin,
        dopplers,
        tc,
        gateway,
        tc_admin,
        log_cache,
    })
}

/// The addresses actually bound (port 0 resolved), for the table and the demo.
struct Endpoints {
    agent_udp: SocketAddr,
    agent_grpc: SocketAddr,
    agent_admin: SocketAddr,
    dopplers: Vec<(SocketAddr, SocketAddr)>,
    tc: SocketAddr,
    gateway: Option<SocketAddr>,
    tc_admin: SocketAddr,
    /// Log Cache HTTP API and gRPC.
    log_cache: Option<(SocketAddr, SocketAddr)>,
}

impl Bound {
    fn endpoints(&self) -> anyhow::Result<Endpoints> {
        let mut dopplers = Vec::with_capacity(self.dopplers.len());
        for (g, a) in &self.dopplers {
            dopplers.push((g.local_addr()?, a.local_addr()?));
        }
        Ok(Endpoints {
            agent_udp: self.agent_udp.local_addr()?,
            agent_grpc: self.agent_grpc.local_addr()?,
            agent_admin: self.agent_admin.local_addr()?,
            dopplers,
            tc: self.tc.local_addr()?,
            gateway: self
                .gateway
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
            tc_admin: self.tc_admin.local_addr()?,
            log_cache: match &self.log_cache {
                Some((http, grpc)) => Some((http.local_addr()?, grpc.local_addr()?)),
                None => None,
            },
        })
    }
}

/// Generates the development PKI into `dir` (private to the user).
fn generate_pki(dir: &Path) -> anyhow::Result<DevPki> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--cert-dir {}: cannot create", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("--cert-dir {}: cannot restrict permissions", dir.display()))?;
    DevPki::generate(dir).map_err(|e| anyhow!("--cert-dir {}: {e}", dir.display()))
}

/// Runs `loggregator dev` until Ctrl-C / SIGTERM.
pub(crate) async fn main(args: Args) -> anyhow::Result<()> {
    let dir = devdir::resolve(args.cert_dir.as_deref());
    let bound = bind_all(&args).await?;
    let endpoints = bound.endpoints()?;
    let pki = if args.plaintext {
        None
    } else {
        Some(generate_pki(&dir)?)
    };
    // One component's mTLS files from the dev PKI (`None` in plaintext mode).
    let identity = |name: &str| {
        pki.as_ref().map(|p| {
            let files = p.files(name);
            (files.ca.unwrap_or_default(), files.cert, files.key)
        })
    };

    let agent_registry = Registry::new();
    let doppler_registries: Vec<Registry> =
        endpoints.dopplers.iter().map(|_| Registry::new()).collect();
    let tc_registry = Registry::new();

    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().wait_for_signal());
    let mut components: JoinSet<(String, anyhow::Result<()>)> = JoinSet::new();

    // Dopplers.
    let doppler_addrs: Vec<String> = endpoints
        .dopplers
        .iter()
        .map(|(g, _)| g.to_string())
        .collect();
    for (i, ((grpc, admin), registry)) in bound
        .dopplers
        .into_iter()
        .zip(&doppler_registries)
        .enumerate()
    {
        let mut config = doppler::Config::for_tests(
            identity("doppler").map(|(ca, cert, key)| doppler::config::TlsPaths { ca, cert, key }),
        );
        config.grpc_addr = endpoints.dopplers[i].0;
        config.admin_addr = Some(endpoints.dopplers[i].1);
        let listeners = doppler::Listeners {
            grpc,
            admin: Some(admin),
            pprof: None,
        };
        let stop = component_shutdown(&shutdown);
        let registry = registry.clone();
        components.spawn(async move {
            let result = doppler::run_with_registry(config, listeners, stop, registry).await;
            (
                format!("doppler {}", i + 1),
                result.map_err(anyhow::Error::from),
            )
        });
    }

    // Traffic controller (and RLP gateway).
    {
        let mut config = traffic_controller::Config::for_tests(
            doppler_addrs.clone(),
            identity("trafficcontroller")
                .map(|(ca, cert, key)| traffic_controller::config::TlsPaths { ca, cert, key }),
        );
        config.agent_addr = Some(endpoints.agent_grpc.to_string());
        config.registry = tc_registry.clone();
        let listeners = traffic_controller::Listeners {
            ws: bound.tc,
            gateway: bound.gateway,
            admin: Some(bound.tc_admin),
        };
        let stop = component_shutdown(&shutdown);
        components.spawn(async move {
            let result = traffic_controller::run(config, listeners, stop).await;
            (
                "traffic controller".to_owned(),
                result.map_err(anyhow::Error::from),
            )
        });
    }

    // Log Cache, fed by the dopplers.
    let log_cache_registry = Registry::new();
    if let Some((http, grpc)) = bound.log_cache {
        let mut config = log_cache::Config::local(args.log_cache_memory);
        config.grpc_addr = grpc.local_addr()?;
        config.gateway_addr = Some(http.local_addr()?);
        config.doppler_addrs = doppler_addrs.clone();
        let files = identity("log-cache")
            .map(|(ca, cert, key)| plumbing::tls::TlsFiles::new(ca, cert, key));
        config.doppler_tls = files.clone();
        config.tls = files;
        let listeners = log_cache::Listeners {
            grpc,
            gateway: Some(http),
            admin: None,
            syslog: None,
        };
        let stop = component_shutdown(&shutdown);
        let registry = log_cache_registry.clone();
        components.spawn(async move {
            let result = log_cache::run_with_registry(config, listeners, stop, registry).await;
            ("log cache".to_owned(), result.map_err(anyhow::Error::from))
        });
    }

    // Agent.
    let agent_streams = {
        let mut config = metron_agent::Config::for_tests(
            metron_agent::config::TlsPaths {
                ca: PathBuf::new(),
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            doppler_addrs.clone(),
        );
        config.tls = identity("metron").map(|(ca, cert, key)| metron_agent::config::TlsPaths {
            ca,
            cert,
            key,
        });
        config.udp_addr = Some(endpoints.agent_udp);
        config.grpc_addr = endpoints.agent_grpc;
        config.admin_addr = endpoints.agent_admin;
        config.resolve_interval = Duration::from_secs(10);
        config.identity = metron_agent::process::Identity {
            deployment: "loggregator-dev".to_owned(),
            job: "dev".to_owned(),
            index: "0".to_owned(),
            ip: "127.0.0.1".to_owned(),
        };
        let listeners = metron_agent::Listeners {
            udp: Some(bound.agent_udp),
            grpc: bound.agent_grpc,
            admin: Some(bound.agent_admin),
        };
        let streams = (config.v1_streams.get(), config.v2_streams.get());
        let stop = component_shutdown(&shutdown);
        let registry = agent_registry.clone();
        components.spawn(async move {
            let result = metron_agent::run_with_registry(config, listeners, stop, registry).await;
            ("agent".to_owned(), result.map_err(anyhow::Error::from))
        });
        streams
    };

    wait_for_agent_streams(&agent_registry, agent_streams, &shutdown).await;
    if args.demo {
        let tls = pki
            .as_ref()
            .map(|p| p.client_config("client"))
            .transpose()
            .map_err(|e| anyhow!("client certificate: {e}"))?;
        let channel = plumbing::tls::grpc::channel(
            &endpoints.agent_grpc.to_string(),
            tls.map(|t| (t, "metron")),
        )
        .map_err(|e| anyhow!("demo emitter: {e}"))?;
        let emitter = demo::Emitter::new(channel, args.demo_rate, shutdown.clone());
        tokio::spawn(emitter.run());
    }
    if args.stats {
        let hops = stats::Hops {
            agent: agent_registry.clone(),
            dopplers: doppler_registries.clone(),
            tc: tc_registry.clone(),
        };
        tokio::spawn(stats::run(hops, args.stats_interval, shutdown.clone()));
    }
    out::stdout(&banner(&args, &endpoints, &dir))?;

    let mut failure = None;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        Some(joined) = components.join_next() => {
            // A component that returns cleanly after Ctrl-C raced the signal: not a failure.
            let clean_stop = shutdown.is_triggered() && matches!(joined, Ok((_, Ok(()))));
            if !clean_stop {
                failure = Some(ended_early(joined));
            }
            shutdown.trigger();
        }
    }
    out::notice("loggregator dev: shutting down");
    let drained = tokio::time::timeout(STOP_TIMEOUT, async {
        while let Some(joined) = components.join_next().await {
            if let Ok((name, Err(e))) = joined {
                tracing::warn!(component = %name, error = %format!("{e:#}"), "stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        out::notice("loggregator dev: components still running after 10s; exiting anyway");
    }
    if let Some(e) = failure {
        return Err(e);
    }
    out::notice("loggregator dev: stopped");
    Ok(())
}

/// Waits (up to [`READY_TIMEOUT`]) until the agent has every Pusher and BatchSender stream
/// to the dopplers, so envelopes emitted right after `ready` are not dropped for want of a
/// doppler connection.
async fn wait_for_agent_streams(agent: &Registry, want: (usize, usize), shutdown: &Shutdown) {
    let want = (
        i64::try_from(want.0).unwrap_or(i64::MAX),
        i64::try_from(want.1).unwrap_or(i64::MAX),
    );
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let v1 = agent.gauge_value("doppler_v1_streams", &[]).unwrap_or(0);
        let v2 = agent.gauge_value("doppler_v2_streams", &[]).unwrap_or(0);
        if (v1 >= want.0 && v2 >= want.1) || shutdown.is_triggered() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            out::notice(&format!(
                "loggregator dev: the agent has {v1} of {} v1 and {v2} of {} v2 doppler streams so far; continuing",
                want.0, want.1
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ended_early(
    joined: Result<(String, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Error {
    match joined {
        Ok((name, Ok(()))) => anyhow!("{name} stopped unexpectedly"),
        Ok((name, Err(e))) => e.context(format!("{name} failed")),
        Err(e) => anyhow!("a component task failed: {e}"),
    }
}

/// A shutdown of its own for one component (separate task tracker), triggered with `main`.
fn component_shutdown(main: &Shutdown) -> Shutdown {
    let own = Shutdown::new();
    let trigger = own.clone();
    let main = main.clone();
    tokio::spawn(async move {
        main.cancelled().await;
        trigger.trigger();
    });
    own
}

/// The start-up table: endpoints, certificates and copy-paste commands.
fn banner(args: &Args, e: &Endpoints, dir: &Path) -> String {
    let mut s = String::new();
    let n = e.dopplers.len();
    let _ = writeln!(
        s,
        "loggregator dev: agent, {n} doppler{}, traffic controller{} on loopback ({} between components, auth off)",
        if n == 1 { "" } else { "s" },
        if e.log_cache.is_some() {
            ", log cache"
        } else {
            ""
        },
        if args.plaintext {
            "plaintext gRPC"
        } else {
            "mutual TLS"
        }
    );
    s.push('\n');
    let row = |s: &mut String, what: &str, value: String| {
        let _ = writeln!(s, "  {what:<30} {value}");
    };
    row(&mut s, "agent v1 UDP (dropsonde)", e.agent_udp.to_string());
    let grpc_kind = if args.plaintext { "plaintext" } else { "mTLS" };
    row(
        &mut s,
        &format!("agent v2 gRPC ({grpc_kind})"),
        e.agent_grpc.to_string(),
    );
    for (i, (grpc, _)) in e.dopplers.iter().enumerate() {
        row(
            &mut s,
            &format!("doppler {} gRPC ({grpc_kind})", i + 1),
            grpc.to_string(),
        );
    }
    row(
        &mut s,
        "traffic controller (WebSocket)",
        format!("ws://{}", e.tc),
    );
    row(
        &mut s,
        "recent logs",
        format!("http://{}/apps/<app-guid>/recentlogs", e.tc),
    );
    if let Some(g) = e.gateway {
        row(
            &mut s,
            "RLP gateway (SSE)",
            format!("http://{g}/v2/read?log"),
        );
    }
    if let Some((http, grpc)) = e.log_cache {
        row(&mut s, "log cache (cf CLI API)", format!("http://{http}"));
        row(
            &mut s,
            &format!("log cache gRPC ({grpc_kind})"),
            grpc.to_string(),
        );
    }
    row(
        &mut s,
        "agent metrics",
        format!("http://{}/metrics", e.agent_admin),
    );
    for (i, (_, admin)) in e.dopplers.iter().enumerate() {
        row(
            &mut s,
            &format!("doppler {} metrics", i + 1),
            format!("http://{admin}/metrics"),
        );
    }
    row(
        &mut s,
        "traffic controller metrics",
        format!("http://{}/metrics", e.tc_admin),
    );
    if !args.plaintext {
        row(
            &mut s,
            "certificates",
            format!("{} (ca.crt, client.crt, client.key, ...)", dir.display()),
        );
    }
    s.push('\n');

    // Flags the client commands need when dev does not use its defaults.
    let default_dir = args.cert_dir.is_none();
    let mut emit_flags = String::new();
    if e.agent_grpc.to_string() != "127.0.0.1:3458" {
        let _ = write!(emit_flags, " --agent-addr {}", e.agent_grpc);
    }
    if args.plaintext {
        emit_flags.push_str(" --plaintext");
    } else if !default_dir {
        let _ = write!(emit_flags, " --cert-dir {}", dir.display());
    }
    let mut udp_flags = String::new();
    if e.agent_udp.to_string() != "127.0.0.1:3457" {
        let _ = write!(udp_flags, " --udp-addr {}", e.agent_udp);
    }
    let mut tc_flags = String::new();
    if e.tc.to_string() != "127.0.0.1:8081" {
        let _ = write!(tc_flags, " --tc-url http://{}", e.tc);
    }
    let app = if args.demo {
        demo::APPS[0].guid
    } else {
        "11111111-2222-3333-4444-555555555555"
    };
    let _ = writeln!(s, "Try:");
    let _ = writeln!(
        s,
        "  loggregator emit{emit_flags} --source-id {app} 'hello from my app'"
    );
    let _ = writeln!(
        s,
        "  seq 3 | loggregator emit{udp_flags} --udp --source-id {app} --err"
    );
    let _ = writeln!(
        s,
        "  loggregator emit{emit_flags} --source-id {app} --gauge cpu=12.5:percentage --counter requests:1"
    );
    let _ = writeln!(s, "  loggregator logs{tc_flags} {app}");
    let _ = writeln!(s, "  loggregator logs{tc_flags} --recent {app}");
    let _ = writeln!(s, "  loggregator firehose{tc_flags} --filter logs");
    if args.demo {
        s.push('\n');
        let _ = writeln!(s, "Demo apps:");
        for a in demo::APPS {
            let plural = if a.instances == 1 { "" } else { "s" };
            let _ = writeln!(
                s,
                "  {:<10} {}  ({} instance{plural})",
                a.name, a.guid, a.instances
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "ready; Ctrl-C stops everything");
    s
}
