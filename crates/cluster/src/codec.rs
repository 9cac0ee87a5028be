//! Conversions between the cluster protocol's messages and the engine's types.

use std::sync::Arc;

use strata_proto::cluster::{
    EvaluateReply, LabelMatcher, LabelsReply, SelectReply, SeriesChunk, ShardRefused, WriteReply,
};
use strata_tsdb::chunk;
use strata_tsdb::{ApplyOutcome, Labels, MatchOp, Matcher, RejectReason, SeriesData};

use crate::error::{Error, Result};

/// Wire number of a matcher operator.
fn op_code(op: MatchOp) -> u32 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    }
}

/// Matchers to their wire form.
pub fn to_wire(matchers: &[Matcher]) -> Vec<LabelMatcher> {
    matchers
        .iter()
        .map(|m| LabelMatcher { op: op_code(m.op), name: m.name.clone(), value: m.value.clone() })
        .collect()
}

/// Matchers from their wire form.
pub fn from_wire(matchers: &[LabelMatcher]) -> Result<Vec<Matcher>> {
    matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                0 => MatchOp::Equal,
                1 => MatchOp::NotEqual,
                2 => MatchOp::Regex,
                3 => MatchOp::NotRegex,
                o => return Err(Error::Invalid(format!("unknown matcher operator {o}"))),
            };
            Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| Error::Invalid(e.to_string()))
        })
        .collect()
}

/// A selected series as compressed chunks.
pub fn series_to_wire(s: &SeriesData) -> SeriesChunk {
    series_to_wire_with(s, Vec::new())
}

/// [`series_to_wire`] with float chunks forwarded as stored ([`strata_tsdb::Select::forwarding`]).
pub fn series_to_wire_with(s: &SeriesData, stored: Vec<Vec<u8>>) -> SeriesChunk {
    let histograms = if s.histograms.is_empty() {
        Vec::new()
    } else {
        let hs: Vec<(i64, strata_tsdb::FloatHistogram)> =
            s.histograms.iter().map(|(t, h)| (*t, (**h).clone())).collect();
        chunk::encode_histograms(&hs)
    };
    let samples = if s.samples.is_empty() { Vec::new() } else { chunk::encode_packed(&s.samples) };
    SeriesChunk { labels: s.labels.encode(), samples, histograms, stored }
}

/// A selected series from its wire form.
pub fn series_from_wire(c: &SeriesChunk) -> Result<SeriesData> {
    let bad = |what: &str| Error::Invalid(format!("undecodable {what} in select reply"));
    let labels = Labels::decode(&c.labels).ok_or_else(|| bad("labels"))?;
    let mut samples = Vec::new();
    if !c.samples.is_empty() {
        chunk::decode_into(&c.samples, &mut samples).ok_or_else(|| bad("samples"))?;
    }
    let samples = chunk::join_forwarded(&c.stored, samples).ok_or_else(|| bad("stored chunk"))?;
    let mut histograms: Vec<(i64, Arc<strata_tsdb::FloatHistogram>)> = Vec::new();
    if !c.histograms.is_empty() {
        chunk::decode_histograms_into(&c.histograms, &mut histograms).ok_or_else(|| bad("histograms"))?;
    }
    Ok(SeriesData { labels, samples, histograms })
}

/// What a shard's apply did, as `Storage.Write` answers it.
pub fn outcome_to_wire(o: ApplyOutcome) -> WriteReply {
    WriteReply {
        accepted: o.accepted,
        rejected: o.rejected.to_vec(),
        new_series: o.new_series,
        error: o.first_error.unwrap_or_default(),
        answer: o.answer,
        ..WriteReply::default()
    }
}

/// [`outcome_to_wire`] back (reasons a newer node counts beyond ours are dropped).
pub fn outcome_from_wire(r: WriteReply) -> ApplyOutcome {
    let mut rejected = [0u64; RejectReason::ALL.len()];
    for (d, s) in rejected.iter_mut().zip(&r.rejected) {
        *d = *s;
    }
    ApplyOutcome {
        accepted: r.accepted,
        rejected,
        new_series: r.new_series,
        first_error: (!r.error.is_empty()).then_some(r.error),
        answer: r.answer,
    }
}

/// A reply of a shard read (`Select`, `Evaluate`, `Labels`), as the storage node builds it
/// and the querier reads it: the not-leader answer, and for a batched read the header that
/// names the shards refused, then answers tagged with their shard.
pub trait ShardReply: Sized {
    /// The answer of a node that is not the shard's leader (`leader_addr` "" if unknown).
    fn not_leader(leader_addr: String) -> Self;
    /// The header of a batched read: the shards refused.
    fn batch_header(refused: Vec<ShardRefused>) -> Self;
    /// Whether this is the header of a batched read.
    fn is_batch_header(&self) -> bool;
    /// The header's shards refused.
    fn take_refused(&mut self) -> Vec<ShardRefused>;
    /// The shard this reply answers for.
    fn shard(&self) -> u32;
}

macro_rules! shard_reply {
    ($($t:ty),*) => {$(
        impl ShardReply for $t {
            fn not_leader(leader_addr: String) -> Self {
                Self { not_leader: true, leader_addr, ..Self::default() }
            }
            fn batch_header(refused: Vec<ShardRefused>) -> Self {
                Self { batched: true, refused, ..Self::default() }
            }
            fn is_batch_header(&self) -> bool {
                self.batched
            }
            fn take_refused(&mut self) -> Vec<ShardRefused> {
                std::mem::take(&mut self.refused)
            }
            fn shard(&self) -> u32 {
                self.shard
            }
        }
    )*};
}
shard_reply!(SelectReply, EvaluateReply, LabelsReply);
