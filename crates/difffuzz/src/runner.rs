//! Running generated cases against a reference and targets over the HTTP API: each case as
//! an instant query at several times and as one range query; the first disagreement of a
//! case with a target is minimised and given a verdict. Also starting the systems and
//! loading the data set into them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strata_bench::client::RemoteWriter;
use strata_bench::peers::{Peer, PeerSpec, System};

use crate::compare::{Answer, DiffKind, diff};
use crate::data::{SPAN_MS, requests};
use crate::exclude::{Verdict, classify, range_exclusion};
use crate::expr::Expr;
use crate::generator::{Case, Clock, GenStats, Generator};
use crate::minimise::minimise;

/// One query of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `/api/v1/query` at a time (ms).
    Instant(i64),
    /// `/api/v1/query_range` (ms).
    Range {
        /// First step.
        start: i64,
        /// Last step.
        end: i64,
        /// Step.
        step: i64,
    },
}

fn secs(t: i64) -> String {
    format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Instant(t) => write!(f, "instant at {}", secs(*t)),
            Query::Range { start, end, step } => {
                write!(f, "range {}..{} step {}s", secs(*start), secs(*end), *step as f64 / 1000.0)
            }
        }
    }
}

/// A server answering the Prometheus query API.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name in reports.
    pub name: String,
    /// `http://host:port`.
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Target {
    /// A target at `base`.
    pub fn new(name: impl Into<String>, base: impl Into<String>) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new());
        Target { name: name.into(), base: base.into(), http }
    }

    /// Asks one query.
    pub fn ask(&self, expr: &str, q: &Query) -> Answer {
        let (path, mut form) = match q {
            Query::Instant(t) => ("/api/v1/query", vec![("time", secs(*t))]),
            Query::Range { start, end, step } => (
                "/api/v1/query_range",
                vec![("start", secs(*start)), ("end", secs(*end)), ("step", secs(*step))],
            ),
        };
        form.push(("query", expr.to_owned()));
        form.push(("timeout", "60s".to_owned()));
        let res = self.http.post(format!("{}{path}", self.base)).form(&form).send();
        let a = match res.and_then(|r| r.json::<serde_json::Value>()) {
            Ok(v) => Answer::from_body(&v),
            Err(e) => Answer::Err { kind: "transport".into(), message: e.to_string() },
        };
        if std::env::var_os("DIFFFUZZ_TRACE").is_some() {
            eprintln!("{} {q} {expr}\n  -> {}", self.name, a.brief(300));
        }
        a
    }
}

/// When the queries of a case are asked, for data starting at `data_start`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Instant query times (each .500 s).
    pub instants: Vec<i64>,
    /// Range query start and end (.500 s); the step comes with the case.
    pub range: (i64, i64),
}

impl Plan {
    /// The times for a data set starting at `data_start`: early, middle, near the end,
    /// and after the end (within the lookback); one range over half an hour.
    pub fn new(data_start: i64) -> Plan {
        let m = 60_000;
        Plan {
            instants: vec![
                data_start + 105 * m + 500,
                data_start + 142 * m + 17_500,
                data_start + 178 * m + 30_500,
                data_start + SPAN_MS + 3 * m + 500,
            ],
            range: (data_start + 120 * m + 500, data_start + 150 * m + 500),
        }
    }

    /// The queries of a case.
    pub fn queries(&self, case: &Case) -> Vec<Query> {
        let mut q: Vec<Query> = self.instants.iter().map(|t| Query::Instant(*t)).collect();
        if range_exclusion(&case.expr).is_none() {
            q.push(Query::Range { start: self.range.0, end: self.range.1, step: case.step_ms });
        }
        q
    }
}

/// A disagreement between the reference and a target, minimised.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Index of the case.
    pub case: usize,
    /// The target that disagreed.
    pub target: String,
    /// The generated expression.
    pub original: String,
    /// The query that disagreed.
    pub query: Query,
    /// How.
    pub kind: DiffKind,
    /// The smallest expression found that still disagrees the same way.
    pub minimised: String,
    /// What differs for the minimised expression.
    pub detail: String,
    /// The reference's answer to the minimised expression.
    pub reference: Answer,
    /// The target's answer to the minimised expression.
    pub answer: Answer,
    /// The verdict.
    pub verdict: Verdict,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Reference name.
    pub reference: String,
    /// Target names.
    pub targets: Vec<String>,
    /// Cases run.
    pub cases: usize,
    /// Queries asked of each system.
    pub queries: usize,
    /// Range queries skipped (VERSIONS.md row 19).
    pub range_skipped: usize,
    /// Cases on which the reference answered with an error in at least one query.
    pub error_cases: usize,
    /// Cases on which the reference answered with a non-empty result in at least one query.
    pub nonempty_cases: usize,
    /// Disagreements (one per case and target), minimised, with verdicts.
    pub findings: Vec<Finding>,
    /// What the generator threw away.
    pub generated: GenStats,
    /// Wall time.
    pub elapsed: Duration,
    /// Cases by depth.
    pub depths: BTreeMap<usize, usize>,
}

