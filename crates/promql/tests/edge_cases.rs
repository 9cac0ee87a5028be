//! Prometheus behaviours the conformance file format cannot express, each checked against a
//! Prometheus server: a subquery query answered with a sample after its own evaluation
//! time, and the date functions' no-argument form at negative fractional times (the format
//! has no negative evaluation times).

use strata_promql::{Engine, MemSource, Value};
use strata_tsdb::Labels;

fn source() -> MemSource {
    let mut src = MemSource::new();
    let l = Labels::from_unchecked([("__name__", "ts"), ("a", "1")].into_iter());
    src.add(l, (0..=20).map(|i| (i * 60_000, i as f64)));
    src
}

/// The (timestamp ms, value) samples of each series of a range-vector answer.
fn matrix(v: Value) -> Vec<(String, Vec<(i64, f64)>)> {
    match v {
        Value::Matrix(m) => m.into_iter().map(|s| (s.labels.to_string(), s.samples)).collect(),
        other => panic!("expected a range vector, got {other:?}"),
    }
}

/// A subquery whose window `(70s, 100s]` holds no step of its 1m grid: when its inner
/// expression is step-invariant (`@`-pinned), Prometheus evaluates that expression once at
/// the grid's first step, 120s, and answers with that sample; otherwise it answers nothing.
#[test]
fn stepless_subquery_of_a_pinned_expression() {
    let engine = Engine::default();
    let src = source();
    let run = |q: &str| matrix(engine.instant(&src, &engine.parse(q).unwrap(), 100_000).unwrap().value);
    let pinned = vec![(r#"{__name__="ts", a="1"}"#.to_owned(), vec![(120_000, 5.0)])];
    assert_eq!(run("(ts @ 300)[30s:1m]"), pinned);
    assert_eq!(run("(ts @ 300)[30s:1m] @ 100"), pinned);
    assert_eq!(run("(-ts @ 300)[30s:1m]"), vec![(r#"{a="1"}"#.to_owned(), vec![(120_000, -5.0)])]);
    assert_eq!(run("(sum(ts @ 300))[30s:1m]"), vec![("{}".to_owned(), vec![(120_000, 5.0)])]);
    assert_eq!(run("(vector(1))[30s:1m]"), vec![("{}".to_owned(), vec![(120_000, 1.0)])]);
    assert_eq!(run("(ts @ 300 > 3)[30s:1m]"), pinned);
    // timestamp() of a pinned selector is step-invariant since Prometheus 3 (2.42: nothing)
    assert_eq!(run("(timestamp(ts @ 300))[30s:1m]"), vec![(r#"{a="1"}"#.to_owned(), vec![(120_000, 300.0)])]);
    // not step-invariant: nothing
    assert_eq!(run("(ts)[30s:1m]"), vec![]);
    assert_eq!(run("(ts @ 300 + time())[30s:1m]"), vec![]);
    assert_eq!(run("(ts @ 300 and ts)[30s:1m]"), vec![]);
    assert_eq!(run("(ts)[30s:1m] @ 100"), vec![]);
    // a window holding a step is evaluated as usual
    assert_eq!(run("(ts @ 300)[1m:1m]"), vec![(r#"{__name__="ts", a="1"}"#.to_owned(), vec![(60_000, 5.0)])]);
    // a function over the stepless window sees nothing
    let v =
        engine.instant(&src, &engine.parse("max_over_time((ts @ 300)[30s:1m])").unwrap(), 100_000).unwrap();
    assert!(matches!(v.value, Value::Vector(s) if s.is_empty()));
}

/// Without an argument the date functions take the evaluation time in whole seconds,
/// truncated toward zero as Go's integer division does: −0.5s is 1970-01-01 00:00:00.
#[test]
fn date_functions_of_negative_fractional_times() {
    let engine = Engine::default();
    let src = MemSource::new();
    let at = |q: &str, t: i64| match engine.instant(&src, &engine.parse(q).unwrap(), t).unwrap().value {
        Value::Vector(v) => v[0].points[0].1,
        other => panic!("expected a vector, got {other:?}"),
    };
    assert_eq!(at("year()", -500), 1970.0);
    assert_eq!(at("day_of_month()", -500), 1.0);
    assert_eq!(at("hour()", -500), 0.0);
    assert_eq!(at("day_of_week()", -500), 4.0);
    assert_eq!(at("day_of_month()", -86_400_500), 31.0);
    assert_eq!(at("minute()", -1_500), 59.0);
}
