//! Differential PromQL fuzzing in CI (crate `strata-difffuzz`): a seeded 3,000 random
//! expressions over node_exporter-, application- and histogram-shaped data (counter
//! resets, gaps, stale markers), each asked as an instant query at four times and as a
//! range query, must get the same answers from `strata standalone` as from Prometheus 2.42
//! (errors by `errorType`; documented 2.42 vs 3.x differences excluded as
//! `../shared/conformance/VERSIONS.md` says), and the same answers from a cluster's
//! queriers, with aggregation pushdown and without, as from standalone. Disagreements are
//! minimised; the report goes to `$CARGO_TARGET_TMPDIR/promql-fuzz-*.md`.
//!
//! Longer runs: the `strata-difffuzz` binary (docs/promql-fuzzing.md).

use std::path::PathBuf;

use strata_difffuzz::runner::{Plan, Report, RunConfig, Systems, generate, run};
use strata_suite::{peer_bin, strata_bin};

/// The CI seed and size.
const SEED: u64 = 20_261_203;
const COUNT: usize = 3_000;

fn write_report(name: &str, r: &Report) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("promql-fuzz-{name}.md"));
    std::fs::write(&path, r.markdown()).expect("write report");
    path
}

fn failures(r: &Report) -> String {
    r.classes()
        .into_iter()
        .filter(|(_, _, f)| f.verdict.is_bug())
        .map(|(key, n, f)| {
            format!(
                "{key} ({n} cases)\n  {}  [{}]\n  {}: {}\n  {}: {}",
                f.minimised,
                f.query,
                r.reference,
                f.reference.brief(300),
                f.target,
                f.answer.brief(300)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fuzzed_promql_agrees_with_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let prom = peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap();
    let systems = Systems::start(tmp.path(), &strata_bin().unwrap(), Some(&prom), false, 1).unwrap();
    let (cases, stats) = generate(SEED, COUNT, systems.data_start);
    let cfg = RunConfig::default();
    let reference = systems.prometheus_target().unwrap();
    let mut r = run(&reference, &[systems.strata_target()], &cases, &Plan::new(systems.data_start), &cfg);
    r.generated = stats;
    let path = write_report("prometheus", &r);
    println!("{}\nreport: {}", r.summary(), path.display());
    assert!(r.cases >= 1_000 && r.queries >= 4 * r.cases, "{}", r.summary());
    assert_eq!(r.bug_cases(), 0, "{}\n{}\nreport: {}", r.summary(), failures(&r), path.display());
}

#[test]
fn fuzzed_promql_through_queriers_equals_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let systems = Systems::start(tmp.path(), &strata_bin().unwrap(), None, true, 1).unwrap();
    let (cases, stats) = generate(SEED, COUNT, systems.data_start);
    let cfg = RunConfig { versions: false, ..RunConfig::default() };
    let targets = systems.querier_targets();
    assert_eq!(targets.len(), 2, "a querier with pushdown and one without");
    let mut r = run(&systems.strata_target(), &targets, &cases, &Plan::new(systems.data_start), &cfg);
    r.generated = stats;
    let path = write_report("queriers", &r);
    println!("{}\nreport: {}", r.summary(), path.display());
    assert!(r.cases >= 1_000, "{}", r.summary());
    assert_eq!(r.bug_cases(), 0, "{}\n{}\nreport: {}", r.summary(), failures(&r), path.display());
}
