//! Real syslog receivers for tests: rsyslog and syslog-ng started on
//! loopback high ports in a temp dir with the configurations of
//! ecosystem.md §8 (plain TCP and TLS, octet counting), killed on drop.
//! A missing daemon fails the test with an install hint; it never skips.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plumbing::tls::dev::DevPki;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A loopback port that refuses connections until [`ReservedPort::listen`]: the socket is
/// bound but not listening, so no other process (and no client's ephemeral source port) can
/// take the port meanwhile.
pub struct ReservedPort(tokio::net::TcpSocket);

impl ReservedPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn new() -> Self {
        let s = tokio::net::TcpSocket::new_v4().expect("tcp socket");
        s.bind("127.0.0.1:0".parse().unwrap())
            .expect("bind 127.0.0.1:0");
        Self(s)
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("local addr").port()
    }

    /// Starts accepting on the port (inside a Tokio runtime).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.0.listen(1024).expect("listen on reserved port")
    }
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.exists() {
                return Some(p.to_owned());
            }
        } else if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let full = dir.join(c);
                if full.exists() {
                    return Some(full);
                }
            }
        }
    }
    None
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on 127.0.0.1:{port} within 15 s; its output:\n{log}");
}

/// Test PKI with a `localhost` server identity (SAN DNS localhost, IP 127.0.0.1).
pub fn pki(dir: &Path) -> DevPki {
    DevPki::generate(&dir.join("pki")).expect("generate dev PKI")
}

