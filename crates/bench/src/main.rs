//! `strata-bench`: feeds the same node_exporter-shaped data to Strata, Prometheus and
//! VictoriaMetrics, one at a time on fresh data directories, and reports ingest rate,
//! CPU, memory and bytes per sample side by side.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_bench::peers::{Peer, PeerSpec, System, dir_bytes, find_bin, metric_value};

#[derive(Debug, Parser)]
#[command(name = "strata-bench", about = "Load generator and peer comparison for Strata")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Back-fill the same history into each system; report ingest and storage density.
    Storage(StorageArgs),
    /// Back-fill history into any remote-write URL and report acknowledgements.
    Load(LoadArgs),
    /// Back-fill the same history into each system, then time the dashboard query set.
    Queries(QueriesArgs),
    /// The whole comparison, one system at a time on fresh data directories: ingest at
    /// full speed and at a fixed rate, storage, memory, and the dashboard and rule query
    /// groups as instant and 1 h / 6 h / 24 h range queries; writes `results.json`.
    Run(RunArgs),
    /// One target exposing `--series` series scraped every `--interval` seconds by
    /// `strata standalone` and Prometheus at once: CPU per scrape of each.
    Scrape(ScrapeArgs),
}

#[derive(Debug, clap::Args)]
struct ScrapeArgs {
    /// Series the target exposes.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// Scrapes measured (after two of warm-up).
    #[arg(long, default_value_t = 8)]
    scrapes: u64,
    /// The strata binary [default: next to this binary].
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Working directory (created).
    #[arg(long, default_value = "/tmp/strata-bench-scrape")]
    work_dir: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn scrape(a: ScrapeArgs) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(&a.work_dir);
    let cfg = strata_bench::scrape_bench::ScrapeBenchConfig {
        series: a.series,
        interval_s: a.interval,
        scrapes: a.scrapes,
        warmup: 2,
        strata_bin: bin_of(System::Strata, &a.strata_bin)?,
        prometheus_bin: bin_of(System::Prometheus, &a.strata_bin)?,
        dir: a.work_dir,
    };
    let r = strata_bench::scrape_bench::run(&cfg)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    if let Some(out) = a.out {
        std::fs::write(out, serde_json::to_string_pretty(&r)? + "\n")?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    load: Load,
    /// Minutes of the history (its newest part) sent at `--fixed-rate` instead of at full speed.
    #[arg(long, default_value_t = 20.0)]
    fixed_minutes: f64,
    /// Samples per second of the fixed-rate part (CPU per million samples is measured there).
    #[arg(long, default_value_t = 50_000.0)]
    fixed_rate: f64,
    /// Directory of `*.queries.txt` dashboard workloads.
    #[arg(long, default_value = "../shared/workloads/dashboards")]
    dashboards: PathBuf,
    /// Directory of Prometheus rule files (`*.yaml`) whose expressions form the `rules` group.
    #[arg(long, default_value = "../shared/workloads/rules")]
    rules: PathBuf,
    /// Times each query is asked per mode.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[command(flatten)]
    targets: Targets,
}

#[derive(Debug, clap::Args)]
struct QueriesArgs {
    #[command(flatten)]
    load: Load,
    /// Directory of `*.queries.txt` dashboard workloads.
    #[arg(long, default_value = "../shared/workloads/dashboards")]
    dashboards: PathBuf,
    /// Times each query is asked (per mode).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Range of the range queries, in hours (step 60 s).
    #[arg(long, default_value_t = 1.0)]
    range_hours: f64,
    #[command(flatten)]
    targets: Targets,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Remote-write URL, e.g. http://127.0.0.1:9090/api/v1/write.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: Load,
}

/// The shape of a back-fill.
#[derive(Debug, Clone, clap::Args)]
struct Load {
    /// node_exporter hosts (1,000 series each by default).
    #[arg(long, default_value_t = 20)]
    hosts: usize,
    /// Series per host.
    #[arg(long, default_value_t = 1000)]
    series_per_host: usize,
    /// Hours of history at a 15 s interval, ending now.
    #[arg(long, default_value_t = 2.0)]
    hours: f64,
    /// Concurrent remote-write connections.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Share of hosts replaced by new ones every 10 minutes of data.
    #[arg(long, default_value_t = 0.01)]
    churn: f64,
    /// Send at this many samples per second (0: as fast as the target takes them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Random values (chunks that do not compress, ~8 bytes per sample) instead of
    /// node_exporter-like ones: builds large shards quickly.
    #[arg(long)]
    random_values: bool,
    /// Number of the first host (`host-<N>`): a second load on series of its own.
    #[arg(long, default_value_t = 0)]
    first_host: usize,
}

impl Load {
    fn validate(&self) -> anyhow::Result<()> {
        if self.hosts == 0 || self.series_per_host == 0 || self.concurrency == 0 || self.batch == 0 {
            bail!("--hosts, --series-per-host, --concurrency and --batch must be at least 1");
        }
        if !(self.hours > 0.0 && self.hours <= 24.0 * 14.0) {
            bail!("--hours must be within (0, 336]");
        }
        if !(0.0..=1.0).contains(&self.churn) {
            bail!("--churn must be within [0, 1], got {}", self.churn);
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            bail!("--rate must be 0 (as fast as possible) or a positive number of samples per second");
        }
        Ok(())
    }

