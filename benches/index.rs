//! The inverted index and matchers: resolving selectors over 20,000 node_exporter series
//! (postings intersection, regex and negative matchers), and regex matching on its own.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use strata_bench::fleet::{Fleet, FleetConfig};
use strata_tsdb::{Db, DbConfig, MatchOp, Matcher, MemEngine, SeriesBatch, SystemClock};

fn db() -> Arc<Db> {
    let db = Db::open(Arc::new(MemEngine::new()), DbConfig::default(), Arc::new(SystemClock)).expect("open");
    let mut fleet =
        Fleet::new(FleetConfig { hosts: 20, series_per_host: 1000, churn: 0.0, ..FleetConfig::default() });
    let now = strata_tsdb::Clock::now_ms(&SystemClock);
    let mut batch = SeriesBatch::new(db.config().shards);
    for ts in fleet.scrape(now) {
        let mut pairs: Vec<(&str, &str)> =
            ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        let samples: Vec<(i64, f64)> = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
        batch.add(&mut pairs, &samples).expect("labels");
    }
    // applied as each shard's group applies its first log entry
    for (shard, rec) in batch.into_records() {
        let (rec, _) = db.admit(Some(shard), rec, strata_tsdb::SeriesLimits::default()).expect("admit");
        db.apply_record(shard, 1, &rec.expect("samples")).expect("apply");
    }
    db
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).expect("matcher")
}

fn index(c: &mut Criterion) {
    let db = db();
    let (lo, hi) = (i64::MIN, i64::MAX);
    let mut g = c.benchmark_group("index");
    let cases: Vec<(&str, Vec<Matcher>)> = vec![
        ("name_only", vec![m(MatchOp::Equal, "__name__", "node_cpu_seconds_total")]),
        (
            "name_and_instance",
            vec![
                m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
                m(MatchOp::Equal, "instance", "host-3:9100"),
            ],
        ),
        (
            "name_and_regex_alternation",
            vec![
                m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
                m(MatchOp::Regex, "mode", "idle|iowait|steal"),
            ],
        ),
        (
            "name_regex_and_negative",
            vec![m(MatchOp::Regex, "__name__", "node_network_.*"), m(MatchOp::NotEqual, "device", "lo")],
        ),
        ("regex_prefix_on_instance", vec![m(MatchOp::Regex, "instance", "host-1.*")]),
    ];
    for (name, ms) in &cases {
        g.bench_function(*name, |b| b.iter(|| db.series(None, ms, lo, hi).len()));
    }
    let re = m(MatchOp::Regex, "mode", "idle|iowait|steal");
    let values: Vec<String> = ["idle", "user", "system", "iowait", "steal", "nice", "irq", "softirq"]
        .iter()
        .cycle()
        .take(1000)
        .map(|s| (*s).to_owned())
        .collect();
    g.bench_function("regex_match_1000_values", |b| {
        b.iter(|| values.iter().filter(|v| re.matches(v)).count())
    });
    g.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