/// A running rsyslogd writing one JSON object per message.
pub struct Rsyslog {
    child: Child,
    /// Plain TCP port (`syslog://`).
    pub tcp_port: u16,
    /// TLS port (`syslog-tls://`).
    pub tls_port: u16,
    dir: PathBuf,
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` with the `localhost` identity of `pki`.
    pub fn start(dir: &Path, pki: &DevPki) -> Rsyslog {
        let bin = find(&["rsyslogd", "/usr/sbin/rsyslogd"]).unwrap_or_else(|| {
            panic!(
                "rsyslogd not found: install the Debian packages rsyslog and rsyslog-openssl \
                 (apt-get install rsyslog rsyslog-openssl; .ci/test does this)"
            )
        });
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so").exists(),
            "rsyslog TLS driver missing: install the Debian package rsyslog-openssl"
        );
        let dir = dir.join(format!("rsyslog-{}", free_port()));
        let state = dir.join("state");
        let out = dir.join("out");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let files = pki.files("localhost");
        let tcp_port = free_port();
        let tls_port = free_port();
        let conf = format!(
            r#"global(workDirectory="{state}"
       parser.escapeControlCharactersOnReceive="off"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="drain")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="drain"
      streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="drain_json" type="list" option.jsonf="on") {{
  property(outname="pri"       name="pri"             format="jsonf")
  property(outname="timestamp" name="timereported"    dateFormat="rfc3339" format="jsonf")
  property(outname="hostname"  name="hostname"        format="jsonf")
  property(outname="app_name"  name="app-name"        format="jsonf")
  property(outname="procid"    name="procid"          format="jsonf")
  property(outname="msgid"     name="msgid"           format="jsonf")
  property(outname="sd"        name="structured-data" format="jsonf")
  property(outname="msg"       name="msg"             format="jsonf")
}}
ruleset(name="drain") {{
  action(type="omfile" file="{out}/drain.5424" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfile" file="{out}/drain.json" template="drain_json")
}}
"#,
            state = state.display(),
            ca = files.ca.as_ref().expect("ca").display(),
            cert = files.cert.display(),
            key = files.key.display(),
            out = out.display(),
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.join("rsyslogd.log");
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("rsyslogd.err")).unwrap(),
            ))
            .spawn()
            .expect("spawn rsyslogd");
        let r = Rsyslog {
            child,
            tcp_port,
            tls_port,
            dir,
        };
        wait_port(tcp_port, "rsyslogd", &log);
        wait_port(tls_port, "rsyslogd", &log);
        r
    }

    /// Parsed records so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("out/drain.json"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("rsyslog JSON {l:?}: {e}")))
            .collect()
    }

    /// Waits until at least `n` records arrived (panics after `timeout`).
    pub async fn wait_records(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.records();
            if r.len() >= n {
                return r;
            }
            if Instant::now() > deadline {
                panic!("rsyslog got {} records, want {n}: {r:?}", r.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running syslog-ng writing `$PRI|$ISODATE|$HOST|$PROGRAM|$PID|$MSGID|$SDATA|<source_type>|$MSG`.
pub struct SyslogNg {
    child: Child,
    /// Plain TCP port.
    pub tcp_port: u16,
    /// TLS port.
    pub tls_port: u16,
    dir: PathBuf,
}

/// One syslog-ng record, split into its template fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgRecord {
    /// `$PRI`.
    pub pri: String,
    /// `$ISODATE` (6 fractional digits).
    pub isodate: String,
    /// `$HOST`.
    pub host: String,
    /// `$PROGRAM` (APP-NAME).
    pub program: String,
    /// `$PID` (PROCID).
    pub pid: String,
    /// `$MSGID` (empty for `-`).
    pub msgid: String,
    /// `$SDATA`.
    pub sdata: String,
    /// `${.SDATA.tags@47450.source_type}`.
    pub source_type: String,
    /// `$MSG`.
    pub msg: String,
}

impl SyslogNg {
    /// Starts syslog-ng in `dir` with the `localhost` identity of `pki`.
    pub fn start(dir: &Path, pki: &DevPki) -> SyslogNg {
        let env_bin = std::env::var("SYSLOG_NG_BIN").ok();
        let mut candidates: Vec<&str> = Vec::new();
        if let Some(b) = env_bin.as_deref() {
            candidates.push(b);
        }
        candidates.extend([
            "syslog-ng",
            "/usr/sbin/syslog-ng",
            "/opt/syslog-ng/usr/sbin/syslog-ng",
        ]);
        let bin = find(&candidates).unwrap_or_else(|| {
            panic!(
                "syslog-ng not found: install the Debian package syslog-ng-core (it conflicts with \
                 rsyslog in apt, so .ci/test unpacks it with nozzles/scripts/install-syslog-ng.sh \
                 into /opt/syslog-ng), or set SYSLOG_NG_BIN"
            )
        });
        let dir = dir.join(format!("syslog-ng-{}", free_port()));
        std::fs::create_dir_all(dir.join("out")).unwrap();
        let files = pki.files("localhost");
        let tcp_port = free_port();
        let tls_port = free_port();
        let conf = format!(
            r#"@version: 3.38
options {{ keep-hostname(yes); keep-timestamp(yes); use-dns(no); dns-cache(no); frac-digits(6); }};
source s_drain_tcp {{ syslog(ip("127.0.0.1") port({tcp_port}) transport("tcp")); }};
source s_drain_tls {{ syslog(ip("127.0.0.1") port({tls_port}) transport("tls")
    tls(key-file("{key}") cert-file("{cert}")
        peer-verify(optional-untrusted))); }};
destination d_drain {{ file("{out}/ng.out"
    template("$PRI|$ISODATE|$HOST|$PROGRAM|$PID|$MSGID|$SDATA|${{.SDATA.tags@47450.source_type}}|$MSG\n")); }};
log {{ source(s_drain_tcp); source(s_drain_tls); destination(d_drain); }};
"#,
            key = files.key.display(),
            cert = files.cert.display(),
            out = dir.join("out").display(),
        );
        let conf_path = dir.join("syslog-ng.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.join("syslog-ng.log");
        let mut cmd = Command::new(&bin);
        // An unpacked (not installed) syslog-ng finds its library and modules next to itself.
        if let Some(root) = bin
            .parent()
            .and_then(Path::parent)
            .filter(|r| !r.starts_with("/usr"))
        {
            let lib = root.join("lib/syslog-ng");
            cmd.env("LD_LIBRARY_PATH", &lib);
            cmd.arg(format!("--module-path={}", lib.join("3.38").display()));
        }
        let child = cmd
            .arg("-F")
            .arg("--no-caps")
            .arg("-f")
            .arg(&conf_path)
            .arg("-R")
            .arg(dir.join("persist"))
            .arg("-p")
            .arg(dir.join("pid"))
            .arg("-c")
            .arg(dir.join("ctl"))
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("syslog-ng.err")).unwrap(),
            ))
            .spawn()
            .expect("spawn syslog-ng");
        let r = SyslogNg {
            child,
            tcp_port,
            tls_port,
            dir: dir.clone(),
        };
        wait_port(tcp_port, "syslog-ng", &dir.join("syslog-ng.err"));
        wait_port(tls_port, "syslog-ng", &dir.join("syslog-ng.err"));
        r
    }

    /// The raw output file.
    pub fn raw(&self) -> String {
        std::fs::read_to_string(self.dir.join("out/ng.out")).unwrap_or_default()
    }

    /// Records so far (one per line; messages with embedded newlines span lines).
    pub fn records(&self) -> Vec<NgRecord> {
        self.raw()
            .lines()
            .filter(|l| l.split('|').count() >= 9)
            .map(|l| {
                let f: Vec<&str> = l.splitn(9, '|').collect();
                NgRecord {
                    pri: f[0].into(),
                    isodate: f[1].into(),
                    host: f[2].into(),
                    program: f[3].into(),
                    pid: f[4].into(),
                    msgid: f[5].into(),
                    sdata: f[6].into(),
                    source_type: f[7].into(),
                    msg: f[8].into(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` records arrived.
    pub async fn wait_records(&self, n: usize, timeout: Duration) -> Vec<NgRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.records();
            if r.len() >= n {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "syslog-ng got {} records, want {n}: {:?}",
                    r.len(),
                    self.raw()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
