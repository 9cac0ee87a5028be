//! Bit-level writer and reader (MSB first) and the variable-width signed integer code
//! shared by timestamps and integer value streams.

/// Appends bits to a byte vector.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitWriter {
    pub(crate) buf: Vec<u8>,
    /// Bits used in the last byte (0 = last byte full or buffer empty).
    used: u8,
}

impl BitWriter {
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.buf.push(0);
        }
        if bit {
            let last = self.buf.len() - 1;
            self.buf[last] |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Writes the low `n` bits of `v`, most significant first.
    pub(crate) fn write_bits(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.used == 0 {
                self.buf.push(0);
            }
            let free = 8 - u32::from(self.used);
            let take = free.min(n);
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            let last = self.buf.len() - 1;
            self.buf[last] |= chunk << (free - take);
            self.used = ((u32::from(self.used) + take) % 8) as u8;
            n -= take;
        }
    }

    /// Size in bytes so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    pub(crate) fn read_bits(&mut self, mut n: u32) -> Option<u64> {
        let mut v = 0u64;
        while n > 0 {
            let byte = *self.buf.get(self.pos / 8)?;
            let off = (self.pos % 8) as u32;
            let avail = 8 - off;
            let take = avail.min(n);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            v = if take == 64 { bits } else { (v << take) | bits };
            self.pos += take as usize;
            n -= take;
        }
        Some(v)
    }
}

/// Bucket widths of the signed integer code: prefix `0` = zero, `10` = 7 bits, `110` = 14,
/// `1110` = 21, `11110` = 32, `11111` = 64.
const WIDTHS: [u32; 5] = [7, 14, 21, 32, 64];

/// Writes a signed integer with a short prefix code (small magnitudes are cheap).
pub(crate) fn write_int(w: &mut BitWriter, v: i64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    for (i, &bits) in WIDTHS.iter().enumerate() {
        let fits = bits == 64 || (-(1i64 << (bits - 1)) <= v && v < (1i64 << (bits - 1)));
        if fits {
            // prefix: i+1 ones then a zero, except the last bucket which has no terminator
            let ones = i as u32 + 1;
            w.write_bits((1u64 << ones) - 1, ones);
            if i + 1 < WIDTHS.len() {
                w.write_bit(false);
            }
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            w.write_bits((v as u64) & mask, bits);
            return;
        }
    }
}

/// Reads what [`write_int`] wrote.
pub(crate) fn read_int(r: &mut BitReader<'_>) -> Option<i64> {
    let mut ones = 0usize;
    while ones < WIDTHS.len() && r.read_bit()? {
        ones += 1;
    }
    if ones == 0 {
        return Some(0);
    }
    let bits = WIDTHS[ones - 1];
    let raw = r.read_bits(bits)?;
    if bits == 64 {
        return Some(raw as i64);
    }
    // sign-extend
    let shift = 64 - bits;
    Some(((raw << shift) as i64) >> shift)
}

/// Values per block of the bit-packed integer code.
const PACK_BLOCK: usize = 16;

/// Bit-packs signed integers: zig-zag, then blocks of 16 values each written with the
/// width of the block's largest value (a 7-bit width header per block). All-zero blocks
/// cost 7 bits; noisy values cost their entropy's width, not a power-of-two bucket.
pub(crate) fn write_packed(w: &mut BitWriter, vals: &[i64]) {
    for block in vals.chunks(PACK_BLOCK) {
        let zz = block.iter().map(|&v| crate::varint::zigzag(v));
        let width = 64 - zz.clone().fold(0u64, |a, b| a | b).leading_zeros();
        w.write_bits(u64::from(width), 7);
        if width > 0 {
            zz.for_each(|z| w.write_bits(z, width));
        }
    }
}

/// Reads `n` integers written by [`write_packed`].
pub(crate) fn read_packed(r: &mut BitReader<'_>, n: usize, out: &mut Vec<i64>) -> Option<()> {
    let mut left = n;
    while left > 0 {
        let k = left.min(PACK_BLOCK);
        let width = r.read_bits(7)? as u32;
        if width > 64 {
            return None;
        }
        for _ in 0..k {
            let z = if width == 0 { 0 } else { r.read_bits(width)? };
            out.push(crate::varint::unzigzag(z));
        }
        left -= k;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trip() {
        let vals: Vec<i64> = (0..100)
            .map(|i| if i < 40 { 0 } else { (i * 37) % 91 - 45 })
            .chain([i64::MIN, i64::MAX])
            .collect();
        let mut w = BitWriter::default();
        write_packed(&mut w, &vals);
        let mut out = Vec::new();
        read_packed(&mut BitReader::new(&w.buf), vals.len(), &mut out).unwrap();
        assert_eq!(out, vals);
        let mut w = BitWriter::default();
        write_packed(&mut w, &[0; 32]);
        assert_eq!(w.buf.len(), 2);
    }

    #[test]
    fn ints_round_trip() {
        let vals = [0i64, 1, -1, 63, -64, 64, 8191, -8192, 1 << 20, -(1 << 31), 1 << 40, i64::MIN, i64::MAX];
        let mut w = BitWriter::default();
        for &v in &vals {
            write_int(&mut w, v);
        }
        w.write_bits(0b101, 3);
        let mut r = BitReader::new(&w.buf);
        for &v in &vals {
            assert_eq!(read_int(&mut r), Some(v));
        }
        assert_eq!(r.read_bits(3), Some(0b101));
    }
}
