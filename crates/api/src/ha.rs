//! The HA tracker's election, as Mimir's: of the replicas of one Prometheus HA pair (series
//! labelled with the same `cluster` and different `__replica__`), only the elected one's
//! samples are stored. A replica claims the election with every write; the claim is decided
//! against the stored election by [`HaClaim::decide`], deterministically from the claim's
//! own clock reading, so that every replica of the metadata group that applies it agrees.

use serde::{Deserialize, Serialize};

/// One write's claim: `replica` of `cluster` of `tenant` sends samples at `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaClaim {
    /// The tenant's id (`anonymous` without tenants).
    pub tenant: String,
    /// The value of the tenant's cluster label.
    pub cluster: String,
    /// The value of the tenant's replica label.
    pub replica: String,
    /// When the write arrived (ms since the epoch, the claiming node's clock).
    pub now_ms: i64,
    /// How long an elected replica's election stands unrenewed before another replica may
    /// take over (the tenant's `ha_tracker_failover_timeout`, ms).
    pub failover_ms: i64,
    /// Most clusters the tenant may have elections for; 0 = no limit (`ha_max_clusters`).
    pub max_clusters: usize,
}

/// The elected replica of a cluster, and when its election was last renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaElected {
    /// The replica.
    pub replica: String,
    /// When the election was made or last renewed (ms since the epoch).
    pub at_ms: i64,
}

/// Elections unrenewed for this long are forgotten (they count no more against
/// `ha_max_clusters`): Mimir's cleanup period.
pub const HA_FORGET_AFTER_MS: i64 = 30 * 60 * 1000;

impl HaClaim {
    /// The election after this claim, given the stored one: the claimant renews its own
    /// election (never moving its time back), takes a free or expired one (`failover_ms`
    /// passed since the last renewal), and otherwise leaves the elected replica in place.
    pub fn decide(&self, stored: Option<&HaElected>) -> HaElected {
        match stored {
            Some(e) if e.replica == self.replica => {
                HaElected { replica: e.replica.clone(), at_ms: e.at_ms.max(self.now_ms) }
            }
            Some(e) if self.now_ms.saturating_sub(e.at_ms) < self.failover_ms => e.clone(),
            _ => HaElected { replica: self.replica.clone(), at_ms: self.now_ms },
        }
    }

    /// Mimir's message when the tenant has `limit` clusters already
    /// (err-mimir-too-many-ha-clusters).
    pub fn too_many_clusters(limit: usize) -> String {
        format!(
            "the write request has been rejected because the maximum number of high-availability (HA) clusters \
             has been reached for this tenant (limit: {limit}) (err-mimir-too-many-ha-clusters). To adjust the \
             related limit, configure ha_max_clusters"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(replica: &str, now_ms: i64) -> HaClaim {
        HaClaim {
            tenant: "t".into(),
            cluster: "c".into(),
            replica: replica.into(),
            now_ms,
            failover_ms: 30_000,
            max_clusters: 0,
        }
    }

    fn elected(replica: &str, at_ms: i64) -> HaElected {
        HaElected { replica: replica.into(), at_ms }
    }

    #[test]
    fn first_claim_wins_renewals_keep_it_and_failover_waits_for_the_timeout() {
        assert_eq!(claim("a", 1000).decide(None), elected("a", 1000));
        let a = elected("a", 1000);
        // the elected one renews; an older clock reading never moves the time back
        assert_eq!(claim("a", 16_000).decide(Some(&a)), elected("a", 16_000));
        assert_eq!(claim("a", 500).decide(Some(&a)), a);
        // the other replica waits until the election is failover_ms old
        assert_eq!(claim("b", 30_999).decide(Some(&a)), a);
        assert_eq!(claim("b", 31_000).decide(Some(&a)), elected("b", 31_000));
    }
}
