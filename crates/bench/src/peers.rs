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

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
}

/// How to start a system.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Which system.
    pub system: System,
    /// Path of its binary.
    pub bin: PathBuf,
    /// Fresh data directory.
    pub data_dir: PathBuf,
    /// Port to listen on.
    pub port: u16,
    /// Extra arguments appended to the defaults.
    pub extra_args: Vec<String>,
    /// Prometheus only: the configuration file's text (default: no scrape jobs).
    pub prometheus_config: Option<String>,
    /// Environment variables set for its processes, besides the inherited ones.
    pub env: Vec<(String, String)>,
}

impl PeerSpec {
    /// A spec with no extra arguments.
    pub fn new(system: System, bin: PathBuf, data_dir: PathBuf, port: u16) -> Self {
        PeerSpec {
            system,
            bin,
            data_dir,
            port,
            extra_args: Vec::new(),
            prometheus_config: None,
            env: Vec::new(),
        }
    }
}

impl Peer {
    /// Starts the system and waits until it answers its readiness endpoint.
    pub fn start(spec: PeerSpec) -> anyhow::Result<Peer> {
        fs::create_dir_all(&spec.data_dir)?;
        if spec.system == System::StrataCluster {
            return Self::start_cluster(spec);
        }
        let addr = format!("127.0.0.1:{}", spec.port);
        let dir = spec.data_dir.display().to_string();
        let mut args: Vec<String> = match spec.system {
            System::StrataCluster => unreachable!("started by start_cluster"),
            System::Strata => {
                vec!["standalone".into(), "--data-dir".into(), dir, "--http-addr".into(), addr.clone()]
            }
            System::Prometheus => {
                let cfg = spec.data_dir.join("prometheus.yml");
                let text = spec
                    .prometheus_config
                    .clone()
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
        let mut p = Peer {
            system: spec.system,
            children: vec![child],
            write_base: format!("http://{addr}"),
            data_dir: spec.data_dir,
            base_url: format!("http://{addr}"),
            plain_query_url: None,
            log_path,
        };
        p.wait_ready(Duration::from_secs(60))?;
        Ok(p)
    }

    /// Three storage nodes, an ingestor on `spec.port`, and two queriers (with and
    /// without pushdown).
    fn start_cluster(spec: PeerSpec) -> anyhow::Result<Peer> {
        let grpc: Vec<u16> = (0..3).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
        let (query, plain) = (free_port()?, free_port()?);
        let peers: Vec<String> =
            grpc.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
        // the cluster's gRPC is mutual TLS, as in production
        let certs = spec.data_dir.join("certs");
        let made = std::process::Command::new(&spec.bin)
            .args(["certs", "--out"])
            .arg(&certs)
            .output()
            .context("strata certs")?;
        if !made.status.success() {
            bail!("strata certs: {}", String::from_utf8_lossy(&made.stderr));
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
        let mut args: Vec<String> = vec![
            "ingestor".into(),
            "--http-addr".into(),
            format!("127.0.0.1:{}", spec.port),
            "--storage".into(),
            storage.join(","),
        ];
        args.extend(tls.iter().cloned());
        children.push(spawn(&spec.bin, &args, &spec.data_dir.join("ingestor.log"), &spec.env)?);
        for (port, pushdown, name) in [(query, "true", "querier"), (plain, "false", "querier-plain")] {
            let mut args: Vec<String> = vec![
                "querier".into(),
                "--http-addr".into(),
                format!("127.0.0.1:{port}"),
                "--storage".into(),
                storage.join(","),
                "--pushdown".into(),
                pushdown.into(),
            ];
            args.extend(tls.iter().cloned());
            children.push(spawn(&spec.bin, &args, &spec.data_dir.join(format!("{name}.log")), &spec.env)?);
        }
        let mut p = Peer {
            system: spec.system,
            children,
            write_base: format!("http://127.0.0.1:{}", spec.port),
            base_url: format!("http://127.0.0.1:{query}"),
            plain_query_url: Some(format!("http://127.0.0.1:{plain}")),
            log_path: spec.data_dir.join("storage-1.log"),
            data_dir: spec.data_dir,
        };
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

/// Total size of the files under `dir`, in bytes.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
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
