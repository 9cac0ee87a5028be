//! HA-pair deduplication of remote write, as Mimir's HA tracker: a request whose first
//! series carries both the tenant's cluster label and its replica label is stored only
//! when that replica is its cluster's elected one (the replica label is then dropped from
//! every series, so both replicas write the same series); another replica's request gets
//! 202 and nothing is stored. The election lives in the metadata group (every node taking
//! writes agrees on it) and is claimed through [`Writer::elect`]; each node keeps the
//! elections it learnt and claims again only once its copy is `update_timeout` old — to
//! renew its replica's election, or to take over from one unrenewed for
//! `failover_timeout`. A renewed copy is never wrong: a takeover needs the election
//! unrenewed for longer than `failover_timeout`, more than `update_timeout` after the last
//! renewal any node saw.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_api::{HaClaim, HaElected, WriteError, Writer};

/// A tenant's HA tracker settings (Mimir's per-tenant limits of the same meaning).
#[derive(Clone, Debug, PartialEq)]
pub struct HaLimits {
    /// Deduplicate the tenant's HA pairs (`accept_ha_samples`). Default false.
    pub accept: bool,
    /// The label naming a request's HA cluster (`ha_cluster_label`). Default `cluster`.
    pub cluster_label: String,
    /// The label naming the replica within its cluster, dropped before storage
    /// (`ha_replica_label`). Default `__replica__`.
    pub replica_label: String,
    /// Most HA clusters the tenant may have; a request of one more gets 400
    /// (`ha_max_clusters`); 0 = no limit. Default 100.
    pub max_clusters: usize,
    /// How old a node's copy of an election may get before the node claims it again
    /// (`ha_tracker_update_timeout`). Default 15 s.
    pub update_timeout: Duration,
    /// How long an election stands unrenewed before another replica takes over
    /// (`ha_tracker_failover_timeout`); at least 1 s more than `update_timeout`.
    /// Default 30 s.
    pub failover_timeout: Duration,
}

impl Default for HaLimits {
    fn default() -> Self {
        HaLimits {
            accept: false,
            cluster_label: "cluster".into(),
            replica_label: "__replica__".into(),
            max_clusters: 100,
            update_timeout: Duration::from_secs(15),
            failover_timeout: Duration::from_secs(30),
        }
    }
}

impl HaLimits {
    /// Why the settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.failover_timeout < self.update_timeout + Duration::from_secs(1) {
            return Err(format!(
                "ha_tracker_failover_timeout ({:?}) must be at least 1s more than ha_tracker_update_timeout ({:?})",
                self.failover_timeout, self.update_timeout
            ));
        }
        if self.cluster_label.is_empty()
            || self.replica_label.is_empty()
            || self.cluster_label == self.replica_label
        {
            return Err("ha_cluster_label and ha_replica_label must be two different label names".into());
        }
        Ok(())
    }
}

/// Why a request of an HA pair is not stored.
#[derive(Debug)]
pub(crate) enum HaRefusal {
    /// Another replica is elected: 202, the samples are dropped.
    NotElected {
        /// The elected replica.
        elected: String,
    },
    /// The election could not be claimed (no metadata leader, too many clusters).
    Claim(WriteError),
}

/// Longest a request waits for its cluster's election to be claimed.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// Most elections a node keeps a copy of; past it every copy is dropped and claimed again.
const MAX_CACHED: usize = 100_000;

/// A node's copy of one election; locked while it is claimed, so that the requests of one
/// cluster make one claim at a time.
type Copy = Arc<tokio::sync::Mutex<Option<HaElected>>>;

/// The elections this node learnt, by (tenant, cluster).
#[derive(Debug, Default)]
pub(crate) struct HaTracker {
    copies: Mutex<HashMap<(String, String), Copy>>,
}

/// What one request claims.
pub(crate) struct Claimant<'a> {
    /// The tenant's id.
    pub(crate) tenant: &'a str,
    /// The cluster label's value.
    pub(crate) cluster: &'a str,
    /// The replica label's value.
    pub(crate) replica: &'a str,
    /// When the request arrived (ms).
    pub(crate) now_ms: i64,
}

