//! Zero-copy decoding of a remote-write 1.0 `WriteRequest`.
//!
//! The decoder walks the request buffer and hands out one series at a time: its labels
//! as spans into the buffer, its samples decoded lazily, so that a request costs no memory
//! per series (a body of millions of empty series costs nothing but the walk).
//! [`count`] tells how many series and metadata entries a request holds before any of
//! them is decoded. Unknown fields are skipped as protobuf requires.

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

/// One decoded time series, handed to the caller of [`FastDecoder::decode`] while the
/// decoder walks the request: its labels and histograms as spans, its samples decoded
/// lazily from the request buffer ([`SeriesView::samples`]), so that nothing of a request
/// is held per series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'a> {
    buf: &'a [u8],
    /// The series' own message.
    message: Span,
    /// Labels as sent (at most [`FastDecoder::max_labels`] + 1 of them).
    pub labels: &'a [LabelRef],
    /// Labels the series has, including any not kept in [`SeriesView::labels`].
    pub label_count: usize,
    /// Samples the series has.
    pub sample_count: usize,
    /// Raw `Histogram` messages (decode with prost when needed).
    pub histograms: &'a [Span],
    /// Number of exemplars sent with the series.
    pub exemplars: u32,
}

impl<'a> SeriesView<'a> {
    /// The samples as (timestamp ms, value), in the order sent.
    pub fn samples(&self) -> Samples<'a> {
        Samples {
            r: Reader { buf: self.buf, pos: self.message.start as usize, end: self.message.end as usize },
        }
    }
}

/// The samples of a [`SeriesView`], decoded as they are read (the decoder checked them).
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    r: Reader<'a>,
}

impl Iterator for Samples<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        while !self.r.done() {
            match self.r.tag().ok()? {
                (2, 2) => {
                    let s = self.r.len_delimited().ok()?;
                    return sample(self.r.sub(s)).ok();
                }
                (_, w) => self.r.skip(w).ok()?,
            }
        }
        None
    }
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

/// How many series, samples and metadata entries a request holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `TimeSeries` messages.
    pub series: usize,
    /// `Sample` messages, over all series.
    pub samples: usize,
    /// `MetricMetadata` messages.
    pub metadata: usize,
}

