//! bincode encoding of Raft payloads and stored Raft state, and of what the groups' state
//! machines store (the shard applier's snapshots, the cluster map): one configuration and
//! one bound on what a decoded value may claim, for every crate.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An I/O error carrying `e`'s message (what openraft's storage traits return).
pub fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Encodes `v` with bincode's standard configuration.
pub fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(io_err)
}

/// The most bytes a decoded value may claim (lengths of strings, byte strings and sequences,
/// added up): 4 GiB, above any stored entry or shard checkpoint. A length prefix beyond it
/// is refused before anything is allocated (bincode trusts prefixes otherwise).
const MAX_DECODED: usize = 4 << 30;

/// The most bytes an inbound Raft message other than a snapshot may claim: 256 MiB, the
/// largest gRPC message nodes exchange.
const MAX_MESSAGE_DECODED: usize = 256 << 20;

/// Decodes a value encoded by [`encode`] (stored state, log entries, snapshots).
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    let cfg = bincode::config::standard().with_limit::<MAX_DECODED>();
    bincode::serde::decode_from_slice(b, cfg).map(|(v, _)| v).map_err(io_err)
}

/// Decodes an inbound Raft message (append, vote, pre-vote), whose claims are bounded by
/// the message size limit.
pub(crate) fn decode_message<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    let cfg = bincode::config::standard().with_limit::<MAX_MESSAGE_DECODED>();
    bincode::serde::decode_from_slice(b, cfg).map(|(v, _)| v).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    #[test]
    fn huge_length_prefixes_are_refused_before_allocating() {
        // an entry payload (one byte string) claiming 2^44 bytes: varint 0xFD + u64, then nothing
        let mut forged = vec![0xFD];
        forged.extend_from_slice(&(1u64 << 44).to_le_bytes());
        let e = decode::<Request>(&forged).unwrap_err();
        assert!(e.to_string().to_lowercase().contains("limit"), "{e}");
        let e = decode_message::<Request>(&forged).unwrap_err();
        assert!(e.to_string().to_lowercase().contains("limit"), "{e}");
        // within the limit but longer than the message: an error as well
        let mut short = vec![0xFD];
        short.extend_from_slice(&(100u64 << 20).to_le_bytes());
        assert!(decode_message::<Request>(&short).is_err());
        let ok = encode(&Request(vec![7; 10])).unwrap();
        assert_eq!(decode_message::<Request>(&ok).unwrap(), Request(vec![7; 10]));
    }
}
