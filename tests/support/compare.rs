//! Comparing the answers of two Prometheus-API servers: the differential query set and a
//! tolerant comparison of `data` objects (used against Prometheus, and between a cluster's
//! queriers and standalone).

use serde_json::Value;

/// The differential query set: node_exporter-shaped metrics through every function,
/// aggregation and operator family (each also asked as a range query).
pub fn queries() -> Vec<String> {
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

/// The series and label requests of the differential set (path, parameters); the last one
/// bounded by `[start, end]` (seconds as the API takes them).
pub fn metadata_requests(start: &str, end: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        ("/api/v1/series", vec![("match[]", "node_load1".to_owned())]),
        (
            "/api/v1/series",
            vec![("match[]", r#"node_cpu_seconds_total{cpu="1",mode=~"user|idle"}"#.to_owned())],
        ),
        ("/api/v1/labels", vec![]),
        ("/api/v1/labels", vec![("match[]", "node_network_up".to_owned())]),
        ("/api/v1/label/instance/values", vec![]),
        ("/api/v1/label/mode/values", vec![("match[]", "node_cpu_seconds_total".to_owned())]),
        ("/api/v1/label/__name__/values", vec![("start", start.to_owned()), ("end", end.to_owned())]),
    ]
}

/// GETs `base` + `path` with `params`, as JSON.
pub fn get(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let r = reqwest::blocking::get(format!("{base}{path}?{qs}")).expect("query");
    r.json().expect("json")
}

pub use strata_difffuzz::compare::{close, value};

/// Compares two `data` objects; returns a description of the first difference.
pub fn diff(p: &Value, s: &Value) -> Option<String> {
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
