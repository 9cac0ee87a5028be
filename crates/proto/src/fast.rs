//! Zero-copy decoding of a remote-write 1.0 `WriteRequest`.
//!
//! The decoder fills flat arrays of spans into the request buffer; a series is a range of
//! labels and a range of samples. Unknown fields are skipped as protobuf requires.

use std::ops::Range;

/// Why a buffer is not a valid `WriteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protobuf: {0}")]
pub struct DecodeError(&'static str);

/// A byte range of the request buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The bytes of the span within `buf`.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// A label: name and value spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelRef {
    /// Name bytes.
    pub name: Span,
    /// Value bytes.
    pub value: Span,
}

/// A decoded time series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesRef {
    /// Indexes into [`FastDecoder::labels`].
    pub labels: Range<usize>,
    /// Indexes into [`FastDecoder::samples`].
    pub samples: Range<usize>,
    /// Indexes into [`FastDecoder::histograms`].
    pub histograms: Range<usize>,
    /// Number of exemplars sent with the series.
    pub exemplars: u32,
}

/// Metric metadata as sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataRef {
    /// `MetricType` number.
    pub kind: i32,
    /// Metric family name.
    pub family: Span,
    /// Help text.
    pub help: Span,
    /// Unit.
    pub unit: Span,
}

/// Reusable decoder state.
#[derive(Debug, Default)]
pub struct FastDecoder {
    /// Series in request order.
    pub series: Vec<SeriesRef>,
    /// All labels, series after series.
    pub labels: Vec<LabelRef>,
    /// All samples as (timestamp ms, value), series after series.
    pub samples: Vec<(i64, f64)>,
    /// Raw `Histogram` messages (decode with prost when needed).
    pub histograms: Vec<Span>,
    /// Metadata entries.
    pub metadata: Vec<MetadataRef>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

const E_VARINT: DecodeError = DecodeError("bad varint");
const E_TRUNC: DecodeError = DecodeError("truncated message");
const E_WIRE: DecodeError = DecodeError("bad wire type");

impl<'a> Reader<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0;
        while self.pos < self.end {
            let b = self.buf[self.pos];
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(E_VARINT);
            }
        }
        Err(E_TRUNC)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self.buf.get(self.pos..self.pos + 8).filter(|_| self.pos + 8 <= self.end).ok_or(E_TRUNC)?;
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| E_TRUNC)?))
    }

    #[inline]
    fn len_delimited(&mut self) -> Result<Span, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| E_TRUNC)?;
        let start = self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.end).ok_or(E_TRUNC)?;
        self.pos = end;
        Ok(Span { start: start as u32, end: end as u32 })
    }

    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.len_delimited().map(drop),
            5 => {
                if self.pos + 4 > self.end {
                    return Err(E_TRUNC);
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err(E_WIRE),
        }
    }

    fn sub(&self, s: Span) -> Reader<'a> {
        Reader { buf: self.buf, pos: s.start as usize, end: s.end as usize }
    }

    fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// Next (field number, wire type).
    #[inline]
    fn tag(&mut self) -> Result<(u64, u64), DecodeError> {
        let t = self.varint()?;
        Ok((t >> 3, t & 7))
    }
}

fn expect(wire: u64, want: u64) -> Result<(), DecodeError> {
    if wire == want { Ok(()) } else { Err(E_WIRE) }
}

