//! HA-pair deduplication (`--ha-tracker.enable`, Mimir's HA tracker): two real Prometheus
//! 2.42 replicas scraping one node_exporter, each writing to its own ingestor of the local
//! cluster, are stored once (the elected replica's samples, without the replica label);
//! killing the elected one hands the election to the other within the failover timeout;
//! and on `strata standalone`, the rules one request at a time: 202 for the other replica,
//! the per-tenant label names and cluster limit of the runtime configuration, the election
//! kept across a restart.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_suite::{LocalCluster, Peer, PeerSpec, System, api_data_at, peer_bin, start_strata};

/// A remote-write body of two series `ha_test{instance}` = `v` at `t`, both with `labels`.
fn body(labels: &[(&str, &str)], v: f64, t: i64) -> Vec<u8> {
    let series = |instance: &str| {
        let mut l = vec![
            pb::Label { name: "__name__".into(), value: "ha_test".into() },
            pb::Label { name: "instance".into(), value: instance.into() },
        ];
        l.extend(labels.iter().map(|(n, v)| pb::Label { name: (*n).into(), value: (*v).into() }));
        l.sort_by(|a, b| a.name.cmp(&b.name));
        pb::TimeSeries {
            labels: l,
            samples: vec![pb::Sample { value: v, timestamp: t }],
            ..Default::default()
        }
    };
    let req = pb::WriteRequest { timeseries: vec![series("one"), series("two")], metadata: Vec::new() };
    snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&req)).unwrap()
}

/// POSTs a remote write as `tenant`: the status and the body.
fn write(base: &str, tenant: &str, body: Vec<u8>) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The stored `ha_test` series of `tenant` with their values, by label set.
fn stored(base: &str, tenant: &str) -> Vec<(Value, Vec<f64>)> {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/query?query=ha_test%5B1h%5D"))
        .header("X-Scope-OrgID", tenant)
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], "success", "{v}");
    let mut out: Vec<(Value, Vec<f64>)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values =
                s["values"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap().parse().unwrap());
            (s["metric"].clone(), values.collect())
        })
        .collect();
    out.sort_by_key(|(m, _)| m.to_string());
    out
}