    fn fleet(&self) -> Fleet {
        Fleet::new(FleetConfig {
            hosts: self.hosts,
            series_per_host: self.series_per_host,
            seed: 7,
            interval_ms: 15_000,
            churn: self.churn,
            random_values: self.random_values,
            first_host: self.first_host,
        })
    }
}

/// What a back-fill achieved.
#[derive(Debug)]
struct Backfill {
    samples: u64,
    rejected_requests: u64,
    wall_secs: f64,
    /// Series alive at the end.
    series: usize,
    /// Request round trips (acknowledged or not), in ms, sorted.
    latencies_ms: Vec<f64>,
}

/// Sends `l.hours` of history for the fleet to `url`, ending now.
fn backfill(url: &str, l: &Load) -> anyhow::Result<Backfill> {
    let rounds = (l.hours * 3600.0 / 15.0).round() as i64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    feed(url, l, &mut l.fleet(), now - rounds * 15_000, rounds, l.rate)
}

/// Sends `rounds` scrapes of the fleet from `start` (ms) to `url` with `l.concurrency`
/// connections, at `rate` samples/s (0: as fast as they are acknowledged).
fn feed(
    url: &str,
    l: &Load,
    fleet: &mut Fleet,
    start: i64,
    rounds: i64,
    rate: f64,
) -> anyhow::Result<Backfill> {
    // Request j of every scrape round goes to connection j % concurrency, so each series
    // always travels on the same connection and its samples arrive in order.
    let samples = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut txs = Vec::with_capacity(l.concurrency);
    let senders: Vec<_> = (0..l.concurrency)
        .map(|_| {
            let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, u64)>(4);
            txs.push(tx);
            let w = RemoteWriter::new(url);
            let (samples, rejected) = (samples.clone(), rejected.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let w = w?;
                let mut lat = Vec::new();
                loop {
                    let Ok((body, n)) = rx.recv() else { return Ok(lat) };
                    let t = Instant::now();
                    let ack = w.send(body);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    if (200..300).contains(&ack.status) {
                        samples.fetch_add(n, Ordering::Relaxed);
                    } else {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        eprintln!("rejected ({}): {}", ack.status, ack.message.trim());
                    }
                }
            })
        })
        .collect();
    let mut queued = 0u64;
    for r in 0..rounds {
        let scraped = fleet.scrape(start + r * 15_000);
        let counts: Vec<u64> = scraped.chunks(l.batch).map(|c| c.len() as u64).collect();
        for (j, (body, n)) in encode_requests(scraped, l.batch).into_iter().zip(counts).enumerate() {
            if rate > 0.0 {
                // fixed rate: do not get ahead of `rate` samples per second
                let due = Duration::from_secs_f64(queued as f64 / rate);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            queued += n;
            txs[j % txs.len()].send((body, n)).context("a sender failed")?;
        }
    }
    drop(txs);
    let mut latencies_ms = Vec::new();
    for s in senders {
        latencies_ms.extend(s.join().map_err(|_| anyhow::anyhow!("sender panicked"))??);
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Backfill {
        samples: samples.load(Ordering::Relaxed),
        rejected_requests: rejected.load(Ordering::Relaxed),
        wall_secs: t0.elapsed().as_secs_f64(),
        series: fleet.series(),
        latencies_ms,
    })
}

