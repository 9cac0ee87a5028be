//! Black-box: the local cluster of `deploy/local/cluster.sh` (3 storage nodes RF=3, 2
//! ingestors) loses nothing acknowledged when a storage node is SIGKILLed during a steady
//! write and restarted.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::strata_bin;

const SERIES: usize = 300;
const ROUNDS: i64 = 240; // 1 h at 15 s

/// A base port such that base+1 ..= base+n are free.
fn free_block(n: u16) -> u16 {
    let seed = std::process::id() as u16;
    for k in 0..500u16 {
        let base = 20_000 + (seed.wrapping_mul(7).wrapping_add(k * 37)) % 30_000;
        if (1..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port block");
}

struct LocalCluster {
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl LocalCluster {
    fn script(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/cluster.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().to_string();
        self.script(&["down", &dir]);
    }
}

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
    // one block: gRPC at base+1..3, HTTP at base+11..13, ingestors at base+21..22
    let grpc = free_block(22);
    let (http, ingest) = (grpc + 10, grpc + 20);
    let env = vec![
        ("STRATA_BIN".to_string(), strata_bin().expect("strata binary").to_string_lossy().to_string()),
        ("GRPC_PORT_BASE".to_string(), grpc.to_string()),
        ("HTTP_PORT_BASE".to_string(), http.to_string()),
        ("INGEST_PORTS".to_string(), format!("{} {}", ingest + 1, ingest + 2)),
        ("SHARDS".to_string(), "8".to_string()),
    ];
    let cluster = LocalCluster { dir: tmp.path().join("cluster"), env };
    let dir = cluster.dir.to_string_lossy().to_string();
    cluster.script(&["up", &dir]);

    let writers: Vec<RemoteWriter> = (1..=2)
        .map(|i| RemoteWriter::new(format!("http://127.0.0.1:{}/api/v1/write", ingest + i)).expect("writer"))
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
            cluster.script(&["kill", &dir, "2"]);
        }
        if round == 2 * ROUNDS / 3 {
            cluster.script(&["start", &dir, "2"]);
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