impl Report {
    /// Cases on which some target disagrees with no exclusion (Strata bugs).
    pub fn bug_cases(&self) -> usize {
        let mut c: Vec<usize> = self.findings.iter().filter(|f| f.verdict.is_bug()).map(|f| f.case).collect();
        c.dedup();
        c.len()
    }

    /// Cases whose disagreement is excluded (version difference or undefined).
    pub fn excluded_cases(&self) -> usize {
        let bug: Vec<usize> = self.findings.iter().filter(|f| f.verdict.is_bug()).map(|f| f.case).collect();
        let mut c: Vec<usize> = self
            .findings
            .iter()
            .filter(|f| !f.verdict.is_bug() && !bug.contains(&f.case))
            .map(|f| f.case)
            .collect();
        c.dedup();
        c.len()
    }

    /// Agreement after exclusions, in percent of the compared cases.
    pub fn agreement(&self) -> f64 {
        let compared = self.cases - self.excluded_cases();
        if compared == 0 {
            return 100.0;
        }
        100.0 * (compared - self.bug_cases()) as f64 / compared as f64
    }

    /// One line.
    pub fn summary(&self) -> String {
        format!(
            "{} vs {}: {} cases ({} queries each system, {} with reference errors, {} with non-empty results), {} disagree (Strata bugs), {} excluded by verdict, {:.2} % agreement, {:.0} s",
            self.reference,
            self.targets.join(", "),
            self.cases,
            self.queries,
            self.error_cases,
            self.nonempty_cases,
            self.bug_cases(),
            self.excluded_cases(),
            self.agreement(),
            self.elapsed.as_secs_f64()
        )
    }

    /// Findings grouped into classes: (verdict, kind, functions and operators used) → the
    /// smallest example and the count.
    pub fn classes(&self) -> Vec<(String, usize, &Finding)> {
        let mut by: BTreeMap<String, (usize, &Finding)> = BTreeMap::new();
        for f in &self.findings {
            let key = format!("{} / {} / {}", f.verdict.text(), f.kind.name(), signature(&f.minimised));
            let e = by.entry(key).or_insert((0, f));
            e.0 += 1;
            if f.minimised.len() < e.1.minimised.len() {
                e.1 = f;
            }
        }
        by.into_iter().map(|(k, (n, f))| (k, n, f)).collect()
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# PromQL differential fuzzing\n\n{}\n", self.summary());
        let _ = writeln!(
            s,
            "Range queries skipped (row 19): {}. Depths: {:?}. Regenerated: {} too far back or costly; excluded: {:?}.\n",
            self.range_skipped, self.depths, self.generated.too_far_or_costly, self.generated.excluded
        );
        for (key, n, f) in self.classes() {
            let _ = writeln!(s, "## {key} ({n} cases)\n");
            let _ = writeln!(s, "* minimised: `{}`", f.minimised);
            let _ = writeln!(s, "* query: {} against {}", f.query, f.target);
            let _ = writeln!(s, "* difference: {}", f.detail);
            let _ = writeln!(s, "* {}: `{}`", self.reference, f.reference.brief(600));
            let _ = writeln!(s, "* {}: `{}`", f.target, f.answer.brief(600));
            let _ = writeln!(s, "* from case {}: `{}`\n", f.case, f.original);
        }
        s
    }
}

