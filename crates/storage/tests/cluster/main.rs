//! In-process cluster tests: three storage nodes on loopback gRPC, a network that drops,
//! partitions and delays Raft messages, and a client that writes the way ingestors do.

mod elastic;
mod handoff;
mod harness;
mod join;
mod reads;
mod replication;
mod security;
mod unreachable;
