//! The Raft side of a storage node: its groups (one per hosted shard, plus the metadata
//! group on the first nodes), the shared log writer and router, and the entry points the
//! node's server calls for inbound messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use openraft::LinearizerOption;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Raft, SnapshotPolicy};
use parking_lot::RwLock;
use strata_tsdb::KvEngine;

use crate::codec::{decode, decode_message, encode};
use crate::error::{Error, Result};
use crate::health::WriteHealth;
use crate::inbound;
use crate::log_store::LogStore;
use crate::log_writer::{LogStats, LogWriter};
use crate::network::{NetworkFactory, Router, RpcKind, Transport};
use crate::snapshot::{FrameStream, InFlight, SnapshotStats, Throttle};
use crate::state_machine::{Applier, RaftState, Reopener, SnapshotPayload, Staged, Stager, StateMachine};
use crate::{GroupId, NodeId, Request, Response, TypeConfig};

/// Raft settings of a node (the same for every group).
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// This node's id. Required.
    pub node_id: NodeId,
    /// Leader heartbeat interval, in milliseconds. Default 300.
    pub heartbeat_ms: u64,
    /// Election timeout range, in milliseconds: a follower that heard nothing from its
    /// leader for a random time in this range campaigns. The minimum must exceed half the
    /// maximum plus the heartbeat. Default 2,000–3,000.
    pub election_ms: (u64, u64),
    /// Snapshot (= checkpoint) a group after this many log entries. Default 2,000.
    pub snapshot_entries: u64,
    /// Log entries kept behind a snapshot for slow followers. Default 2,000. (A follower
    /// that is down keeps more: see [`RaftNode::update_purge_floors`].)
    pub keep_entries: u64,
    /// Snapshot bytes this node sends per second, all streams together (0 = no limit).
    /// Default 64 MiB/s.
    pub snapshot_bytes_per_sec: u64,
    /// While a learner of a group this node leads has not matched the group's last
    /// checkpoint yet (its snapshot is on the way), the group's checkpoints, and so openraft's
    /// log purges, are put off until this many entries were applied after the checkpoint:
    /// the learner then resumes from the log instead of needing a newer snapshot. Past it,
    /// checkpoints go on (the learner gets a newer snapshot). Entries; default 50,000.
    pub learner_hold_entries: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            node_id: 0,
            heartbeat_ms: 300,
            election_ms: (2000, 3000),
            snapshot_entries: 2000,
            keep_entries: 2000,
            snapshot_bytes_per_sec: 64 << 20,
            learner_hold_entries: 50_000,
        }
    }
}

pub(crate) type Group = Raft<TypeConfig, StateMachine<AnyApplier>>;

/// openraft's election timeout range `(max, min)` for `cfg.election_ms`. openraft's
/// follower respects its leader's lease (openraft's maximum) before its own random timeout
/// in `[min, max)` even starts, so it campaigns `max + [min, max)` after the last heartbeat:
/// twice what its settings read. Half of ours is the lease, the rest the random part.
fn openraft_election(cfg: &RaftConfig) -> Result<(u64, u64)> {
    let (lo, hi) = cfg.election_ms;
    let lease = hi / 2;
    let min = lo.saturating_sub(lease);
    if lo >= hi || min <= cfg.heartbeat_ms {
        return Err(Error::Config(format!(
            "election timeout {lo}–{hi} ms: the minimum must be below the maximum and exceed half the \
             maximum plus the heartbeat ({} ms)",
            cfg.heartbeat_ms
        )));
    }
    Ok((lease, min))
}

/// The log index `id` matched, as the group's leader's metrics report it (`None` when not
/// leading, unknown or nothing matched yet).
pub(crate) fn matched_index(m: &openraft::RaftMetrics<TypeConfig>, id: NodeId) -> Option<u64> {
    m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten()).map(|l| l.index)
}

/// What keeps a group's log: how far a purge may physically delete, and whether its
/// checkpoints (after which openraft purges) are held for a learner.
#[derive(Debug, Clone)]
struct LogGuard {
    floor: Arc<AtomicU64>,
    hold: Arc<AtomicBool>,
}

