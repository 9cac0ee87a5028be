//! The key layout. Every key starts with the big-endian shard id, so a shard is one
//! contiguous range in each column family; all integers are big-endian so byte order is
//! numeric order (signed timestamps have their sign bit flipped).
//!
//! | CF | key | value |
//! |---|---|---|
//! | `log` | `S · index u64` | a log record ([`crate::record`]) |
//! | `meta` | `S · 0x01` | applied log index u64 (the checkpoint watermark) |
//! | `meta` | `S · 0x02` | next series id u64 |
//! | `meta` | `S · 0x03` | next chunk sequence number u64 |
//! | `meta` | `S · 0x1F` | the checkpoint owner's state (a replicated shard's Raft applied id and membership) |
//! | `meta` | `S · 0x20..0x2F` | the Raft log's state (vote, committed, purged) |
//! | `meta` | `0xFFFFFFFF · 0x10` | node settings (format version, shard count) |
//! | `index` | `S · 'F' · series u64` | canonical labels |
//! | `index` | `S · 'D' · day u32 · series u64` | ∅ (series has samples on that UTC day) |
//! | `chunks` | `S · bucket_start i64 · series u64 · seq u64` | one encoded chunk |

/// Identifies a shard.
pub type ShardId = u32;

/// Meta tag: applied watermark.
pub(crate) const META_APPLIED: u8 = 0x01;
/// Meta tag: next series id.
pub(crate) const META_NEXT_SERIES: u8 = 0x02;
/// Meta tag: next chunk sequence.
pub(crate) const META_NEXT_SEQ: u8 = 0x03;
/// Meta tag: state the checkpoint's owner stores with it (a replicated shard's Raft state).
pub const META_CHECKPOINT_OWNER: u8 = 0x1F;
/// First meta tag of the log's own state (Raft vote, committed, purged: 0x20–0x2F), which a
/// checkpoint neither exports nor replaces.
pub const META_LOG_FIRST: u8 = 0x20;
/// Meta tag under [`NODE_SHARD`]: node settings.
pub(crate) const META_SETTINGS: u8 = 0x10;
/// Pseudo shard id that holds node-wide records.
pub(crate) const NODE_SHARD: ShardId = u32::MAX;

const INDEX_FORWARD: u8 = b'F';
const INDEX_DAY: u8 = b'D';

/// Milliseconds per UTC day.
pub const DAY_MS: i64 = 86_400_000;

fn ts_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap_or([0; 8]))
}

