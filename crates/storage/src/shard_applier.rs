//! A TSDB shard as a group's state machine: committed records are applied to the shard's
//! head; a checkpoint is the shard's checkpoint with the Raft state in the same synced
//! batch; a snapshot is the shard's persisted key ranges.

use std::io;
use std::sync::Arc;

use strata_tsdb::keys::{META_CHECKPOINT_OWNER, ShardId, meta_key};
use strata_tsdb::{Cf, Db, KvEngine};

use strata_raft::codec::{decode, encode, io_err};
use strata_raft::{Applier, Exported, Exporter, Reopener, Request, Response};

/// Applies a shard group's entries to shard `shard` of a replicated [`Db`].
#[derive(Debug, Clone)]
pub struct ShardApplier {
    db: Arc<Db>,
    kv: Arc<dyn KvEngine>,
    shard: ShardId,
}

impl ShardApplier {
    /// The applier of `shard` of `db` (opened with [`Db::open`] over `kv`).
    pub fn new(db: Arc<Db>, kv: Arc<dyn KvEngine>, shard: ShardId) -> Self {
        ShardApplier { db, kv, shard }
    }
}

fn cf_code(cf: Cf) -> u8 {
    Cf::ALL.iter().position(|&c| c == cf).unwrap_or(0) as u8
}

fn export(db: &Db, shard: ShardId) -> io::Result<Exported> {
    let entries = db.export_shard(shard).map_err(io_err)?;
    let key = meta_key(shard, META_CHECKPOINT_OWNER);
    let raft_state = entries
        .iter()
        .find(|(cf, k, _)| *cf == Cf::Meta && *k == key)
        .map(|(_, _, v)| v.clone())
        .ok_or_else(|| io::Error::other(format!("shard {shard} has no checkpoint to send")))?;
    let coded: Vec<(u8, Vec<u8>, Vec<u8>)> =
        entries.into_iter().map(|(cf, k, v)| (cf_code(cf), k, v)).collect();
    Ok(Exported { raft_state, data: encode(&coded)? })
}

impl Applier for ShardApplier {
    fn apply(&mut self, index: u64, request: &Request) -> io::Result<Response> {
        match self.db.apply_record(self.shard, index, &request.0) {
            Ok(o) => Ok(o),
            // the same on every replica: an answer, not a stop
            Err(e @ strata_tsdb::Error::NoSuchShard(_)) => {
                Ok(Response { first_error: Some(e.to_string()), ..Response::default() })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()> {
        let extra = vec![(meta_key(self.shard, META_CHECKPOINT_OWNER), raft_state)];
        self.db.checkpoint_shard(self.shard, extra).map(|_| ()).map_err(io_err)
    }

    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>> {
        self.kv.get(Cf::Meta, &meta_key(self.shard, META_CHECKPOINT_OWNER)).map_err(io_err)
    }

    fn exporter(&self) -> Exporter {
        let (db, shard) = (self.db.clone(), self.shard);
        Arc::new(move || export(&db, shard))
    }

    fn import(&mut self, snapshot: Exported) -> io::Result<()> {
        let coded: Vec<(u8, Vec<u8>, Vec<u8>)> = decode(&snapshot.data)?;
        let mut entries = Vec::with_capacity(coded.len());
        for (c, k, v) in coded {
            let cf =
                *Cf::ALL.get(c as usize).ok_or_else(|| io::Error::other("bad column family in snapshot"))?;
            entries.push((cf, k, v));
        }
        entries.retain(|(cf, k, _)| !(*cf == Cf::Meta && *k == meta_key(self.shard, META_CHECKPOINT_OWNER)));
        entries.push((Cf::Meta, meta_key(self.shard, META_CHECKPOINT_OWNER), snapshot.raft_state));
        self.db.import_shard(self.shard, entries).map_err(io_err)
    }

    fn reopener(&self) -> Reopener {
        let me = self.clone();
        Arc::new(move || {
            me.db.reload_shard(me.shard).map_err(io_err)?;
            Ok(Box::new(me.clone()) as Box<dyn Applier>)
        })
    }
}
