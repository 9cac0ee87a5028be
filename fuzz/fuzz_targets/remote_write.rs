//! The remote-write receiver's decoding, as `POST /api/v1/write` does it: snappy (length
//! checked against a limit before decompressing), `fast::count`, then the zero-copy
//! `FastDecoder` with each series' labels validated and encoded, its samples put in a
//! `SeriesBatch` and its histograms decoded with prost. The input is tried both as a
//! snappy body and as the decompressed protobuf itself. Where prost also accepts the
//! protobuf, the fast decoder must agree with it, series by series and sample by sample.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_proto::fast::{self, FastDecoder};
use strata_proto::prometheus as pb;
use strata_tsdb::{LabelLimits, SeriesBatch, labels};

/// The decompressed size a body may claim (the server's limit is larger; this keeps the
/// fuzzer's memory small while still exercising the check).
const MAX_DECODED: usize = 4 << 20;

/// What the fast decoder made of one series: labels (when UTF-8) and samples as bits.
type Decoded = (Option<Vec<(String, String)>>, Vec<(i64, u64)>);

fn receive(buf: &[u8]) {
    let Ok(counts) = fast::count(buf) else {
        return;
    };
    let limits = LabelLimits::default();
    let mut batch = SeriesBatch::new(4);
    let mut seen: Vec<Decoded> = Vec::new();
    let mut metadata = 0;
    let (mut pairs, mut enc): (Vec<(&str, &str)>, Vec<u8>) = (Vec::new(), Vec::new());
    let mut decoder = FastDecoder::new();
    decoder.max_labels = limits.max_names;
    let res = decoder.decode(
        buf,
        |s| {
            assert!(s.labels.len() <= s.label_count && s.labels.len() <= limits.max_names + 1);
            let samples: Vec<(i64, f64)> = s.samples().collect();
            assert_eq!(samples.len(), s.sample_count, "samples counted and samples read differ");
            let strings: Option<Vec<(&str, &str)>> = s
                .labels
                .iter()
                .map(|l| {
                    Some((
                        std::str::from_utf8(l.name.of(buf)).ok()?,
                        std::str::from_utf8(l.value.of(buf)).ok()?,
                    ))
                })
                .collect();
            let owned = strings.as_ref().filter(|_| s.label_count == s.labels.len());
            seen.push((
                owned.map(|v| v.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()),
                samples.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
            ));
            let Some(strings) = strings else { return };
            pairs.clear();
            pairs.extend(strings);
            if labels::validate(&mut pairs, &limits).is_err() {
                return;
            }
            enc.clear();
            labels::encode_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())), &mut enc);
            batch.add_encoded(&enc, s.samples());
            for span in s.histograms {
                let _ = pb::Histogram::decode(span.of(buf));
            }
        },
        |m| {
            metadata += 1;
            let _ = (m.family.of(buf), m.help.of(buf), m.unit.of(buf));
        },
    );
    if res.is_ok() {
        assert_eq!(counts.series, seen.len(), "fast::count and the decoder disagree on series");
        assert_eq!(counts.metadata, metadata, "fast::count and the decoder disagree on metadata");
        for (_, record) in batch.into_records() {
            assert!(
                strata_tsdb::record::decode(&record).is_some(),
                "a record built from a request does not decode"
            );
        }
    }
    // prost is the reference: what it accepts, the fast decoder accepts identically
    if let Ok(req) = pb::WriteRequest::decode(buf) {
        // except groups (wire types 3 and 4, deprecated, sent by no client): prost skips
        // them in unknown fields, the fast decoder refuses them
        if res.as_ref().is_err_and(|e| e.to_string().ends_with("bad wire type")) {
            return;
        }
        assert!(res.is_ok(), "prost accepts what the fast decoder refuses: {res:?}");
        assert_eq!(req.timeseries.len(), seen.len());
        for (ts, (labels, samples)) in req.timeseries.iter().zip(&seen) {
            let want: Vec<(i64, u64)> = ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
            assert_eq!(&want, samples, "samples differ from prost's");
            if let Some(labels) = labels {
                let want: Vec<(String, String)> =
                    ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                assert_eq!(&want, labels, "labels differ from prost's");
            }
        }
    }
}

fuzz_target!(|body: &[u8]| {
    // as the HTTP path: the claimed length is checked before anything is decompressed
    if let Ok(len) = snap::raw::decompress_len(body)
        && len <= MAX_DECODED
        && let Ok(buf) = snap::raw::Decoder::new().decompress_vec(body)
    {
        assert_eq!(buf.len(), len, "snappy decoded another length than it claimed");
        receive(&buf);
    }
    receive(body);
});
