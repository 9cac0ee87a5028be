//! Inbound Raft messages through their public entry point, `RaftNode::handle`, as the
//! internal gRPC service hands them over: each input is a fresh node (memory engine, one
//! shard group with its real applier, not initialised, as a node that just joined) and a
//! sequence of messages, each `kind byte · u32 LE length · payload` (the last payload is
//! cut to what is left). Kinds are AppendEntries, Vote, PreVote and InstallSnapshot
//! (`kind % 4`), decoded with the size limits the node applies, then handed to openraft
//! and, for a snapshot, imported into the shard. Every message must get an answer; a
//! panic or abort anywhere in the node (decoder, openraft, applier) is a finding.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use strata_raft::{NoPeers, RaftConfig, RaftNode, RpcKind, WriteHealth};
use strata_storage::ShardApplier;
use strata_tsdb::{Db, DbConfig, MemEngine, SystemClock};

/// Splits the input into (kind, payload) messages.
fn messages(mut data: &[u8]) -> Vec<(RpcKind, &[u8])> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = data.split_first() {
        let kind = RpcKind::ALL[usize::from(kind) % RpcKind::ALL.len()];
        let (len, rest) = match rest.split_first_chunk::<4>() {
            Some((len, rest)) => (u32::from_le_bytes(*len) as usize, rest),
            None => (rest.len(), rest),
        };
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        out.push((kind, payload));
        data = rest;
    }
    out
}

async fn deliver(msgs: Vec<(RpcKind, &[u8])>) {
    let kv = Arc::new(MemEngine::new());
    // long timeouts: the node never starts an election of its own while a case runs
    let cfg = RaftConfig {
        node_id: 2,
        heartbeat_ms: 10_000,
        election_ms: (60_000, 120_000),
        ..RaftConfig::default()
    };
    let health = Arc::new(WriteHealth::new(None, 0));
    let node = RaftNode::new(cfg, kv.clone(), Arc::new(NoPeers), health)
        .expect("raft node");
    let db =
        Db::open(kv.clone(), DbConfig { shards: 1, ..DbConfig::default() }, Arc::new(SystemClock))
            .expect("db");
    let staging = std::env::temp_dir().join(format!("strata-fuzz-raft-{}", std::process::id()));
    node.add_group(0, Box::new(ShardApplier::new(db, kv, 0, staging))).await.expect("group");
    for (kind, payload) in msgs {
        let answer = node.handle(0, kind, payload).await;
        assert!(!answer.is_empty(), "a {kind:?} message got no answer");
    }
    node.shutdown(false).await;
}

fuzz_target!(|data: &[u8]| {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
    });
    rt.block_on(deliver(messages(data)));
});
