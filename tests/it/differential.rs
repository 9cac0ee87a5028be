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
use strata_suite::compare::{diff, get, metadata_requests, queries};
use strata_suite::{Peer, PeerSpec, System, peer_bin, start_strata};

const ROUNDS: i64 = 240; // 1 h at 15 s

#[test]
fn same_answers_as_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let strata = start_strata(tmp.path().join("strata"), &[]).unwrap();
    let prom = Peer::start(PeerSpec::new(
        System::Prometheus,
        peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
        tmp.path().join("prom"),
    ))
    .unwrap();
    let now = strata_bench::now_ms();
    // 1.234 s off the minute grid, so subquery steps (multiples of their step) never
    // coincide with a sample either
    let t0 = (now / 15_000 - ROUNDS - 1) * 15_000 + 1_234;
    let mut fleet = Fleet::new(FleetConfig::steady(3, 150, 11));
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
    for (path, params) in metadata_requests(&secs(start), &secs(end)) {
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
