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
