//! The log record: one shard's part of one write request, as it is made durable and
//! later applied (by the local WAL now, by Raft later).
//!
//! Layout: `varint series_count`, then per series `varint len · canonical labels ·
//! varint n · varint samples_len · n × (zigzag varint timestamp delta · 8-byte LE float
//! bits)`. The byte length lets a reader step over a series without decoding it.
//!
//! A series the shard already holds may be named by **reference** instead of by labels:
//! `varint 0 · 8-byte LE hash of its canonical labels` in place of `varint len · labels`
//! (no valid label set is empty, so the two cannot be confused). Only the shard's own
//! admission writes references ([`crate::Db::admit`], for series it holds and will go on
//! holding until the record is applied everywhere); a record from the network carrying
//! one is refused. A remote-write request carries one sample per series as a rule, so a
//! reference makes its log entry about five times smaller. Versions before references
//! cannot read such records: a cluster is upgraded before it is written to by new nodes'
//! leaders (see docs/operations.md).
//!
//! Native histograms follow, when there are any, as a second section of the same shape:
//! `varint series_count`, then per series labels, `varint n · varint len · n × (zigzag
//! varint timestamp delta · varint hlen · histogram)` with [`FloatHistogram::encode`].
//! Records written before histograms existed simply end after the first section.

use std::borrow::Borrow;

use crate::FloatHistogram;
use crate::chunk::Sample;
use crate::varint::{get_u64_le, get_uvarint, get_varint, put_uvarint, put_varint};

/// Builds a record series by series.
#[derive(Debug, Default, Clone)]
pub struct RecordBuilder {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    series: u64,
    hbuf: Vec<u8>,
    hseries: u64,
}

/// How a record names a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKey<'a> {
    /// Its canonical label encoding.
    Labels(&'a [u8]),
    /// The hash ([`crate::labels::hash_encoded`]) of the labels of a series the shard holds.
    Ref(u64),
}

fn put_key(buf: &mut Vec<u8>, key: SeriesKey<'_>) {
    match key {
        SeriesKey::Labels(l) => {
            put_uvarint(buf, l.len() as u64);
            buf.extend_from_slice(l);
        }
        SeriesKey::Ref(h) => {
            put_uvarint(buf, 0);
            buf.extend_from_slice(&h.to_le_bytes());
        }
    }
}

impl RecordBuilder {
    /// Adds one series: its canonical label encoding and its samples (a slice or any
    /// iterator: samples are encoded as they come, never collected).
    pub fn add<I>(&mut self, labels: &[u8], samples: I)
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<Sample>,
    {
        self.add_keyed(SeriesKey::Labels(labels), samples);
    }

    /// Adds one series named by `key` with its samples.
    pub fn add_keyed<I>(&mut self, key: SeriesKey<'_>, samples: I)
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<Sample>,
    {
        put_key(&mut self.buf, key);
        self.scratch.clear();
        let (mut prev, mut n) = (0i64, 0u64);
        for s in samples {
            let &(t, v) = s.borrow();
            put_varint(&mut self.scratch, t.wrapping_sub(prev));
            prev = t;
            self.scratch.extend_from_slice(&v.to_bits().to_le_bytes());
            n += 1;
        }
        put_uvarint(&mut self.buf, n);
        put_uvarint(&mut self.buf, self.scratch.len() as u64);
        self.buf.extend_from_slice(&self.scratch);
        self.series += 1;
    }

    /// Adds one series named by `key` with samples as another record encoded them
    /// ([`RecordSeries::encoded_samples`]), copied without decoding.
    pub fn add_encoded(&mut self, key: SeriesKey<'_>, (n, body): (u64, &[u8])) {
        put_key(&mut self.buf, key);
        put_uvarint(&mut self.buf, n);
        put_uvarint(&mut self.buf, body.len() as u64);
        self.buf.extend_from_slice(body);
        self.series += 1;
    }

    /// Adds the native histogram samples of one series.
    pub fn add_histograms(&mut self, labels: &[u8], hists: &[(i64, FloatHistogram)]) {
        put_uvarint(&mut self.hbuf, labels.len() as u64);
        self.hbuf.extend_from_slice(labels);
        put_uvarint(&mut self.hbuf, hists.len() as u64);
        self.scratch.clear();
        let (mut prev, mut one) = (0i64, Vec::new());
        for (t, h) in hists {
            put_varint(&mut self.scratch, t.wrapping_sub(prev));
            prev = *t;
            one.clear();
            h.encode(&mut one);
            put_uvarint(&mut self.scratch, one.len() as u64);
            self.scratch.extend_from_slice(&one);
        }
        put_uvarint(&mut self.hbuf, self.scratch.len() as u64);
        self.hbuf.extend_from_slice(&self.scratch);
        self.hseries += 1;
    }

    /// True when no series was added.
    pub fn is_empty(&self) -> bool {
        self.series == 0 && self.hseries == 0
    }

    /// The finished record.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + self.hbuf.len() + 10);
        put_uvarint(&mut out, self.series);
        out.extend_from_slice(&self.buf);
        if self.hseries > 0 {
            put_uvarint(&mut out, self.hseries);
            out.extend_from_slice(&self.hbuf);
        }
        out
    }
}