#[test]
fn one_replica_of_each_cluster_is_stored_on_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("runtime.yml");
    // team-x names its pairs with other labels and may have one cluster; team-y does not
    // deduplicate
    std::fs::write(
        &runtime,
        "overrides:\n  team-x:\n    ha_cluster_label: prom_cluster\n    ha_replica_label: prom_replica\n    \
         ha_max_clusters: 1\n  team-y:\n    accept_ha_samples: false\n",
    )
    .unwrap();
    let runtime_flag = format!("--runtime-config.file={}", runtime.display());
    let flags = ["--auth.multitenancy-enabled", "--ha-tracker.enable", runtime_flag.as_str()];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let (a, b) = ([("cluster", "prod"), ("__replica__", "a")], [("cluster", "prod"), ("__replica__", "b")]);
    let mut s = start_strata(tmp.path().join("s"), &flags).unwrap();
    let base = s.base_url.clone();
    assert_eq!(write(&base, "team-z", body(&a, 1.0, now)).0, 204);
    let (code, msg) = write(&base, "team-z", body(&b, 2.0, now + 1));
    assert_eq!((code, msg.trim()), (202, "replicas did not match, rejecting sample: replica=b, elected=a"));
    assert_eq!(write(&base, "team-z", body(&a, 3.0, now + 2)).0, 204);
    // a request whose first series lacks either label is not deduplicated, and keeps them
    assert_eq!(write(&base, "team-z", body(&[("__replica__", "c")], 4.0, now + 3)).0, 204);
    let got = stored(&base, "team-z");
    let metrics: Vec<String> = got.iter().map(|(m, v)| format!("{m} {v:?}")).collect();
    assert_eq!(
        metrics,
        [
            r#"{"__name__":"ha_test","__replica__":"c","instance":"one"} [4.0]"#,
            r#"{"__name__":"ha_test","__replica__":"c","instance":"two"} [4.0]"#,
            r#"{"__name__":"ha_test","cluster":"prod","instance":"one"} [1.0, 3.0]"#,
            r#"{"__name__":"ha_test","cluster":"prod","instance":"two"} [1.0, 3.0]"#,
        ],
    );
    // another tenant's cluster of the same name is its own election
    assert_eq!(write(&base, "team-w", body(&b, 5.0, now)).0, 204);
    assert_eq!(write(&base, "team-w", body(&a, 5.0, now)).0, 202);
    // team-x: its own label names, one cluster at most
    let x = |c: &str, r: &str| [("prom_cluster", c.to_owned()), ("prom_replica", r.to_owned())];
    let xb = |c: &str, r: &str, v: f64| {
        let l = x(c, r);
        body(&[(l[0].0, &l[0].1), (l[1].0, &l[1].1)], v, now)
    };
    assert_eq!(write(&base, "team-x", xb("one", "r1", 1.0)).0, 204);
    assert_eq!(write(&base, "team-x", xb("one", "r2", 1.0)).0, 202);
    let (code, msg) = write(&base, "team-x", xb("two", "r1", 1.0));
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("err-mimir-too-many-ha-clusters") && msg.contains("(limit: 1)"), "{msg}");
    // cluster/__replica__ mean nothing to team-x
    assert_eq!(write(&base, "team-x", body(&b, 1.0, now + 10)).0, 204);
    // team-y keeps both replicas, labels and all
    assert_eq!(write(&base, "team-y", body(&a, 1.0, now)).0, 204);
    assert_eq!(write(&base, "team-y", body(&b, 1.0, now)).0, 204);
    assert_eq!(stored(&base, "team-y").len(), 4);
    let m = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
    assert!(m.contains(r#"strata_deduped_samples_total{tenant="team-z",cluster="prod"} 2"#), "{m}");
    assert!(m.contains(r#"strata_discarded_samples_total{tenant="team-x",reason="too_many_ha_clusters"} 2"#));
    // the election is in the metadata group's state: a restarted node keeps it
    s.stop(Duration::from_secs(30)).unwrap();
    let s = start_strata(tmp.path().join("s"), &flags).unwrap();
    assert_eq!(write(&s.base_url, "team-z", body(&b, 6.0, now + 20)).0, 202);
    assert_eq!(write(&s.base_url, "team-z", body(&a, 6.0, now + 20)).0, 204);
}

/// The timestamps (ms) of `node_load1` samples a Prometheus-API server at `base` holds
/// between `from` and `to` (ms), read as `tenant` when given.
fn timestamps(base: &str, from: i64, to: i64) -> BTreeSet<i64> {
    let range = ((to - from + 999) / 1000).max(1);
    let q = format!("/api/v1/query?query=node_load1%5B{range}s%5D&time={}", to as f64 / 1000.0);
    let data = api_data_at(base, &q).unwrap();
    let mut out = BTreeSet::new();
    for s in data["result"].as_array().unwrap() {
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            if t > from {
                out.insert(t);
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn prometheus_ha_pair_is_stored_once_and_fails_over() {
    let tmp = tempfile::tempdir().unwrap();
    let node_exporter = strata_suite::NodeExporter::start(tmp.path()).unwrap();
    let ne_port = node_exporter.port;
    let (update_s, failover_s) = (2, 5);
    let flags = format!(
        "--ha-tracker.enable --ha-tracker.update-timeout {update_s}s --ha-tracker.failover-timeout {failover_s}s"
    );
    let cluster = LocalCluster::up_with(tmp.path().join("cluster"), 4, &[("INGESTOR_FLAGS", flags.as_str())]);
    let querier = format!("http://127.0.0.1:{}", cluster.query(0));
    // replica a writes through ingestor 1, replica b through ingestor 2: only the metadata
    // group's election can make them agree
    let start_replica = |name: &str, ingestor: usize| -> Peer {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{cluster: k8s, __replica__: {name}}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n\
             remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s}}\n",
            cluster.ingest(ingestor)
        );
        let mut spec = PeerSpec::new(
            System::Prometheus,
            peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
            tmp.path().join(name),
        );
        spec.prometheus_config = Some(config);
        Peer::start(spec).unwrap()
    };
    let mut replicas = [start_replica("a", 0), start_replica("b", 1)];
    let begin = now_ms();
    // wait for 15 s of data
    let deadline = Instant::now() + Duration::from_secs(120);
    while timestamps(&querier, begin, now_ms()).len() < 15 {
        assert!(Instant::now() < deadline, "no node_load1 stored within 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    // one series, with the cluster label and without the replica label
    let series = api_data_at(&querier, "/api/v1/series?match[]=node_load1").unwrap();
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["cluster"], "k8s");
    assert!(series[0].get("__replica__").is_none(), "{series:?}");
    // exactly one replica's samples: every stored timestamp is the elected one's, none the
    // other's (the two scrape at different offsets)
    let (from, to) = (begin, now_ms() - 3000);
    let ours = timestamps(&querier, from, to);
    let theirs: Vec<BTreeSet<i64>> = replicas.iter().map(|p| timestamps(&p.base_url, from, to)).collect();
    assert!(theirs[0].is_disjoint(&theirs[1]), "the replicas scraped at the same instants");
    let elected = theirs.iter().position(|t| ours.is_subset(t)).unwrap_or_else(|| {
        panic!("stored samples are not one replica's: {ours:?} vs {theirs:?}");
    });
    let survivor = 1 - elected;
    let missing = theirs[elected].iter().filter(|t| **t > from + 5000 && !ours.contains(t)).count();
    assert_eq!(
        missing, 0,
        "samples of the elected replica missing: stored {ours:?}, its {:?}",
        theirs[elected]
    );
    eprintln!(
        "elected replica {}: {} samples stored in {} s",
        ["a", "b"][elected],
        ours.len(),
        (to - from) / 1000
    );
    // kill -9 the elected replica: the other takes over
    let last_elected = *timestamps(&querier, from, now_ms()).last().unwrap();
    replicas[elected].kill9();
    let killed = now_ms();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_survivor = loop {
        let after = timestamps(&querier, killed - 10_000, now_ms());
        let theirs = timestamps(&replicas[survivor].base_url, killed - 10_000, now_ms());
        if let Some(t) = after.iter().find(|t| theirs.contains(t)) {
            break *t;
        }
        assert!(Instant::now() < deadline, "the surviving replica was never elected");
        std::thread::sleep(Duration::from_millis(250));
    };
    let gap = first_survivor - last_elected;
    eprintln!(
        "killed at +{} ms after the elected replica's last stored sample; the survivor's first stored sample \
         {gap} ms after it (failover timeout {failover_s} s, update timeout {update_s} s, scrape interval 1 s)",
        killed - last_elected
    );
    // the election stood unrenewed for the failover timeout at most, renewed at most
    // update_timeout before the last sample, then the survivor's next request took it
    assert!(gap <= (failover_s + 2) * 1000, "takeover gap {gap} ms");
    // from the takeover on, every scrape of the survivor is stored
    std::thread::sleep(Duration::from_secs(6));
    let (from, to) = (first_survivor, now_ms() - 3000);
    let ours = timestamps(&querier, from, to);
    let its = timestamps(&replicas[survivor].base_url, from, to);
    assert!(its.len() >= 3, "{its:?}");
    assert_eq!(ours, its, "after the takeover the stored samples are the survivor's, all of them");
    let m = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", cluster.ingest(survivor)))
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains(r#"strata_deduped_samples_total{tenant="anonymous",cluster="k8s"}"#), "{m}");
    assert!(
        m.contains(r#"strata_ha_tracker_elected_replica_changes_total{tenant="anonymous",cluster="k8s"} 1"#)
    );
    drop(node_exporter);
}
