//! The HA tracker's elections, part of the metadata group's state (beside the cluster map,
//! not in it: an election renewed every few seconds must not bump the map's version, which
//! makes every client fetch the map again). Applying a claim is deterministic — its
//! outcome depends on the claim and the table only — so every replica of the group holds
//! the same elections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_api::{HA_FORGET_AFTER_MS, HaClaim, HaElected};

/// How often (in claim time, ms) elections unrenewed for [`HA_FORGET_AFTER_MS`] are dropped.
const SWEEP_EVERY_MS: i64 = 60_000;

/// Most elections the table holds, every tenant together (it travels in every metadata
/// snapshot, which is bounded): a claim that would start one more is refused.
const MAX_ELECTIONS: usize = 100_000;

/// Longest cluster or replica name an election is kept for, in bytes.
const MAX_NAME_BYTES: usize = 1024;

/// Every (tenant, cluster)'s elected replica.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HaTable {
    elected: BTreeMap<(String, String), HaElected>,
    /// The claim time of the last sweep of forgotten elections.
    swept_ms: i64,
}

impl HaTable {
    /// Applies `claim`: the election after it, or Mimir's error when it would start an
    /// election beyond the tenant's `max_clusters` (or beyond the table's size, or names one
    /// too long).
    pub(crate) fn elect(&mut self, claim: &HaClaim) -> Result<HaElected, String> {
        if claim.now_ms.saturating_sub(self.swept_ms) >= SWEEP_EVERY_MS {
            let horizon = claim.now_ms.saturating_sub(HA_FORGET_AFTER_MS);
            self.elected.retain(|_, e| e.at_ms >= horizon);
            self.swept_ms = claim.now_ms;
        }
        if claim.cluster.len() > MAX_NAME_BYTES || claim.replica.len() > MAX_NAME_BYTES {
            return Err(format!("HA cluster and replica names are limited to {MAX_NAME_BYTES} bytes"));
        }
        let key = (claim.tenant.clone(), claim.cluster.clone());
        let stored = self.elected.get(&key);
        if stored.is_none() && claim.max_clusters > 0 && self.clusters_of(&claim.tenant) >= claim.max_clusters
        {
            return Err(HaClaim::too_many_clusters(claim.max_clusters));
        }
        if stored.is_none() && self.elected.len() >= MAX_ELECTIONS {
            return Err(format!(
                "the cluster holds {MAX_ELECTIONS} HA elections, its most (err-mimir-too-many-ha-clusters)"
            ));
        }
        let next = claim.decide(stored);
        self.elected.insert(key, next.clone());
        Ok(next)
    }

    /// The clusters `tenant` holds elections for.
    fn clusters_of(&self, tenant: &str) -> usize {
        let from = (tenant.to_owned(), String::new());
        self.elected.range(from..).take_while(|((t, _), _)| t == tenant).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(tenant: &str, cluster: &str, replica: &str, now_ms: i64) -> HaClaim {
        HaClaim {
            tenant: tenant.into(),
            cluster: cluster.into(),
            replica: replica.into(),
            now_ms,
            failover_ms: 30_000,
            max_clusters: 2,
        }
    }

    #[test]
    fn elections_are_per_tenant_and_cluster_limited_and_forgotten() {
        let mut t = HaTable::default();
        assert_eq!(t.elect(&claim("a", "c1", "r1", 1000)).unwrap().replica, "r1");
        assert_eq!(t.elect(&claim("a", "c1", "r2", 2000)).unwrap().replica, "r1");
        // the same cluster name in another tenant is another election
        assert_eq!(t.elect(&claim("b", "c1", "r2", 2000)).unwrap().replica, "r2");
        assert_eq!(t.elect(&claim("a", "c2", "r2", 2000)).unwrap().replica, "r2");
        let e = t.elect(&claim("a", "c3", "r1", 3000)).unwrap_err();
        assert!(e.contains("(limit: 2)"), "{e}");
        // a known cluster still renews at the limit
        assert_eq!(t.elect(&claim("a", "c1", "r1", 4000)).unwrap().at_ms, 4000);
        // unrenewed for the forget period: dropped at the next sweep, freeing the slot
        let later = 4000 + HA_FORGET_AFTER_MS + SWEEP_EVERY_MS;
        assert_eq!(t.elect(&claim("a", "c3", "r1", later)).unwrap().replica, "r1");
        assert_eq!(t.clusters_of("a"), 1);
        let long = claim("a", &"c".repeat(MAX_NAME_BYTES + 1), "r1", later);
        assert!(t.elect(&long).unwrap_err().contains("limited to"));
    }
}