/// The functions, aggregations and operators of an expression, sorted.
fn signature(expr: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            if c == '(' && !cur.is_empty() && !words.contains(&cur) {
                words.push(cur.clone());
            }
            cur.clear();
        }
    }
    for op in [
        " + ", " - ", " * ", " / ", " % ", " ^ ", " == ", " != ", " > ", " < ", " >= ", " <= ", " and ",
        " or ", " unless ", "@", "offset", "[", ":",
    ] {
        if expr.contains(op) {
            words.push(op.trim().to_owned());
        }
    }
    words.sort();
    words.dedup();
    words.join(" ")
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Concurrent cases.
    pub threads: usize,
    /// Candidates the minimiser may try per finding.
    pub minimise_budget: usize,
    /// Whether the reference is Prometheus 2.42 (VERSIONS.md verdicts apply).
    pub versions: bool,
    /// Print progress every this many cases (0: never).
    pub progress: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { threads: 3, minimise_budget: 150, versions: true, progress: 0 }
    }
}

/// Runs `cases` against `reference` and every target.
pub fn run(reference: &Target, targets: &[Target], cases: &[Case], plan: &Plan, cfg: &RunConfig) -> Report {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<CaseOutcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..cfg.threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= cases.len() {
                        break;
                    }
                    if cfg.progress > 0 && i > 0 && i.is_multiple_of(cfg.progress) {
                        eprintln!(
                            "difffuzz: {i} of {} cases, {:.0} s",
                            cases.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    let r = run_case(i, &cases[i], reference, targets, plan, cfg);
                    if let Ok(mut o) = out.lock() {
                        o.push(r);
                    }
                }
            });
        }
    });
    let mut results = out.into_inner().unwrap_or_default();
    results.sort_by_key(|r| r.index);
    let mut report = Report {
        reference: reference.name.clone(),
        targets: targets.iter().map(|t| t.name.clone()).collect(),
        cases: cases.len(),
        ..Report::default()
    };
    for c in cases {
        *report.depths.entry(c.expr.depth()).or_default() += 1;
        if range_exclusion(&c.expr).is_some() {
            report.range_skipped += 1;
        }
    }
    for r in results {
        report.queries += r.queries;
        report.error_cases += usize::from(r.ref_error);
        report.nonempty_cases += usize::from(r.nonempty);
        report.findings.extend(r.findings);
    }
    report.elapsed = started.elapsed();
    report
}

/// What one case gave.
struct CaseOutcome {
    index: usize,
    ref_error: bool,
    nonempty: bool,
    queries: usize,
    findings: Vec<Finding>,
}

fn run_case(
    i: usize,
    case: &Case,
    reference: &Target,
    targets: &[Target],
    plan: &Plan,
    cfg: &RunConfig,
) -> CaseOutcome {
    let text = case.expr.to_string();
    let mut findings = Vec::new();
    let mut done = vec![false; targets.len()];
    let mut ref_error = false;
    let mut nonempty = false;
    let queries = plan.queries(case);
    for q in &queries {
        let want = reference.ask(&text, q);
        ref_error |= matches!(want, Answer::Err { .. });
        nonempty |= !want.series().is_empty();
        for (k, t) in targets.iter().enumerate() {
            if done[k] {
                continue;
            }
            let got = t.ask(&text, q);
            if let Some((kind, _)) = diff(&want, &got) {
                done[k] = true;
                findings.push(investigate(i, case, q, kind, reference, t, cfg));
            }
        }
    }
    CaseOutcome { index: i, ref_error, nonempty, queries: queries.len(), findings }
}

/// Minimises one disagreement and gives it a verdict.
fn investigate(
    i: usize,
    case: &Case,
    q: &Query,
    kind: DiffKind,
    reference: &Target,
    target: &Target,
    cfg: &RunConfig,
) -> Finding {
    let mut still = |c: &Expr| {
        let s = c.to_string();
        diff(&reference.ask(&s, q), &target.ask(&s, q)).is_some_and(|d| d.0 == kind)
    };
    let small = minimise(&case.expr, &mut still, cfg.minimise_budget);
    let text = small.to_string();
    let (want, got) = (reference.ask(&text, q), target.ask(&text, q));
    let (kind2, detail) = diff(&want, &got).unwrap_or((kind, "(no longer differs when asked again)".into()));
    let ask_ref = |e: &str, q: &Query| reference.ask(e, q);
    let ask_target = |e: &str, q: &Query| target.ask(e, q);
    let verdict = classify(&small, q, kind2, (&want, &got), (&ask_ref, &ask_target), cfg.versions);
    Finding {
        case: i,
        target: target.name.clone(),
        original: case.expr.to_string(),
        query: q.clone(),
        kind: kind2,
        minimised: text,
        detail,
        reference: want,
        answer: got,
        verdict,
    }
}