impl FastDecoder {
    /// A decoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `buf`, replacing the previous contents. Buffers above 4 GiB are rejected.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        self.series.clear();
        self.labels.clear();
        self.samples.clear();
        self.histograms.clear();
        self.metadata.clear();
        if buf.len() > u32::MAX as usize {
            return Err(DecodeError("request too large"));
        }
        let mut r = Reader { buf, pos: 0, end: buf.len() };
        while !r.done() {
            match r.tag()? {
                (1, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    self.series(r.sub(s))?;
                }
                (3, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    self.metadata(r.sub(s))?;
                }
                (_, w) => r.skip(w)?,
            }
        }
        Ok(())
    }

    fn series(&mut self, mut r: Reader<'_>) -> Result<(), DecodeError> {
        let (l0, s0, h0) = (self.labels.len(), self.samples.len(), self.histograms.len());
        let mut exemplars = 0;
        while !r.done() {
            match r.tag()? {
                (1, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    let mut lr = r.sub(s);
                    let mut l = LabelRef::default();
                    while !lr.done() {
                        match lr.tag()? {
                            (1, 2) => l.name = lr.len_delimited()?,
                            (2, 2) => l.value = lr.len_delimited()?,
                            (_, w) => lr.skip(w)?,
                        }
                    }
                    self.labels.push(l);
                }
                (2, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    let mut sr = r.sub(s);
                    let (mut t, mut v) = (0i64, 0f64);
                    while !sr.done() {
                        match sr.tag()? {
                            (1, 1) => v = f64::from_bits(sr.fixed64()?),
                            (2, 0) => t = sr.varint()? as i64,
                            (_, w) => sr.skip(w)?,
                        }
                    }
                    self.samples.push((t, v));
                }
                (3, w) => {
                    expect(w, 2)?;
                    r.len_delimited()?;
                    exemplars += 1;
                }
                (4, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    self.histograms.push(s);
                }
                (_, w) => r.skip(w)?,
            }
        }
        self.series.push(SeriesRef {
            labels: l0..self.labels.len(),
            samples: s0..self.samples.len(),
            histograms: h0..self.histograms.len(),
            exemplars,
        });
        Ok(())
    }

    fn metadata(&mut self, mut r: Reader<'_>) -> Result<(), DecodeError> {
        let mut m = MetadataRef::default();
        while !r.done() {
            match r.tag()? {
                (1, 0) => m.kind = r.varint()? as i32,
                (2, 2) => m.family = r.len_delimited()?,
                (4, 2) => m.help = r.len_delimited()?,
                (5, 2) => m.unit = r.len_delimited()?,
                (_, w) => r.skip(w)?,
            }
        }
        self.metadata.push(m);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::prometheus as pb;

    type TestSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

    fn req(series: &[TestSeries]) -> pb::WriteRequest {
        pb::WriteRequest {
            timeseries: series
                .iter()
                .map(|(ls, ss)| pb::TimeSeries {
                    labels: ls.iter().map(|(n, v)| pb::Label { name: n.clone(), value: v.clone() }).collect(),
                    samples: ss.iter().map(|&(t, v)| pb::Sample { value: v, timestamp: t }).collect(),
                    exemplars: vec![],
                    histograms: vec![],
                })
                .collect(),
            metadata: vec![pb::MetricMetadata {
                r#type: 1,
                metric_family_name: "m".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        }
    }

    proptest! {
        #[test]
        fn agrees_with_prost(series in prop::collection::vec(
            (prop::collection::vec(("[a-z_]{1,8}", "\\PC{0,8}"), 0..5),
             prop::collection::vec((any::<i64>(), any::<f64>()), 0..5)), 0..6)) {
            let r = req(&series);
            let bytes = r.encode_to_vec();
            let mut d = FastDecoder::new();
            d.decode(&bytes).unwrap();
            let back = pb::WriteRequest::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(d.series.len(), series.len());
            for ((s, (ls, _)), ts) in d.series.iter().zip(&series).zip(&back.timeseries) {
                let ss: Vec<(i64, f64)> = ts.samples.iter().map(|x| (x.timestamp, x.value)).collect();
                let got: Vec<(String, String)> = d.labels[s.labels.clone()].iter().map(|l| (
                    String::from_utf8(l.name.of(&bytes).to_vec()).unwrap(),
                    String::from_utf8(l.value.of(&bytes).to_vec()).unwrap())).collect();
                prop_assert_eq!(&got, ls);
                let samples = &d.samples[s.samples.clone()];
                prop_assert_eq!(samples.len(), ss.len());
                for (a, b) in samples.iter().zip(&ss) {
                    prop_assert_eq!(a.0, b.0);
                    prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
                }
            }
            prop_assert_eq!(d.metadata.len(), 1);
            prop_assert_eq!(d.metadata[0].family.of(&bytes), b"m");
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = FastDecoder::new().decode(&bytes);
        }
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = req(&[(vec![("__name__".into(), "up".into())], vec![(1, 1.0)])]).encode_to_vec();
        assert!(FastDecoder::new().decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