impl HaTracker {
    /// Whether `who`'s samples are stored: Ok when its replica is elected (after claiming
    /// the election if this node's copy is too old to answer). Returns also whether the
    /// elected replica changed since this node last knew it.
    pub(crate) async fn check(
        &self,
        writer: &dyn Writer,
        who: &Claimant<'_>,
        limits: &HaLimits,
    ) -> Result<bool, HaRefusal> {
        let copy = {
            let mut copies = self.copies.lock();
            if copies.len() >= MAX_CACHED {
                copies.clear();
            }
            copies.entry((who.tenant.to_owned(), who.cluster.to_owned())).or_default().clone()
        };
        let mut copy = copy.lock().await;
        let fresh_ms = limits.update_timeout.as_millis() as i64;
        let verdict = |e: &HaElected| match e.replica == who.replica {
            true => Ok(()),
            false => Err(HaRefusal::NotElected { elected: e.replica.clone() }),
        };
        if let Some(e) = copy.as_ref()
            && who.now_ms.saturating_sub(e.at_ms) < fresh_ms
        {
            return verdict(e).map(|()| false);
        }
        let claim = HaClaim {
            tenant: who.tenant.to_owned(),
            cluster: who.cluster.to_owned(),
            replica: who.replica.to_owned(),
            now_ms: who.now_ms,
            failover_ms: limits.failover_timeout.as_millis() as i64,
            max_clusters: limits.max_clusters,
        };
        // a claim that cannot be made soon fails the request (503, retried) rather than
        // queue every request of the cluster behind it
        let elected = match tokio::time::timeout(CLAIM_TIMEOUT, writer.elect(claim)).await {
            Ok(r) => r.map_err(HaRefusal::Claim)?,
            Err(_) => {
                let why = format!(
                    "the HA election of cluster {} was not decided within {CLAIM_TIMEOUT:?}",
                    who.cluster
                );
                return Err(HaRefusal::Claim(WriteError::Unavailable(why)));
            }
        };
        let changed = copy.as_ref().is_some_and(|e| e.replica != elected.replica);
        let out = verdict(&elected).map(|()| changed);
        *copy = Some(elected);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use strata_api::{CommitFuture, ElectFuture};
    use strata_tsdb::SeriesBatch;

    /// A writer holding one election table, counting claims.
    #[derive(Debug, Default)]
    struct Elections {
        table: Mutex<HashMap<(String, String), HaElected>>,
        claims: AtomicUsize,
    }

    impl Writer for Elections {
        fn batch(&self) -> SeriesBatch {
            SeriesBatch::new(1)
        }
        fn commit(&self, _batch: SeriesBatch) -> CommitFuture<'_> {
            Box::pin(async { Ok(Default::default()) })
        }
        fn elect(&self, claim: HaClaim) -> ElectFuture<'_> {
            self.claims.fetch_add(1, Ordering::Relaxed);
            let mut t = self.table.lock();
            let key = (claim.tenant.clone(), claim.cluster.clone());
            let next = claim.decide(t.get(&key));
            t.insert(key, next.clone());
            Box::pin(async move { Ok(next) })
        }
    }

    fn who(replica: &str, now_ms: i64) -> Claimant<'_> {
        Claimant { tenant: "t", cluster: "c", replica, now_ms }
    }

    #[tokio::test]
    async fn copies_answer_until_stale_and_two_nodes_agree() {
        let shared = Elections::default();
        let (node1, node2) = (HaTracker::default(), HaTracker::default());
        let l = HaLimits::default();
        assert!(matches!(node1.check(&shared, &who("a", 0), &l).await, Ok(false)));
        // node 2 learns a's election on its first claim
        let r = node2.check(&shared, &who("b", 1000), &l).await;
        assert!(matches!(r, Err(HaRefusal::NotElected { ref elected }) if elected == "a"));
        // fresh copies answer without claiming
        let claims = shared.claims.load(Ordering::Relaxed);
        assert!(node1.check(&shared, &who("a", 5000), &l).await.is_ok());
        assert!(node2.check(&shared, &who("b", 5000), &l).await.is_err());
        assert_eq!(shared.claims.load(Ordering::Relaxed), claims);
        // a's node renews at 15 s; b cannot take over before a's last renewal is 30 s old
        assert!(node1.check(&shared, &who("a", 15_000), &l).await.is_ok());
        assert!(node2.check(&shared, &who("b", 16_000), &l).await.is_err());
        assert!(node2.check(&shared, &who("b", 44_999), &l).await.is_err());
        assert!(matches!(node2.check(&shared, &who("b", 45_000), &l).await, Ok(true)));
        // a comes back: its node's copy is stale, it claims and learns b is elected
        let r = node1.check(&shared, &who("a", 46_000), &l).await;
        assert!(matches!(r, Err(HaRefusal::NotElected { ref elected }) if elected == "b"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(HaLimits::default().check().is_ok());
        let l = HaLimits { failover_timeout: Duration::from_secs(15), ..HaLimits::default() };
        assert!(l.check().unwrap_err().contains("at least 1s more"));
        let l = HaLimits { replica_label: "cluster".into(), ..HaLimits::default() };
        assert!(l.check().is_err());
    }
}
