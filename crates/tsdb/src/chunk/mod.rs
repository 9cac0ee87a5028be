//! Chunk encodings — the core of Strata's density.
//!
//! Two formats, told apart by the first byte:
//! * **XOR** (`1`): Gorilla-style and appendable: delta-of-delta timestamps and XOR'd floats.
//!   The head's open chunks use it, and so do the short segments a checkpoint writes.
//! * **Packed** (`2`): the format of a finished bucket. Integer streams are bit-packed in
//!   blocks of 16 at the block's own width (a regular scrape's timestamps cost under half a
//!   bit a sample). Timestamps as delta-of-deltas; values as a constant, as exact decimals
//!   (an integer mantissa with one shared exponent, stored as deltas or delta-of-deltas,
//!   whichever is smaller) or, when they are not exact decimals, as XOR.
//!
//! Every float round-trips bit-exactly, NaN payloads (stale markers) included.

mod bits;

use bits::{BitReader, BitWriter, read_int, read_packed, write_int, write_packed};

use crate::varint::{get_uvarint, get_varint, put_uvarint, put_varint};

/// A sample: millisecond timestamp and value.
pub type Sample = (i64, f64);

const ENC_XOR: u8 = 1;
const ENC_PACKED: u8 = 2;
/// Native histogram samples, stored as written (see [`encode_histograms`]).
pub const ENC_HISTOGRAMS: u8 = 3;

const VAL_CONST: u8 = 0;
const VAL_DEC_DELTA: u8 = 1;
const VAL_DEC_DOD: u8 = 2;
const VAL_XOR: u8 = 3;

/// Largest decimal exponent tried (10^15 still leaves mantissas exact in f64's 53 bits).
const MAX_DECIMAL_EXP: i32 = 15;

/// XOR value coder state.
#[derive(Debug, Clone, Default)]
struct XorValues {
    prev: u64,
    leading: u32,
    trailing: u32,
}

impl XorValues {
    fn put(&mut self, w: &mut BitWriter, v: f64) {
        let bits = v.to_bits();
        let x = bits ^ self.prev;
        self.prev = bits;
        if x == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let lead = x.leading_zeros();
        let trail = x.trailing_zeros();
        if self.leading != u32::MAX && lead >= self.leading && trail >= self.trailing {
            w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(x >> self.trailing, sig);
        } else {
            w.write_bit(true);
            let lead = lead.min(63);
            let sig = 64 - lead - trail;
            w.write_bits(u64::from(lead), 6);
            w.write_bits(u64::from(sig - 1), 6);
            w.write_bits(x >> trail, sig);
            self.leading = lead;
            self.trailing = trail;
        }
    }

    fn get(&mut self, r: &mut BitReader<'_>) -> Option<f64> {
        if r.read_bit()? {
            if r.read_bit()? {
                self.leading = r.read_bits(6)? as u32;
                let sig = r.read_bits(6)? as u32 + 1;
                self.trailing = 64u32.checked_sub(self.leading + sig)?;
            }
            let sig = 64u32.checked_sub(self.leading + self.trailing)?;
            if sig == 0 {
                return None;
            }
            let x = r.read_bits(sig)? << self.trailing;
            self.prev ^= x;
        }
        Some(f64::from_bits(self.prev))
    }

    fn first(v: f64) -> Self {
        XorValues { prev: v.to_bits(), leading: u32::MAX, trailing: 0 }
    }
}

/// An appendable XOR chunk (the head's open chunk).
#[derive(Debug, Clone, Default)]
pub struct XorAppender {
    w: BitWriter,
    n: u32,
    first_t: i64,
    last_t: i64,
    last_delta: i64,
    vals: XorValues,
}

