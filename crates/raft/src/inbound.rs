//! What an inbound AppendEntries or InstallSnapshot must satisfy before openraft sees it.
//!
//! openraft trusts its peers: it asserts the invariants a leader following the protocol
//! keeps (one of them with `assert!`, so also in release builds), and a message breaking
//! one stops the group's core task or stores a log whose ids are out of order. Only
//! members can send Raft messages (mutual TLS and the membership check), but a member's
//! bug, a corrupted message or a forged member under `--grpc-insecure` must cost an error
//! answer, never the group. The rules, for a leader's current vote `v`:
//!
//! * the vote is committed (only an elected leader replicates or sends snapshots);
//! * the vote (for a Vote or PreVote, the candidate's) is not the receiver's own: no node
//!   sends Raft messages to itself (a leader told of "its own" entries asserts it is none);
//! * no log id the message carries (previous, entries, commit, snapshot) was proposed by a
//!   leader later than `v`;
//! * entries follow `prev_log_id` with consecutive indexes and leaders that never go back,
//!   and the leader's commit is ordered with them by index and by leader alike;
//! * a commit beyond the message's own log ids (a heartbeat's) is ordered with the
//!   receiver's log: no local entry at or below its index was written by a later leader
//!   (by Raft's leader completeness no such entry exists beside a committed id; openraft
//!   would commit the lower of the two by leader, an index it may not hold);
//! * a snapshot's membership is no later than its last log id.

use openraft::raft::AppendEntriesRequest;
use openraft::type_config::alias::{LogIdOf, VoteOf};

use crate::state_machine::RaftState;
use crate::{NodeId, TypeConfig};

/// Checks an AppendEntries request; the error says which rule it breaks.
pub(crate) fn check_append(req: &AppendEntriesRequest<TypeConfig>) -> Result<(), String> {
    check_vote(&req.vote)?;
    no_later_than_vote(&req.vote, req.prev_log_id.as_ref(), "prev_log_id")?;
    no_later_than_vote(&req.vote, req.leader_commit.as_ref(), "leader_commit")?;
    let mut prev = req.prev_log_id.as_ref();
    for entry in &req.entries {
        let id = &entry.log_id;
        let expected = prev.map_or(Some(0), |p| p.index.checked_add(1));
        if Some(id.index) != expected {
            return Err(format!(
                "entry {} does not follow {}: log indexes are consecutive",
                show(Some(id)),
                show(prev)
            ));
        }
        if prev.is_some_and(|p| p.leader_id > id.leader_id) {
            return Err(format!(
                "entry {} comes after {} of a later leader: leaders never go back",
                show(Some(id)),
                show(prev)
            ));
        }
        no_later_than_vote(&req.vote, Some(id), "an entry")?;
        prev = Some(id);
    }
    if let Some(c) = &req.leader_commit {
        // the commit is a log id of the same log: ordered with the message's ids by index and
        // by leader alike (openraft takes the lower of it and the last id by leader first, so
        // a commit of an earlier leader at a higher index would commit entries never stored)
        let known = req.prev_log_id.iter().chain(req.entries.iter().map(|e| &e.log_id));
        for id in known {
            let in_order = match id.index.cmp(&c.index) {
                std::cmp::Ordering::Less => id.leader_id <= c.leader_id,
                std::cmp::Ordering::Equal => id == c,
                std::cmp::Ordering::Greater => id.leader_id >= c.leader_id,
            };
            if !in_order {
                return Err(format!(
                    "leader_commit {} is out of order with {}: log ids rise in index and leader together",
                    show(Some(c)),
                    show(Some(id))
                ));
            }
        }
    }
    Ok(())
}

/// `req`'s commit when it lies beyond every log id the message carries, so that the
/// receiver's log must be consulted for it (else `None`: the message's ids, checked by
/// [`check_append`], decide).
pub(crate) fn commit_beyond_message(req: &AppendEntriesRequest<TypeConfig>) -> Option<&LogIdOf<TypeConfig>> {
    let c = req.leader_commit.as_ref()?;
    let last = req.entries.last().map(|e| &e.log_id).or(req.prev_log_id.as_ref());
    last.is_none_or(|l| l.index < c.index).then_some(c)
}

