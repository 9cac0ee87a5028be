//! The openraft type configuration of a group, and what a write returns.

use serde::{Deserialize, Serialize};
use strata_tsdb::ApplyOutcome;

/// Identifies a storage node (stable for the node's life; chosen by the operator).
pub type NodeId = u64;

/// Identifies a Raft group on a node: a shard id, or [`META_GROUP`].
pub type GroupId = u32;

/// The group that holds the cluster metadata (shard ids are below it).
pub const META_GROUP: GroupId = u32::MAX - 1;

/// A group write: for a shard, one log record as the write path encodes it
/// (`strata_tsdb::record`); for the metadata group, a command of its applier. Serialised
/// as one byte string (serde's default for `Vec<u8>` goes element by element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request(pub Vec<u8>);

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Request;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Request, E> {
                Ok(Request(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Request, E> {
                Ok(Request(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Request, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Request(v))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// What applying a request did: for a shard, the samples accepted and rejected and why
/// (the engine's outcome, unconverted); for the metadata group, the command's error.
pub type Response = ApplyOutcome;

openraft::declare_raft_types!(
    /// The type configuration of every group.
    pub TypeConfig:
        D = Request,
        R = Response,
);

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request of {} bytes", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_byte_string_on_the_wire() {
        let r = Request((0..=255u8).collect());
        let bytes = bincode::serde::encode_to_vec(&r, bincode::config::standard()).expect("encode");
        // length prefix (varint 256 = 3 bytes) + the bytes themselves
        assert_eq!(bytes.len(), 3 + 256);
        let (back, _): (Request, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        assert_eq!(back, r);
    }
}
