//! The data set every target gets: three hours of node_exporter-, application- and
//! histogram-shaped series, deterministic for a seed, as remote-write bodies in time order.
//!
//! * node_exporter: two hosts of the benchmark fleet (`strata_bench::fleet`), 15 s apart,
//!   with its CPU, memory, filesystem, network and disk series and a request-duration
//!   histogram whose buckets are independent counters (not monotonic in `le`);
//! * application: `http_requests_total` counters (10 s) that reset on one instance; a queue
//!   gauge with gaps (one longer than the 5 m lookback, one shorter); `app_worker_up`
//!   series ended by a stale marker (one returns later); a build-info series replaced by
//!   another (version change: stale marker, then a new series); a temperature gauge with
//!   negative fractional values and real NaN samples; a timestamp gauge (epoch seconds);
//!   a balance gauge around zero (negative fractions);
//! * histograms: classic `app_request_duration_seconds` buckets (cumulative, monotonic,
//!   resetting with the counters) with `_sum` and `_count`; `rpc_duration_seconds` buckets
//!   where one service has a NaN bucket for a while and another lacks `+Inf`.
//!
//! Timing rules that keep Prometheus 2.42 (closed windows) and 3.x (left-open windows)
//! apart from nothing: every sample's millisecond-of-second is neither 000 nor 500, while
//! query times end in .500, and ranges, offsets and steps are multiples of 500 ms, so no
//! window boundary ever falls on a sample. Series with gaps or a late start hold values far
//! from zero, so `rate`'s extrapolation to the counter's zero point (changed in 2.51,
//! #13725) never comes into play on raw data. Queries never reach back to the first
//! [`WARMUP_MS`] of data (see [`crate::generator`]).

use std::collections::BTreeMap;

use strata_bench::fleet::{Fleet, FleetConfig, encode};
use strata_bench::workload::{Rng, host_series};
use strata_proto::prometheus as pb;

/// Length of the data set.
pub const SPAN_MS: i64 = 3 * 3_600_000;
/// Queries never read the first 10 minutes of data.
pub const WARMUP_MS: i64 = 10 * 60_000;
/// Series of a node_exporter host (the fleet's first 219: everything up to its histogram).
pub const NODE_SERIES: usize = 219;
/// node_exporter hosts.
pub const NODE_HOSTS: usize = 2;
/// Prometheus' stale marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// A metric the generator may select, with label names and some of their values.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Metric name.
    pub name: String,
    /// Label names (besides `__name__`) with values that occur.
    pub labels: Vec<(String, Vec<String>)>,
    /// A counter (`_total`, `_bucket`, `_count`, `_sum` or a counter of the fleet).
    pub counter: bool,
}

/// The metrics of the data set, for the generator.
pub fn catalog() -> Vec<Metric> {
    let mut by_name: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut counters = std::collections::BTreeSet::new();
    for s in host_series(NODE_SERIES) {
        let name = s.labels[0].1.clone();
        if matches!(s.shape, strata_bench::workload::Shape::Counter { .. }) {
            counters.insert(name.clone());
        }
        let m = by_name.entry(name).or_default();
        for (k, v) in &s.labels[1..] {
            let vals = m.entry(k.clone()).or_default();
            if !vals.contains(v) {
                vals.push(v.clone());
            }
        }
        m.entry("instance".into())
            .or_insert_with(|| (0..NODE_HOSTS).map(|i| format!("host-{i}:9100")).collect());
        m.entry("job".into()).or_insert_with(|| vec!["node".into()]);
    }
    for s in app_series(0) {
        let name = s.labels.iter().find(|(k, _)| k == "__name__").map(|x| x.1.clone()).unwrap_or_default();
        if s.counter {
            counters.insert(name.clone());
        }
        let m = by_name.entry(name).or_default();
        for (k, v) in s.labels.iter().filter(|(k, _)| k != "__name__") {
            let vals = m.entry(k.clone()).or_default();
            if !vals.contains(v) {
                vals.push(v.clone());
            }
        }
    }
    by_name
        .into_iter()
        .map(|(name, labels)| Metric {
            counter: counters.contains(&name),
            name,
            labels: labels.into_iter().collect(),
        })
        .collect()
}

/// One application series: labels and every sample over the span (offsets from the start).
#[derive(Debug, Clone)]
struct AppSeries {
    labels: Vec<(String, String)>,
    counter: bool,
    samples: Vec<(i64, f64)>,
}

fn labels(name: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l = vec![("__name__".to_owned(), name.to_owned())];
    l.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    l
}