#[derive(Debug, clap::Args)]
struct StorageArgs {
    #[command(flatten)]
    load: Load,
    #[command(flatten)]
    targets: Targets,
}

/// Which systems to run, and where.
#[derive(Debug, clap::Args)]
struct Targets {
    /// Systems to run, comma separated: strata, strata-cluster (3 storage nodes RF=3 and an
    /// ingestor), prometheus, victoriametrics.
    #[arg(long, default_value = "strata,strata-cluster,prometheus,victoriametrics", value_delimiter = ',')]
    systems: Vec<String>,
    /// The strata binary [default: next to this binary].
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Working directory for data directories (created; emptied per system).
    #[arg(long, default_value = "/tmp/strata-bench")]
    work_dir: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug)]
struct RunResult {
    system: System,
    samples: u64,
    rejected_requests: u64,
    wall_secs: f64,
    cpu_secs: f64,
    rss_bytes: u64,
    disk_bytes: u64,
    series: usize,
}

impl RunResult {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "system": self.system.name(),
            "samples": self.samples,
            "series": self.series,
            "rejected_requests": self.rejected_requests,
            "ingest_samples_per_sec": self.samples as f64 / self.wall_secs,
            "ingest_samples_per_sec_per_core": self.samples as f64 / self.cpu_secs.max(1e-9),
            "cpu_seconds_per_million_samples": self.cpu_secs / (self.samples as f64 / 1e6),
            "bytes_per_sample": self.disk_bytes as f64 / self.samples as f64,
            "disk_bytes": self.disk_bytes,
            "rss_bytes": self.rss_bytes,
            "rss_bytes_per_series": self.rss_bytes as f64 / self.series as f64,
        })
    }
}

fn system_of(name: &str) -> anyhow::Result<System> {
    Ok(match name {
        "strata" => System::Strata,
        "strata-cluster" | "cluster" => System::StrataCluster,
        "prometheus" => System::Prometheus,
        "victoriametrics" | "vm" => System::VictoriaMetrics,
        other => bail!("unknown system {other:?}: use strata, strata-cluster, prometheus or victoriametrics"),
    })
}

fn bin_of(system: System, strata_bin: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match system {
        System::Strata | System::StrataCluster => match strata_bin {
            Some(p) => Ok(p.clone()),
            None => {
                let exe = std::env::current_exe()?;
                Ok(exe.with_file_name("strata"))
            }
        },
        System::Prometheus => find_bin("PROMETHEUS_BIN", &["prometheus"])
            .context("prometheus not installed (scripts/setup.sh with SETUP_PEERS=1)"),
        System::VictoriaMetrics => find_bin("VM_BIN", &["victoria-metrics", "victoria-metrics-prod"])
            .context("victoria-metrics not installed (scripts/setup.sh with SETUP_PEERS=1)"),
    }
}

