//! Support for the integration tests: locating the `strata` binary and the peers,
//! starting servers on fresh directories, and reading the HTTP API.

use std::path::PathBuf;

use anyhow::{Context, bail};
pub use strata_bench::peers::{Peer, PeerSpec, System, dir_bytes, find_bin, free_port};

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
    let url = format!("{}{}", peer.base_url, path_and_query);
    let v: serde_json::Value = reqwest::blocking::get(&url)?.json()?;
    if v["status"] != "success" {
        bail!("{url}: {v}");
    }
    Ok(v["data"].clone())
}
