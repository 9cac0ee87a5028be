//! Two ingestors' scrape managers sharing one job's targets over the ring: every target
//! scraped by exactly one of them; when one leaves the other takes its targets within an
//! interval, and when it comes back they move back, without staleness markers from the
//! ingestor that hands a target over.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_api::{CommitFuture, Writer};
use strata_bench::exposition::{ExpositionServer, Reply};
use strata_scrape::ring::Ring;
use strata_scrape::{ManagerConfig, ScrapeManager};
use strata_tsdb::{ApplyOutcome, Clock, Labels, SeriesBatch, SystemClock};
use tokio::sync::watch;

/// `up` samples written, as (target id, timestamp ms, stale?).
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, i64, bool)>>);

impl Writer for Recorder {
    fn batch(&self) -> SeriesBatch {
        SeriesBatch::new(1)
    }

    fn commit(&self, batch: SeriesBatch) -> CommitFuture<'_> {
        for (_, rec) in batch.into_records() {
            for s in strata_tsdb::record::decode(&rec).unwrap() {
                let l = Labels::decode(s.labels).unwrap();
                if l.get("__name__") != Some("up") {
                    continue;
                }
                let id = l.get("id").unwrap().to_string();
                for (t, v) in s.samples {
                    self.0.lock().push((id.clone(), t, strata_tsdb::is_stale_marker(v)));
                }
            }
        }
        Box::pin(async { Ok(ApplyOutcome::default()) })
    }

    fn elect(&self, _claim: strata_api::HaClaim) -> strata_api::ElectFuture<'_> {
        Box::pin(async { Err(strata_api::WriteError::Invalid("scrapes claim no HA election".into())) })
    }
}

impl Recorder {
    /// Targets with a sample at or after `since` (ms).
    fn ids_since(&self, since: i64) -> BTreeSet<String> {
        self.0.lock().iter().filter(|(_, t, _)| *t >= since).map(|(i, _, _)| i.clone()).collect()
    }
}

const TARGETS: usize = 16;

async fn manager(file: &std::path::Path, ring: watch::Receiver<Ring>, rec: Arc<Recorder>) -> ScrapeManager {
    ScrapeManager::start(
        ManagerConfig {
            config_file: Some(file.to_path_buf()),
            ring: Some(ring),
            metadata: None,
            listen_addr: None,
            clock: None,
        },
        rec,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_shared_and_move_when_an_ingestor_leaves_or_joins() {
    let server = ExpositionServer::start(Arc::new(|_: &str| Reply::text("m 1\n"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.yml");
    let mut cfg = String::from(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: j\n    static_configs:\n",
    );
    for i in 0..TARGETS {
        cfg.push_str(&format!(
            "      - {{targets: ['{}'], labels: {{id: 't{i}', __param_id: '{i}'}}}}\n",
            server.addr
        ));
    }
    std::fs::write(&file, cfg).unwrap();
    let both = || ["a".to_string(), "b".to_string()];
    let (ring_a, rx_a) = watch::channel(Ring::new("a", both()));
    let (_ring_b, rx_b) = watch::channel(Ring::new("b", both()));
    let (rec_a, rec_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = manager(&file, rx_a, rec_a.clone()).await;
    let b = manager(&file, rx_b, rec_b.clone()).await;

    // shared: disjoint, covering, both busy
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let since = SystemClock.now_ms() - 1500;
    let (ids_a, ids_b) = (rec_a.ids_since(since), rec_b.ids_since(since));
    assert!(ids_a.is_disjoint(&ids_b), "{ids_a:?} {ids_b:?}");
    assert_eq!(ids_a.len() + ids_b.len(), TARGETS);
    assert!(!ids_a.is_empty() && !ids_b.is_empty());

    // b leaves: a takes everything within an interval; b marked nothing stale
    b.stop().await;
    let left = SystemClock.now_ms();
    ring_a.send_replace(Ring::new("a", ["a".to_string()]));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(rec_a.ids_since(SystemClock.now_ms() - 1500).len(), TARGETS);
    assert!(rec_b.0.lock().iter().all(|(_, _, stale)| !stale));
    let last_b: BTreeMap<String, i64> = rec_b.0.lock().iter().fold(BTreeMap::new(), |mut m, (i, t, _)| {
        let e = m.entry(i.clone()).or_insert(*t);
        *e = (*e).max(*t);
        m
    });
    for (id, last) in &last_b {
        let first_a = rec_a
            .0
            .lock()
            .iter()
            .filter(|(i, t, _)| i == id && *t > *last)
            .map(|(_, t, _)| *t)
            .min()
            .unwrap();
        assert!(first_a - last <= 2000, "{id}: gap of {} ms at the handover", first_a - last);
        assert!(first_a >= left - 1000, "{id} was not scraped by a before b left");
    }

    // b comes back: its targets move back, a hands them over quietly
    let (_ring_b, rx_b) = watch::channel(Ring::new("b", both()));
    let b = manager(&file, rx_b, rec_b.clone()).await;
    ring_a.send_replace(Ring::new("a", both()));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let since = SystemClock.now_ms() - 1500;
    let (ids_a, ids_b) = (rec_a.ids_since(since), rec_b.ids_since(since));
    assert!(ids_a.is_disjoint(&ids_b), "{ids_a:?} {ids_b:?}");
    assert_eq!(ids_a.len() + ids_b.len(), TARGETS);
    assert!(rec_a.0.lock().iter().all(|(_, _, stale)| !stale), "a handed over without staleness markers");
    a.stop().await;
    b.stop().await;
}

/// The ring follows the peers' `/-/healthy`: a peer that answers is a member, one that
/// stops answering leaves after three failed checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_follows_peer_health() {
    let peer = ExpositionServer::start(Arc::new(|_: &str| Reply::text("Strata is Healthy.\n"))).unwrap();
    let mut cfg =
        strata_scrape::ring::MembershipConfig::new("me:1".into(), vec!["me:1".into(), peer.addr.clone()]);
    cfg.check_interval = Duration::from_millis(200);
    let mut rx = strata_scrape::ring::spawn_membership(cfg);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut want = vec!["me:1".to_string(), peer.addr.clone()];
    want.sort();
    assert_eq!(rx.borrow_and_update().members(), want);
    drop(peer);
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.borrow_and_update().members().len() != 1 {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the silent peer left the ring");
}
