//! Sharing targets between ingestor replicas: a consistent-hash ring over the live
//! ingestors. Each replica checks its peers' `/-/healthy`; every replica that sees the
//! same live set computes the same owner for every target, and when one joins or leaves
//! only the targets of its arcs move.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

/// Virtual nodes per ingestor on the ring.
const VNODES: u32 = 128;

/// The live ingestors and which of them this one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    me: String,
    members: Vec<String>,
    points: BTreeMap<u64, usize>,
}

impl Ring {
    /// A ring of `members` (this ingestor, `me`, is always one of them).
    pub fn new(me: &str, members: impl IntoIterator<Item = String>) -> Ring {
        let mut members: Vec<String> = members.into_iter().collect();
        if !members.iter().any(|m| m == me) {
            members.push(me.to_string());
        }
        members.sort();
        members.dedup();
        let mut points = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            for v in 0..VNODES {
                points.insert(xxhash_rust::xxh3::xxh3_64(format!("{m}#{v}").as_bytes()), i);
            }
        }
        Ring { me: me.to_string(), members, points }
    }

    /// A ring of this ingestor alone: it owns everything.
    pub fn single() -> Ring {
        Ring::new("", [])
    }

    /// The ingestor that scrapes the target with `hash`.
    pub fn owner(&self, hash: u64) -> &str {
        let h = xxhash_rust::xxh3::xxh3_64(&hash.to_le_bytes());
        let i =
            self.points.range(h..).next().or_else(|| self.points.iter().next()).map(|(_, i)| *i).unwrap_or(0);
        self.members.get(i).map(String::as_str).unwrap_or(&self.me)
    }

    /// Whether this ingestor scrapes the target with `hash`.
    pub fn owns(&self, hash: u64) -> bool {
        self.members.len() <= 1 || self.owner(hash) == self.me
    }

    /// The live ingestors.
    pub fn members(&self) -> &[String] {
        &self.members
    }
}

/// Settings of ring membership.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This ingestor's address as its peers list it (`host:port` of its HTTP).
    pub me: String,
    /// Every ingestor replica (`host:port` of their HTTP), this one included. An entry
    /// `dns+name:port` stands for every address `name` resolves to, looked up at every
    /// check (a headless Kubernetes Service).
    pub peers: Vec<String>,
    /// How often peers are checked. Default 1s.
    pub check_interval: Duration,
    /// Failed checks in a row (timeouts, errors) before a peer counts as gone; a refused
    /// connection counts at once. Default 3.
    pub failures_to_leave: u32,
    /// The peers serve HTTPS (their web configuration turns TLS on). The check is one of
    /// liveness only, so their certificate is not verified (a forged answer could only
    /// keep a gone peer in the ring; blocking its packets does as much). Default false.
    pub https: bool,
}

impl MembershipConfig {
    /// Membership of `me` among `peers`, with the default timings.
    pub fn new(me: String, peers: Vec<String>) -> MembershipConfig {
        MembershipConfig {
            me,
            peers,
            check_interval: Duration::from_secs(1),
            failures_to_leave: 3,
            https: false,
        }
    }
}

/// The peers' addresses now: static entries as they are, `dns+` entries resolved.
async fn resolve(peers: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in peers {
        match p.strip_prefix("dns+") {
            None => out.push(p.clone()),
            Some(name) => match tokio::net::lookup_host(name).await {
                Ok(addrs) => out.extend(addrs.map(|a| a.to_string())),
                Err(e) => tracing::warn!(peer = %p, error = %e, "resolving scrape peers failed"),
            },
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Starts checking the peers; the receiver always holds the current ring.
pub fn spawn_membership(cfg: MembershipConfig) -> watch::Receiver<Ring> {
    let statics = cfg.peers.iter().filter(|p| !p.starts_with("dns+")).cloned();
    let (tx, rx) = watch::channel(Ring::new(&cfg.me, statics));
    tokio::spawn(async move {
        let timeout = cfg.check_interval.max(Duration::from_millis(500));
        let make = || reqwest::Client::builder().no_proxy().timeout(timeout);
        let tls = strata_discovery::TlsConfig { insecure_skip_verify: cfg.https, ..Default::default() };
        let scheme = if cfg.https { "https" } else { "http" };
        let client = match crate::tls::client(make, &tls) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot check the scrape peers: the peers listed by address stay in the ring, dns+ entries are not resolved");
                return;
            }
        };
        let mut failures: BTreeMap<String, u32> = BTreeMap::new();
        let mut tick = tokio::time::interval(cfg.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let peers = resolve(&cfg.peers).await;
            failures.retain(|p, _| peers.contains(p));
            let checks = peers.iter().filter(|p| **p != cfg.me).map(|p| {
                let client = client.clone();
                let url = format!("{scheme}://{p}/-/healthy");
                async move { (p.clone(), client.get(url).send().await) }
            });
            for (peer, answer) in futures_util::future::join_all(checks).await {
                let f = failures.entry(peer).or_default();
                *f = match answer {
                    // an answer, even a refusal of authentication, is a live peer
                    Ok(r) if r.status().is_success() || matches!(r.status().as_u16(), 401 | 403) => 0,
                    // nothing listens there: the process is gone, no need to wait
                    Err(e) if e.is_connect() => cfg.failures_to_leave,
                    _ => f.saturating_add(1),
                };
            }
            let live = failures.iter().filter(|(_, f)| **f < cfg.failures_to_leave).map(|(p, _)| p.clone());
            let ring = Ring::new(&cfg.me, live);
            if *tx.borrow() != ring {
                tracing::info!(live = ?ring.members(), "scrape ring changed");
                tx.send_replace(ring);
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_agree_and_only_a_leavers_targets_move() {
        let names = |n: usize| (0..n).map(|i| format!("ing-{i}:8080")).collect::<Vec<_>>();
        let three: Vec<Ring> = names(3).iter().map(|me| Ring::new(me, names(3))).collect();
        let mut per = [0usize; 3];
        for h in 0..3000u64 {
            let owners: Vec<bool> = three.iter().map(|r| r.owns(h)).collect();
            assert_eq!(owners.iter().filter(|o| **o).count(), 1, "exactly one owner of {h}");
            per[owners.iter().position(|o| *o).unwrap_or(0)] += 1;
        }
        assert!(per.iter().all(|n| *n > 700), "balanced: {per:?}");
        // ing-2 leaves: only its targets move
        let two = Ring::new("ing-0:8080", names(2));
        for h in 0..3000u64 {
            let before = three[0].owner(h).to_string();
            if before != "ing-2:8080" {
                assert_eq!(two.owner(h), before);
            }
        }
        assert!(Ring::single().owns(42));
    }
}
