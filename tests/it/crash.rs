//! A sample acknowledged with 2xx survives `kill -9`.

use std::time::Duration;

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_storage::{StorageConfig, StorageNode};
use strata_suite::{api_data, start_strata};
use strata_tsdb::{MatchOp, Matcher, STALE_NAN_BITS};

const SERIES: usize = 1000;
const ROUNDS: i64 = 480; // 2 h at 15 s

#[test]
fn acknowledged_samples_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut strata = start_strata(dir.clone(), &["--checkpoint-interval", "2s"]).unwrap();
    let writer = RemoteWriter::new(strata.write_url()).unwrap();
    let mut fleet = Fleet::new(FleetConfig::steady(1, SERIES, 42));
    let now = strata_bench::now_ms();
    let start = now - ROUNDS * 15_000;
    // expected[(labels)] = samples, in the order sent
    let mut expected: std::collections::BTreeMap<String, Vec<(i64, u64)>> = Default::default();
    for round in 0..ROUNDS {
        let mut series = fleet.scrape(start + round * 15_000);
        for (i, s) in series.iter_mut().enumerate() {
            // every 50th series goes stale at the end, as when a target disappears
            if round == ROUNDS - 1 && i % 50 == 0 {
                s.samples[0].value = f64::from_bits(STALE_NAN_BITS);
            }
            let key: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            expected
                .entry(key.join(","))
                .or_default()
                .push((s.samples[0].timestamp, s.samples[0].value.to_bits()));
        }
        for body in encode_requests(series, 2000) {
            let ack = writer.send(body);
            assert_eq!(ack.status, 204, "round {round}: {}", ack.message);
        }
    }
    // crash right after the last acknowledgement
    strata.kill9();
    assert_eq!(expected.len(), SERIES);

    // restarted, the HTTP API sees every series
    let mut strata = start_strata(dir.clone(), &[]).unwrap();
    let series = api_data(&strata, "/api/v1/series?match[]=%7Bjob%3D%22node%22%7D").unwrap();
    assert_eq!(series.as_array().unwrap().len(), SERIES);
    // crash again before any checkpoint of the restarted process could run
    strata.kill9();

    // and the node's select finds every sample, bit for bit: open the data directory as
    // `strata standalone` does (last checkpoints + the Raft log re-applied) and read it
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = StorageConfig::new(1, dir.clone());
        cfg.listen = addr;
        cfg.advertise = addr.to_string();
        cfg.peers = [(1, addr.to_string())].into();
        cfg.bootstrap = true;
        cfg.replication_factor = 1;
        let node = StorageNode::start_on(cfg, listener).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // every shard group elected and applied its whole log
        loop {
            let done = node.map().is_some_and(|m| {
                (0..m.shards).all(|s| {
                    node.raft().status(s).is_ok_and(|st| st.leader == Some(1) && st.applied == st.last_log)
                })
            });
            if done && node.db().is_some() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the node did not recover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let db = node.db().unwrap();
        let m = [Matcher::new(MatchOp::Equal, "job", "node").unwrap()];
        let mut found = 0;
        for s in db.select(&m, i64::MIN, i64::MAX) {
            let s = s.unwrap();
            let key: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            let want =
                expected.get(&key.join(",")).unwrap_or_else(|| panic!("unexpected series {}", s.labels));
            let got: Vec<(i64, u64)> = s.samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            assert_eq!(&got, want, "series {}", s.labels);
            found += 1;
        }
        assert_eq!(found, SERIES);
        node.kill().await;
    });
}
