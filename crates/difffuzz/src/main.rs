//! `strata-difffuzz`: long differential fuzzing runs of PromQL against Prometheus 2.42
//! and a cluster's queriers (see docs/promql-fuzzing.md).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use strata_bench::peers::find_bin;
use strata_difffuzz::runner::{Plan, Report, RunConfig, Systems, generate, run};

#[derive(Debug, Parser)]
#[command(
    name = "strata-difffuzz",
    about = "Differential PromQL fuzzing: Strata against Prometheus 2.42 and its cluster queriers against standalone"
)]
struct Cli {
    /// Seeds to run, comma-separated (each gives its own expressions).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    seed: Vec<u64>,
    /// Expressions per seed.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// What to compare: `prometheus` (Strata standalone against Prometheus 2.42),
    /// `querier` (the cluster's queriers, pushdown on and off, against standalone), or both.
    #[arg(long, value_delimiter = ',', default_value = "prometheus,querier")]
    targets: Vec<String>,
    /// Markdown report written after each seed.
    #[arg(long, default_value = "difffuzz-report.md")]
    report: PathBuf,
    /// The `strata` binary (default: `$STRATA_BIN`, else next to this binary).
    #[arg(long)]
    strata: Option<PathBuf>,
    /// The Prometheus binary (default: `$PROMETHEUS_BIN`, else `prometheus` on the PATH).
    #[arg(long)]
    prometheus: Option<PathBuf>,
    /// Seed of the data set.
    #[arg(long, default_value_t = 1)]
    data_seed: u64,
    /// Cases asked concurrently.
    #[arg(long, default_value_t = 3)]
    threads: usize,
    /// Only print the generated expressions of each seed (no systems are started).
    #[arg(long)]
    print: bool,
    /// Where the systems keep their data (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.print {
        let start = strata_difffuzz::runner::data_start_now();
        for seed in &cli.seed {
            for c in generate(*seed, cli.count, start).0 {
                println!("{}", c.expr);
            }
        }
        return Ok(());
    }
    ctrlc::set_handler(|| {
        strata_bench::peers::kill_all();
        std::process::exit(130);
    })?;
    let strata = match cli.strata.clone().or_else(|| find_bin("STRATA_BIN", &[])) {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("strata"),
    };
    let with_prom = cli.targets.iter().any(|t| t == "prometheus");
    let with_cluster = cli.targets.iter().any(|t| t == "querier");
    let prom = if with_prom {
        Some(
            cli.prometheus
                .clone()
                .or_else(|| find_bin("PROMETHEUS_BIN", &["prometheus"]))
                .context("prometheus not found: --prometheus or $PROMETHEUS_BIN")?,
        )
    } else {
        None
    };
    let tmp;
    let dir = match &cli.dir {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.clone()
        }
    };
    let t = std::time::Instant::now();
    let systems = Systems::start(&dir, &strata, prom.as_deref(), with_cluster, cli.data_seed)?;
    eprintln!("difffuzz: systems up and loaded in {:.0} s", t.elapsed().as_secs_f64());
    let plan = Plan::new(systems.data_start);
    let mut all: Vec<(u64, Report)> = Vec::new();
    for seed in &cli.seed {
        let (cases, stats) = generate(*seed, cli.count, systems.data_start);
        if let Some(p) = systems.prometheus_target() {
            let cfg = RunConfig { threads: cli.threads, progress: 1000, ..RunConfig::default() };
            let mut r = run(&p, &[systems.strata_target()], &cases, &plan, &cfg);
            r.generated = stats.clone();
            eprintln!("seed {seed}: {}", r.summary());
            all.push((*seed, r));
        }
        if systems.cluster.is_some() {
            let cfg =
                RunConfig { threads: cli.threads, progress: 1000, versions: false, ..RunConfig::default() };
            let mut r = run(&systems.strata_target(), &systems.querier_targets(), &cases, &plan, &cfg);
            r.generated = stats.clone();
            eprintln!("seed {seed}: {}", r.summary());
            all.push((*seed, r));
        }
        let mut text = String::new();
        for (seed, r) in &all {
            text.push_str(&format!("<!-- seed {seed} -->\n"));
            text.push_str(&r.markdown());
            text.push('\n');
        }
        std::fs::write(&cli.report, text)?;
    }
    let total: usize = all.iter().map(|(_, r)| r.cases).sum();
    let bugs: usize = all.iter().map(|(_, r)| r.bug_cases()).sum();
    eprintln!("difffuzz: {total} case runs, {bugs} disagree; report in {}", cli.report.display());
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let d = std::env::temp_dir().join(format!("strata-difffuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d)?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
