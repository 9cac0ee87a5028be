//! Support for the integration tests: locating the `strata` binary and the peers,
//! starting servers on fresh directories, and reading the HTTP API.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
pub use strata_bench::peers::{
    PROMETHEUS_SELF, Peer, PeerSpec, PortLease, System, dir_bytes, find_bin, lease_ports, listening_ports,
    log_says_address_in_use, metric_value, wait_listening, wait_port,
};

pub mod compare;

/// A node_exporter (Debian's) on a port of the OS's choosing, killed when dropped.
#[derive(Debug)]
pub struct NodeExporter {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl NodeExporter {
    /// Starts one logging to `dir/node_exporter.log` and waits until it listens.
    pub fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let bin = peer_bin("NODE_EXPORTER_BIN", &["prometheus-node-exporter", "node_exporter"])?;
        let child = std::process::Command::new(bin)
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("node_exporter.log"))?)
            .spawn()?;
        let mut ne = NodeExporter { child, port: 0 };
        ne.port = wait_port(ne.child.id(), std::time::Duration::from_secs(30))?;
        Ok(ne)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `strata` binary under test: `$STRATA_BIN`, else next to the test executable's
/// `deps/` directory (where `cargo build` puts it in the same profile).
pub fn strata_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("STRATA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|d| d.parent()).context("no target directory")?;
    let bin = dir.join("strata");
    if !bin.is_file() {
        bail!("{} not found: build it first (`cargo build -p strata`) or set STRATA_BIN", bin.display());
    }
    Ok(bin)
}

/// The shared corpus directory: `$STRATA_SHARED`, else `../shared` beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var("STRATA_SHARED")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"), PathBuf::from)
}

/// The `strata-bench` binary, next to [`strata_bin`].
pub fn bench_bin() -> anyhow::Result<PathBuf> {
    let bin = strata_bin()?.with_file_name("strata-bench");
    if !bin.is_file() {
        bail!("{} not found: build it first (`cargo build -p strata-bench`)", bin.display());
    }
    Ok(bin)
}

/// Process ids whose command line mentions `needle` (from `/proc`).
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd).contains(needle).then_some(pid)
        })
        .collect()
}

/// A peer binary installed from Debian (`prometheus`, `victoria-metrics`). Missing peers
/// fail the test: `scripts/test.sh` installs them.
pub fn peer_bin(env: &str, names: &[&str]) -> anyhow::Result<PathBuf> {
    find_bin(env, names)
        .with_context(|| format!("{names:?} not installed: run scripts/setup.sh with SETUP_PEERS=1"))
}

/// Starts `strata standalone` on a port of the OS's choosing in `dir` with extra flags.
pub fn start_strata(dir: PathBuf, extra: &[&str]) -> anyhow::Result<Peer> {
    let mut spec = PeerSpec::new(System::Strata, strata_bin()?, dir);
    spec.extra_args = extra.iter().map(|s| (*s).to_owned()).collect();
    Peer::start(spec)
}

/// GETs a JSON API path of `peer` and returns the `data` member (fails on non-success).
pub fn api_data(peer: &Peer, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
    api_data_at(&peer.base_url, path_and_query)
}

/// [`api_data`] of any node by its base URL (`http://host:port`: a querier, an ingestor).
pub fn api_data_at(base: &str, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{base}{path_and_query}");
    let v: serde_json::Value = reqwest::blocking::get(&url)?.json()?;
    if v["status"] != "success" {
        bail!("{url}: {v}");
    }
    Ok(v["data"].clone())
}