/// A group's applier behind one concrete type (a plain `Box<dyn Applier>` trips rustc's
/// higher-ranked lifetime inference in async code that holds a `Raft`).
pub(crate) struct AnyApplier(Box<dyn Applier + 'static>);

impl Applier for AnyApplier {
    fn apply(&mut self, index: u64, request: &Request) -> std::io::Result<Response> {
        self.0.apply(index, request)
    }
    fn checkpoint(&mut self, raft_state: Vec<u8>) -> std::io::Result<()> {
        self.0.checkpoint(raft_state)
    }
    fn checkpointed(&self) -> std::io::Result<Option<Vec<u8>>> {
        self.0.checkpointed()
    }
    fn exporter(&self) -> crate::Exporter {
        self.0.exporter()
    }
    fn stager(&self) -> Stager {
        self.0.stager()
    }
    fn import(&mut self, snapshot: Staged) -> std::io::Result<()> {
        self.0.import(snapshot)
    }
    fn reopener(&self) -> Reopener {
        self.0.reopener()
    }
}

/// What a node knows about one of its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The current leader, if known.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Last log index applied to the state machine.
    pub applied: u64,
    /// Last index in the log.
    pub last_log: u64,
    /// The voters of the group's membership.
    pub voters: Vec<NodeId>,
    /// The learners of the group's membership (replicas being added).
    pub learners: Vec<NodeId>,
    /// Whether the membership is joint (a voter change halfway).
    pub joint: bool,
    /// Entries up to this index are purged (covered by a snapshot).
    pub purged: u64,
}

/// The Raft groups of one node.
pub struct RaftNode {
    cfg: RaftConfig,
    raft_config: Arc<openraft::Config>,
    kv: Arc<dyn KvEngine>,
    writer: LogWriter,
    router: Router,
    groups: RwLock<HashMap<GroupId, Group>>,
    /// Each group's purge floor and checkpoint hold.
    guards: RwLock<HashMap<GroupId, LogGuard>>,
    /// How to restart each group from its last checkpoint, and how to stage a snapshot it
    /// receives.
    handles: RwLock<HashMap<GroupId, (Reopener, Stager)>>,
    health: Arc<WriteHealth>,
    stats: Arc<LogStats>,
    /// When each group's last leadership transfer was started here (one at a time: two
    /// racing transfers split the votes and cost an election timeout).
    pub(crate) transfers: parking_lot::Mutex<HashMap<GroupId, std::time::Instant>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.cfg.node_id).finish_non_exhaustive()
    }
}

impl RaftNode {
    /// A node over `kv`, sending through `transport`; writes are refused while `health` says
    /// so (a failed log write marks it).
    pub fn new(
        cfg: RaftConfig,
        kv: Arc<dyn KvEngine>,
        transport: Arc<dyn Transport>,
        health: Arc<WriteHealth>,
    ) -> Result<Arc<Self>> {
        let (lease, min) = openraft_election(&cfg)?;
        let raft_config = openraft::Config {
            cluster_name: "strata".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: min,
            election_timeout_max: lease,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_entries),
            max_in_snapshot_log_to_keep: cfg.keep_entries,
            install_snapshot_timeout: 30_000,
            // a node whose disk was replaced comes back empty: its leaders start it over
            // (snapshot + log) instead of treating the shorter log as a bug
            allow_log_reversion: Some(true),
            // a follower whose log is behind (it missed the dead leader's last entries) would
            // otherwise raise its term with every campaign it cannot win, and fail the
            // up-to-date follower's first election: one more timeout without a leader
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;
        let throttle = Arc::new(Throttle::new(cfg.snapshot_bytes_per_sec));
        let stats = Arc::new(LogStats::default());
        let writer = LogWriter::start(kv.clone(), stats.clone(), health.clone())
            .map_err(|e| Error::Storage(e.to_string()))?;
        Ok(Arc::new(RaftNode {
            cfg,
            raft_config: Arc::new(raft_config),
            kv,
            writer,
            router: Router { transport, throttle, stats: Arc::new(SnapshotStats::default()) },
            groups: RwLock::new(HashMap::new()),
            guards: RwLock::new(HashMap::new()),
            handles: RwLock::new(HashMap::new()),
            health,
            stats,
            transfers: parking_lot::Mutex::new(HashMap::new()),
        }))
    }