impl XorAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample; timestamps must not decrease (the head guarantees it).
    pub fn append(&mut self, t: i64, v: f64) {
        if self.n == 0 {
            self.w.write_bits(t as u64, 64);
            self.w.write_bits(v.to_bits(), 64);
            self.first_t = t;
            self.vals = XorValues::first(v);
        } else {
            let delta = t.wrapping_sub(self.last_t);
            write_int(&mut self.w, delta.wrapping_sub(self.last_delta));
            self.last_delta = delta;
            self.vals.put(&mut self.w, v);
        }
        self.last_t = t;
        self.n += 1;
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True when no sample was appended.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn first_t(&self) -> i64 {
        self.first_t
    }

    /// Bytes held in memory by the bit stream.
    pub fn size_bytes(&self) -> usize {
        self.w.len()
    }

    /// Appends the chunk's samples to `out` (no copy of the stored form).
    pub fn samples_into(&self, out: &mut Vec<Sample>) {
        let _ = decode_xor_bits(u64::from(self.n), &self.w.buf, out);
    }

    /// The chunk in its stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.w.len() + 6);
        out.push(ENC_XOR);
        put_uvarint(&mut out, u64::from(self.n));
        out.extend_from_slice(&self.w.buf);
        out
    }
}

fn decode_xor(mut b: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let n = get_uvarint(&mut b)?;
    decode_xor_bits(n, b, out)
}

/// The sample stream of an XOR chunk of `n` samples, without its header.
fn decode_xor_bits(n: u64, b: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    if n == 0 {
        return Some(());
    }
    let mut r = BitReader::new(b);
    let mut t = r.read_bits(64)? as i64;
    let mut vals = XorValues::first(f64::from_bits(r.read_bits(64)?));
    out.push((t, f64::from_bits(vals.prev)));
    let mut delta = 0i64;
    for _ in 1..n {
        delta = delta.wrapping_add(read_int(&mut r)?);
        t = t.wrapping_add(delta);
        let v = vals.get(&mut r)?;
        out.push((t, v));
    }
    Some(())
}

/// Encodes sorted samples (unique timestamps) in the packed format.
pub fn encode_packed(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() + 16);
    out.push(ENC_PACKED);
    put_uvarint(&mut out, samples.len() as u64);
    let Some(&(t0, v0)) = samples.first() else {
        return out;
    };
    // timestamps
    put_varint(&mut out, t0);
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let tbits = int_stream(&ts, true);
    put_uvarint(&mut out, tbits.len() as u64);
    out.extend_from_slice(&tbits);
    // values
    if samples.iter().all(|s| s.1.to_bits() == v0.to_bits()) {
        out.push(VAL_CONST);
        out.extend_from_slice(&v0.to_bits().to_le_bytes());
        return out;
    }
    if let Some((exp, mantissas)) = as_decimals(samples) {
        let delta = int_stream(&mantissas, false);
        let dod = int_stream(&mantissas, true);
        let (mode, body) = if dod.len() < delta.len() { (VAL_DEC_DOD, dod) } else { (VAL_DEC_DELTA, delta) };
        out.push(mode);
        out.push(exp as u8);
        put_varint(&mut out, mantissas[0]);
        out.extend_from_slice(&body);
        return out;
    }
    out.push(VAL_XOR);
    out.extend_from_slice(&v0.to_bits().to_le_bytes());
    let mut w = BitWriter::default();
    let mut x = XorValues::first(v0);
    for &(_, v) in &samples[1..] {
        x.put(&mut w, v);
    }
    out.extend_from_slice(&w.buf);
    out
}

/// Values as `mantissa / 10^exp` with one exponent, when every value round-trips exactly.
fn as_decimals(samples: &[Sample]) -> Option<(i32, Vec<i64>)> {
    let mut exp = 0;
    for &(_, v) in samples {
        exp = exp.max(decimal_exp(v)?);
    }
    let p = 10f64.powi(exp);
    let mut ms = Vec::with_capacity(samples.len());
    for &(_, v) in samples {
        let m = (v * p).round();
        if m.abs() >= 9.0e15 || (m / p).to_bits() != v.to_bits() {
            return None;
        }
        ms.push(m as i64);
    }
    Some((exp, ms))
}