fn run_one(system: System, a: &StorageArgs) -> anyhow::Result<RunResult> {
    let dir = a.targets.work_dir.join(system.name());
    let _ = std::fs::remove_dir_all(&dir);
    let mut peer = Peer::start(PeerSpec::new(system, bin_of(system, &a.targets.strata_bin)?, dir.clone()))?;
    let cpu0 = peer.cpu_seconds();
    let bf = backfill(&peer.write_url(), &a.load)?;
    if system == System::VictoriaMetrics {
        let _ = reqwest::blocking::get(format!("{}/internal/force_flush", peer.base_url));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss = peer.rss_bytes();
    let cpu = peer.cpu_seconds() - cpu0;
    peer.stop(Duration::from_secs(120))?;
    let disk = dir_bytes(&dir);
    Ok(RunResult {
        system,
        samples: bf.samples,
        rejected_requests: bf.rejected_requests,
        wall_secs: bf.wall_secs,
        cpu_secs: cpu,
        rss_bytes: rss,
        disk_bytes: disk,
        series: bf.series,
    })
}

fn storage(a: StorageArgs) -> anyhow::Result<()> {
    a.load.validate()?;
    let systems = a.targets.systems.iter().map(|s| system_of(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut results = Vec::new();
    for s in systems {
        eprintln!("== {}", s.name());
        let r = run_one(s, &a)?;
        eprintln!("{}", r.json());
        results.push(r);
    }
    println!(
        "{:<16} {:>12} {:>14} {:>14} {:>12} {:>14}",
        "system", "samples", "samples/s", "cpu s/Msample", "bytes/sample", "rss/series"
    );
    for r in &results {
        let j = r.json();
        println!(
            "{:<16} {:>12} {:>14.0} {:>14.3} {:>12.3} {:>14.0}",
            r.system.name(),
            r.samples,
            j["ingest_samples_per_sec"].as_f64().unwrap_or(0.0),
            j["cpu_seconds_per_million_samples"].as_f64().unwrap_or(0.0),
            j["bytes_per_sample"].as_f64().unwrap_or(0.0),
            j["rss_bytes_per_series"].as_f64().unwrap_or(0.0),
        );
    }
    if let Some(base) = results.iter().find(|r| r.system == System::Strata) {
        let b = base.json();
        for r in results.iter().filter(|r| r.system != System::Strata) {
            let j = r.json();
            let ratio = |k: &str| b[k].as_f64().unwrap_or(0.0) / j[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "strata / {:<16} bytes/sample {:.2}x  ingest/s {:.2}x  cpu/Msample {:.2}x  rss/series {:.2}x",
                r.system.name(),
                ratio("bytes_per_sample"),
                ratio("ingest_samples_per_sec"),
                ratio("cpu_seconds_per_million_samples"),
                ratio("rss_bytes_per_series"),
            );
        }
    }
    if let Some(out) = a.targets.out {
        let v: Vec<_> = results.iter().map(RunResult::json).collect();
        std::fs::write(&out, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

fn load(a: LoadArgs) -> anyhow::Result<()> {
    a.load.validate()?;
    let bf = backfill(&a.url, &a.load)?;
    println!(
        "{} samples acknowledged in {:.1} s ({:.0} samples/s), {} requests rejected, request latency p50 {:.2} ms p99 {:.2} ms",
        bf.samples,
        bf.wall_secs,
        bf.samples as f64 / bf.wall_secs,
        bf.rejected_requests,
        percentile(&bf.latencies_ms, 0.5),
        percentile(&bf.latencies_ms, 0.99),
    );
    if bf.rejected_requests > 0 {
        bail!("{} requests were rejected", bf.rejected_requests);
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn queries(a: QueriesArgs) -> anyhow::Result<()> {
    a.load.validate()?;
    if a.repeat == 0 || a.range_hours.is_nan() || a.range_hours <= 0.0 {
        bail!("--repeat must be at least 1 and --range-hours positive");
    }
    let lines = strata_bench::dashboards::load(&a.dashboards)
        .with_context(|| format!("reading dashboards in {}", a.dashboards.display()))?;
    let exprs: Vec<String> = lines
        .iter()
        .filter(|(_, l)| !l.starts_with("label_values(") && !l.starts_with("query_result("))
        .map(|(_, l)| strata_bench::dashboards::substitute(l, "1m0s"))
        .collect();
    let systems = a.targets.systems.iter().map(|s| system_of(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut report = Vec::new();
    for system in systems {
        eprintln!("== {}", system.name());
        let dir = a.targets.work_dir.join(system.name());
        let _ = std::fs::remove_dir_all(&dir);
        let mut peer = Peer::start(PeerSpec::new(system, bin_of(system, &a.targets.strata_bin)?, dir))?;
        let bf = backfill(&peer.write_url(), &a.load)?;
        if system == System::VictoriaMetrics {
            let _ = http.get(format!("{}/internal/force_flush", peer.base_url)).send();
        }
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() - 30;
        let start = end - (a.range_hours * 3600.0) as u64;
        let mut lat: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut errors = 0usize;
        for _ in 0..a.repeat {
            for q in &exprs {
                let modes = [
                    ("/api/v1/query", vec![("query", q.clone()), ("time", end.to_string())]),
                    (
                        "/api/v1/query_range",
                        vec![
                            ("query", q.clone()),
                            ("start", start.to_string()),
                            ("end", end.to_string()),
                            ("step", "60".into()),
                        ],
                    ),
                ];
                for (i, (path, params)) in modes.iter().enumerate() {
                    let t = Instant::now();
                    let ok = http
                        .post(format!("{}{path}", peer.base_url))
                        .form(params)
                        .send()
                        .is_ok_and(|r| r.status().is_success());
                    lat[i].push(t.elapsed().as_secs_f64() * 1000.0);
                    errors += usize::from(!ok);
                }
            }
        }
        peer.stop(Duration::from_secs(60))?;
        let mut row = serde_json::json!({"system": system.name(), "samples": bf.samples, "queries": exprs.len(), "errors": errors});
        for (i, mode) in ["instant", "range"].iter().enumerate() {
            lat[i].sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
            row[format!("{mode}_p50_ms")] = serde_json::json!(percentile(&lat[i], 0.5));
            row[format!("{mode}_p99_ms")] = serde_json::json!(percentile(&lat[i], 0.99));
        }
        eprintln!("{row}");
        report.push(row);
    }
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "system", "inst p50", "inst p99", "range p50", "range p99", "errors"
    );
    for r in &report {
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<12} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>7}",
            r["system"].as_str().unwrap_or(""),
            g("instant_p50_ms"),
            g("instant_p99_ms"),
            g("range_p50_ms"),
            g("range_p99_ms"),
            r["errors"]
        );
    }
    if let Some(out) = a.targets.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Query groups: one per dashboard file, and `rules` (every rule expression).
fn query_groups(
    dashboards: &std::path::Path,
    rules: &std::path::Path,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let lines = strata_bench::dashboards::load(dashboards)
        .with_context(|| format!("reading dashboards in {}", dashboards.display()))?;
    for (file, l) in lines {
        if l.starts_with("label_values(") || l.starts_with("query_result(") {
            continue;
        }
        let name = file.trim_end_matches(".queries.txt").to_owned();
        let q = strata_bench::dashboards::substitute(&l, "1m0s");
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => g.1.push(q),
            None => groups.push((name, vec![q])),
        }
    }
    let mut exprs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules)
        .with_context(|| format!("reading rules in {}", rules.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&f)?)
            .with_context(|| format!("parsing {}", f.display()))?;
        for g in doc["groups"].as_sequence().into_iter().flatten() {
            for r in g["rules"].as_sequence().into_iter().flatten() {
                if let Some(e) = r["expr"].as_str() {
                    exprs.push(e.trim().to_owned());
                }
            }
        }
    }
    if !exprs.is_empty() {
        groups.push(("rules".into(), exprs));
    }
    if groups.is_empty() {
        bail!("no queries found in {} or {}", dashboards.display(), rules.display());
    }
    Ok(groups)
}

/// How long after the ingest the data directory is still watched.
const DISK_AFTER: Duration = Duration::from_secs(120);

/// A data directory's size sampled every interval by a thread, at its start too, until
/// [`DiskSampler::finish`] (which takes a last sample).
struct DiskSampler {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl DiskSampler {
    fn start(dir: PathBuf, every: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut v = vec![dir_bytes(&dir)];
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                v.push(dir_bytes(&dir));
            }
            v.push(dir_bytes(&dir));
            v
        });
        DiskSampler { stop, thread }
    }

    /// The samples, oldest first.
    fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

/// `strata-bench run`.
fn strata_bench_run(a: RunArgs) -> anyhow::Result<()> {
    a.load.validate()?;
    let total_min = a.load.hours * 60.0;
    if !(a.fixed_minutes >= 0.0 && a.fixed_minutes < total_min) {
        bail!("--fixed-minutes must be within [0, --hours × 60)");
    }
    if !(a.fixed_rate > 0.0 && a.fixed_rate.is_finite()) || a.repeat == 0 {
        bail!("--fixed-rate must be positive and --repeat at least 1");
    }
    let groups = query_groups(&a.dashboards, &a.rules)?;
    let systems = a.targets.systems.iter().map(|s| system_of(s)).collect::<anyhow::Result<Vec<_>>>()?;
    for &s in &systems {
        bin_of(s, &a.targets.strata_bin)?;
    }
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut results = Vec::new();
    for system in systems {
        eprintln!("== {}", system.name());
        let r = run_system(system, &a, &groups, &http)?;
        eprintln!("{r}");
        results.push(r);
    }
    print_summary(&results);
    if let Some(out) = &a.targets.out {
        std::fs::write(out, serde_json::to_string_pretty(&results)?)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// One system through the whole comparison.
fn run_system(
    system: System,
    a: &RunArgs,
    groups: &[(String, Vec<String>)],
    http: &reqwest::blocking::Client,
) -> anyhow::Result<serde_json::Value> {
    let dir = a.targets.work_dir.join(system.name());
    let _ = std::fs::remove_dir_all(&dir);
    let mut peer = Peer::start(PeerSpec::new(system, bin_of(system, &a.targets.strata_bin)?, dir.clone()))?;
    let rounds = (a.load.hours * 240.0).round() as i64;
    let fixed_rounds = (a.fixed_minutes * 4.0).round() as i64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let start = now - rounds * 15_000;
    let mut fleet = a.load.fleet();
    // the data directory as users see it while the system runs, not only at rest
    let disk_while = DiskSampler::start(dir.clone(), Duration::from_secs(10));
    // full speed: the history but its newest `fixed_minutes`
    let cpu0 = peer.cpu_seconds();
    let fast = feed(&peer.write_url(), &a.load, &mut fleet, start, rounds - fixed_rounds, 0.0)?;
    let cpu_fast = peer.cpu_seconds() - cpu0;
    // fixed rate: the rest
    let cpu1 = peer.cpu_seconds();
    let fixed = feed(
        &peer.write_url(),
        &a.load,
        &mut fleet,
        start + (rounds - fixed_rounds) * 15_000,
        fixed_rounds,
        a.fixed_rate,
    )?;
    let cpu_fixed = peer.cpu_seconds() - cpu1;
    let while_ingesting = disk_while.finish();
    let disk_after = DiskSampler::start(dir.clone(), Duration::from_secs(10));
    let ingest_end = Instant::now();
    if system == System::VictoriaMetrics {
        let _ = http.get(format!("{}/internal/force_flush", peer.base_url)).send();
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss = peer.rss_bytes();
    // queries: every group as instant and 1 h / 6 h / 24 h range queries
    let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() - 30;
    let (all_lat, group_rows, errors) = query_workload(&peer.base_url, groups, a.repeat, end, http);
    // a cluster: the same through the querier without pushdown, and the bytes each moved
    let mut extra = serde_json::Map::new();
    if let Some(plain) = peer.plain_query_url.clone() {
        let (lat, _, errs) = query_workload(&plain, groups, a.repeat, end, http);
        let moved = |base: &str| {
            metric_value(http, base, "strata_querier_selected_bytes")
                + metric_value(http, base, "strata_querier_pushdown_bytes")
        };
        extra.insert("query_no_pushdown_p50_ms".into(), serde_json::json!(percentile(&lat, 0.5)));
        extra.insert("query_no_pushdown_p99_ms".into(), serde_json::json!(percentile(&lat, 0.99)));
        extra.insert("query_no_pushdown_errors".into(), serde_json::json!(errs));
        extra.insert("query_bytes_from_storage".into(), serde_json::json!(moved(&peer.base_url)));
        extra.insert("query_bytes_from_storage_no_pushdown".into(), serde_json::json!(moved(&plain)));
    }
    // two minutes after the ingest ended (the queries run meanwhile)
    std::thread::sleep(DISK_AFTER.saturating_sub(ingest_end.elapsed()));
    let after = disk_after.finish();
    peer.stop(Duration::from_secs(180))?;
    let disk = dir_bytes(&dir);
    let samples = fast.samples + fixed.samples;
    let series = fleet.series();
    // a cluster stores every sample on each of its replicas: bytes/sample is per replica
    let replicas = if system == System::StrataCluster { 3 } else { 1 };
    Ok(serde_json::json!({
        "system": system.name(),
        "replicas": replicas,
        "samples": samples,
        "series_active": series,
        "series_created": fleet.series_created(),
        "rejected_requests": fast.rejected_requests + fixed.rejected_requests,
        "ingest_samples_per_sec": fast.samples as f64 / fast.wall_secs,
        "ingest_samples_per_sec_per_core": fast.samples as f64 / cpu_fast.max(1e-9),
        "cpu_seconds_per_million_samples": cpu_fixed / (fixed.samples.max(1) as f64 / 1e6),
        "fixed_rate_samples_per_sec": fixed.samples as f64 / fixed.wall_secs,
        "bytes_per_sample": disk as f64 / replicas as f64 / samples.max(1) as f64,
        "disk_bytes": disk,
        "disk_max_while_ingesting_bytes": while_ingesting.iter().max().copied().unwrap_or(0),
        "disk_max_after_ingest_bytes": after.iter().max().copied().unwrap_or(0),
        "disk_2m_after_ingest_bytes": after.last().copied().unwrap_or(0),
        "rss_bytes": rss,
        "rss_bytes_per_series": rss as f64 / series.max(1) as f64,
        "write_request_p50_ms": percentile(&fast.latencies_ms, 0.5),
        "write_request_p99_ms": percentile(&fast.latencies_ms, 0.99),
        "query_p50_ms": percentile(&all_lat, 0.5),
        "query_p99_ms": percentile(&all_lat, 0.99),
        "query_errors": errors,
        "query_groups": group_rows,
    }))
    .map(|mut v| {
        if let Some(o) = v.as_object_mut() {
            o.extend(extra);
        }
        v
    })
}

/// Latencies (sorted), per-group p50/p99 and errors of the query workload against `base`:
/// every group as instant and 1 h / 6 h / 24 h range queries, `repeat` times.
fn query_workload(
    base: &str,
    groups: &[(String, Vec<String>)],
    repeat: usize,
    end: u64,
    http: &reqwest::blocking::Client,
) -> (Vec<f64>, serde_json::Map<String, serde_json::Value>, usize) {
    let modes: [(&str, u64); 4] =
        [("instant", 0), ("range_1h", 3600), ("range_6h", 6 * 3600), ("range_24h", 24 * 3600)];
    let mut all_lat = Vec::new();
    let mut group_rows = serde_json::Map::new();
    let mut errors = 0usize;
    for (name, exprs) in groups {
        let mut row = serde_json::Map::new();
        for (mode, range) in modes {
            let mut lat = Vec::new();
            for _ in 0..repeat {
                for q in exprs {
                    let (path, params) = if range == 0 {
                        ("/api/v1/query", vec![("query", q.clone()), ("time", end.to_string())])
                    } else {
                        let step = (range / 720).max(15);
                        let p = vec![
                            ("query", q.clone()),
                            ("start", (end - range).to_string()),
                            ("end", end.to_string()),
                            ("step", step.to_string()),
                        ];
                        ("/api/v1/query_range", p)
                    };
                    let t = Instant::now();
                    let ok = http
                        .post(format!("{base}{path}"))
                        .form(&params)
                        .send()
                        .is_ok_and(|r| r.status().is_success());
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    errors += usize::from(!ok);
                }
            }
            lat.sort_by(f64::total_cmp);
            all_lat.extend_from_slice(&lat);
            row.insert(format!("{mode}_p50_ms"), serde_json::json!(percentile(&lat, 0.5)));
            row.insert(format!("{mode}_p99_ms"), serde_json::json!(percentile(&lat, 0.99)));
        }
        group_rows.insert(name.clone(), serde_json::Value::Object(row));
    }
    all_lat.sort_by(f64::total_cmp);
    (all_lat, group_rows, errors)
}

/// The results side by side, with ratios against VictoriaMetrics and Prometheus.
fn print_summary(results: &[serde_json::Value]) {
    const KEYS: [&str; 8] = [
        "ingest_samples_per_sec_per_core",
        "cpu_seconds_per_million_samples",
        "bytes_per_sample",
        "disk_max_while_ingesting_bytes",
        "disk_max_after_ingest_bytes",
        "rss_bytes_per_series",
        "query_p50_ms",
        "query_p99_ms",
    ];
    println!("{:<16} {}", "system", KEYS.map(|k| format!("{k:>32}")).join(""));
    for r in results {
        let vals: Vec<String> =
            KEYS.iter().map(|k| format!("{:>32.3}", r[*k].as_f64().unwrap_or(f64::NAN))).collect();
        println!("{:<16} {}", r["system"].as_str().unwrap_or(""), vals.join(""));
    }
    let ours = |r: &&serde_json::Value| r["system"].as_str().is_some_and(|s| s.starts_with("strata"));
    for strata in results.iter().filter(ours) {
        for peer in results.iter().filter(|r| !ours(r)) {
            let vals: Vec<String> = KEYS
                .iter()
                .map(|k| {
                    let ratio =
                        strata[*k].as_f64().unwrap_or(f64::NAN) / peer[*k].as_f64().unwrap_or(f64::NAN);
                    format!("{:>31.2}x", ratio)
                })
                .collect();
            let name = format!(
                "{}/{}",
                strata["system"].as_str().unwrap_or(""),
                peer["system"].as_str().unwrap_or("")
            );
            println!("{name:<16} {}", vals.join(""));
        }
    }
}

fn main() -> anyhow::Result<()> {
    // Ctrl-C (or SIGTERM) must not leave servers running: kill them, then exit.
    ctrlc::set_handler(|| {
        eprintln!("interrupted: stopping the systems under test");
        strata_bench::peers::kill_all();
        std::process::exit(130);
    })
    .context("installing the interrupt handler")?;
    match Cli::parse().cmd {
        Cmd::Storage(a) => storage(a),
        Cmd::Load(a) => load(a),
        Cmd::Queries(a) => queries(a),
        Cmd::Run(a) => strata_bench_run(a),
        Cmd::Scrape(a) => scrape(a),
    }
}