fn round(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

const MIN: i64 = 60_000;

/// The application and histogram series, sample times relative to the data set's start.
fn app_series(seed: u64) -> Vec<AppSeries> {
    let mut rng = Rng::new(seed ^ 0xa55a_1234);
    let mut out = Vec::new();
    let instances = ["app-0:8080", "app-1:8080", "app-2:8080"];
    let phases = [3_321, 6_777, 8_613];
    let times = |phase: i64, every: i64| (0..).map(move |i| phase + i * every).take_while(|t| *t < SPAN_MS);
    for (ii, inst) in instances.iter().enumerate() {
        let phase = phases[ii];
        // request counters; app-1 restarts every 47 minutes (counters reset)
        for method in ["GET", "POST"] {
            for status in ["200", "500"] {
                for path in ["/api", "/health"] {
                    let l = [
                        ("job", "app"),
                        ("instance", *inst),
                        ("method", method),
                        ("status", status),
                        ("path", path),
                    ];
                    let rate =
                        if status == "500" { 0.05 } else { 3.0 } * if path == "/api" { 4.0 } else { 1.0 };
                    let mut v = (rate * 5_000.0 * rng.unit()).floor();
                    let mut samples = Vec::new();
                    let mut last_restart = 0;
                    for t in times(phase, 10_000) {
                        if ii == 1 && t / (47 * MIN) != last_restart {
                            last_restart = t / (47 * MIN);
                            v = 0.0;
                        }
                        v += (rate * 10.0 * 2.0 * rng.unit()).floor();
                        samples.push((t, v));
                    }
                    out.push(AppSeries { labels: labels("http_requests_total", &l), counter: true, samples });
                }
            }
        }
        // queue depth with gaps: app-0 misses 12 minutes, app-1 three
        let gap = match ii {
            0 => (50 * MIN, 62 * MIN),
            1 => (100 * MIN, 103 * MIN),
            _ => (0, 0),
        };
        let mut v = 1_050.0;
        let samples = times(phase, 10_000)
            .filter(|t| *t < gap.0 || *t >= gap.1)
            .map(|t| {
                v = round((v + 10.0 * (rng.unit() - 0.5)).clamp(1_000.0, 1_100.0), 0);
                (t, v)
            })
            .collect();
        let l = [("job", "app"), ("instance", *inst)];
        out.push(AppSeries { labels: labels("app_queue_depth", &l), counter: false, samples });
        // worker up: app-2 goes stale at 70 m and returns at 90 m; app-0 ends at 170 m
        let stale = f64::from_bits(STALE_NAN);
        let samples = times(phase, 10_000)
            .filter_map(|t| match ii {
                2 if (70 * MIN..90 * MIN).contains(&t) => (t < 70 * MIN + 10_000).then_some((t, stale)),
                0 if t >= 170 * MIN => (t < 170 * MIN + 10_000).then_some((t, stale)),
                _ => Some((t, 1.0)),
            })
            .collect();
        out.push(AppSeries { labels: labels("app_worker_up", &l), counter: false, samples });
        // build info: app-1 moves from 1.2.3 to 1.3.0 at 60 m
        let switch = if ii == 1 { 60 * MIN } else { SPAN_MS };
        for (version, from, to) in [("1.2.3", 0, switch), ("1.3.0", switch, SPAN_MS)] {
            let mut samples: Vec<(i64, f64)> =
                times(phase, 10_000).filter(|t| (from..to).contains(t)).map(|t| (t, 1.0)).collect();
            if to < SPAN_MS {
                samples.push((to + phase, stale));
            }
            if samples.is_empty() {
                continue;
            }
            let l = [("job", "app"), ("instance", *inst), ("version", version)];
            out.push(AppSeries { labels: labels("app_build_info", &l), counter: false, samples });
        }
        // temperatures with negative fractions and, on one sensor, some NaN samples
        for sensor in ["cpu", "ambient"] {
            let mut v = if sensor == "cpu" { 35.25 } else { -5.5 };
            let samples = times(phase, 10_000)
                .enumerate()
                .map(|(k, t)| {
                    v = round((v + 2.0 * (rng.unit() - 0.5)).clamp(-20.5, 60.0), 2);
                    let nan = ii == 0 && sensor == "ambient" && k % 37 == 5;
                    (t, if nan { f64::NAN } else { v })
                })
                .collect();
            let l = [("job", "app"), ("instance", *inst), ("sensor", sensor)];
            out.push(AppSeries { labels: labels("app_temperature_celsius", &l), counter: false, samples });
        }
        // an epoch-seconds gauge (date functions) and a balance around zero
        let samples = times(phase, 10_000).map(|t| (t, 1_700_000_000.0 + (t / 1000) as f64 - 37.0)).collect();
        out.push(AppSeries {
            labels: labels("app_last_success_timestamp_seconds", &l),
            counter: false,
            samples,
        });
        let samples = times(phase, 10_000)
            .map(|t| (t, [-1.5, -0.5, -0.25, 0.0, 0.75, 1.5, -86_400.5][((t / 10_000) % 7) as usize]))
            .collect();
        out.push(AppSeries { labels: labels("app_balance", &l), counter: false, samples });
        // a classic histogram per method: cumulative buckets, resets with app-1's restarts
        let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
        for method in ["GET", "POST"] {
            let mut counts = vec![0.0; les.len()];
            let mut sum = 0.0;
            let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); les.len() + 2];
            let mut last_restart = 0;
            for t in times(phase, 10_000) {
                if ii == 1 && t / (47 * MIN) != last_restart {
                    last_restart = t / (47 * MIN);
                    counts.iter_mut().for_each(|c| *c = 0.0);
                    sum = 0.0;
                }
                let n = (20.0 * rng.unit()) as usize;
                for _ in 0..n {
                    let d = 0.02 * (1.0 / (1.0 - rng.unit() * 0.999)).powf(1.3);
                    sum += d;
                    for (k, le) in les.iter().enumerate() {
                        if *le == "+Inf" || d <= le.parse::<f64>().unwrap_or(f64::INFINITY) {
                            counts[k] += 1.0;
                        }
                    }
                }
                for (k, c) in counts.iter().enumerate() {
                    series[k].push((t, *c));
                }
                series[les.len()].push((t, round(sum, 6)));
                series[les.len() + 1].push((t, counts[les.len() - 1]));
            }
            for (k, samples) in series.into_iter().enumerate() {
                let base = [("job", "app"), ("instance", *inst), ("method", method)];
                let l = if k < les.len() {
                    let mut l = base.to_vec();
                    l.push(("le", les[k]));
                    labels("app_request_duration_seconds_bucket", &l)
                } else if k == les.len() {
                    labels("app_request_duration_seconds_sum", &base)
                } else {
                    labels("app_request_duration_seconds_count", &base)
                };
                out.push(AppSeries { labels: l, counter: true, samples });
            }
        }
    }
    // rpc buckets: service b has a NaN `le="1"` bucket from 80 to 85 m, c has no +Inf bucket
    for (service, les) in [
        ("a", &["0.1", "1", "10.0", "+Inf"][..]),
        ("b", &["0.1", "1", "10.0", "+Inf"][..]),
        ("c", &["0.1", "1", "10.0"][..]),
    ] {
        for (k, le) in les.iter().enumerate() {
            let samples = times(4_142, 15_000)
                .map(|t| {
                    let base = (t / 15_000) as f64 * (k as f64 + 1.0) + 100.0 * (k as f64 + 1.0);
                    let nan = service == "b" && *le == "1" && (80 * MIN..85 * MIN).contains(&t);
                    (t, if nan { f64::NAN } else { base })
                })
                .collect();
            let l = [("job", "rpc"), ("service", service), ("le", le)];
            out.push(AppSeries { labels: labels("rpc_duration_seconds_bucket", &l), counter: true, samples });
        }
    }
    out
}