/// Smallest exponent `e` with `v == round(v·10^e) / 10^e` exactly.
fn decimal_exp(v: f64) -> Option<i32> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    (0..=MAX_DECIMAL_EXP).find(|&e| {
        let p = 10f64.powi(e);
        let m = (v * p).round();
        m.abs() < 9.0e15 && (m / p).to_bits() == v.to_bits()
    })
}

/// Items 1.. as deltas (or delta-of-deltas), bit-packed.
fn int_stream(ms: &[i64], dod: bool) -> Vec<u8> {
    let mut diffs = Vec::with_capacity(ms.len().saturating_sub(1));
    let (mut prev, mut prev_delta) = (ms[0], 0i64);
    for &m in &ms[1..] {
        let d = m.wrapping_sub(prev);
        diffs.push(if dod { d.wrapping_sub(prev_delta) } else { d });
        prev = m;
        prev_delta = d;
    }
    let mut w = BitWriter::default();
    write_packed(&mut w, &diffs);
    w.buf
}

/// Inverse of [`int_stream`]: `first` then `n - 1` items.
fn read_int_stream(bytes: &[u8], first: i64, n: usize, dod: bool) -> Option<Vec<i64>> {
    let mut diffs = Vec::with_capacity(n);
    read_packed(&mut BitReader::new(bytes), n.saturating_sub(1), &mut diffs)?;
    let mut out = Vec::with_capacity(n);
    out.push(first);
    let (mut cur, mut d) = (first, 0i64);
    for x in diffs {
        d = if dod { d.wrapping_add(x) } else { x };
        cur = cur.wrapping_add(d);
        out.push(cur);
    }
    Some(out)
}

