//! Differential test: the same generated data remote-written into Debian's Prometheus 2.42
//! and `strata standalone`, then the same instant and range queries asked of both through
//! the HTTP API and compared (relative tolerance 1e-6).
//!
//! Sample timestamps never fall on a window boundary (hosts scrape at odd phases and query
//! times sit 2.5 s off the scrape grid), so 2.x's closed and 3.x's left-open windows agree.
//! Accepted semantic differences between 2.42 and 3.x are not queried here (see
//! `../shared/conformance/VERSIONS.md`): `holt_winters` (renamed in 3.0), regexes matching
//! newlines (3.0), and results near a series' first sample, where 2.51 changed `rate`'s
//! extrapolation (#13725): every query window here starts after the data does.

use std::time::Duration;

use serde_json::Value;
use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::{Peer, PeerSpec, System, free_port, peer_bin, start_strata};

const ROUNDS: i64 = 240; // 1 h at 15 s

fn queries() -> Vec<String> {
    let mut q: Vec<String> = Vec::new();
    let counters =
        ["node_cpu_seconds_total", "node_network_receive_bytes_total", "node_disk_written_bytes_total"];
    let gauges = ["node_load1", "node_memory_MemFree_bytes", "node_filesystem_avail_bytes"];
    for c in counters {
        for f in ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets"] {
            q.push(format!("{f}({c}[5m])"));
        }
        q.push(format!("sum by (instance) (rate({c}[1m]))"));
        q.push(format!("sum without (instance) (rate({c}[2m]))"));
        q.push(format!("topk(3, rate({c}[5m]))"));
        q.push(format!("rate({c}[5m] offset 10m)"));
        q.push(format!("max_over_time(rate({c}[1m])[10m:1m])"));
    }
    for g in gauges {
        for f in [
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
        ] {
            q.push(format!("{f}({g}[10m])"));
        }
        q.push(format!("quantile_over_time(0.9, {g}[10m])"));
        q.push(format!("predict_linear({g}[10m], 3600)"));
        for agg in ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"] {
            q.push(format!("{agg}({g})"));
            q.push(format!("{agg} by (instance) ({g})"));
        }
        q.push(format!("quantile(0.5, {g})"));
        q.push(format!("bottomk(2, {g})"));
        q.push(format!("{g} * 2 + 1"));
        q.push(format!("{g} > bool 1"));
        q.push(format!("-{g}"));
        q.push(format!("abs({g} - 1e9)"));
        q.push(format!("round({g}, 0.5)"));
        q.push(format!("clamp({g}, 1, 3)"));
        q.push(format!("timestamp({g})"));
        q.push(format!("{g} offset 5m"));
    }
    q.extend(
        [
            r#"node_cpu_seconds_total{mode="idle", cpu="0"}"#,
            r#"node_cpu_seconds_total{mode=~"user|system", cpu!="1"}"#,
            r#"{__name__=~"node_load.*"}"#,
            r#"count_values("value", node_network_up)"#,
            r#"histogram_quantile(0.9, sum by (le, instance) (rate(promhttp_request_duration_seconds_bucket[5m])))"#,
            r#"histogram_quantile(0.5, rate(promhttp_request_duration_seconds_bucket[10m]))"#,
            r#"node_load1 / on(instance) group_left node_load5"#,
            r#"node_filesystem_avail_bytes / ignoring(fstype) node_filesystem_size_bytes"#,
            r#"node_load1 and on(instance) node_load5 > 1"#,
            r#"node_load1 or node_load15"#,
            r#"node_load1 unless node_load5 > 1.5"#,
            r#"label_replace(node_load1, "host", "$1", "instance", "(.*):9100")"#,
            r#"label_join(node_load1, "id", "-", "instance", "job")"#,
            r#"sort_desc(node_load1)"#,
            r#"absent(nonexistent_metric{job="x"})"#,
            r#"vector(1) + scalar(sum(node_load1))"#,
            r#"time() - node_boot_time_seconds"#,
            r#"1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))"#,
            r#"sum(rate(node_network_receive_bytes_total[5m])) by (device)"#,
            r#"avg_over_time(node_load1[5m:30s])"#,
            r#"max(node_load1) - min(node_load1)"#,
            r#"node_load1 @ end()"#,
            r#"exp(node_load1) > 2"#,
            r#"sqrt(node_memory_MemFree_bytes) < 50000"#,
            r#"ln(node_load5) * 10"#,
            r#"count(node_cpu_seconds_total) by (mode)"#,
        ]
        .map(str::to_owned),
    );
    q
}