/// Waits until `base` (`http://host:port`) answers `/-/ready` with 200; fails the test after
/// `within`.
pub fn wait_ready(base: &str, within: std::time::Duration) {
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("http client");
    let deadline = std::time::Instant::now() + within;
    while !http.get(format!("{base}/-/ready")).send().is_ok_and(|r| r.status().is_success()) {
        assert!(std::time::Instant::now() < deadline, "{base} not ready within {within:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A cluster of `deploy/local/cluster.sh` under `dir`, stopped when dropped. Its HTTP
/// listeners are on ports of the OS's choosing, read back from the processes (a restarted
/// process gets a new one); the storage nodes' gRPC ports — which every node's `--peers`
/// names — and, with `SCRAPE_CONFIG`, the ingestors' ports — which `--scrape-peers`
/// names — are leased ([`lease_ports`]), and `up` starts again on other ones if a foreign
/// process took one first.
#[derive(Debug)]
pub struct LocalCluster {
    /// Its data and logs.
    pub dir: PathBuf,
    /// gRPC ports of storage nodes 1-3 (leased).
    pub grpc: [u16; 3],
    /// With `SCRAPE_CONFIG`: the ingestors' ports (leased).
    fixed_ingest: Option<[u16; 2]>,
    _leases: Vec<PortLease>,
    env: Vec<(String, String)>,
}

impl LocalCluster {
    /// Brings the cluster up (`shards` shards) and waits until every process is ready.
    pub fn up(dir: PathBuf, shards: u32) -> Self {
        Self::up_with(dir, shards, &[])
    }

    /// [`LocalCluster::up`] with more variables for `cluster.sh` (e.g. `SCRAPE_CONFIG`).
    pub fn up_with(dir: PathBuf, shards: u32, extra_env: &[(&str, &str)]) -> Self {
        let scrape = extra_env.iter().any(|(k, _)| *k == "SCRAPE_CONFIG");
        let mut attempt = 1;
        loop {
            // the ingestors share scrape targets by their addresses: fixed ports then
            let leases = lease_ports(if scrape { 5 } else { 3 }).expect("ports");
            let grpc = [leases[0].port, leases[1].port, leases[2].port];
            let fixed_ingest = scrape.then(|| [leases[3].port, leases[4].port]);
            let ingest = fixed_ingest.map_or("0 0".into(), |p| format!("{} {}", p[0], p[1]));
            let env = vec![
                (
                    "STRATA_BIN".to_string(),
                    strata_bin().expect("strata binary").to_string_lossy().to_string(),
                ),
                ("GRPC_PORTS".to_string(), format!("{} {} {}", grpc[0], grpc[1], grpc[2])),
                ("HTTP_PORT_BASE".to_string(), "0".into()),
                ("INGEST_PORTS".to_string(), ingest),
                ("QUERY_PORTS".to_string(), "0 0".into()),
                ("SHARDS".to_string(), shards.to_string()),
            ];
            let env = env
                .into_iter()
                .chain(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            let c = LocalCluster { dir: dir.clone(), grpc, fixed_ingest, _leases: leases, env };
            match c.run(&["up"]) {
                Ok(()) => return c,
                // a port taken by another process in the moment before its node bound it
                Err(e) if attempt < 3 && c.bind_failed() => {
                    eprintln!("cluster.sh up: a leased port was taken, starting again on others: {e}");
                    drop(c);
                    std::fs::remove_dir_all(&dir).expect("remove the cluster's directory");
                    attempt += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Whether a process of the cluster failed to bind its port.
    fn bind_failed(&self) -> bool {
        std::fs::read_dir(self.dir.join("logs"))
            .is_ok_and(|d| d.flatten().any(|e| log_says_address_in_use(&e.path())))
    }

    /// The pid of a running process of the cluster (`storage-2`, `ingestor-1`, …).
    fn pid(&self, name: &str) -> u32 {
        let f = self.dir.join("run").join(format!("{name}.pid"));
        std::fs::read_to_string(&f)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} is not running (no {})", f.display()))
    }

    /// The HTTP port of storage node `n` (1-3; or a node added later, whose gRPC port is
    /// the next of `EXTRA_GRPC_PORTS`), once it listens.
    pub fn http(&self, n: usize) -> u16 {
        let pid = self.pid(&format!("storage-{n}"));
        let extra: Vec<u16> = self
            .env
            .iter()
            .find(|(k, _)| k == "EXTRA_GRPC_PORTS")
            .map(|(_, v)| v.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default();
        let grpc = self.grpc.get(n - 1).or_else(|| extra.get(n - 4)).copied().unwrap_or(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ports = wait_listening(pid, 1, std::time::Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("storage-{n}: {e}"));
            if let Some(p) = ports.into_iter().find(|p| *p != grpc) {
                return p;
            }
            assert!(std::time::Instant::now() < deadline, "storage-{n} has no HTTP listener after 60 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The remote-write port of ingestor `i` (0 or 1), once it listens (with
    /// `SCRAPE_CONFIG`, its fixed port, whether it runs or not).
    pub fn ingest(&self, i: usize) -> u16 {
        if let Some(p) = self.fixed_ingest {
            return p[i];
        }
        let name = format!("ingestor-{}", i + 1);
        wait_port(self.pid(&name), std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The HTTP (and gRPC query API) port of querier `i` (0 or 1), once it listens.
    pub fn query(&self, i: usize) -> u16 {
        let name = format!("querier-{}", i + 1);
        wait_port(self.pid(&name), std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Runs `cluster.sh CMD DIR ARGS…` and fails on error.
    pub fn script(&self, args: &[&str]) {
        if let Err(e) = self.run(args) {
            panic!("{e}");
        }
    }

    /// Runs `cluster.sh CMD DIR ARGS…`; the error tells its output.
    fn run(&self, args: &[&str]) -> Result<(), String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/cluster.sh");
        let dir = self.dir.to_string_lossy().to_string();
        let mut all = vec![args[0], dir.as_str()];
        all.extend_from_slice(&args[1..]);
        let out = Command::new("bash")
            .arg(script)
            .args(&all)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run cluster.sh");
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "cluster.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// The flags of a cluster member for the cluster's mutual TLS (the certificates
    /// `cluster.sh up` made).
    pub fn tls_args(&self) -> Vec<String> {
        strata_bench::peers::tls_args(&self.dir.join("certs"))
    }

    /// The storage nodes' gRPC addresses, comma-separated (for `--storage`).
    pub fn storage_addrs(&self) -> String {
        self.grpc.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.script(&["down"]);
    }
}