    /// Whether the node's storage takes writes.
    pub fn health(&self) -> &Arc<WriteHealth> {
        &self.health
    }

    /// Counters of the node's log writer.
    pub fn log_stats(&self) -> &LogStats {
        &self.stats
    }

    /// Snapshot bytes this node sends per second (0 = no limit).
    pub fn snapshot_bytes_per_sec(&self) -> u64 {
        self.cfg.snapshot_bytes_per_sec
    }

    /// Log entries a group's checkpoints are held for at most while a learner waits for
    /// its snapshot.
    pub fn learner_hold_entries(&self) -> u64 {
        self.cfg.learner_hold_entries
    }

    /// Counters of the snapshots the node sent and received.
    pub fn snapshot_stats(&self) -> &SnapshotStats {
        &self.router.stats
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The longest election timeout, in milliseconds.
    pub(crate) fn election_max_ms(&self) -> u64 {
        self.cfg.election_ms.1
    }

    /// Starts `group` on this node over `applier` (its log and state as stored; empty if new).
    /// A group already running is left as is.
    pub async fn add_group(&self, group: GroupId, applier: Box<dyn Applier>) -> Result<()> {
        if self.groups.read().contains_key(&group) {
            return Ok(());
        }
        self.handles.write().insert(group, (applier.reopener(), applier.stager()));
        let raft = self.start_group(group, applier).await?;
        self.groups.write().insert(group, raft);
        Ok(())
    }

    async fn start_group(&self, group: GroupId, applier: Box<dyn Applier>) -> Result<Group> {
        let hold = Arc::new(AtomicBool::new(false));
        let sm = StateMachine::new(AnyApplier(applier))
            .map_err(|e| Error::Storage(e.to_string()))?
            .held_by(hold.clone());
        let log = LogStore::new(self.kv.clone(), self.writer.clone(), group);
        // nothing is physically purged until the first update knows the followers' progress
        log.purge_floor().store(0, Ordering::Relaxed);
        self.guards.write().insert(group, LogGuard { floor: log.purge_floor(), hold });
        let net = NetworkFactory { router: self.router.clone(), group };
        Raft::new(self.cfg.node_id, self.raft_config.clone(), net, log, sm)
            .await
            .map_err(|e| Error::Fatal { group, reason: e.to_string() })
    }

    /// Probes the storage ([`WriteHealth::probe`]) and, once it takes writes again,
    /// restarts every group that a storage error stopped (openraft stops a group whose
    /// log write, apply or snapshot failed): from its last checkpoint, re-applying its log.
    /// Call every second or so.
    pub async fn maintain_health(&self) {
        let kv = self.kv.clone();
        let health = self.health.clone();
        // a synced write: off the async workers
        let probed = tokio::task::spawn_blocking(move || health.probe(kv.as_ref())).await;
        if probed.is_err() || self.health.write_failed() {
            return;
        }
        let stopped: Vec<(GroupId, Group)> = self
            .groups
            .read()
            .iter()
            .filter(|(_, r)| r.metrics().borrow_watched().running_state.is_err())
            .map(|(g, r)| (*g, r.clone()))
            .collect();
        for (group, raft) in stopped {
            let why = raft.metrics().borrow_watched().running_state.clone().err();
            tracing::warn!(group, reason = ?why, "restarting a group stopped by a storage error");
            let _ = raft.shutdown().await;
            let Some((reopen, _)) = self.handles.read().get(&group).cloned() else { continue };
            let started = match reopen() {
                Ok(applier) => self.start_group(group, applier).await,
                Err(e) => Err(Error::Storage(e.to_string())),
            };
            match started {
                Ok(raft) => {
                    self.groups.write().insert(group, raft);
                    tracing::info!(group, "group restarted");
                }
                Err(e) => tracing::error!(group, error = %e, "restarting the group failed; retrying"),
            }
        }
    }

    pub(crate) fn group(&self, group: GroupId) -> Result<Group> {
        self.groups.read().get(&group).cloned().ok_or(Error::NoGroup(group))
    }

    /// Takes `group` out of the node (the caller shuts it down).
    pub(crate) fn take_group(&self, group: GroupId) -> Option<Group> {
        self.guards.write().remove(&group);
        self.handles.write().remove(&group);
        self.groups.write().remove(&group)
    }

    pub(crate) fn kv(&self) -> &Arc<dyn KvEngine> {
        &self.kv
    }

    /// The groups running on this node.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut v: Vec<GroupId> = self.groups.read().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Makes `members` (id → advertised address) the first membership of a new `group`.
    /// A group that is already initialised (here or elsewhere) is left as is.
    pub async fn initialize(&self, group: GroupId, members: &BTreeMap<NodeId, String>) -> Result<()> {
        let raft = self.group(group)?;
        let nodes: BTreeMap<NodeId, BasicNode> =
            members.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
        match raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(e) if e.api_error().is_some() => Ok(()), // NotAllowed: it already has state
            Err(e) => Err(Error::Fatal { group, reason: e.to_string() }),
        }
    }

