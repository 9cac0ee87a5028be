//! bincode encoding of Raft payloads and stored Raft state.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Encodes `v` with bincode's standard configuration.
pub(crate) fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(io_err)
}

/// Decodes a value encoded by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    bincode::serde::decode_from_slice(b, bincode::config::standard()).map(|(v, _)| v).map_err(io_err)
}
