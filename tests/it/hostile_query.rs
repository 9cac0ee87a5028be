//! Hostile queries against the real `strata standalone`: each one answers with a 4xx whose
//! message names the limit it hit, the node stays up (`/-/healthy`) and keeps answering
//! normal queries, and the series written before are all still there, also after a restart.

use std::time::{Duration, Instant};

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::{LocalCluster, Peer, api_data, start_strata};

const SERIES: usize = 50;
const RESOLUTION: &str = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";
const TOO_DEEP: &str = "invalid parameter \"query\": query nesting too deep";

/// Peak resident memory of a process, from `/proc` (0 where there is none).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// An attack: what it is, the path, the form, the status and a part of the error expected.
type Attack<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, u16, &'a str);

/// Writes 5 minutes of `SERIES` node_exporter series (ending now) to the remote-write `url`,
/// every request acknowledged.
fn write_history(url: &str) {
    let writer = RemoteWriter::new(url).expect("writer");
    let mut fleet = Fleet::new(FleetConfig::steady(1, SERIES, 7));
    let now = strata_bench::now_ms();
    for round in 0..20 {
        for body in encode_requests(fleet.scrape(now - (20 - round) * 15_000), 2000) {
            assert_eq!(writer.send(body).status, 204);
        }
    }
}

fn series_count(peer: &Peer) -> usize {
    let v = api_data(peer, "/api/v1/series?match[]=%7Bjob%3D%22node%22%7D").expect("series");
    v.as_array().map_or(0, Vec::len)
}

/// The hostile queries, with the answer each must get.
fn attacks() -> Vec<Attack<'static>> {
    let deep = |open: &str, close: &str, n: usize| format!("{}up{}", open.repeat(n), close.repeat(n));
    let q = |query: String| vec![("query", query)];
    let range = |start: &str, end: &str, step: &str| {
        vec![("query", "up".to_owned()), ("start", start.into()), ("end", end.into()), ("step", step.into())]
    };
    // (900k parentheses URL-encode to 5.4 MB: over the 2 MiB form body limit, refused with 413
    // before the body is read, which a client may see as a closed connection)
    vec![
        ("subquery 100y:1ms", "/api/v1/query", q("max_over_time(up[100y:1ms])".into()), 400, RESOLUTION),
        ("range ±9e15 step 0.5", "/api/v1/query_range", range("-9e15", "9e15", "0.5"), 400, RESOLUTION),
        (
            "time past int64",
            "/api/v1/query_range",
            range("-1e300", "1", "1"),
            400,
            "invalid parameter \"start\"",
        ),
        ("100k parentheses", "/api/v1/query", q(deep("(", ")", 100_000)), 400, TOO_DEEP),
        ("150k abs(", "/api/v1/query", q(deep("abs(", ")", 150_000)), 400, TOO_DEEP),
        ("100k unary minus", "/api/v1/query", q(format!("{}up", "- ".repeat(100_000))), 400, TOO_DEEP),
        ("1+1+…+1", "/api/v1/query", q(format!("1{}", "+1".repeat(100_000))), 400, TOO_DEEP),
        ("deep subqueries", "/api/v1/query", q(format!("up{}", "[1m:1m]".repeat(5_000))), 400, TOO_DEEP),
        ("format 100k parentheses", "/api/v1/format_query", q(deep("(", ")", 100_000)), 400, TOO_DEEP),
        ("format at the limit", "/api/v1/format_query", q(deep("(", ")", 500)), 200, ""),
        (
            "huge regex",
            "/api/v1/query",
            q(r#"up{instance=~"(\\w{1,1000}){1,100}"}"#.into()),
            400,
            "illegal regex",
        ),
    ]
}

#[test]
fn hostile_queries_leave_the_node_up_and_the_data_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let strata = start_strata(dir.clone(), &[]).unwrap();
    write_history(&strata.write_url());
    assert_eq!(series_count(&strata), SERIES);

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let base = strata.base_url.clone();
    let attacks = attacks();
    let pid = strata.pid().unwrap();
    for (what, path, form, status, msg) in attacks {
        let started = Instant::now();
        let resp = http.post(format!("{base}{path}")).form(&form).send().unwrap();
        let got = resp.status().as_u16();
        let v: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
        let took = started.elapsed();
        eprintln!("{what}: {got} in {took:?}, peak RSS {} MiB", peak_rss_bytes(pid) >> 20);
        assert_eq!(got, status, "{what}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains(msg), "{what}: {v}");
        assert!(took < Duration::from_secs(10), "{what} took {took:?}");
        let healthy = http.get(format!("{base}/-/healthy")).send().unwrap();
        assert!(healthy.status().is_success(), "{what}: not healthy");
        assert_eq!(series_count(&strata), SERIES, "after {what}");
    }
    assert!(peak_rss_bytes(pid) < 1 << 30, "peak RSS {} MiB", peak_rss_bytes(pid) >> 20);

    // restarted, every series is still there
    drop(strata);
    let strata = start_strata(dir, &[]).unwrap();
    assert_eq!(series_count(&strata), SERIES);
}

/// The same queries through a querier of the local cluster: the querier answers each as
/// standalone does, and no storage node dies from what it forwards (pushdown on).
#[test]
fn hostile_queries_through_a_querier_harm_no_storage_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::up(tmp.path().join("cluster"), 4);
    write_history(&format!("http://127.0.0.1:{}/api/v1/write", cluster.ingest(0)));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let querier = format!("http://127.0.0.1:{}", cluster.query(0));
    let count = || {
        let v: serde_json::Value = http
            .post(format!("{querier}/api/v1/query"))
            .form(&[("query", "count({job=\"node\"})")])
            .send()
            .and_then(|r| r.json())
            .unwrap_or(serde_json::Value::Null);
        v["data"]["result"][0]["value"][1].as_str().map(str::to_owned)
    };
    let before = count();
    assert!(before.is_some(), "no data through the querier");
    let nodes: Vec<u16> = (1..=3).map(|n| cluster.http(n)).collect();
    for (what, path, form, status, msg) in attacks() {
        let resp = http.post(format!("{querier}{path}")).form(&form).send().expect("answered");
        let got = resp.status().as_u16();
        let v: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
        assert_eq!(got, status, "{what}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains(msg), "{what}: {v}");
        for (n, port) in (1..=3).zip(&nodes) {
            let health = format!("http://127.0.0.1:{port}/-/healthy");
            assert!(
                http.get(&health).send().is_ok_and(|r| r.status().is_success()),
                "storage node {n} down after {what}"
            );
        }
        assert_eq!(count(), before, "after {what}");
    }
}
