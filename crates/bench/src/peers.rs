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
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
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
}

impl PeerSpec {
    /// A spec with no extra arguments.
    pub fn new(system: System, bin: PathBuf, data_dir: PathBuf, port: u16) -> Self {
        PeerSpec { system, bin, data_dir, port, extra_args: Vec::new(), prometheus_config: None }
    }
}

impl Peer {
    /// Starts the system and waits until it answers its readiness endpoint.
    pub fn start(spec: PeerSpec) -> anyhow::Result<Peer> {
        fs::create_dir_all(&spec.data_dir)?;
        let addr = format!("127.0.0.1:{}", spec.port);
        let dir = spec.data_dir.display().to_string();
        let mut args: Vec<String> = match spec.system {
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
        let log = fs::File::create(&log_path)?;
        let child = Command::new(&spec.bin)
            .args(&args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        let pid = child.id();
        live(|l| l.push(pid));
        let mut p = Peer {
            system: spec.system,
            child: Some(child),
            data_dir: spec.data_dir,
            base_url: format!("http://{addr}"),
            log_path,
        };
        p.wait_ready(Duration::from_secs(60))?;
        Ok(p)
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.base_url)
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
            let exited = match self.child.as_mut() {
                Some(c) => c.try_wait()?,
                None => None,
            };
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

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.pid() else { return 0.0 };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // fields after the parenthesised command name; utime and stime are 14th and 15th
        let after = stat.rsplit_once(')').map_or("", |x| x.1);
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Sends SIGTERM and waits for a clean exit (SIGKILL after `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let pid = c.id();
        let _gone = Unregister(pid);
        signal(pid, "TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = c.try_wait()? {
                if !st.success() {
                    bail!("{} exited with {st}", self.system.name());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        bail!("{} did not stop within {timeout:?}", self.system.name())
    }

    /// SIGKILL, no cleanup: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            live(|l| l.retain(|p| *p != c.id()));
        }
    }
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