/// The whole data set as snappy remote-write bodies, in time order (10-minute slices), for
/// data starting at `start_ms`.
pub fn requests(start_ms: i64, seed: u64) -> Vec<Vec<u8>> {
    let slice = 10 * MIN;
    let mut fleet = Fleet::new(FleetConfig {
        hosts: NODE_HOSTS,
        series_per_host: NODE_SERIES,
        seed,
        interval_ms: 15_000,
        churn: 0.0,
        ..FleetConfig::default()
    });
    let app = app_series(seed);
    let mut out = Vec::new();
    let mut round = 0i64;
    let mut from = 0;
    while from < SPAN_MS {
        let to = from + slice;
        // node_exporter samples of this slice, grouped by series
        let mut node: BTreeMap<Vec<(String, String)>, Vec<pb::Sample>> = BTreeMap::new();
        while round * 15_000 < to {
            for s in fleet.scrape(start_ms + 1_234 + round * 15_000) {
                let key = s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                node.entry(key).or_default().extend(s.samples);
            }
            round += 1;
        }
        let mut batch: Vec<pb::TimeSeries> = node
            .into_iter()
            .map(|(l, samples)| pb::TimeSeries {
                labels: l.into_iter().map(|(name, value)| pb::Label { name, value }).collect(),
                samples,
                ..Default::default()
            })
            .collect();
        for s in &app {
            let samples: Vec<pb::Sample> = s
                .samples
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|(t, v)| pb::Sample { value: *v, timestamp: start_ms + t })
                .collect();
            if samples.is_empty() {
                continue;
            }
            let mut l: Vec<pb::Label> =
                s.labels.iter().map(|(n, v)| pb::Label { name: n.clone(), value: v.clone() }).collect();
            l.sort_by(|a, b| a.name.cmp(&b.name));
            batch.push(pb::TimeSeries { labels: l, samples, ..Default::default() });
        }
        // bodies of ~20,000 samples
        let mut cur = Vec::new();
        let mut n = 0;
        for s in batch {
            n += s.samples.len();
            cur.push(s);
            if n >= 20_000 {
                out.push(encode(std::mem::take(&mut cur)));
                n = 0;
            }
        }
        if !cur.is_empty() {
            out.push(encode(cur));
        }
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sample_sits_on_a_whole_or_half_second() {
        for s in app_series(1) {
            for (t, _) in &s.samples {
                assert!(t % 500 != 0, "{:?} at {t}", s.labels);
            }
        }
        // fleet phases: 1234 + host offsets (0, 7919)
        for h in 0..NODE_HOSTS as i64 {
            assert!((1_234 + h * 7_919) % 500 != 0);
        }
        let names: Vec<String> = catalog().into_iter().map(|m| m.name).collect();
        assert!(names.contains(&"node_cpu_seconds_total".to_owned()));
        assert!(names.contains(&"promhttp_request_duration_seconds_bucket".to_owned()));
        assert!(names.contains(&"app_request_duration_seconds_bucket".to_owned()));
    }
}
