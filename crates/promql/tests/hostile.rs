//! Queries a hostile client may send, each at the engine's limits and far above them, on a
//! thread with the stack a tokio worker or blocking thread has (2 MiB): parsing, dropping
//! the tree, evaluating, formatting and serializing never overflow the stack, and what is
//! over a limit fails with the limit's error before anything large is allocated.

use std::time::{Duration, Instant};

use strata_promql::{Engine, EngineConfig, MemSource, QueryError};
use strata_tsdb::Labels;

/// Tokio's default stack for worker and blocking threads.
const TOKIO_STACK: usize = 2 << 20;

/// Runs `f` on a thread with tokio's stack size.
fn on_tokio_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(TOKIO_STACK).spawn(f).expect("thread").join().expect("no panic")
}

fn source() -> MemSource {
    let mut src = MemSource::new();
    let l = Labels::from_unchecked([("__name__", "m"), ("job", "a")].into_iter());
    src.add(l, (0..100).map(|i| (i * 15_000, i as f64)));
    src
}

/// Every shape of a deep query, `n` levels deep.
fn deep(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("parens", format!("{}m{}", "(".repeat(n), ")".repeat(n))),
        ("calls", format!("{}m{}", "abs(".repeat(n), ")".repeat(n))),
        ("unary", format!("{}m", "- ".repeat(n))),
        ("sum chain", format!("m{}", " + 1".repeat(n))),
        ("subqueries", format!("m{}", "[1m:1m]".repeat(n))),
        ("aggregations", format!("{}m{}", "sum(".repeat(n), ")".repeat(n))),
    ]
}

#[test]
fn deep_queries_at_the_limit_run_and_above_it_are_refused() {
    let max = EngineConfig::default().max_nesting;
    on_tokio_stack(move || {
        let engine = Engine::new(EngineConfig::default());
        let src = source();
        for (what, q) in deep(max) {
            // the tree at the limit: parsed, evaluated, formatted, printed and dropped
            let Ok(expr) = engine.parse(&q) else {
                // a type error (a subquery of a range vector) is still a clean refusal
                continue;
            };
            let _ = engine.instant(&src, &expr, 1_000_000);
            assert!(!expr.prettify().is_empty(), "{what}");
            assert!(!expr.to_string().is_empty(), "{what}");
            drop(expr);
        }
        for n in [max + 1, 150_000, 900_000] {
            for (what, q) in deep(n) {
                let t = Instant::now();
                let e = engine.parse(&q).unwrap_err();
                assert!(
                    matches!(&e, QueryError::Parse(m) if m.starts_with("query nesting too deep")),
                    "{what}: {e}"
                );
                assert!(t.elapsed() < Duration::from_secs(1), "{what} took {:?}", t.elapsed());
            }
        }
    });
}

#[test]
fn subqueries_are_bounded_before_they_allocate() {
    let engine = Engine::new(EngineConfig::default());
    let src = source();
    let t = 1_000_000;
    for q in ["max_over_time(m[100y:1ms])", "max_over_time(m[1d:1s])", "m[12d:1m]"] {
        let expr = engine.parse(q).unwrap();
        let e = engine.instant(&src, &expr, t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            "{q}"
        );
        assert_eq!(e.error_type(), "bad_data");
    }
    // a window of up to 11,000 points is fine
    let expr = engine.parse("max_over_time(m[11000s:1s])").unwrap();
    assert!(engine.instant(&src, &expr, t).is_ok());
    // an inner grid longer than the samples a query may hold, through a long range query
    let small = Engine::new(EngineConfig { max_samples: 10_000, ..EngineConfig::default() });
    let expr = small.parse("max_over_time(m[10s:1s])").unwrap();
    let e = small.range(&src, &expr, 0, 11_000 * 10_000, 10_000).unwrap_err();
    assert_eq!(e, QueryError::TooManySamples);
}

#[test]
fn absurd_times_do_not_overflow() {
    let engine = Engine::new(EngineConfig::default());
    let src = source();
    for q in [
        "m offset 292000000y",
        "m offset -292000000y",
        "m @ 9223372036854775.807",
        "m @ -9223372036854775.808",
        "rate(m[292000000y])",
        "max_over_time(m[292000000y:100000000y])",
        "m[5m] @ -9223372036854775.808 offset 292000000y",
    ] {
        let Ok(expr) = engine.parse(q) else { continue };
        for t in [i64::MIN, -1, 0, i64::MAX] {
            let _ = engine.instant(&src, &expr, t);
        }
        let _ = engine.range(&src, &expr, i64::MIN, i64::MAX, i64::MAX);
    }
    let expr = engine.parse("m").unwrap();
    let e = engine.range(&src, &expr, -9_000_000_000_000_000, 9_000_000_000_000_000, 500).unwrap_err();
    assert_eq!(e.error_type(), "bad_data", "{e}");
}

#[test]
fn the_byte_budget_is_counted_as_data_is_allocated() {
    let engine = Engine::new(EngineConfig { max_bytes: 100_000, ..EngineConfig::default() });
    let src = source();
    let expr = engine.parse("rate(m[1m])").unwrap();
    // 11,001 steps of windows for one series: over 100 kB
    let e = engine.range(&src, &expr, 0, 11_000_000, 1_000).unwrap_err();
    assert!(e.to_string().starts_with("query processing would hold more than 100000 bytes"), "{e}");
    assert!(engine.range(&src, &expr, 0, 100_000, 1_000).is_ok());
}
