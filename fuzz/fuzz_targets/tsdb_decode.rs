//! Every public decoder of bytes strata-tsdb reads back from disk or receives from a peer
//! (Raft log entries, snapshots): log records (`record::decode`, with every sample and
//! histogram of every series read and its labels decoded), chunks of either float format
//! (`chunk::decode_into`), histogram chunks (`chunk::decode_histograms_into`), one
//! histogram (`FloatHistogram::decode`) and canonical labels (`Labels::decode`,
//! `labels::decode_pairs`). Each gets the whole input. What decodes must re-encode to
//! what decodes the same: float chunks through both encoders (packed, XOR), histograms
//! through their encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_tsdb::chunk::{self, Sample, XorAppender};
use strata_tsdb::{FloatHistogram, Labels, labels, record};

/// Float samples as comparable bits.
fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn labels_of(b: &[u8]) {
    let mut pairs = Vec::new();
    let decoded = Labels::decode(b);
    if labels::decode_pairs(b, &mut pairs).is_some() {
        let l = decoded.expect("decode_pairs accepts what Labels::decode refuses");
        assert_eq!(l.len(), pairs.len());
    }
}

fn histogram_round_trip(h: &FloatHistogram) {
    let mut once = Vec::new();
    h.encode(&mut once);
    let back = FloatHistogram::decode(&mut once.as_slice()).expect("an encoded histogram decodes");
    let mut twice = Vec::new();
    back.encode(&mut twice);
    assert_eq!(once, twice, "a histogram changed through its encoding");
}

fuzz_target!(|data: &[u8]| {
    if let Some(series) = record::decode(data) {
        for s in series {
            labels_of(s.labels);
            let _ = s.samples.count();
            s.histograms.for_each(|(_, h)| histogram_round_trip(&h));
        }
    }

    let mut samples = Vec::new();
    if chunk::decode_into(data, &mut samples).is_some() {
        chunk::sort_dedup(&mut samples);
        let packed = chunk::decode(&chunk::encode_packed(&samples)).expect("a packed chunk decodes");
        assert_eq!(bits(&samples), bits(&packed), "samples changed through the packed encoding");
        let mut xor = XorAppender::new();
        samples.iter().for_each(|&(t, v)| xor.append(t, v));
        let back = chunk::decode(&xor.to_bytes()).expect("an XOR chunk decodes");
        assert_eq!(bits(&samples), bits(&back), "samples changed through the XOR encoding");
    }

    let mut hists = Vec::new();
    if chunk::decode_histograms_into(data, &mut hists).is_some() {
        hists.iter().for_each(|(_, h)| histogram_round_trip(h));
    }

    if let Some(h) = FloatHistogram::decode(&mut &data[..]) {
        histogram_round_trip(&h);
    }

    labels_of(data);
});