/// Checks `commit` against the receiver's log id at `min(commit.index, its last index)`
/// (`local`; `None` when that index is purged or the log empty): no leader later than the
/// commit's wrote an entry at or below the commit's index.
pub(crate) fn check_commit_with_log(
    commit: &LogIdOf<TypeConfig>,
    local: Option<&LogIdOf<TypeConfig>>,
) -> Result<(), String> {
    match local {
        Some(l) if l.leader_id > commit.leader_id => Err(format!(
            "leader_commit {} is out of order with this node's log id {}: log ids rise in index and leader \
             together",
            show(Some(commit)),
            show(Some(l))
        )),
        _ => Ok(()),
    }
}

/// Checks an InstallSnapshot's vote against the Raft state the snapshot carries.
pub(crate) fn check_snapshot(vote: &VoteOf<TypeConfig>, state: &RaftState) -> Result<(), String> {
    check_vote(vote)?;
    no_later_than_vote(vote, state.applied.as_ref(), "the snapshot's last log id")?;
    let membership = state.membership.log_id().as_ref();
    if membership > state.applied.as_ref() {
        return Err(format!(
            "the snapshot's membership at {} is later than its last log id {}",
            show(membership),
            show(state.applied.as_ref())
        ));
    }
    Ok(())
}

/// Checks that a message's vote does not name the receiving node as its leader or candidate.
pub(crate) fn check_not_own(vote: &VoteOf<TypeConfig>, me: NodeId) -> Result<(), String> {
    if vote.leader_id().node_id == me {
        Err(format!("vote {vote} names this node ({me}): no node sends Raft messages to itself"))
    } else {
        Ok(())
    }
}

fn check_vote(vote: &VoteOf<TypeConfig>) -> Result<(), String> {
    if vote.is_committed() {
        Ok(())
    } else {
        Err(format!("vote {vote} is not committed: only an elected leader replicates"))
    }
}

fn no_later_than_vote(
    vote: &VoteOf<TypeConfig>,
    id: Option<&LogIdOf<TypeConfig>>,
    what: &str,
) -> Result<(), String> {
    match id {
        Some(id) if &id.leader_id > vote.leader_id() => {
            Err(format!("{what} {} belongs to a leader later than the sender's vote {vote}", show(Some(id))))
        }
        _ => Ok(()),
    }
}

