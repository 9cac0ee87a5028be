//! Support for the integration tests: locating the `strata` binary and the peers,
//! starting servers on fresh directories, and reading the HTTP API.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
pub use strata_bench::peers::{Peer, PeerSpec, System, dir_bytes, find_bin, free_port, metric_value};

pub mod compare;

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

/// Starts `strata standalone` on a fresh port in `dir` with extra flags.
pub fn start_strata(dir: PathBuf, extra: &[&str]) -> anyhow::Result<Peer> {
    let mut spec = PeerSpec::new(System::Strata, strata_bin()?, dir, free_port()?);
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

/// A base port such that base+1 ..= base+n are free.
pub fn free_block(n: u16) -> u16 {
    let seed = std::process::id() as u16;
    for k in 0..500u16 {
        let base = 20_000 + (seed.wrapping_mul(7).wrapping_add(k * 37)) % 30_000;
        if (1..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port block");
}

/// A cluster of `deploy/local/cluster.sh` on free ports under `dir`, stopped when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    /// Its data and logs.
    pub dir: PathBuf,
    /// gRPC ports of storage node n: `grpc + n`.
    pub grpc: u16,
    /// HTTP ports of storage node n: `http + n`.
    pub http: u16,
    /// Remote-write ports of the two ingestors.
    pub ingest: [u16; 2],
    /// HTTP (and gRPC query API) ports of the two queriers.
    pub query: [u16; 2],
    env: Vec<(String, String)>,
}

impl LocalCluster {
    /// Brings the cluster up (`shards` shards) and waits until every process is ready.
    pub fn up(dir: PathBuf, shards: u32) -> Self {
        Self::up_with(dir, shards, &[])
    }

    /// [`LocalCluster::up`] with more variables for `cluster.sh` (e.g. `SCRAPE_CONFIG`).
    pub fn up_with(dir: PathBuf, shards: u32, extra_env: &[(&str, &str)]) -> Self {
        // one block: gRPC at base+1..3, HTTP at base+11..13, ingestors base+21..22, queriers base+31..32
        let grpc = free_block(32);
        let (http, ingest, query) = (grpc + 10, [grpc + 21, grpc + 22], [grpc + 31, grpc + 32]);
        let env = vec![
            ("STRATA_BIN".to_string(), strata_bin().expect("strata binary").to_string_lossy().to_string()),
            ("GRPC_PORT_BASE".to_string(), grpc.to_string()),
            ("HTTP_PORT_BASE".to_string(), http.to_string()),
            ("INGEST_PORTS".to_string(), format!("{} {}", ingest[0], ingest[1])),
            ("QUERY_PORTS".to_string(), format!("{} {}", query[0], query[1])),
            ("SHARDS".to_string(), shards.to_string()),
        ];
        let env =
            env.into_iter().chain(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        let c = LocalCluster { dir, grpc, http, ingest, query, env };
        c.script(&["up"]);
        c
    }

    /// Runs `cluster.sh CMD DIR ARGS…` and fails on error.
    pub fn script(&self, args: &[&str]) {
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
        assert!(
            out.status.success(),
            "cluster.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The flags of a cluster member for the cluster's mutual TLS (the certificates
    /// `cluster.sh up` made).
    pub fn tls_args(&self) -> Vec<String> {
        strata_bench::peers::tls_args(&self.dir.join("certs"))
    }

    /// The storage nodes' gRPC addresses, comma-separated (for `--storage`).
    pub fn storage_addrs(&self) -> String {
        (1..=3).map(|n| format!("127.0.0.1:{}", self.grpc + n)).collect::<Vec<_>>().join(",")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.script(&["down"]);
    }
}
