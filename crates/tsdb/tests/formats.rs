//! Snapshots of the encoded formats that must not drift: what is on disk (keys, log
//! records, chunks, labels) is read back by every later version, and a log record is
//! replicated byte for byte. A change here needs a format version and a migration, not an
//! updated snapshot.

use strata_tsdb::chunk::{self, XorAppender};
use strata_tsdb::histogram::FloatHistogram;
use strata_tsdb::keys::{self, META_CHECKPOINT_OWNER};
use strata_tsdb::record::{RecordBuilder, SeriesKey};
use strata_tsdb::{Cf, Labels};

/// Bytes as hex, 32 per line.
fn hex(b: &[u8]) -> String {
    b.chunks(32)
        .map(|l| l.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn histogram() -> FloatHistogram {
    FloatHistogram {
        count: 7.0,
        sum: 12.5,
        zero_count: 1.0,
        positive: vec![(-1, 2.0), (0, 3.0), (3, 1.0)],
        ..FloatHistogram::default()
    }
}

#[test]
fn key_layout() {
    let out = [
        ("log shard 1 index 2", Cf::Log, keys::log_key(1, 2)),
        ("meta shard 1 raft state", Cf::Meta, keys::meta_key(1, META_CHECKPOINT_OWNER)),
        ("index forward shard 3 series 5", Cf::Index, keys::forward_key(3, 5)),
        ("index day shard 0 day 7 series 9", Cf::Index, keys::day_key(0, 7, 9)),
        ("chunk shard 2 bucket -7200000 series 11 seq 4", Cf::Chunks, keys::chunk_key(2, -7_200_000, 11, 4)),
    ]
    .iter()
    .map(|(what, cf, k)| format!("{what} [{}]: {}", cf.name(), hex(k)))
    .collect::<Vec<_>>()
    .join("\n");
    insta::assert_snapshot!(out);
}

#[test]
fn labels_encoding() {
    let l = Labels::from_pairs([("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("mode", "idle")])
        .expect("labels");
    insta::assert_snapshot!(hex(&l.encode()));
}

#[test]
fn log_record() {
    let name = Labels::from_pairs([("__name__", "up"), ("job", "node")]).expect("labels").encode();
    let hist = Labels::from_pairs([("__name__", "rpc_seconds")]).expect("labels").encode();
    let mut b = RecordBuilder::default();
    b.add(&name, [(1_700_000_000_000, 1.0), (1_700_000_015_000, 0.0), (1_700_000_030_000, f64::NAN)]);
    b.add_histograms(&hist, &[(1_700_000_000_000, histogram())]);
    insta::assert_snapshot!(hex(&b.finish()));
}

#[test]
fn log_record_with_a_reference() {
    let name = Labels::from_pairs([("__name__", "up"), ("job", "node")]).expect("labels").encode();
    let mut b = RecordBuilder::default();
    b.add_keyed(SeriesKey::Ref(strata_tsdb::labels::hash_encoded(&name)), [(1_700_000_000_000, 1.0)]);
    b.add(&name, [(1_700_000_000_000, 0.5)]);
    insta::assert_snapshot!(hex(&b.finish()));
}

#[test]
fn chunks() {
    let samples: Vec<(i64, f64)> =
        (0..8).map(|i| (1_700_000_000_000 + i * 15_000, [0.5, 1.25, 100.0][i as usize % 3])).collect();
    let mut xor = XorAppender::new();
    for &(t, v) in &samples {
        xor.append(t, v);
    }
    let out = format!(
        "xor segment:\n{}\npacked:\n{}\nhistograms:\n{}",
        hex(&xor.to_bytes()),
        hex(&chunk::encode_packed(&samples)),
        hex(&chunk::encode_histograms(&[(1_700_000_000_000, histogram()), (1_700_000_060_000, histogram())])),
    );
    insta::assert_snapshot!(out);
}