/// One series of a decoded record.
#[derive(Debug, Clone)]
pub struct RecordSeries<'a> {
    /// Canonical label encoding (empty for a series named by reference).
    pub labels: &'a [u8],
    /// The labels' hash, for a series named by reference instead of by labels.
    pub reference: Option<u64>,
    /// Samples in the order they were sent, decoded lazily.
    pub samples: Samples<'a>,
    /// Native histogram samples in the order they were sent, decoded lazily.
    pub histograms: Histograms<'a>,
}

impl<'a> RecordSeries<'a> {
    /// How the record names the series.
    pub fn key(&self) -> SeriesKey<'a> {
        self.reference.map_or(SeriesKey::Labels(self.labels), SeriesKey::Ref)
    }

    /// The float samples as encoded (count, bytes), for [`RecordBuilder::add_encoded`];
    /// what is left of them if `samples` was advanced.
    pub fn encoded_samples(&self) -> (u64, &'a [u8]) {
        (self.samples.left, self.samples.b)
    }
}

/// Lazy decoder of a series' histogram samples; stops at the first malformed one.
#[derive(Debug, Clone, Default)]
pub struct Histograms<'a> {
    b: &'a [u8],
    left: u64,
    t: i64,
}

impl Iterator for Histograms<'_> {
    type Item = (i64, FloatHistogram);

    fn next(&mut self) -> Option<(i64, FloatHistogram)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.t = self.t.wrapping_add(get_varint(&mut self.b)?);
        let len = usize::try_from(get_uvarint(&mut self.b)?).ok()?;
        let mut one = self.b.get(..len)?;
        self.b = &self.b[len..];
        Some((self.t, FloatHistogram::decode(&mut one)?))
    }
}

/// Lazy decoder of a series' samples.
#[derive(Debug, Clone, Default)]
pub struct Samples<'a> {
    b: &'a [u8],
    left: u64,
    t: i64,
}

impl Iterator for Samples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.t = self.t.wrapping_add(get_varint(&mut self.b)?);
        Some((self.t, f64::from_bits(get_u64_le(&mut self.b)?)))
    }
}

/// Decodes a record's structure; `None` if it is malformed.
pub fn decode(mut b: &[u8]) -> Option<Vec<RecordSeries<'_>>> {
    let n = get_uvarint(&mut b)?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(1 << 16)).ok()?);
    for _ in 0..n {
        let (key, k, body) = series_part(&mut b)?;
        let samples = Samples { b: body, left: k, t: 0 };
        out.push(series(key, samples, Histograms::default()));
    }
    if !b.is_empty() {
        let n = get_uvarint(&mut b)?;
        for _ in 0..n {
            let (key, k, body) = series_part(&mut b)?;
            let histograms = Histograms { b: body, left: k, t: 0 };
            out.push(series(key, Samples::default(), histograms));
        }
    }
    b.is_empty().then_some(out)
}

