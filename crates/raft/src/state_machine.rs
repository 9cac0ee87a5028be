//! The state machine of one shard: committed entries applied to the shard in log order.

use std::io;

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::{Request, Response, TypeConfig};

/// What a shard does with committed writes (the TSDB shard; in tests, anything).
pub trait Applier: Send + Sync + 'static {
    /// Applies entry `index`'s request; deterministic given the state.
    fn apply(&mut self, index: u64, request: &Request) -> Response;
    /// The whole state as bytes (a snapshot's payload).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's payload.
    fn restore(&mut self, data: &[u8]) -> io::Result<()>;
}

/// A snapshot as stored and sent: where it stands in the log, and the applier's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotBody {
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    data: Vec<u8>,
}

/// The newest snapshot, shared with the builders openraft hands out.
type Current = std::sync::Arc<std::sync::Mutex<Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>>>;

/// The state machine of a shard group.
pub struct StateMachine<A: Applier> {
    applier: A,
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    current: Current,
}

impl<A: Applier> std::fmt::Debug for StateMachine<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").field("applied", &self.applied).finish()
    }
}

impl<A: Applier> StateMachine<A> {
    /// A state machine over `applier`, nothing applied yet.
    pub fn new(applier: A) -> Self {
        StateMachine {
            applier,
            applied: None,
            membership: StoredMembershipOf::<TypeConfig>::default(),
            current: Current::default(),
        }
    }

    /// The applier.
    pub fn applier(&self) -> &A {
        &self.applier
    }
}

/// A snapshot in the making: the state captured when openraft asked for a builder.
#[derive(Debug)]
pub struct SnapshotBuilder {
    body: SnapshotBody,
    current: Current,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let bytes = bincode::serde::encode_to_vec(&self.body, bincode::config::standard())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: self.body.applied,
            last_membership: self.body.membership.clone(),
        };
        *self.current.lock().map_err(|e| io::Error::other(e.to_string()))? =
            Some((meta.clone(), bytes.clone()));
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> { meta, snapshot: bytes })
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm:
            futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            self.applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(req) => self.applier.apply(entry.log_id.index, req),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                    Response::default()
                }
            };
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            body: SnapshotBody {
                applied: self.applied,
                membership: self.membership.clone(),
                data: self.applier.snapshot(),
            },
            current: self.current.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let (body, _): (SnapshotBody, usize) =
            bincode::serde::decode_from_slice(&snapshot, bincode::config::standard())
                .map_err(|e| io::Error::other(e.to_string()))?;
        self.applier.restore(&body.data)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.current.lock().map_err(|e| io::Error::other(e.to_string()))? = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        let cur = self.current.lock().map_err(|e| io::Error::other(e.to_string()))?.clone();
        Ok(cur.map(|(meta, snapshot)| SnapshotOf::<TypeConfig, Vec<u8>> { meta, snapshot }))
    }
}
