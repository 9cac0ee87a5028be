//! Starting the systems under test as child processes, and measuring them.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A system that accepts Prometheus remote write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// `strata standalone`.
    Strata,
    /// The local cluster: 3 `strata storage` nodes (RF=3, 8 shards), two queriers and one
    /// `strata ingestor`; queries go to storage node 1's HTTP API.
    StrataCluster,
    /// Prometheus with its remote-write receiver enabled.
    Prometheus,
    /// VictoriaMetrics single-node.
    VictoriaMetrics,
}

impl System {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            System::Strata => "strata",
            System::StrataCluster => "strata-cluster",
            System::Prometheus => "prometheus",
            System::VictoriaMetrics => "victoriametrics",
        }
    }
}

/// The TCP ports process `pid` listens on, sorted and without duplicates (a port bound on
/// both IPv4 and IPv6 counts once): its socket descriptors (`/proc/<pid>/fd/*` →
/// `socket:[inode]`) matched against the sockets in state LISTEN of `/proc/net/tcp` and
/// `/proc/net/tcp6`. Empty when the process is gone or not readable.
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let inodes: std::collections::HashSet<u64> = fds
        .flatten()
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut ports: Vec<u16> = ["tcp", "tcp6"]
        .iter()
        .flat_map(|t| {
            // the process's own network namespace: a container's sockets are in its own
            fs::read_to_string(format!("/proc/{pid}/net/{t}"))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| {
                    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?.parse::<u64>().ok()?);
                    (*state == "0A" && inodes.contains(&inode))
                        .then(|| u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok())?
                })
                .collect::<Vec<u16>>()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether process `pid` has ended (gone, or a zombie not yet waited for).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Waits until process `pid` listens on at least `n` TCP ports (see [`listening_ports`]) and