fn series<'a>(key: SeriesKey<'a>, samples: Samples<'a>, histograms: Histograms<'a>) -> RecordSeries<'a> {
    let (labels, reference) = match key {
        SeriesKey::Labels(l) => (l, None),
        SeriesKey::Ref(h) => (&[][..], Some(h)),
    };
    RecordSeries { labels, reference, samples, histograms }
}

/// One series of a section: how it is named, its sample count and encoded samples.
fn series_part<'a>(b: &mut &'a [u8]) -> Option<(SeriesKey<'a>, u64, &'a [u8])> {
    let len = usize::try_from(get_uvarint(b)?).ok()?;
    let key = if len == 0 {
        SeriesKey::Ref(get_u64_le(b)?)
    } else {
        let labels = b.get(..len)?;
        *b = &b[len..];
        SeriesKey::Labels(labels)
    };
    let k = get_uvarint(b)?;
    let slen = usize::try_from(get_uvarint(b)?).ok()?;
    let body = b.get(..slen)?;
    *b = &b[slen..];
    Some((key, k, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = RecordBuilder::default();
        b.add(b"abc", [(5, 1.0), (3, f64::from_bits(0x7ff0_0000_0000_0002))]);
        b.add(b"x", std::iter::empty::<Sample>());
        let bytes = b.finish();
        let got = decode(&bytes).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels, b"abc");
        assert_eq!(got[1].key(), SeriesKey::Labels(b"x"));
        let s: Vec<Sample> = got[0].samples.clone().collect();
        assert_eq!(s[0], (5, 1.0));
        assert_eq!(s[1].1.to_bits(), 0x7ff0_0000_0000_0002);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn a_reference_stands_for_the_labels_and_samples_copy_as_encoded() {
        let mut first = RecordBuilder::default();
        first.add(b"labels", [(1_700_000_000_000, 2.5), (1_700_000_015_000, 3.0)]);
        let first = first.finish();
        let decoded = decode(&first).unwrap();
        let mut b = RecordBuilder::default();
        b.add_encoded(SeriesKey::Ref(0xdead_beef_0123_4567), decoded[0].encoded_samples());
        b.add_keyed(SeriesKey::Ref(7), [(1, 1.0)]);
        let bytes = b.finish();
        let got = decode(&bytes).unwrap();
        assert_eq!(got[0].key(), SeriesKey::Ref(0xdead_beef_0123_4567));
        assert_eq!(got[0].labels, b"");
        let s: Vec<Sample> = got[0].samples.clone().collect();
        assert_eq!(s, vec![(1_700_000_000_000, 2.5), (1_700_000_015_000, 3.0)]);
        assert_eq!(got[1].key(), SeriesKey::Ref(7));
        // the hash and the header: 8 + 2 bytes per series instead of its labels
        assert_eq!(bytes.len(), 1 + 2 * 9 + 2 + decoded[0].encoded_samples().1.len() + 2 + 9);
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "a record cut at {cut} decodes");
        }
    }

    #[test]
    fn histograms_follow_the_float_section() {
        let h =
            FloatHistogram { count: 3.0, sum: 1.5, positive: vec![(1, 3.0)], ..FloatHistogram::default() };
        let mut b = RecordBuilder::default();
        b.add(b"f", [(1, 1.0)]);
        b.add_histograms(b"h", &[(10, h.clone()), (20, FloatHistogram::default())]);
        let bytes = b.finish();
        let got = decode(&bytes).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].histograms.clone().count(), 0);
        assert_eq!(got[1].labels, b"h");
        assert_eq!(got[1].samples.clone().count(), 0);
        let hs: Vec<(i64, FloatHistogram)> = got[1].histograms.clone().collect();
        assert_eq!(hs, vec![(10, h), (20, FloatHistogram::default())]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }
}
