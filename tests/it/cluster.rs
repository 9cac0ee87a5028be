//! Black-box: the local cluster of `deploy/local/cluster.sh` (3 storage nodes RF=3, 2
//! ingestors) loses nothing acknowledged when a storage node is SIGKILLed during a steady
//! write and restarted; it grows by two nodes (`add`), balances its replicas, and shrinks
//! again (`decommission` of a founder) with every sample readable through both queriers.

use std::time::{Duration, Instant};

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::LocalCluster;

const SERIES: usize = 300;
const ROUNDS: i64 = 240; // 1 h at 15 s

/// A GET of `path` on the node's HTTP API, as JSON, or the body (or transport error) that was not.
fn api(port: u16, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value, String> {
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let body = reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}?{qs}"))
        .and_then(|r| r.text())
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|_| body)
}

/// Raw samples of `job="node"` in the 2 h before `at_s` on one node, counted per metric name
/// (`count_over_time` drops the name, so one query over every name would be a duplicate-labelset
/// error, as in Prometheus).
fn sample_count(port: u16, at_s: f64) -> Result<f64, String> {
    let at = at_s.to_string();
    let names = api(port, "/api/v1/label/__name__/values", &[("match[]", "{job=\"node\"}".into())])?;
    let names = names["data"].as_array().ok_or_else(|| names.to_string())?.clone();
    let mut total = 0.0;
    for name in names {
        let q = format!("sum(count_over_time({{__name__={name},job=\"node\"}}[2h]))");
        let got = api(port, "/api/v1/query", &[("query", q), ("time", at.clone())])?;
        total += got["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| got.to_string())?;
    }
    Ok(total)
}

#[test]
fn sigkilled_storage_node_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::up(tmp.path().join("cluster"), 8);
    let writers: Vec<RemoteWriter> = (1..=2)
        .map(|i| {
            RemoteWriter::new(format!("http://127.0.0.1:{}/api/v1/write", cluster.ingest(i - 1)))
                .expect("writer")
        })
        .collect();
    let mut fleet = Fleet::new(FleetConfig::steady(1, SERIES, 7));
    let now = strata_bench::now_ms();
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
    for node in 1..=3 {
        // a restarted node listens on a new port
        let http = cluster.http(node);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = sample_count(http, at);
            if got == Ok(expected) {
                break;
            }
            assert!(Instant::now() < deadline, "storage {node}: {got:?} samples, expected {expected}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!("{sent} requests acknowledged, {retried} retries while storage 2 was down or rejoining");
}

/// Writes `rounds` scrapes of `SERIES` series through the ingestors, each acknowledged.
fn write_rounds(cluster: &LocalCluster, start: i64, rounds: i64) {
    let writers: Vec<RemoteWriter> = (0..2)
        .map(|i| {
            RemoteWriter::new(format!("http://127.0.0.1:{}/api/v1/write", cluster.ingest(i))).expect("writer")
        })
        .collect();
    let mut fleet = Fleet::new(FleetConfig::steady(1, SERIES, 7));
    for round in 0..rounds {
        for (i, body) in encode_requests(fleet.scrape(start + round * 15_000), 500).into_iter().enumerate() {
            let ack = writers[i % 2].send(body);
            assert_eq!(ack.status, 204, "round {round}: {}", ack.message);
        }
    }
}

/// The cluster status a querier serves, once no move is in flight and `ok` holds.
fn settled_status(port: u16, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let s = api(port, "/api/v1/cluster/status", &[]);
        if let Ok(s) = &s
            && s["data"]["moves"].as_array().is_some_and(|m| m.is_empty())
            && ok(&s["data"])
        {
            return s["data"].clone();
        }
        assert!(Instant::now() < deadline, "the cluster never settled with {what}: {s:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Replicas per active node, from a status.
fn active_replicas(status: &serde_json::Value) -> Vec<u64> {
    status["nodes"]
        .as_array()
        .map(|n| n.iter().filter(|n| n["state"] == "active").filter_map(|n| n["replicas"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn grows_by_two_nodes_and_shrinks_by_a_founder_with_every_sample_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let extra = strata_bench::peers::lease_ports(2).expect("ports");
    let ports = format!("{} {}", extra[0].port, extra[1].port);
    let cluster =
        LocalCluster::up_with(tmp.path().join("cluster"), 8, &[("EXTRA_GRPC_PORTS", ports.as_str())]);
    let rounds = 40;
    let now = strata_bench::now_ms();
    let start = now - rounds * 15_000;
    write_rounds(&cluster, start, rounds);
    let expected = (SERIES as i64 * rounds) as f64;
    let at = (now as f64) / 1000.0 + 1.0;
    let readable = |what: &str| {
        for q in 0..2 {
            let got = sample_count(cluster.query(q), at);
            assert_eq!(got, Ok(expected), "querier {q} {what}");
        }
    };
    readable("before growing");

    cluster.script(&["add"]);
    cluster.script(&["add"]);
    let q = cluster.query(0);
    let grown = settled_status(q, "24 replicas balanced over 5 nodes", |s| {
        let r = active_replicas(s);
        r.len() == 5
            && r.iter().sum::<u64>() == 24
            && r.iter().max().unwrap_or(&0) - r.iter().min().unwrap_or(&0) <= 1
    });
    assert_eq!(grown["under_replicated"], 0, "{grown}");
    readable("after two nodes joined");

    // a founder (a voter of the metadata group) drained, waited for, stopped
    cluster.script(&["decommission", "1"]);
    let shrunk = settled_status(q, "node 1 decommissioned", |s| {
        let r = active_replicas(s);
        r.len() == 4 && r.iter().sum::<u64>() == 24
    });
    let node1 = &shrunk["nodes"].as_array().expect("nodes")[0];
    assert_eq!(
        (node1["state"].as_str(), node1["replicas"].as_u64(), node1["meta"].as_bool()),
        (Some("decommissioned"), Some(0), Some(false)),
        "{shrunk}"
    );
    readable("after a founder was decommissioned");
    // the storage pods' preStop hook: returns at once for a node that is not draining,
    // and for a draining one only once it holds nothing
    cluster.script(&["admin", "wait-drained", "storage-5"]);
    cluster.script(&["admin", "decommission", "storage-5"]);
    cluster.script(&["admin", "wait-drained", "storage-5"]);
    let status = api(q, "/api/v1/cluster/status", &[]).expect("status");
    let node5 = status["data"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "storage-5")
        .expect("storage-5")
        .clone();
    assert_eq!(
        (node5["state"].as_str(), node5["replicas"].as_u64()),
        (Some("decommissioned"), Some(0)),
        "{node5}"
    );
    readable("after a joiner was drained");
    // and the cluster still takes writes
    write_rounds(&cluster, now, 1);
}