/// returns them. Fails when the process ends first, or after `timeout`.
pub fn wait_listening(pid: u32, n: usize, timeout: Duration) -> anyhow::Result<Vec<u16>> {
    let deadline = Instant::now() + timeout;
    loop {
        let ports = listening_ports(pid);
        if ports.len() >= n {
            return Ok(ports);
        }
        if exited(pid) {
            bail!("process {pid} exited before it listened on {n} TCP port(s)");
        }
        if Instant::now() > deadline {
            bail!("process {pid} listens on {ports:?} after {timeout:?}, not on {n} TCP port(s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one TCP port process `pid` listens on, once it does: for a process started on port 0
/// with a single listener. Fails when it ends first, after `timeout`, or when it listens on
/// several ports (say which with [`wait_listening`]).
pub fn wait_port(pid: u32, timeout: Duration) -> anyhow::Result<u16> {
    match wait_listening(pid, 1, timeout)?[..] {
        [port] => Ok(port),
        ref ports => bail!("process {pid} listens on several ports {ports:?}; which one is meant?"),
    }
}

/// In [`PeerSpec::prometheus_config`]: stands for Prometheus's own address
/// (`127.0.0.1:<port>`), which is known only once it listens. Prometheus then starts
/// without scrape jobs and loads the configuration when its port is known (SIGHUP).
pub const PROMETHEUS_SELF: &str = "${PROMETHEUS_SELF}";

/// A TCP port on 127.0.0.1 for a listener whose address must be known before it starts
/// (a storage node's gRPC port: every node's `--peers` names it, and a restarted node comes
/// back on it), reserved for as long as the lease lives.
///
/// Everything else in the tests listens on port 0 and reads its port back
/// ([`listening_ports`]). A leased port lies below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), so no port-0 listener and no outgoing
/// connection is ever given it, and an advisory lock on
/// `$TMPDIR/strata-test-ports/<port>.lock` keeps the other test processes from leasing it
/// too (the lock ends with the lease or with the process). It still cannot stop a foreign
/// process binding the port in the moment before ours does: starters retry then.
#[derive(Debug)]
pub struct PortLease {
    /// The port.
    pub port: u16,
    _lock: fs::File,
}

/// Leases `n` distinct ports (see [`PortLease`]).
pub fn lease_ports(n: usize) -> anyhow::Result<Vec<PortLease>> {
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // from 10000 up to the ephemeral range, starting at a place that differs per process
    let (first, span) = (10_000u16, low.saturating_sub(10_000).max(1));
    let dir = std::env::temp_dir().join("strata-test-ports");
    fs::create_dir_all(&dir)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let start = (std::process::id().wrapping_mul(7919) ^ nanos) % u32::from(span);
    let mut leases = Vec::new();
    for k in 0..u32::from(span) {
        if leases.len() == n {
            break;
        }
        let port = first + ((start + k) % u32::from(span)) as u16;
        let file = fs::File::create(dir.join(format!("{port}.lock")))?;
        if file.try_lock().is_err() {
            continue;
        }
        // taken by something outside the tests: leave it
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        leases.push(PortLease { port, _lock: file });
    }
    if leases.len() < n {
        bail!("fewer than {n} ports free below the ephemeral range");
    }
    Ok(leases)
}

/// Process ids of the systems started and not yet stopped, so that an interrupted run
/// (Ctrl-C) can stop them: see [`kill_all`].
static LIVE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn live(f: impl FnOnce(&mut Vec<u32>)) {
    if let Ok(mut l) = LIVE.lock() {
        f(&mut l);
    }
}

/// Kills every system this process started and has not stopped (for signal handlers).
pub fn kill_all() {
    let pids: Vec<u32> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in pids {
        signal(pid, "KILL");
    }
}

/// A running system; stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Peer {
    /// Which system.
    pub system: System,
    /// Its processes (several for a cluster); the first answers readiness.
    children: Vec<Child>,
    /// Where remote-write goes (`http://127.0.0.1:<port>`; the ingestor of a cluster).
    pub write_base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:<port>`: where queries go (a cluster's querier).
    pub base_url: String,
    /// A cluster's second querier, which does not push aggregations down.
    pub plain_query_url: Option<String>,
    /// Where its stdout/stderr go.
    pub log_path: PathBuf,
    /// A cluster's storage gRPC ports, reserved while it runs.
    _leases: Vec<PortLease>,
}

/// How to start a system.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Which system.
    pub system: System,
    /// Path of its binary.
    pub bin: PathBuf,
    /// Fresh data directory. (Every listener is on a port of the OS's choosing, read back
    /// once the process listens: see [`Peer::base_url`].)
    pub data_dir: PathBuf,
    /// Extra arguments appended to the defaults.
    pub extra_args: Vec<String>,
    /// Prometheus only: the configuration file's text (default: no scrape jobs);
    /// [`PROMETHEUS_SELF`] stands for Prometheus's own address.
    pub prometheus_config: Option<String>,
    /// Environment variables set for its processes, besides the inherited ones.
    pub env: Vec<(String, String)>,
}

impl PeerSpec {
    /// A spec with no extra arguments.
    pub fn new(system: System, bin: PathBuf, data_dir: PathBuf) -> Self {
        PeerSpec { system, bin, data_dir, extra_args: Vec::new(), prometheus_config: None, env: Vec::new() }
    }
}

impl Peer {
    /// Starts the system and waits until it answers its readiness endpoint.
    pub fn start(spec: PeerSpec) -> anyhow::Result<Peer> {
        fs::create_dir_all(&spec.data_dir)?;
        if spec.system == System::StrataCluster {
            return Self::start_cluster(spec);
        }
        // the OS picks the port; it is read back from the process's listening socket
        let addr = "127.0.0.1:0";
        let dir = spec.data_dir.display().to_string();
        let mut args: Vec<String> = match spec.system {
            System::StrataCluster => unreachable!("started by start_cluster"),
            System::Strata => {
                vec!["standalone".into(), "--data-dir".into(), dir, "--http-addr".into(), addr.into()]
            }
            System::Prometheus => {
                let cfg = spec.data_dir.join("prometheus.yml");
                // a configuration naming Prometheus's own address is loaded once it is known
                let text = spec
                    .prometheus_config
                    .clone()
                    .filter(|t| !t.contains(PROMETHEUS_SELF))
                    .unwrap_or_else(|| "global:\n  scrape_interval: 15s\n".into());
                fs::write(&cfg, text)?;
                vec![
                    format!("--config.file={}", cfg.display()),
                    format!("--storage.tsdb.path={dir}/tsdb"),
                    format!("--web.listen-address={addr}"),
                    "--web.enable-remote-write-receiver".into(),
                    "--storage.tsdb.retention.time=15d".into(),
                ]
            }
            System::VictoriaMetrics => vec![
                format!("-storageDataPath={dir}/vm"),
                format!("-httpListenAddr={addr}"),
                "-retentionPeriod=15d".into(),
                "-loggerLevel=WARN".into(),
            ],
        };
        args.extend(spec.extra_args.iter().cloned());
        let log_path = spec.data_dir.with_extension("log");
        let child = spawn(&spec.bin, &args, &log_path, &spec.env)?;
        let pid = child.id();
        let mut p = Peer {
            system: spec.system,
            children: vec![child],
            write_base: String::new(),
            data_dir: spec.data_dir,
            base_url: String::new(),
            plain_query_url: None,
            log_path,
            _leases: Vec::new(),
        };
        let port = p.port_of(pid)?;
        p.base_url = format!("http://127.0.0.1:{port}");
        p.write_base = p.base_url.clone();
        p.wait_ready(Duration::from_secs(60))?;
        if let Some(text) = spec.prometheus_config.filter(|t| t.contains(PROMETHEUS_SELF)) {
            p.set_prometheus_config(&text)?;
        }
        Ok(p)
    }

    /// The port process `pid` (one of this peer's, started on port 0) listens on; on failure
    /// the error carries its log.
    fn port_of(&self, pid: u32) -> anyhow::Result<u16> {
        wait_port(pid, Duration::from_secs(60)).map_err(|e| {
            anyhow::anyhow!(
                "{} ({e}); log: {}",
                self.system.name(),
                fs::read_to_string(&self.log_path).unwrap_or_default()
            )
        })
    }

    /// Prometheus only: replaces its configuration with `text` ([`PROMETHEUS_SELF`] standing
    /// for its own address) and has it loaded (SIGHUP); returns once it is.
    pub fn set_prometheus_config(&self, text: &str) -> anyhow::Result<()> {
        if self.system != System::Prometheus {
            bail!("{} has no Prometheus configuration", self.system.name());
        }
        let pid = self.pid().context("prometheus is not running")?;
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let loaded_at =
            || metric_value(&http, &self.base_url, "prometheus_config_last_reload_success_timestamp_seconds");
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let before = loaded_at();
        // the time of the last load is in whole seconds: let the second of the last one pass
        while now().floor() <= before {
            std::thread::sleep(Duration::from_millis(50));
        }
        let me = self.base_url.trim_start_matches("http://");
        fs::write(self.data_dir.join("prometheus.yml"), text.replace(PROMETHEUS_SELF, me))?;
        signal(pid, "HUP");
        // a reload that changes a remote-write URL first flushes the old queue, for up to its
        // flush deadline (one minute) when the old endpoint is gone
        let deadline = Instant::now() + Duration::from_secs(90);
        while loaded_at() <= before {
            let failed = http
                .get(format!("{}/metrics", self.base_url))
                .send()
                .and_then(|r| r.text())
                .is_ok_and(|t| t.lines().any(|l| l == "prometheus_config_last_reload_successful 0"));
            if failed || Instant::now() > deadline {
                bail!(
                    "prometheus did not load its new configuration; log: {}",
                    fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Three storage nodes, an ingestor and two queriers (with and without pushdown).
    /// The storage nodes' gRPC ports are leased ([`lease_ports`]: every node's `--peers`
    /// names them); should a foreign process take one before its node binds it, the cluster
    /// starts again on other ports (up to three times).
    fn start_cluster(spec: PeerSpec) -> anyhow::Result<Peer> {
        let mut attempt = 1;
        loop {
            match Self::try_start_cluster(&spec) {
                Err(e) if attempt < 3 && bind_failed(&spec.data_dir) => {
                    eprintln!("cluster: a gRPC port was taken ({e:#}); starting again on other ports");
                    for n in 1..=3 {
                        let _ = fs::remove_dir_all(spec.data_dir.join(format!("storage-{n}")));
                    }
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn try_start_cluster(spec: &PeerSpec) -> anyhow::Result<Peer> {
        let leases = lease_ports(3)?;
        let grpc: Vec<u16> = leases.iter().map(|l| l.port).collect();
        let peers: Vec<String> =
            grpc.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
        // the cluster's gRPC is mutual TLS, as in production
        let certs = spec.data_dir.join("certs");
        if !certs.join("ca.pem").is_file() {
            let made = std::process::Command::new(&spec.bin)
                .args(["certs", "--out"])
                .arg(&certs)
                .output()
                .context("strata certs")?;
            if !made.status.success() {
                bail!("strata certs: {}", String::from_utf8_lossy(&made.stderr));
            }
        }
        let tls = tls_args(&certs);
        let mut children = Vec::new();
        for (i, port) in grpc.iter().enumerate() {
            let n = i + 1;
            let mut args: Vec<String> = vec![
                "storage".into(),
                "--node-id".into(),
                n.to_string(),
                "--data-dir".into(),
                spec.data_dir.join(format!("storage-{n}")).display().to_string(),
                "--grpc-addr".into(),
                format!("127.0.0.1:{port}"),
                "--peers".into(),
                peers.join(","),
                "--shards".into(),
                "8".into(),
            ];
            if n == 1 {
                args.push("--bootstrap".into());
            }
            args.extend(tls.iter().cloned());
            args.extend(spec.extra_args.iter().cloned());
            children.push(spawn(
                &spec.bin,
                &args,
                &spec.data_dir.join(format!("storage-{n}.log")),
                &spec.env,
            )?);
        }
        let storage: Vec<String> = grpc.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        // the ingestor and the queriers listen where the OS says, read back below
        let mut args: Vec<String> = vec![
            "ingestor".into(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--storage".into(),
            storage.join(","),
        ];
        args.extend(tls.iter().cloned());
        children.push(spawn(&spec.bin, &args, &spec.data_dir.join("ingestor.log"), &spec.env)?);
        for (pushdown, name) in [("true", "querier"), ("false", "querier-plain")] {
            let mut args: Vec<String> = vec![
                "querier".into(),
                "--http-addr".into(),
                "127.0.0.1:0".into(),
                "--storage".into(),
                storage.join(","),
                "--pushdown".into(),
                pushdown.into(),
            ];
            args.extend(tls.iter().cloned());
            children.push(spawn(&spec.bin, &args, &spec.data_dir.join(format!("{name}.log")), &spec.env)?);
        }
        let pids: Vec<u32> = children.iter().map(Child::id).collect();
        let mut p = Peer {
            system: spec.system,
            children,
            write_base: String::new(),
            base_url: String::new(),
            plain_query_url: None,
            log_path: spec.data_dir.join("storage-1.log"),
            data_dir: spec.data_dir.clone(),
            _leases: leases,
        };
        // storage nodes 1-3, the ingestor, the querier, the plain querier
        for (i, pid) in pids.iter().take(3).enumerate() {
            // a node that cannot bind its port exits: say so (the caller retries)
            if let Err(e) = wait_listening(*pid, 1, Duration::from_secs(60)) {
                bail!("storage-{} ({e}); logs in {}", i + 1, p.data_dir.display());
            }
        }
        let port = |pid: u32, name: &str| {
            wait_port(pid, Duration::from_secs(60))
                .map_err(|e| anyhow::anyhow!("{name} ({e}); logs in {}", spec.data_dir.display()))
        };
        p.write_base = format!("http://127.0.0.1:{}", port(pids[3], "ingestor")?);
        p.base_url = format!("http://127.0.0.1:{}", port(pids[4], "querier")?);
        p.plain_query_url = Some(format!("http://127.0.0.1:{}", port(pids[5], "querier-plain")?));
        p.wait_ready(Duration::from_secs(60))?;
        // every node must know the cluster map before the first write, the ingestor too
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
        while !http.get(format!("{}/-/ready", p.write_base)).send().is_ok_and(|r| r.status().is_success()) {
            if Instant::now() > deadline {
                bail!("the ingestor did not get the cluster map; logs in {}", p.data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        while (1..=3).any(|n| {
            !fs::read_to_string(p.data_dir.join(format!("storage-{n}.log")))
                .unwrap_or_default()
                .contains("database opened")
        }) {
            if Instant::now() > deadline {
                bail!("the cluster did not form; logs in {}", p.data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(p)
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.write_base)
    }

    fn ready_url(&self) -> String {
        match self.system {
            System::VictoriaMetrics => format!("{}/health", self.base_url),
            _ => format!("{}/-/ready", self.base_url),
        }
    }

    /// Waits until the readiness endpoint answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut exited = None;
            for c in &mut self.children {
                if let Some(st) = c.try_wait()? {
                    exited = Some(st);
                }
            }
            if let Some(status) = exited {
                bail!(
                    "{} exited with {status} before it was ready; log: {}",
                    self.system.name(),
                    fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
            if http.get(self.ready_url()).send().is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{} not ready after {timeout:?}", self.system.name())
    }

    /// Process id (of the first process).
    pub fn pid(&self) -> Option<u32> {
        self.children.first().map(Child::id)
    }

    /// CPU seconds (user + system) used so far, by all its processes.
    pub fn cpu_seconds(&self) -> f64 {
        self.children.iter().map(|c| process_cpu_seconds(c.id())).sum()
    }

    /// Resident set size in bytes, of all its processes.
    pub fn rss_bytes(&self) -> u64 {
        self.children.iter().map(|c| process_rss_bytes(c.id())).sum()
    }

    /// Sends SIGTERM to every process and waits for clean exits (SIGKILL after `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let children: Vec<Child> = self.children.drain(..).collect();
        for c in &children {
            signal(c.id(), "TERM");
        }
        let mut failure = None;
        for mut c in children {
            let _gone = Unregister(c.id());
            loop {
                if let Some(st) = c.try_wait()? {
                    if !st.success() {
                        failure.get_or_insert(format!("{} exited with {st}", self.system.name()));
                    }
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    failure.get_or_insert(format!("{} did not stop within {timeout:?}", self.system.name()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        match failure {
            Some(f) => bail!(f),
            None => Ok(()),
        }
    }

    /// SIGKILL, no cleanup: a crash.
    pub fn kill9(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
            live(|l| l.retain(|p| *p != c.id()));
        }
    }
}

/// Whether a storage node of the cluster under `dir` failed to bind its gRPC port.
fn bind_failed(dir: &Path) -> bool {
    (1..=3).any(|n| log_says_address_in_use(&dir.join(format!("storage-{n}.log"))))
}

/// Whether the log at `path` tells of a listener that could not bind its address (the
/// process exits then): a leased port taken by a foreign process, worth a retry.
pub fn log_says_address_in_use(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|l| l.to_lowercase().contains("address already in use"))
}

/// Starts `bin args`, logging to `log_path`, and registers it in [`LIVE`].
fn spawn(bin: &Path, args: &[String], log_path: &Path, env: &[(String, String)]) -> anyhow::Result<Child> {
    let log = fs::File::create(log_path)?;
    let child = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    live(|l| l.push(pid));
    Ok(child)
}

/// CPU seconds (user + system) a process used so far.
fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // fields after the parenthesised command name; utime and stime are 14th and 15th
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident set size of a process in bytes.
fn process_rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Removes a process from [`LIVE`] once it is stopped, on every path out of `stop`.
struct Unregister(u32);

impl Drop for Unregister {
    fn drop(&mut self) {
        live(|l| l.retain(|p| *p != self.0));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// The flags of a cluster member for mutual TLS with the certificates `strata certs` wrote
/// to `certs`.
pub fn tls_args(certs: &Path) -> Vec<String> {
    [("cert", "member.pem"), ("key", "member-key.pem"), ("ca", "ca.pem")]
        .iter()
        .flat_map(|(flag, file)| [format!("--grpc-tls-{flag}-file"), certs.join(file).display().to_string()])
        .collect()
}

/// Disk the files under `dir` take, in bytes: the blocks the file system gave them (what
/// `du` and a filling disk count, preallocated space included), not their listed lengths.
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Finds a binary: `$env` if set, else the first of `names` on `PATH`.
pub fn find_bin(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
}

/// A counter or gauge of a Strata node's `/metrics` at `base` (a counter's `_total` suffix
/// optional); 0 when absent or unreachable.
pub fn metric_value(http: &reqwest::blocking::Client, base: &str, name: &str) -> f64 {
    let text = http.get(format!("{base}/metrics")).send().and_then(|r| r.text()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name || k == format!("{name}_total")).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}