/// Counts the series, samples and metadata entries of a `WriteRequest` by stepping over
/// them (nothing is allocated): what a receiver checks against its limits before decoding.
pub fn count(buf: &[u8]) -> Result<Counts, DecodeError> {
    let mut r = Reader { buf, pos: 0, end: buf.len() };
    let mut c = Counts::default();
    while !r.done() {
        match r.tag()? {
            (1, 2) => {
                c.series += 1;
                let span = r.len_delimited()?;
                let mut sr = r.sub(span);
                while !sr.done() {
                    let (field, wire) = sr.tag()?;
                    sr.skip(wire)?;
                    c.samples += usize::from((field, wire) == (2, 2));
                }
            }
            (3, 2) => {
                c.metadata += 1;
                r.skip(2)?;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(c)
}

/// Reusable decoder state: the labels and histograms of the series being decoded.
#[derive(Debug)]
pub struct FastDecoder {
    /// Labels kept per series; more are counted ([`SeriesView::label_count`]) but not
    /// kept, so that a series of a million labels costs no memory. Default 1024.
    pub max_labels: usize,
    labels: Vec<LabelRef>,
    histograms: Vec<Span>,
}

impl Default for FastDecoder {
    fn default() -> Self {
        FastDecoder { max_labels: 1024, labels: Vec::new(), histograms: Vec::new() }
    }
}

/// Capacity (entries) the decoder keeps between requests; more is released.
const KEPT_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
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

/// Decodes one `Sample` message.
fn sample(mut sr: Reader<'_>) -> Result<(i64, f64), DecodeError> {
    let (mut t, mut v) = (0i64, 0f64);
    while !sr.done() {
        match sr.tag()? {
            (1, 1) => v = f64::from_bits(sr.fixed64()?),
            (2, 0) => t = sr.varint()? as i64,
            (_, w) => sr.skip(w)?,
        }
    }
    Ok((t, v))
}

impl FastDecoder {
    /// A decoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `buf`, handing each series to `on_series` and each metadata entry to
    /// `on_metadata` as they are decoded, in request order. On an error, what was handed
    /// out so far was part of a request that is not valid. Buffers above 4 GiB are
    /// rejected.
    pub fn decode(
        &mut self,
        buf: &[u8],
        mut on_series: impl FnMut(&SeriesView<'_>),
        mut on_metadata: impl FnMut(&MetadataRef),
    ) -> Result<(), DecodeError> {
        if buf.len() > u32::MAX as usize {
            return Err(DecodeError("request too large"));
        }
        let mut r = Reader { buf, pos: 0, end: buf.len() };
        let res = (|| {
            while !r.done() {
                match r.tag()? {
                    (1, w) => {
                        expect(w, 2)?;
                        let s = r.len_delimited()?;
                        self.series(r.sub(s), s, &mut on_series)?;
                    }
                    (3, w) => {
                        expect(w, 2)?;
                        let s = r.len_delimited()?;
                        on_metadata(&metadata(r.sub(s))?);
                    }
                    (_, w) => r.skip(w)?,
                }
            }
            Ok(())
        })();
        keep(&mut self.labels);
        keep(&mut self.histograms);
        res
    }

    fn series(
        &mut self,
        mut r: Reader<'_>,
        message: Span,
        on_series: &mut impl FnMut(&SeriesView<'_>),
    ) -> Result<(), DecodeError> {
        self.labels.clear();
        self.histograms.clear();
        let (mut label_count, mut sample_count, mut exemplars) = (0, 0, 0);
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
                    label_count += 1;
                    if self.labels.len() <= self.max_labels {
                        self.labels.push(l);
                    }
                }
                (2, w) => {
                    expect(w, 2)?;
                    let s = r.len_delimited()?;
                    sample(r.sub(s))?;
                    sample_count += 1;
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
        on_series(&SeriesView {
            buf: r.buf,
            message,
            labels: &self.labels,
            label_count,
            sample_count,
            histograms: &self.histograms,
            exemplars,
        });
        Ok(())
    }
}

/// Decodes one `MetricMetadata` message.
fn metadata(mut r: Reader<'_>) -> Result<MetadataRef, DecodeError> {
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
    Ok(m)
}

/// Releases a reused vector's capacity above [`KEPT_CAPACITY`] entries.
fn keep<T>(v: &mut Vec<T>) {
    if v.capacity() > KEPT_CAPACITY {
        v.clear();
        v.shrink_to(KEPT_CAPACITY);
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
            type Got = (Vec<(String, String)>, Vec<(i64, f64)>);
            let (mut got, mut meta): (Vec<Got>, Vec<MetadataRef>) = (Vec::new(), Vec::new());
            d.decode(&bytes, |s| {
                let ls = s.labels.iter().map(|l| (
                    String::from_utf8(l.name.of(&bytes).to_vec()).unwrap(),
                    String::from_utf8(l.value.of(&bytes).to_vec()).unwrap())).collect();
                assert_eq!(s.sample_count, s.samples().count());
                got.push((ls, s.samples().collect()));
            }, |m| meta.push(*m)).unwrap();
            let back = pb::WriteRequest::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(got.len(), series.len());
            let samples = series.iter().map(|(_, ss)| ss.len()).sum();
            prop_assert_eq!(count(&bytes).unwrap(), Counts { series: series.len(), samples, metadata: 1 });
            for (((gl, gs), (ls, _)), ts) in got.iter().zip(&series).zip(&back.timeseries) {
                let ss: Vec<(i64, f64)> = ts.samples.iter().map(|x| (x.timestamp, x.value)).collect();
                prop_assert_eq!(gl, ls);
                prop_assert_eq!(gs.len(), ss.len());
                for (a, b) in gs.iter().zip(&ss) {
                    prop_assert_eq!(a.0, b.0);
                    prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
                }
            }
            prop_assert_eq!(meta.len(), 1);
            prop_assert_eq!(meta[0].family.of(&bytes), b"m");
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = FastDecoder::new().decode(&bytes, |s| { s.samples().count(); }, |_| {});
            let _ = count(&bytes);
        }
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = req(&[(vec![("__name__".into(), "up".into())], vec![(1, 1.0)])]).encode_to_vec();
        assert!(FastDecoder::new().decode(&bytes[..bytes.len() - 3], |_| {}, |_| {}).is_err());
        assert!(count(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn labels_beyond_the_cap_are_counted_not_kept() {
        let labels: Vec<(String, String)> = (0..50).map(|i| (format!("l{i}"), "v".into())).collect();
        let bytes = req(&[(labels, vec![(1, 1.0)])]).encode_to_vec();
        let mut d = FastDecoder { max_labels: 10, ..FastDecoder::default() };
        let mut seen = Vec::new();
        d.decode(&bytes, |s| seen.push((s.labels.len(), s.label_count)), |_| {}).unwrap();
        assert_eq!(seen, vec![(11, 50)]);
    }
}
