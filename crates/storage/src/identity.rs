//! A storage node's identity, kept on its disk: its id — given to the cluster's founders
//! by `--peers`, allocated by the metadata group to a node that joins — its name and the
//! token of its join. Read before anything else starts, so that a node comes back under
//! the id it had, and a node whose disk is gone never reuses one (openraft: node ids must
//! not be reused; an emptied node forgot its votes).

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_cluster::{ClientConfig, ClusterClient, Error, Result};
use strata_raft::codec::{decode, encode, io_err};
use strata_raft::{META_GROUP, NodeId};
use strata_tsdb::keys::meta_key;
use strata_tsdb::{Cf, KvEngine, WriteBatch};

use crate::node::StorageConfig;
use strata_cluster::Command;

/// Meta tag of the stored identity (under the metadata group's id).
const META_IDENTITY: u8 = 0x31;

/// What a node knows of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    /// Its id, once known.
    node_id: Option<NodeId>,
    /// Its name when it joined.
    name: String,
    /// The token of its join (0 for a founder).
    token: u64,
}

fn load(kv: &dyn KvEngine) -> io::Result<Option<Identity>> {
    kv.get(Cf::Meta, &meta_key(META_GROUP, META_IDENTITY)).map_err(io_err)?.map(|b| decode(&b)).transpose()
}

fn store(kv: &dyn KvEngine, id: &Identity) -> io::Result<()> {
    let mut b = WriteBatch::default();
    b.put(Cf::Meta, meta_key(META_GROUP, META_IDENTITY), encode(id)?);
    kv.write(&b, true).map_err(io_err)
}

/// A token no other join carries (random per process and call).
fn fresh_token() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Whether founder `cfg.node_id` ran in an existing cluster before: the first other
/// founder that answers (within 3 s) has a map that knows its name. A founder's first
/// start finds no map (the first answer says so) or no name; one whose disk was replaced
/// finds both.
async fn ran_before(cfg: &StorageConfig) -> bool {
    use futures_util::StreamExt;
    let seeds: Vec<String> = cfg.peers.values().filter(|a| **a != cfg.advertise).cloned().collect();
    let client = ClusterClient::new(ClientConfig {
        seeds: Vec::new(),
        tls: cfg.tls.clone(),
        ..ClientConfig::default()
    });
    let client = &client;
    let mut asks: futures_util::stream::FuturesUnordered<_> = seeds
        .iter()
        .map(|addr| async move {
            let mut c = client.storage(addr).ok()?;
            let r = c.get_cluster_map(strata_proto::cluster::ClusterMapRequest {}).await.ok()?;
            Some(strata_cluster::ClusterMap::decode(&r.get_ref().map).ok())
        })
        .collect();
    let first = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(answer) = asks.next().await {
            if let Some(map) = answer {
                return map;
            }
        }
        None
    })
    .await;
    matches!(first, Ok(Some(m)) if m.dead.contains(&cfg.node_id) || !m.name_of(cfg.node_id).is_empty())
}

/// The id node `cfg` runs under, over engine `kv`:
/// * the id stored on its disk (a configured id that differs is an error);
/// * else the configured `cfg.node_id` (a founder listed in `--peers` on its first start,
///   or a data directory from before identities were stored), stored from now on;
/// * a founder whose disk is empty but which ran before (the map knows its name) joins
///   instead, as below: its old id is declared dead, never reused;
/// * else (`cfg.node_id` 0, empty disk) it joins: a token is stored first, then
///   `Join{name, token, addr}` goes to the metadata group through the seeds
///   (`cfg.peers`) until the map shows the id given to that token, which is stored.
///   Waits for the cluster as long as it takes.
pub(crate) async fn resolve(cfg: &StorageConfig, kv: &Arc<dyn KvEngine>) -> Result<NodeId> {
    let err = |e: io::Error| Error::Server(format!("node identity: {e}"));
    let stored = load(kv.as_ref()).map_err(err)?;
    if let Some(Identity { node_id: Some(id), .. }) = stored {
        if cfg.node_id != 0 && cfg.node_id != id {
            return Err(Error::Config(format!(
                "this data directory belongs to node {id}, not node {} (start it without an id, or on an empty directory)",
                cfg.node_id
            )));
        }
        return Ok(id);
    }
    if cfg.node_id != 0 && stored.is_none() && !ran_before(cfg).await {
        let me = Identity { node_id: Some(cfg.node_id), name: cfg.name.clone(), token: 0 };
        store(kv.as_ref(), &me).map_err(err)?;
        return Ok(cfg.node_id);
    }
    if cfg.node_id != 0 && stored.is_none() {
        tracing::warn!(
            node = cfg.node_id,
            name = %cfg.name,
            "this founder ran before and its disk is empty now: it joins under a new id, and its old id is declared dead"
        );
    }
    // a join: its token is on disk before anyone hears of it, so a restart mid-join repeats
    // the same join instead of making a second id
    let pending = match stored {
        Some(p) => p,
        None => {
            let p = Identity { node_id: None, name: cfg.name.clone(), token: fresh_token() };
            store(kv.as_ref(), &p).map_err(err)?;
            p
        }
    };
    // the seeds only, never a map's addresses: the map may still list this very address under
    // the id a wiped node had, and this node does not serve yet
    let seeds: Vec<String> = cfg.peers.values().filter(|a| **a != cfg.advertise).cloned().collect();
    let join =
        Command::Join { name: pending.name.clone(), token: pending.token, addr: cfg.advertise.clone() };
    let join = encode(&join).map_err(err)?;
    loop {
        let client = ClusterClient::new(ClientConfig {
            seeds: seeds.clone(),
            tls: cfg.tls.clone(),
            ..ClientConfig::default()
        });
        if let Ok(map) = client.fetch_map().await
            && let Some(id) = map.joined(pending.token)
        {
            store(kv.as_ref(), &Identity { node_id: Some(id), ..pending.clone() }).map_err(err)?;
            tracing::info!(node = id, name = %pending.name, "joined the cluster");
            return Ok(id);
        }
        if let Err(e) = client.update_metadata(join.clone()).await {
            tracing::warn!(error = %e, name = %pending.name, "joining the cluster; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