fn get(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let r = reqwest::blocking::get(format!("{base}{path}?{qs}")).expect("query");
    r.json().expect("json")
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn value(v: &Value) -> f64 {
    match v.as_str() {
        Some("NaN") => f64::NAN,
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s.parse().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

/// Compares two `data` objects; returns a description of the first difference.
fn diff(p: &Value, s: &Value) -> Option<String> {
    if p["resultType"] != s["resultType"] {
        return Some(format!("resultType {} vs {}", p["resultType"], s["resultType"]));
    }
    if p["resultType"] == "scalar" {
        return (!close(value(&p["result"][1]), value(&s["result"][1]))).then(|| format!("{p} vs {s}"));
    }
    let key = |x: &Value| x["metric"].to_string();
    let (mut pr, mut sr) = (p["result"].as_array()?.clone(), s["result"].as_array()?.clone());
    pr.sort_by_key(key);
    sr.sort_by_key(key);
    if pr.len() != sr.len() {
        return Some(format!("{} series vs {}", pr.len(), sr.len()));
    }
    for (a, b) in pr.iter().zip(&sr) {
        if a["metric"] != b["metric"] {
            return Some(format!("labels {} vs {}", a["metric"], b["metric"]));
        }
        let pts = |x: &Value| -> Vec<(f64, f64)> {
            match x.get("values") {
                Some(v) => v.as_array().map_or(vec![], |v| {
                    v.iter().map(|p| (p[0].as_f64().unwrap_or(0.0), value(&p[1]))).collect()
                }),
                None => vec![(x["value"][0].as_f64().unwrap_or(0.0), value(&x["value"][1]))],
            }
        };
        let (pa, pb) = (pts(a), pts(b));
        if pa.len() != pb.len() || pa.iter().zip(&pb).any(|(x, y)| x.0 != y.0 || !close(x.1, y.1)) {
            return Some(format!("series {}: {pa:?} vs {pb:?}", a["metric"]));
        }
    }
    None
}

#[test]
fn same_answers_as_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let strata = start_strata(tmp.path().join("strata"), &[]).unwrap();
    let prom = Peer::start(PeerSpec::new(
        System::Prometheus,
        peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
        tmp.path().join("prom"),
        free_port().unwrap(),
    ))
    .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // 1.234 s off the minute grid, so subquery steps (multiples of their step) never
    // coincide with a sample either
    let t0 = (now / 15_000 - ROUNDS - 1) * 15_000 + 1_234;
    let mut fleet =
        Fleet::new(FleetConfig { hosts: 3, series_per_host: 150, seed: 11, interval_ms: 15_000, churn: 0.0 });
    let (ws, wp) =
        (RemoteWriter::new(strata.write_url()).unwrap(), RemoteWriter::new(prom.write_url()).unwrap());
    for r in 0..ROUNDS {
        for body in encode_requests(fleet.scrape(t0 + r * 15_000), 1000) {
            assert_eq!(ws.send(body.clone()).status, 204);
            let a = wp.send(body);
            assert!(a.status < 300, "prometheus: {} {}", a.status, a.message);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    // query times 2.5 s off the scrape grid
    let end = t0 + (ROUNDS - 2) * 15_000 + 2_500;
    let start = end - 30 * 60_000;
    let secs = |t: i64| format!("{}.{:03}", t / 1000, t % 1000);
    let mut failures = Vec::new();
    let qs = queries();
    assert!(qs.len() >= 100, "{} queries", qs.len());
    let mut asked = 0;
    for q in &qs {
        let inst = [("query", q.clone()), ("time", secs(end))];
        let range =
            [("query", q.clone()), ("start", secs(start)), ("end", secs(end)), ("step", "60".to_owned())];
        for (path, params) in [("/api/v1/query", &inst[..]), ("/api/v1/query_range", &range[..])] {
            let p = get(&prom.base_url, path, params);
            let s = get(&strata.base_url, path, params);
            asked += 1;
            if p["status"] != "success" {
                // a query Prometheus rejects must be rejected with the same error type
                if s["errorType"] != p["errorType"] {
                    failures.push(format!("{path} {q}: prometheus error {} vs strata {}", p["error"], s));
                }
                continue;
            }
            if s["status"] != "success" {
                failures.push(format!("{path} {q}: strata error {}", s["error"]));
                continue;
            }
            if let Some(d) = diff(&p["data"], &s["data"]) {
                failures.push(format!("{path} {q}: {d}"));
            }
        }
    }
    // the metadata endpoints answer the same too
    for (path, params) in [
        ("/api/v1/series", vec![("match[]", "node_load1".to_owned())]),
        (
            "/api/v1/series",
            vec![("match[]", r#"node_cpu_seconds_total{cpu="1",mode=~"user|idle"}"#.to_owned())],
        ),
        ("/api/v1/labels", vec![]),
        ("/api/v1/labels", vec![("match[]", "node_network_up".to_owned())]),
        ("/api/v1/label/instance/values", vec![]),
        ("/api/v1/label/mode/values", vec![("match[]", "node_cpu_seconds_total".to_owned())]),
        ("/api/v1/label/__name__/values", vec![("start", secs(start)), ("end", secs(end))]),
    ] {
        let p = get(&prom.base_url, path, &params);
        let s = get(&strata.base_url, path, &params);
        asked += 1;
        let sorted = |v: &Value| {
            let mut a = v["data"].as_array().cloned().unwrap_or_default();
            a.sort_by_key(|x| x.to_string());
            a
        };
        if p["status"] != "success" || sorted(&p) != sorted(&s) {
            failures.push(format!("{path} {params:?}: {} vs {}", p["data"], s["data"]));
        }
    }
    println!("differential: {} of {asked} queries agree", asked - failures.len());
    assert!(failures.is_empty(), "{} of {asked} differ:\n{}", failures.len(), failures.join("\n"));
}
