//! Any text as a PromQL query, with the engine's limits on and a short timeout: parsed
//! within the nesting limit, printed and prettified (as `format_query` does), then
//! evaluated as an instant query and as a range query over a small fixed data set. All
//! of it runs on a thread with the stack a tokio blocking thread has (2 MiB), so a query
//! that would overflow a server's stack overflows here too. Errors are fine; a panic, an
//! abort or a stack overflow is a finding.

#![no_main]
#![feature(cfg_sanitize)]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use strata_promql::{Engine, EngineConfig, Features, MemSource};
use strata_tsdb::{FloatHistogram, Labels};

/// The stack of a tokio worker or blocking thread; AddressSanitizer's redzones make frames
/// several times larger, so a build with it gets proportionally more.
const STACK: usize = if cfg!(sanitize = "address") { 8 << 20 } else { 2 << 20 };

/// The data: one hour at a 15 s interval (ms timestamps).
const END: i64 = 3_600_000;
const INTERVAL: i64 = 15_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_unchecked(pairs.iter().copied())
}

/// Counters, gauges, a classic histogram, a native histogram, a stale marker and a gap.
fn source() -> MemSource {
    let mut src = MemSource::new();
    let times = || (0..=END / INTERVAL).map(|i| i * INTERVAL);
    for (job, instance) in [("api", "a:1"), ("api", "b:1"), ("db", "c:1")] {
        let rate = if job == "api" { 2.0 } else { 0.5 };
        let counter = labels(&[("__name__", "http_requests_total"), ("instance", instance), ("job", job)]);
        // a counter with a reset halfway
        src.add(counter, times().map(|t| (t, ((t % (END / 2)) / 1000) as f64 * rate)));
        let gauge = labels(&[("__name__", "memory_bytes"), ("instance", instance), ("job", job)]);
        src.add(gauge, times().map(|t| (t, 1e6 + ((t / INTERVAL) % 17) as f64 * 1e4)));
        for (le, share) in [("0.1", 0.5), ("1", 0.9), ("+Inf", 1.0)] {
            let bucket = labels(&[
                ("__name__", "request_seconds_bucket"),
                ("instance", instance),
                ("job", job),
                ("le", le),
            ]);
            src.add(bucket, times().map(|t| (t, (t / 1000) as f64 * share)));
        }
    }
    // a series that goes stale at half time and one with a gap
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    src.add(
        labels(&[("__name__", "up"), ("job", "gone")]),
        times().map(|t| (t, if t < END / 2 { 1.0 } else { stale })),
    );
    src.add(
        labels(&[("__name__", "up"), ("job", "gappy")]),
        times().filter(|t| (t / 60_000) % 10 < 5).map(|t| (t, 1.0)),
    );
    let native = (0..=END / INTERVAL).map(|i| {
        let n = i as f64;
        let h = FloatHistogram {
            count: 3.0 * n,
            sum: 1.5 * n,
            zero_count: n,
            positive: vec![(0, n), (1, n)],
            ..FloatHistogram::default()
        };
        (i * INTERVAL, h)
    });
    src.add_histograms(labels(&[("__name__", "latency_seconds"), ("job", "api")]), native);
    src
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        max_samples: 100_000,
        timeout: Duration::from_secs(2),
        max_points_per_series: 11_000,
        max_nesting: EngineConfig::default().max_nesting,
        max_bytes: 64 << 20,
        features: Features::all(),
        ..EngineConfig::default()
    })
}

fn run(query: &str) {
    static STATE: OnceLock<(Engine, MemSource)> = OnceLock::new();
    let (engine, src) = STATE.get_or_init(|| (engine(), source()));
    let Ok(expr) = engine.parse(query) else { return };
    let _ = expr.to_string();
    let _ = expr.prettify();
    let _ = engine.instant(src, &expr, END / 2);
    let _ = engine.range(src, &expr, 0, END, 60_000);
    let _ = engine.range(src, &expr, END / 3, END / 3 + 5 * 60_000, 1_000);
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let query = query.to_owned();
    let worker = std::thread::Builder::new().stack_size(STACK).spawn(move || run(&query));
    // a panic on the worker is already an abort (libfuzzer-sys's panic hook)
    let _ = worker.map(|w| w.join());
});
