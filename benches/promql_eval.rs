//! PromQL evaluation over an in-memory source: node_exporter-shaped series, 1 h at 15 s.

use criterion::{Criterion, criterion_group, criterion_main};
use strata_bench::fleet::{Fleet, FleetConfig};
use strata_promql::{Engine, EngineConfig, MemSource};
use strata_tsdb::Labels;

fn source() -> (MemSource, i64) {
    let mut fleet = Fleet::new(FleetConfig::steady(10, 200, 3));
    let mut src = MemSource::new();
    let t0 = 1_700_000_000_000;
    for r in 0..240 {
        for ts in fleet.scrape(t0 + r * 15_000) {
            let labels =
                Labels::from_unchecked(ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
            src.add(labels, ts.samples.iter().map(|s| (s.timestamp, s.value)));
        }
    }
    (src, t0 + 240 * 15_000)
}

fn eval(c: &mut Criterion) {
    let (src, end) = source();
    let engine = Engine::new(EngineConfig::default());
    let queries = [
        r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
        "avg_over_time(node_load1[10m])",
        "topk(5, node_memory_MemFree_bytes)",
        "node_filesystem_avail_bytes / ignoring(fstype) node_filesystem_size_bytes",
        "histogram_quantile(0.9, sum by (le) (rate(promhttp_request_duration_seconds_bucket[5m])))",
    ];
    let mut g = c.benchmark_group("promql");
    for q in queries {
        let expr = strata_promql::parse(q).expect("parses");
        g.bench_function(format!("instant {q}"), |b| {
            b.iter(|| engine.instant(&src, &expr, end).map(|o| o.value))
        });
        g.bench_function(format!("range 1h/60s {q}"), |b| {
            b.iter(|| engine.range(&src, &expr, end - 3_600_000, end, 60_000).map(|o| o.value))
        });
    }
    g.finish();
}

criterion_group!(benches, eval);
criterion_main!(benches);