/// Key builder: shard prefix plus parts.
fn key(shard: ShardId, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.extend_from_slice(&shard.to_be_bytes());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// `[shard, shard+1)` as a key range (the whole shard in one CF).
pub fn shard_range(shard: ShardId) -> (Vec<u8>, Vec<u8>) {
    (shard.to_be_bytes().to_vec(), (u64::from(shard) + 1).to_be_bytes()[4..].to_vec())
}

/// Log key of entry `index`.
pub fn log_key(shard: ShardId, index: u64) -> Vec<u8> {
    key(shard, &[&index.to_be_bytes()])
}

/// Index of a log key.
pub fn log_index(k: &[u8]) -> u64 {
    be_u64(&k[4..])
}

/// Meta key with `tag` (tags 0x01–0x1F belong to the TSDB, 0x20–0x2F to the Raft log).
pub fn meta_key(shard: ShardId, tag: u8) -> Vec<u8> {
    key(shard, &[&[tag]])
}

/// Forward index key of a series.
pub fn forward_key(shard: ShardId, series: u64) -> Vec<u8> {
    key(shard, &[&[INDEX_FORWARD], &series.to_be_bytes()])
}

/// Range of every forward key of a shard.
pub fn forward_range(shard: ShardId) -> (Vec<u8>, Vec<u8>) {
    (key(shard, &[&[INDEX_FORWARD]]), key(shard, &[&[INDEX_FORWARD + 1]]))
}

/// Series id of a forward key.
pub fn forward_series(k: &[u8]) -> u64 {
    be_u64(&k[5..13])
}

/// Day-activity key.
pub fn day_key(shard: ShardId, day: u32, series: u64) -> Vec<u8> {
    key(shard, &[&[INDEX_DAY], &day.to_be_bytes(), &series.to_be_bytes()])
}

/// Range of day keys for days `[from, to)`.
pub fn day_range(shard: ShardId, from: u32, to: u32) -> (Vec<u8>, Vec<u8>) {
    (key(shard, &[&[INDEX_DAY], &from.to_be_bytes()]), key(shard, &[&[INDEX_DAY], &to.to_be_bytes()]))
}

/// (day, series) of a day key.
pub fn day_parts(k: &[u8]) -> (u32, u64) {
    (u32::from_be_bytes(k[5..9].try_into().unwrap_or([0; 4])), be_u64(&k[9..17]))
}

/// UTC day number of a millisecond timestamp (clamped into `u32`).
pub fn day_of(t: i64) -> u32 {
    t.div_euclid(DAY_MS).clamp(0, i64::from(u32::MAX)) as u32
}

/// Chunk key.
pub fn chunk_key(shard: ShardId, bucket: i64, series: u64, seq: u64) -> Vec<u8> {
    key(shard, &[&ts_bytes(bucket), &series.to_be_bytes(), &seq.to_be_bytes()])
}

/// Prefix of every chunk of `series` in `bucket`.
pub fn chunk_series_prefix(shard: ShardId, bucket: i64, series: u64) -> Vec<u8> {
    key(shard, &[&ts_bytes(bucket), &series.to_be_bytes()])
}

/// Range of chunk keys with bucket in `[from, to)`.
pub fn chunk_bucket_range(shard: ShardId, from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    (key(shard, &[&ts_bytes(from)]), key(shard, &[&ts_bytes(to)]))
}

/// (bucket, series, seq) of a chunk key.
pub fn chunk_parts(k: &[u8]) -> (i64, u64, u64) {
    (ts_from(&k[4..12]), be_u64(&k[12..20]), be_u64(&k[20..28]))
}

/// Whether `k` has the shape of a key of `cf` (its length and, in the index, its tag): the
/// parsers above slice keys by position, so a key from outside (an imported snapshot) is
/// checked first.
pub fn well_formed(cf: crate::Cf, k: &[u8]) -> bool {
    match cf {
        crate::Cf::Log => k.len() == 12,
        crate::Cf::Meta => k.len() == 5,
        crate::Cf::Index => match k.get(4) {
            Some(&INDEX_FORWARD) => k.len() == 13,
            Some(&INDEX_DAY) => k.len() == 17,
            _ => false,
        },
        crate::Cf::Chunks => k.len() == 28,
    }
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_made_here_are_well_formed_and_short_ones_are_not() {
        use crate::Cf;
        for (cf, k) in [
            (Cf::Log, log_key(1, 2)),
            (Cf::Meta, meta_key(1, META_APPLIED)),
            (Cf::Index, forward_key(1, 2)),
            (Cf::Index, day_key(1, 2, 3)),
            (Cf::Chunks, chunk_key(1, -5, 2, 3)),
        ] {
            assert!(well_formed(cf, &k), "{cf:?} {k:?}");
            assert!(!well_formed(cf, &k[..k.len() - 1]), "{cf:?} {k:?}");
        }
        assert!(!well_formed(Cf::Index, &[0, 0, 0, 1, b'X', 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!well_formed(Cf::Index, &[0, 0, 0, 1]));
    }

    #[test]
    fn layout_snapshot() {
        assert_eq!(log_key(1, 2), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(forward_key(3, 5), [0, 0, 0, 3, b'F', 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(day_key(0, 7, 9)[..9], [0, 0, 0, 0, b'D', 0, 0, 0, 7]);
        let k = chunk_key(2, -7_200_000, 11, 4);
        assert_eq!(k.len(), 28);
        assert_eq!(chunk_parts(&k), (-7_200_000, 11, 4));
        assert!(chunk_key(2, -1, 0, 0) < chunk_key(2, 0, 0, 0));
        assert_eq!(shard_range(1), (vec![0, 0, 0, 1], vec![0, 0, 0, 2]));
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(day_of(-1), 0);
    }
}