    /// Proposes `request` to `group` and waits until a quorum has it durable and this node
    /// applied it. Fails with [`Error::NotLeader`] (with the leader when known) on a follower.
    /// Refused with [`Error::Unavailable`] while the node's storage takes no writes, or
    /// while the group is stopped by a storage error (until it is restarted).
    pub async fn propose(&self, group: GroupId, request: Request) -> Result<Response> {
        if let Some(why) = self.health.refusal() {
            return Err(Error::Unavailable(why));
        }
        let raft = self.group(group)?;
        match raft.client_write(request).await {
            Ok(r) => Ok(r.data),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(Error::NotLeader {
                    group,
                    leader: f.leader_id,
                    leader_addr: f.leader_node.as_ref().map(|n| n.addr.clone()),
                }),
                None => match self.health.refusal() {
                    Some(why) => Err(Error::Unavailable(why)),
                    None if raft.metrics().borrow_watched().running_state.is_err() => {
                        Err(Error::Unavailable(format!(
                            "group {group} stopped on a storage error: {e}; restarting"
                        )))
                    }
                    None => Err(Error::Fatal { group, reason: e.to_string() }),
                },
            },
        }
    }

    /// Waits until this node, as leader, may serve a linearizable read of `group` and its
    /// state machine applied up to the read point. Leadership is confirmed by the leader's
    /// lease when a quorum acknowledged one of its messages within the lease (half the
    /// election timeout's maximum, during which those followers vote for nobody else): no
    /// round trip, as heartbeats keep the lease fresh on a live group. A stale lease sends heartbeats at once
    /// and waits for a quorum to answer them (a ReadIndex round).
    pub async fn read_barrier(&self, group: GroupId) -> Result<()> {
        let raft = self.group(group)?;
        match raft.ensure_linearizable(LinearizerOption::new(None, true)).await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(Error::NotLeader {
                    group,
                    leader: f.leader_id,
                    leader_addr: f.leader_node.as_ref().map(|n| n.addr.clone()),
                }),
                None => Err(Error::Fatal { group, reason: e.to_string() }),
            },
        }
    }

    /// What this node knows about `group`.
    pub fn status(&self, group: GroupId) -> Result<GroupStatus> {
        let raft = self.group(group)?;
        let m = raft.metrics().borrow_watched().clone();
        Ok(GroupStatus {
            leader: m.current_leader,
            term: m.current_term,
            applied: m.last_applied.map_or(0, |l| l.index),
            last_log: m.last_log_index.unwrap_or(0),
            voters: m.membership_config.membership().voter_ids().collect(),
            learners: m.membership_config.membership().learner_ids().collect(),
            joint: m.membership_config.membership().get_joint_config().len() > 1,
            purged: m.purged.map_or(0, |l| l.index),
        })
    }

    /// Whether `node` is a voter or learner of `group`'s membership as this node knows it.
    pub fn is_member(&self, group: GroupId, node: NodeId) -> bool {
        self.group(group).is_ok_and(|raft| {
            let m = raft.metrics();
            let m = m.borrow_watched();
            let membership = m.membership_config.membership();
            membership.voter_ids().chain(membership.learner_ids()).any(|id| id == node)
        })
    }

    /// Handles an inbound Raft message for one of this node's groups; the answer is encoded
    /// for the sender's [`Router`]. Errors (unknown group, undecodable message) are answered
    /// too, never raised.
    pub async fn handle(&self, group: GroupId, kind: RpcKind, payload: &[u8]) -> Vec<u8> {
        let answer = self.dispatch(group, kind, payload).await;
        match answer {
            Ok(b) => b,
            Err(e) => encode(&Err::<(), String>(e)).unwrap_or_default(),
        }
    }

    async fn dispatch(&self, group: GroupId, kind: RpcKind, payload: &[u8]) -> Result<Vec<u8>, String> {
        let raft = self.group(group).map_err(|e| e.to_string())?;
        let de = |e: std::io::Error| format!("bad {kind:?} message: {e}");
        let me = self.cfg.node_id;
        let bytes = match kind {
            RpcKind::Append => {
                let req: openraft::raft::AppendEntriesRequest<TypeConfig> =
                    decode_message(payload).map_err(de)?;
                let refused = |e: String| format!("refused AppendEntries: {e}");
                inbound::check_not_own(&req.vote, me).map_err(refused)?;
                inbound::check_append(&req).map_err(refused)?;
                if let Some(commit) = inbound::commit_beyond_message(&req) {
                    let index = commit.index;
                    // the log as the group's core task holds it after the messages before this
                    // one (a message of the same group handled concurrently may come between)
                    let local = raft
                        .with_raft_state(move |st| {
                            st.log_ids.last().and_then(|l| st.log_ids.get(index.min(l.index)))
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    inbound::check_commit_with_log(commit, local.as_ref()).map_err(refused)?;
                }
                encode(&raft.append_entries(req).await.map_err(|e| e.to_string()))
            }
            RpcKind::Vote | RpcKind::PreVote => {
                let req: openraft::raft::VoteRequest<TypeConfig> = decode_message(payload).map_err(de)?;
                inbound::check_not_own(&req.vote, me).map_err(|e| format!("refused {kind:?}: {e}"))?;
                let answer =
                    if kind == RpcKind::Vote { raft.vote(req).await } else { raft.pre_vote(req).await };
                encode(&answer.map_err(|e| e.to_string()))
            }
            RpcKind::TransferLeader => {
                let req: openraft::raft::TransferLeaderRequest<TypeConfig> =
                    decode_message(payload).map_err(de)?;
                inbound::check_not_own(req.from_leader(), me)
                    .map_err(|e| format!("refused TransferLeader: {e}"))?;
                encode(&raft.handle_transfer_leader(req).await.map_err(|e| e.to_string()))
            }
            RpcKind::Snapshot => {
                // a snapshot's frames in one message (a transport that does not stream)
                let frames: Vec<Vec<u8>> = decode(payload).map_err(de)?;
                let mut frames: FrameStream =
                    Box::pin(futures_util::stream::iter(frames.into_iter().map(Ok)));
                return self.install_stream(group, &mut frames).await;
            }
        };
        bytes.map_err(|e| e.to_string())
    }

    /// Receives a snapshot of `group` streamed by its leader (what the sender's
    /// [`Transport::snapshot`] carries): stages it with bounded memory, then hands it to
    /// openraft. The answer is encoded for the sender, errors included.
    pub async fn receive_snapshot(&self, group: GroupId, mut frames: FrameStream) -> Vec<u8> {
        match self.install_stream(group, &mut frames).await {
            Ok(b) => b,
            Err(e) => encode(&Err::<(), String>(e)).unwrap_or_default(),
        }
    }

    async fn install_stream(&self, group: GroupId, frames: &mut FrameStream) -> Result<Vec<u8>, String> {
        use futures_util::StreamExt;
        let refused = |e: String| format!("refused InstallSnapshot: {e}");
        let raft = self.group(group).map_err(|e| e.to_string())?;
        let stager = self.handles.read().get(&group).map(|(_, s)| s.clone()).ok_or("no such group")?;
        let _in_flight = InFlight::new(&self.router.stats);
        let first = frames.next().await.ok_or("an empty snapshot stream")??;
        let vote = match decode(&first).map_err(|e| format!("bad snapshot frame: {e}"))? {
            crate::snapshot::Frame::Header { vote } => vote,
            _ => return Err(refused("a snapshot stream starts with its header".into())),
        };
        inbound::check_not_own(&vote, self.cfg.node_id).map_err(refused)?;
        let staged = crate::snapshot::stage(frames, stager, &self.router.stats).await?;
        // the state openraft is told is the one stored with the data
        let state: RaftState = decode(&staged.raft_state).map_err(|e| format!("bad snapshot state: {e}"))?;
        inbound::check_snapshot(&vote, &state).map_err(refused)?;
        self.router.stats.received.fetch_add(1, Ordering::Relaxed);
        let snapshot = openraft::type_config::alias::SnapshotOf::<TypeConfig, SnapshotPayload> {
            meta: state.meta(),
            snapshot: SnapshotPayload::Staged(staged),
        };
        encode(&raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string()))
            .map_err(|e| e.to_string())
    }

    /// Moves every group's purge floor and checkpoint hold. On a leader, the floor is the
    /// lowest index its followers matched, but never more than `8 × snapshot_entries` behind
    /// the log's end (a node down for longer gets a snapshot); elsewhere, no limit. A leader
    /// holds the group's checkpoints while a learner has not matched the last one yet,
    /// within [`RaftConfig::learner_hold_entries`]. Call periodically.
    pub fn update_purge_floors(&self) {
        let cap = self.cfg.snapshot_entries.saturating_mul(8);
        let groups: Vec<(GroupId, Group, LogGuard)> = {
            let guards = self.guards.read();
            self.groups
                .read()
                .iter()
                .filter_map(|(g, r)| guards.get(g).map(|f| (*g, r.clone(), f.clone())))
                .collect()
        };
        for (group, raft, guard) in groups {
            let m = raft.metrics();
            let m = m.borrow_watched();
            let matched = |id: &NodeId| matched_index(&m, *id).unwrap_or(0);
            let (floor, hold) = match &m.replication {
                Some(rep) => {
                    let lowest = rep.keys().map(matched).min().unwrap_or(u64::MAX);
                    let last = m.last_log_index.unwrap_or(0);
                    // a learner still waiting for (or installing) the snapshot of the last
                    // checkpoint needs the log after it
                    let hold = m.snapshot.is_some_and(|s| {
                        let waiting =
                            m.membership_config.membership().learner_ids().any(|l| matched(&l) < s.index);
                        let applied = m.last_applied.map_or(0, |a| a.index);
                        waiting && applied.saturating_sub(s.index) < self.cfg.learner_hold_entries
                    });
                    (lowest.max(last.saturating_sub(cap)), hold)
                }
                None => (u64::MAX, false),
            };
            guard.floor.store(floor, Ordering::Relaxed);
            if guard.hold.swap(hold, Ordering::Relaxed) != hold {
                tracing::info!(group, hold, "checkpoints held for a learner's snapshot");
            }
        }
    }

    /// Groups whose checkpoints are held for a learner's snapshot now.
    pub fn held_groups(&self) -> usize {
        self.guards.read().values().filter(|g| g.hold.load(Ordering::Relaxed)).count()
    }

    /// Starts a snapshot (checkpoint) of `group`; does not wait for it.
    pub async fn snapshot(&self, group: GroupId) -> Result<()> {
        let raft = self.group(group)?;
        raft.trigger().snapshot().await.map_err(|e| Error::Fatal { group, reason: e.to_string() })
    }

    /// Starts a snapshot (checkpoint) of every group that applied entries since its last
    /// one; does not wait for them.
    pub async fn snapshot_all(&self) {
        let groups: Vec<Group> = self.groups.read().values().cloned().collect();
        for raft in groups {
            let (applied, snap) = {
                let m = raft.metrics();
                let m = m.borrow_watched();
                (m.last_applied, m.snapshot)
            };
            if applied.is_some() && applied != snap {
                let _ = raft.trigger().snapshot().await;
            }
        }
    }

    /// Hands the leadership of every group this node leads to the voter that has the most
    /// of its log, and waits up to the shortest election timeout for each to have another
    /// leader (longer and an election would have been as quick): before a planned stop, so
    /// that writes go on after a round trip instead of stalling for an election timeout.
    /// Returns how many groups' transfers did not finish in time (they elect a leader as
    /// after a crash); a group without another voter has nobody to hand to and is not
    /// counted.
    pub async fn hand_off_leadership(&self) -> usize {
        let me = self.cfg.node_id;
        let timeout = Duration::from_millis(self.cfg.election_ms.0);
        let groups: Vec<(GroupId, Group)> = self.groups.read().iter().map(|(g, r)| (*g, r.clone())).collect();
        let hand_off = groups.into_iter().map(|(group, raft)| async move {
            let to = {
                let m = raft.metrics();
                let m = m.borrow_watched();
                if m.current_leader != Some(me) {
                    return 0;
                }
                let voters = m.membership_config.membership().voter_ids().collect();
                drop(m);
                self.successor(&raft, &voters)
            };
            let Some(to) = to else { return 0 };
            if let Err(e) = raft.trigger().transfer_leader(to).await {
                tracing::warn!(group, to, error = %e, "leadership hand-off not started");
                return 1;
            }
            let moved = raft
                .wait(Some(timeout))
                .metrics(|m| m.current_leader.is_some_and(|l| l != me), "leadership handed off")
                .await;
            match moved {
                Ok(_) => {
                    tracing::info!(group, to, "leadership handed off");
                    0
                }
                Err(e) => {
                    tracing::warn!(group, to, error = %e, "leadership hand-off did not finish");
                    1
                }
            }
        });
        futures_util::future::join_all(hand_off).await.into_iter().sum()
    }

    /// Snapshots (checkpoints) every group and waits up to `timeout` for them to finish: the
    /// clean-shutdown path, so that a restart replays little.
    pub async fn checkpoint_all(&self, timeout: Duration) {
        let groups: Vec<(GroupId, Group)> = self.groups.read().iter().map(|(g, r)| (*g, r.clone())).collect();
        for (g, raft) in groups {
            let applied = raft.metrics().borrow_watched().last_applied;
            if applied.is_none() || raft.metrics().borrow_watched().snapshot == applied {
                continue;
            }
            if raft.trigger().snapshot().await.is_err() {
                continue;
            }
            let Some(applied) = applied else { continue };
            let waited = raft
                .wait(Some(timeout))
                .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied.index), "checkpoint")
                .await;
            if let Err(e) = waited {
                tracing::warn!(group = g, error = %e, "checkpoint on shutdown did not finish");
            }
        }
    }

    /// Stops every group. With `purge`, then drops each group's log entries that its last
    /// snapshot covers (after a clean checkpoint the log holds nothing a restart needs).
    pub async fn shutdown(&self, purge: bool) {
        let groups: Vec<(GroupId, Group)> = self.groups.write().drain().collect();
        self.guards.write().clear();
        self.handles.write().clear();
        for (g, raft) in groups {
            let snapshot = raft.metrics().borrow_watched().snapshot;
            let _ = raft.shutdown().await;
            if let (true, Some(s)) = (purge, snapshot) {
                let mut log = LogStore::new(self.kv.clone(), self.writer.clone(), g);
                if let Err(e) = openraft::storage::RaftLogStorage::purge(&mut log, s).await {
                    tracing::warn!(group = g, error = %e, "purging the log on shutdown");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::StoredMembership;
    use openraft::type_config::alias::{LeaderIdOf, LogIdOf, VoteOf};
    use openraft::vote::RaftLeaderId;
    use strata_tsdb::MemEngine;

    use super::*;
    use crate::RpcKind;
    use crate::state_machine::{Exporter, StagedData};

    /// A state machine that keeps nothing: what reaches it does not matter here, only what
    /// the node lets through.
    struct Nothing;

    impl Applier for Nothing {
        fn apply(&mut self, _index: u64, _request: &Request) -> std::io::Result<Response> {
            Ok(Response::default())
        }

        fn checkpoint(&mut self, _raft_state: Vec<u8>) -> std::io::Result<()> {
            Ok(())
        }

        fn checkpointed(&self) -> std::io::Result<Option<Vec<u8>>> {
            Ok(None)
        }

        fn exporter(&self) -> Exporter {
            Arc::new(|_| Err(std::io::Error::other("nothing to export")))
        }

        /// The first data frame is the Raft state.
        fn stager(&self) -> Stager {
            Arc::new(|frames| {
                let raft_state = frames.next().unwrap_or_default();
                frames.for_each(drop);
                Ok(Staged { raft_state, data: StagedData::Bytes(Arc::new(Vec::new())) })
            })
        }

        fn import(&mut self, _snapshot: Staged) -> std::io::Result<()> {
            Ok(())
        }

        fn reopener(&self) -> Reopener {
            Arc::new(|| Ok(Box::new(Nothing)))
        }
    }

    /// A snapshot whose data decodes but whose last log id belongs to a later leader than
    /// the sender's vote: openraft `assert!`s against it (its Raft task would die); the node
    /// refuses it before, and so a stream without its header, or cut short (fewer data
    /// frames than its end says, or no end).
    #[tokio::test]
    async fn snapshots_no_leader_sends_are_refused() {
        use crate::snapshot::Frame;
        let kv = Arc::new(MemEngine::new());
        let cfg = RaftConfig { node_id: 2, election_ms: (100_000, 120_000), ..RaftConfig::default() };
        let health = Arc::new(WriteHealth::new(None, 0));
        let node = RaftNode::new(cfg, kv.clone(), Arc::new(crate::NoPeers), health).expect("node");
        node.add_group(0, Box::new(Nothing)).await.expect("group");
        let log_id =
            |term: u64, index: u64| LogIdOf::<TypeConfig>::new(LeaderIdOf::<TypeConfig>::new(term, 1), index);
        let state = |term: u64| RaftState {
            applied: Some(log_id(term, 9)),
            membership: StoredMembership::new(Some(log_id(1, 0)), Default::default()),
        };
        let header = || Frame::Header { vote: VoteOf::<TypeConfig>::new_committed(3, 1) };
        let data = |term: u64| Frame::Data(encode(&state(term)).expect("state"));
        let message = |frames: Vec<Frame>| {
            let frames: Vec<Vec<u8>> = frames.iter().map(|f| encode(f).expect("frame")).collect();
            encode(&frames).expect("message")
        };
        let end = |frames: u64| Frame::End { frames };
        for (payload, why) in [
            (message(vec![header(), data(5), end(1)]), "belongs to a leader later than the sender's vote"),
            (message(vec![data(3), end(1)]), "starts with its header"),
            (message(vec![header(), data(3), end(2)]), "ended after 1 of its 2 data frames"),
            (message(vec![header(), data(3)]), "without its end"),
        ] {
            let answer = node.handle(0, RpcKind::Snapshot, &payload).await;
            let r: Result<(), String> = decode(&answer).expect("answer");
            let e = r.expect_err(why);
            assert!(e.contains(why), "{e}");
        }
        // the group is alive: a snapshot no later than the vote goes through to the applier
        let answer = node.handle(0, RpcKind::Snapshot, &message(vec![header(), data(3), end(1)])).await;
        let r: Result<(), String> = decode(&answer).expect("answer");
        assert!(r.as_ref().is_err_and(|e| !e.starts_with("refused")) || r.is_ok(), "{r:?}");
        node.shutdown(false).await;
    }
}