/// `count` cases of `seed` for data starting at `data_start`, with the generator's counters.
pub fn generate(seed: u64, count: usize, data_start: i64) -> (Vec<Case>, GenStats) {
    let mut g = Generator::new(seed, Clock { data_start });
    let cases = (0..count).map(|_| g.case()).collect();
    (cases, g.stats)
}

/// The start of the data set for a run now: three hours ending an hour ago, on whole hours
/// (the same all hour long, so a run can be repeated).
pub fn data_start_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (now / 3_600_000) * 3_600_000 - 4 * 3_600_000
}

/// Remote-writes the data set to `url` (5xx and transport failures are retried for a
/// minute; a 4xx fails).
pub fn load(url: &str, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let w = RemoteWriter::new(url)?;
    for (k, body) in bodies.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ack = w.send(body.clone());
            if (200..300).contains(&ack.status) {
                break;
            }
            if (400..500).contains(&ack.status) || Instant::now() > deadline {
                bail!("{url}: body {k}: {} {}", ack.status, ack.message);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The systems of a run, with the data set loaded.
#[derive(Debug)]
pub struct Systems {
    /// Prometheus 2.42, if asked for.
    pub prometheus: Option<Peer>,
    /// `strata standalone`.
    pub strata: Peer,
    /// A local cluster (3 storage nodes, ingestor, a querier with pushdown and one
    /// without), if asked for.
    pub cluster: Option<Peer>,
    /// Start of the data set.
    pub data_start: i64,
}

impl Systems {
    /// Starts the systems under `dir` and loads the data set (seed `data_seed`) into each.
    pub fn start(
        dir: &Path,
        strata_bin: &Path,
        prometheus_bin: Option<&Path>,
        cluster: bool,
        data_seed: u64,
    ) -> anyhow::Result<Systems> {
        let data_start = data_start_now();
        let bodies = requests(data_start, data_seed);
        let strata = Peer::start(PeerSpec::new(System::Strata, strata_bin.to_owned(), dir.join("strata")))
            .context("starting strata standalone")?;
        load(&strata.write_url(), &bodies)?;
        let prometheus = match prometheus_bin {
            Some(bin) => {
                let p = Peer::start(PeerSpec::new(System::Prometheus, bin.to_owned(), dir.join("prom")))
                    .context("starting prometheus")?;
                load(&p.write_url(), &bodies)?;
                Some(p)
            }
            None => None,
        };
        let cluster = if cluster {
            let c =
                Peer::start(PeerSpec::new(System::StrataCluster, strata_bin.to_owned(), dir.join("cluster")))
                    .context("starting the cluster")?;
            load(&c.write_url(), &bodies)?;
            Some(c)
        } else {
            None
        };
        // let the last writes become visible
        std::thread::sleep(Duration::from_secs(2));
        let systems = Systems { prometheus, strata, cluster, data_start };
        systems.check_loaded()?;
        Ok(systems)
    }

    /// Fails unless every system holds the whole data set (same series count early and
    /// late in it).
    pub fn check_loaded(&self) -> anyhow::Result<()> {
        let plan = Plan::new(self.data_start);
        let mut all = vec![self.strata_target()];
        all.extend(self.prometheus_target());
        all.extend(self.querier_targets());
        for t in [plan.instants[0], plan.instants[2]] {
            let q = "count({__name__=~\".+\"})";
            let counts: Vec<String> = all.iter().map(|s| s.ask(q, &Query::Instant(t)).brief(200)).collect();
            if counts
                .iter()
                .any(|c| c != &counts[0] || !c.contains("\"vector\"") || c.contains("\"result\":[]"))
            {
                bail!("the systems do not hold the same data at {}: {counts:?}", secs(t));
            }
        }
        Ok(())
    }

    /// Prometheus as a target.
    pub fn prometheus_target(&self) -> Option<Target> {
        self.prometheus.as_ref().map(|p| Target::new("prometheus-2.42", p.base_url.clone()))
    }

    /// Standalone as a target.
    pub fn strata_target(&self) -> Target {
        Target::new("strata", self.strata.base_url.clone())
    }

    /// The cluster's queriers (pushdown on, then off) as targets.
    pub fn querier_targets(&self) -> Vec<Target> {
        let Some(c) = &self.cluster else { return Vec::new() };
        let mut v = vec![Target::new("querier-pushdown", c.base_url.clone())];
        if let Some(plain) = &c.plain_query_url {
            v.push(Target::new("querier-no-pushdown", plain.clone()));
        }
        v
    }
}
