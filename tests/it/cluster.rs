//! Black-box: the local cluster of `deploy/local/cluster.sh` (3 storage nodes RF=3, 2
//! ingestors) loses nothing acknowledged when a storage node is SIGKILLed during a steady
//! write and restarted.

use std::time::{Duration, Instant};

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::LocalCluster;

const SERIES: usize = 300;
const ROUNDS: i64 = 240; // 1 h at 15 s

fn query_count(port: u16, query: &str, at_s: f64) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/api/v1/query");
    let body: serde_json::Value = reqwest::blocking::Client::new()
        .post(url)
        .form(&[("query", query), ("time", &at_s.to_string())])
        .send()
        .ok()?
        .json()
        .ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn sigkilled_storage_node_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::up(tmp.path().join("cluster"), 8);
    let (http, ingest) = (cluster.http, cluster.ingest);

    let writers: Vec<RemoteWriter> = (1..=2)
        .map(|i| {
            RemoteWriter::new(format!("http://127.0.0.1:{}/api/v1/write", ingest[i - 1])).expect("writer")
        })
        .collect();
    let mut fleet = Fleet::new(FleetConfig {
        hosts: 1,
        series_per_host: SERIES,
        seed: 7,
        interval_ms: 15_000,
        churn: 0.0,
    });
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let start = now - ROUNDS * 15_000;
    let mut sent = 0usize;
    let mut retried = 0usize;
    for round in 0..ROUNDS {
        if round == ROUNDS / 3 {
            cluster.script(&["kill", "2"]);
        }
        if round == 2 * ROUNDS / 3 {
            cluster.script(&["start", "2"]);
        }
        let series = fleet.scrape(start + round * 15_000);
        for body in encode_requests(series, 500) {
            // like Prometheus: a 5xx is retried until acknowledged; anything else is a failure
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ack = writers[(sent + retried) % 2].send(body.clone());
                if ack.status == 204 {
                    break;
                }
                assert!(
                    ack.status == 0 || ack.status >= 500,
                    "round {round}: {} {}",
                    ack.status,
                    ack.message
                );
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no acknowledgement within 60 s: {}",
                    ack.message
                );
                retried += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            sent += 1;
        }
    }
    // every acknowledged sample, on every replica: count the raw samples on each node
    let expected = (SERIES as i64 * ROUNDS) as f64;
    let at = (now as f64) / 1000.0 + 1.0;
    let q = "sum(count_over_time({job=\"node\"}[2h]))";
    for node in 1..=3u16 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = query_count(http + node, q, at);
            if got == Some(expected) {
                break;
            }
            assert!(Instant::now() < deadline, "storage {node}: {got:?} samples, expected {expected}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!("{sent} requests acknowledged, {retried} retries while storage 2 was down or rejoining");
}
