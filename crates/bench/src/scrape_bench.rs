//! The scrape benchmark: one target exposing N series (100k by default) scraped every
//! 15 s by `strata standalone --scrape-config` and by Prometheus 2.42 in the same run,
//! each at its own path so each sees every scrape's values change; CPU per scrape of
//! each process, measured over the same scrapes after a warm-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::exposition::{ExpositionServer, Reply, synthetic_body};
use crate::peers::{Peer, PeerSpec, System};

/// Settings of a scrape benchmark.
#[derive(Debug, Clone)]
pub struct ScrapeBenchConfig {
    /// Series the target exposes. Default 100,000.
    pub series: usize,
    /// Scrape interval in seconds. Default 15.
    pub interval_s: u64,
    /// Scrapes measured after the warm-up. Default 8.
    pub scrapes: u64,
    /// Scrapes of warm-up (the first creates every series). Default 2.
    pub warmup: u64,
    /// The strata binary.
    pub strata_bin: PathBuf,
    /// The prometheus binary.
    pub prometheus_bin: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
}

/// A counter of scrapes per path.
#[derive(Debug, Default)]
struct Counts {
    prom: AtomicU64,
    strata: AtomicU64,
}

impl Counts {
    fn of(&self, s: System) -> u64 {
        match s {
            System::Prometheus => self.prom.load(Ordering::Relaxed),
            _ => self.strata.load(Ordering::Relaxed),
        }
    }
}

/// Runs the benchmark; returns its results as JSON.
pub fn run(cfg: &ScrapeBenchConfig) -> anyhow::Result<serde_json::Value> {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let series = cfg.series;
    let server = ExpositionServer::start(Arc::new(move |path: &str| {
        let n = match path {
            "/prom" => c.prom.fetch_add(1, Ordering::Relaxed),
            _ => c.strata.fetch_add(1, Ordering::Relaxed),
        };
        Reply::text(synthetic_body(series, n))
    }))?;
    let config = |path: &str| {
        format!(
            "global:\n  scrape_interval: {}s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: bench\n    metrics_path: {path}\n    static_configs:\n      - targets: ['{}']\n",
            cfg.interval_s, server.addr
        )
    };
    std::fs::create_dir_all(&cfg.dir)?;
    let mut prom_spec =
        PeerSpec::new(System::Prometheus, cfg.prometheus_bin.clone(), cfg.dir.join("prometheus"));
    prom_spec.prometheus_config = Some(config("/prom"));
    let strata_cfg = cfg.dir.join("strata-scrape.yml");
    std::fs::write(&strata_cfg, config("/strata"))?;
    let mut strata_spec = PeerSpec::new(System::Strata, cfg.strata_bin.clone(), cfg.dir.join("strata"));
    strata_spec.extra_args = vec!["--scrape-config".into(), strata_cfg.display().to_string()];
    let prom = Peer::start(prom_spec)?;
    let strata = Peer::start(strata_spec)?;
    let peers = [(System::Prometheus, &prom), (System::Strata, &strata)];
    let mut results = serde_json::Map::new();
    // per system: (cpu, scrapes) at the end of the warm-up
    let mut start: Vec<(f64, u64)> = Vec::new();
    let wait_scrapes = |sys: System, n: u64| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(cfg.interval_s * (n + 3));
        while counts.of(sys) < n {
            if Instant::now() > deadline {
                bail!("{} did not scrape {n} times", sys.name());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // the scrape was requested; give its append time to finish
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    };
    for (sys, p) in peers {
        wait_scrapes(sys, cfg.warmup)?;
        start.push((p.cpu_seconds(), counts.of(sys)));
    }
    for ((sys, p), (cpu0, n0)) in peers.iter().zip(&start) {
        wait_scrapes(*sys, n0 + cfg.scrapes)?;
        let (cpu1, n1) = (p.cpu_seconds(), counts.of(*sys));
        let per = (cpu1 - cpu0) / (n1 - n0) as f64;
        let scraped =
            scraped_samples(p).with_context(|| format!("reading {}'s scrape_samples_scraped", sys.name()))?;
        if scraped as usize != cfg.series {
            bail!("{} scraped {scraped} samples, not {}", sys.name(), cfg.series);
        }
        results.insert(
            sys.name().to_string(),
            json!({"cpu_seconds_per_scrape": per, "scrapes": n1 - n0, "samples_per_scrape": scraped, "rss_bytes": p.rss_bytes()}),
        );
    }
    let ratio = results["strata"]["cpu_seconds_per_scrape"].as_f64().unwrap_or(f64::NAN)
        / results["prometheus"]["cpu_seconds_per_scrape"].as_f64().unwrap_or(f64::NAN);
    results.insert("strata_over_prometheus_cpu".into(), json!(ratio));
    results.insert("series".into(), json!(cfg.series));
    results.insert("interval_s".into(), json!(cfg.interval_s));
    Ok(serde_json::Value::Object(results))
}

/// The last `scrape_samples_scraped` of the bench job.
fn scraped_samples(p: &Peer) -> anyhow::Result<f64> {
    let url = format!("{}/api/v1/query?query=scrape_samples_scraped%7Bjob%3D%22bench%22%7D", p.base_url);
    let v: serde_json::Value = reqwest::blocking::get(url)?.json()?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no scrape_samples_scraped in {v}"))
}