fn decode_packed(mut b: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let n = usize::try_from(get_uvarint(&mut b)?).ok()?;
    if n == 0 {
        return Some(());
    }
    if n > 1 << 24 {
        return None;
    }
    let start = out.len();
    let t0 = get_varint(&mut b)?;
    let tlen = usize::try_from(get_uvarint(&mut b)?).ok()?;
    let tbits = b.get(..tlen)?;
    b = &b[tlen..];
    out.extend(read_int_stream(tbits, t0, n, true)?.into_iter().map(|t| (t, 0.0)));
    let (&mode, mut b) = b.split_first()?;
    let vals = &mut out[start..];
    match mode {
        VAL_CONST => {
            let v = f64::from_bits(crate::varint::get_u64_le(&mut b)?);
            vals.iter_mut().for_each(|s| s.1 = v);
        }
        VAL_DEC_DELTA | VAL_DEC_DOD => {
            let (&exp, mut b) = b.split_first()?;
            if exp > MAX_DECIMAL_EXP as u8 {
                return None;
            }
            let p = 10f64.powi(i32::from(exp));
            let m0 = get_varint(&mut b)?;
            let ms = read_int_stream(b, m0, vals.len(), mode == VAL_DEC_DOD)?;
            for (s, m) in vals.iter_mut().zip(ms) {
                s.1 = m as f64 / p;
            }
        }
        VAL_XOR => {
            let v0 = f64::from_bits(crate::varint::get_u64_le(&mut b)?);
            vals[0].1 = v0;
            let mut x = XorValues::first(v0);
            let mut r = BitReader::new(b);
            for s in &mut vals[1..] {
                s.1 = x.get(&mut r)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// Decodes a stored chunk of either format, appending its samples to `out`.
/// Returns `None` when the bytes are not a valid chunk.
pub fn decode_into(b: &[u8], out: &mut Vec<Sample>) -> Option<()> {
    let (&enc, rest) = b.split_first()?;
    match enc {
        ENC_XOR => decode_xor(rest, out),
        ENC_PACKED => decode_packed(rest, out),
        // histogram chunks hold no float samples
        ENC_HISTOGRAMS => Some(()),
        _ => None,
    }
}

/// Whether a stored chunk holds native histograms.
pub fn is_histogram_chunk(b: &[u8]) -> bool {
    b.first() == Some(&ENC_HISTOGRAMS)
}

/// Encodes histogram samples (ascending time): `ENC_HISTOGRAMS · varint n · n × (zigzag
/// varint timestamp delta · varint len · histogram)`. Histograms are rare next to floats
/// and kept exact; they are not compressed further.
pub fn encode_histograms(hists: &[(i64, crate::FloatHistogram)]) -> Vec<u8> {
    let mut out = vec![ENC_HISTOGRAMS];
    put_uvarint(&mut out, hists.len() as u64);
    let (mut prev, mut one) = (0i64, Vec::new());
    for (t, h) in hists {
        put_varint(&mut out, t.wrapping_sub(prev));
        prev = *t;
        one.clear();
        h.encode(&mut one);
        put_uvarint(&mut out, one.len() as u64);
        out.extend_from_slice(&one);
    }
    out
}

/// Decodes a histogram chunk, appending its samples; `None` if it is not one or malformed.
pub fn decode_histograms_into(
    b: &[u8],
    out: &mut Vec<(i64, std::sync::Arc<crate::FloatHistogram>)>,
) -> Option<()> {
    let (&enc, mut b) = b.split_first()?;
    if enc != ENC_HISTOGRAMS {
        return None;
    }
    let n = get_uvarint(&mut b)?;
    let mut t = 0i64;
    for _ in 0..n {
        t = t.wrapping_add(get_varint(&mut b)?);
        let len = usize::try_from(get_uvarint(&mut b)?).ok()?;
        let mut one = b.get(..len)?;
        b = &b[len..];
        out.push((t, std::sync::Arc::new(crate::FloatHistogram::decode(&mut one)?)));
    }
    b.is_empty().then_some(())
}

/// Decodes a stored chunk.
pub fn decode(b: &[u8]) -> Option<Vec<Sample>> {
    let mut out = Vec::new();
    decode_into(b, &mut out).map(|()| out)
}

/// Whether `b` is a packed float chunk (a compacted bucket's: as small as a series' samples
/// get, so worth sending as it is).
pub fn is_packed_chunk(b: &[u8]) -> bool {
    b.first() == Some(&ENC_PACKED)
}

/// The float samples of a series selected with [`crate::Select::forwarding`]: its stored
/// chunks decoded in order, then `rest`, sorted by time with the later of equal timestamps
/// kept. `None` when a chunk does not decode.
pub fn join_forwarded<C: AsRef<[u8]>>(stored: &[C], rest: Vec<Sample>) -> Option<Vec<Sample>> {
    if stored.is_empty() {
        return Some(rest);
    }
    let mut out = decode_all(stored)?;
    out.extend(rest);
    sort_dedup(&mut out);
    Some(out)
}

/// One packed chunk holding the float samples of `chunks` (later chunks win equal
/// timestamps, as [`sort_dedup`]); `None` when a chunk does not decode.
pub fn merge_packed<C: AsRef<[u8]>>(chunks: impl IntoIterator<Item = C>) -> Option<Vec<u8>> {
    let mut out = decode_all(chunks)?;
    sort_dedup(&mut out);
    Some(encode_packed(&out))
}

/// The samples of `chunks` decoded in order, unsorted.
fn decode_all<C: AsRef<[u8]>>(chunks: impl IntoIterator<Item = C>) -> Option<Vec<Sample>> {
    let mut out = Vec::new();
    for c in chunks {
        decode_into(c.as_ref(), &mut out)?;
    }
    Some(out)
}

/// Sorts samples by timestamp and keeps one sample per timestamp: the one that came
/// last in `samples` (later segments override earlier ones, as a later write does).
pub fn sort_dedup(samples: &mut Vec<Sample>) {
    // stable sort keeps arrival order among equal timestamps
    samples.sort_by_key(|s| s.0);
    let mut w = 0;
    for i in 0..samples.len() {
        if w > 0 && samples[w - 1].0 == samples[i].0 {
            samples[w - 1] = samples[i];
        } else {
            samples[w] = samples[i];
            w += 1;
        }
    }
    samples.truncate(w);
}

#[cfg(test)]
mod tests;