fn show(id: Option<&LogIdOf<TypeConfig>>) -> String {
    id.map_or_else(|| "none".to_string(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use openraft::type_config::alias::{EntryOf, LeaderIdOf};
    use openraft::vote::RaftLeaderId;
    use openraft::{EntryPayload, StoredMembership};

    use super::*;
    use crate::Request;

    fn vote(term: u64, node: u64, committed: bool) -> VoteOf<TypeConfig> {
        if committed {
            VoteOf::<TypeConfig>::new_committed(term, node)
        } else {
            VoteOf::<TypeConfig>::new(term, node)
        }
    }

    fn log_id(term: u64, index: u64) -> LogIdOf<TypeConfig> {
        LogIdOf::<TypeConfig>::new(LeaderIdOf::<TypeConfig>::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> EntryOf<TypeConfig> {
        EntryOf::<TypeConfig> { log_id: log_id(term, index), payload: EntryPayload::Normal(Request(vec![])) }
    }

    fn append(
        vote: VoteOf<TypeConfig>,
        prev: Option<(u64, u64)>,
        entries: &[(u64, u64)],
        commit: Option<(u64, u64)>,
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: prev.map(|(t, i)| log_id(t, i)),
            entries: entries.iter().map(|&(t, i)| entry(t, i)).collect(),
            leader_commit: commit.map(|(t, i)| log_id(t, i)),
        }
    }

    #[test]
    fn what_a_leader_sends_passes() {
        let v = vote(3, 1, true);
        for req in [
            append(v, None, &[], None),
            append(v, None, &[(1, 0), (1, 1), (2, 2), (3, 3)], Some((2, 2))),
            append(v, Some((2, 7)), &[(2, 8), (3, 9)], Some((3, 9))),
            append(v, Some((3, 9)), &[], Some((3, 9))),
            append(v, Some((2, 7)), &[(2, 8)], Some((3, 12))),
            append(v, Some((2, 7)), &[(2, 8)], Some((1, 3))),
            append(v, None, &[], Some((3, 12))),
        ] {
            assert_eq!(check_append(&req), Ok(()), "{req:?}");
        }
    }

    #[test]
    fn what_no_leader_sends_is_refused() {
        let v = vote(3, 1, true);
        let cases = [
            (append(vote(3, 1, false), None, &[], None), "not committed"),
            (append(v, Some((2, 7)), &[(2, 9)], None), "consecutive"),
            (append(v, None, &[(1, 1)], None), "consecutive"),
            (append(v, Some((2, 7)), &[(2, 8), (2, 8)], None), "consecutive"),
            (append(v, Some((2, u64::MAX)), &[(2, 0)], None), "consecutive"),
            (append(v, Some((2, 7)), &[(2, 8), (1, 9)], None), "never go back"),
            (append(v, Some((3, 7)), &[(2, 8)], None), "never go back"),
            (append(v, Some((2, 7)), &[(2, 8), (4, 9)], None), "later than the sender's vote"),
            (append(v, Some((4, 7)), &[], None), "later than the sender's vote"),
            (append(v, None, &[], Some((4, 2))), "later than the sender's vote"),
            // the fuzz target's: a commit of an earlier leader beyond the entries sent
            (append(v, None, &[(0, 0), (1, 1)], Some((0, 7))), "out of order"),
            (append(v, Some((2, 7)), &[(2, 8), (3, 9)], Some((2, 9))), "out of order"),
            (append(v, Some((2, 7)), &[(3, 8)], Some((3, 5))), "out of order"),
        ];
        for (req, why) in cases {
            let err = check_append(&req).expect_err(why);
            assert!(err.contains(why), "{req:?}: {err}");
        }
    }

    #[test]
    fn a_vote_naming_the_receiver_is_refused() {
        assert_eq!(check_not_own(&vote(3, 1, true), 2), Ok(()));
        for v in [vote(3, 2, true), vote(3, 2, false)] {
            let err = check_not_own(&v, 2).expect_err("own vote");
            assert!(err.contains("names this node"), "{err}");
        }
    }

    #[test]
    fn a_commit_beyond_the_message_is_checked_against_the_log() {
        let v = vote(3, 1, true);
        // what the receiver must look up: a heartbeat's commit, or one beyond the entries
        assert_eq!(commit_beyond_message(&append(v, None, &[], Some((2, 7)))).map(|c| c.index), Some(7));
        assert_eq!(
            commit_beyond_message(&append(v, Some((2, 3)), &[(2, 4)], Some((2, 7)))).map(|c| c.index),
            Some(7)
        );
        assert_eq!(
            commit_beyond_message(&append(v, Some((2, 3)), &[(2, 4)], Some((2, 4)))).map(|c| c.index),
            None
        );
        assert_eq!(commit_beyond_message(&append(v, Some((2, 9)), &[], Some((2, 4)))).map(|c| c.index), None);
        assert_eq!(commit_beyond_message(&append(v, None, &[], None)).map(|c| c.index), None);
        // a local entry of an earlier or the same leader is fine; of a later one, refused
        assert_eq!(check_commit_with_log(&log_id(2, 7), None), Ok(()));
        assert_eq!(check_commit_with_log(&log_id(2, 7), Some(&log_id(1, 7))), Ok(()));
        assert_eq!(check_commit_with_log(&log_id(2, 7), Some(&log_id(2, 4))), Ok(()));
        // the fuzz target's: the node holds (1, 0), a heartbeat commits (0, 1)
        let err = check_commit_with_log(&log_id(0, 1), Some(&log_id(1, 0))).expect_err("later leader");
        assert!(err.contains("out of order with this node's log"), "{err}");
    }

    #[test]
    fn snapshots_are_checked_against_the_vote() {
        let v = vote(3, 1, true);
        let state = |applied: Option<(u64, u64)>, membership: Option<(u64, u64)>| RaftState {
            applied: applied.map(|(t, i)| log_id(t, i)),
            membership: StoredMembership::new(membership.map(|(t, i)| log_id(t, i)), Default::default()),
        };
        assert_eq!(check_snapshot(&v, &state(Some((3, 9)), Some((1, 0)))), Ok(()));
        assert_eq!(check_snapshot(&v, &state(None, None)), Ok(()));
        let refused = [
            (vote(3, 1, false), state(Some((3, 9)), None), "not committed"),
            (v, state(Some((4, 9)), None), "later than the sender's vote"),
            (v, state(Some((2, 9)), Some((2, 10))), "membership"),
            (v, state(None, Some((1, 0))), "membership"),
        ];
        for (vote, state, why) in refused {
            let err = check_snapshot(&vote, &state).expect_err(why);
            assert!(err.contains(why), "{state:?}: {err}");
        }
    }
}
