//! Membership changes of one group, driven one idempotent step at a time on its leader
//! (the placement controller calls again until done): add the new replica as a learner,
//! wait until it caught up, hand the leadership away from a leaving leader, then one
//! joint `ReplaceAllVoters` change. And the end of a replica: [`RaftNode::remove_group`].

use std::collections::BTreeSet;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use strata_tsdb::keys::{META_LOG_FIRST, meta_key, shard_range};
use strata_tsdb::{Cf, WriteBatch};

use crate::error::{Error, Result};
use crate::log_store::META_VOTE;
use crate::node::{Group, RaftNode, matched_index};
use crate::{GroupId, NodeId};

/// Where a replica change stands after one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaStep {
    /// The group's voters are the target set (the joint change committed).
    Done,
    /// Not yet; the phase it is in: `learner` (added, nothing matched yet: a snapshot is on
    /// its way), `catching-up`, `transferring-leader`, `joint` (finishing a joint change).
    Pending(&'static str),
}

impl RaftNode {
    /// The leader's answer to a caller that asked a follower.
    fn not_leader(&self, group: GroupId, raft: &Group) -> Error {
        let m = raft.metrics();
        let m = m.borrow_watched();
        let leader = m.current_leader;
        let leader_addr =
            leader.and_then(|l| m.membership_config.membership().get_node(&l).map(|n| n.addr.clone()));
        Error::NotLeader { group, leader, leader_addr }
    }

    /// One step of replacing voter `remove` of `group` with node `add` (at `add_addr`): run
    /// on the group's leader, again until [`ReplicaStep::Done`]. `add` counts as caught up
    /// once it matched the log to within `max_lag` entries. A leader that is `remove` hands
    /// its leadership to the best-matched remaining voter first (and answers
    /// [`Error::NotLeader`] from then on). Nothing acknowledged can be lost: every change
    /// needs quorums of the old and the new voters.
    pub async fn replace_replica(
        &self,
        group: GroupId,
        remove: NodeId,
        add: NodeId,
        add_addr: &str,
        max_lag: u64,
    ) -> Result<ReplicaStep> {
        let me = self.id();
        let raft = self.group(group)?;
        let (voters, learners, joint, matched, last, leader) = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            let membership = m.membership_config.membership();
            let matched = matched_index(&m, add);
            (
                membership.voter_ids().collect::<BTreeSet<NodeId>>(),
                membership.learner_ids().collect::<BTreeSet<NodeId>>(),
                membership.get_joint_config().len() > 1,
                matched,
                m.last_log_index.unwrap_or(0),
                m.current_leader,
            )
        };
        if leader != Some(me) {
            return Err(self.not_leader(group, &raft));
        }
        let mut target = voters.clone();
        target.remove(&remove);
        target.insert(add);
        let fatal = |e: String| Error::Fatal { group, reason: e };
        if joint {
            // a change left halfway (its leader changed): finish it
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::new()), false)
                .await
                .map_err(|e| fatal(e.to_string()))?;
            return Ok(ReplicaStep::Pending("joint"));
        }
        if voters == target {
            if learners.contains(&add) {
                return Ok(ReplicaStep::Pending("joint"));
            }
            return Ok(ReplicaStep::Done);
        }
        if !voters.contains(&add) && !learners.contains(&add) {
            raft.add_learner(add, BasicNode { addr: add_addr.to_string() }, false)
                .await
                .map_err(|e| fatal(e.to_string()))?;
            return Ok(ReplicaStep::Pending("learner"));
        }
        match matched {
            None => return Ok(ReplicaStep::Pending("learner")),
            Some(i) if i + max_lag < last => return Ok(ReplicaStep::Pending("catching-up")),
            Some(_) => {}
        }
        if remove == me {
            if let Some(to) = self.successor(&raft, &target) {
                self.start_transfer(group, &raft, to).await?;
            }
            return Ok(ReplicaStep::Pending("transferring-leader"));
        }
        tracing::info!(group, ?voters, ?target, "replacing the voters (one joint change)");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(target), false)
            .await
            .map_err(|e| fatal(e.to_string()))?;
        Ok(ReplicaStep::Done)
    }

    /// The voter of `among` (not this node) that matched the most of the leader's log.
    pub(crate) fn successor(&self, raft: &Group, among: &BTreeSet<NodeId>) -> Option<NodeId> {
        let me = self.id();
        let m = raft.metrics();
        let m = m.borrow_watched();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let matched = |id: &NodeId| matched_index(&m, *id);
        among
            .iter()
            .filter(|&&id| id != me && voters.contains(&id))
            .max_by_key(|id| (matched(id), std::cmp::Reverse(**id)))
            .copied()
    }

    /// Drops learner `node` from `group` (an aborted move). Returns whether `node` is out
    /// of the group: false when it is a voter already (the move is past its point of no
    /// return and must be finished instead). Run on the group's leader.
    pub async fn drop_learner(&self, group: GroupId, node: NodeId) -> Result<bool> {
        let raft = self.group(group)?;
        let (is_learner, is_voter, leads) = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            let membership = m.membership_config.membership();
            (
                membership.learner_ids().any(|l| l == node),
                membership.voter_ids().any(|v| v == node),
                m.current_leader == Some(self.id()),
            )
        };
        if !leads {
            return Err(self.not_leader(group, &raft));
        }
        if is_learner {
            raft.change_membership(ChangeMembers::RemoveNodes([node].into()), false)
                .await
                .map_err(|e| Error::Fatal { group, reason: e.to_string() })?;
        }
        Ok(!is_voter)
    }

    /// Hands `group`'s leadership to voter `to` (leader balancing, draining); does not
    /// wait. Run on the group's leader.
    pub async fn transfer_leader(&self, group: GroupId, to: NodeId) -> Result<()> {
        let raft = self.group(group)?;
        if raft.metrics().borrow_watched().current_leader != Some(self.id()) {
            return Err(self.not_leader(group, &raft));
        }
        self.start_transfer(group, &raft, to).await
    }

    /// Starts a leadership transfer of `group` to `to`, unless one started here less than
    /// an election timeout ago (it is still under way, or failed and an election follows):
    /// a second transfer racing the first splits the votes.
    async fn start_transfer(&self, group: GroupId, raft: &Group, to: NodeId) -> Result<()> {
        let wait = std::time::Duration::from_millis(self.election_max_ms());
        {
            let mut t = self.transfers.lock();
            if t.get(&group).is_some_and(|at| at.elapsed() < wait) {
                return Ok(());
            }
            t.insert(group, std::time::Instant::now());
        }
        raft.trigger().transfer_leader(to).await.map_err(|e| Error::Fatal { group, reason: e.to_string() })
    }

    /// Stops this node's replica of `group` and deletes its log (the group's state machine
    /// data is its owner's to delete); the vote stays, so a later replica of the group here
    /// never votes twice in one term. For a replica the group no longer has.
    pub async fn remove_group(&self, group: GroupId) -> Result<()> {
        let Some(raft) = self.take_group(group) else { return Ok(()) };
        raft.shutdown().await.map_err(|e| Error::Fatal { group, reason: e.to_string() })?;
        let (s, e) = shard_range(group);
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Log, s, e);
        b.delete_range(Cf::Meta, meta_key(group, META_VOTE + 1), meta_key(group, META_LOG_FIRST + 0x10));
        self.kv().write(&b, true).map_err(|e| Error::Storage(e.to_string()))
    }
}
