//! Cutting a body into lines, with a bound on their length.

/// One line of a body, without its `\n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line<'a> {
    pub(crate) bytes: &'a [u8],
    /// Whether a `\n` ended it (only the last line of a body may lack one).
    pub(crate) terminated: bool,
}

/// The lines of a body, in order, numbered from 1.
#[derive(Debug)]
pub(crate) struct Lines<'a> {
    body: &'a [u8],
    pos: usize,
    number: usize,
    max_len: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(body: &'a [u8], max_len: usize) -> Self {
        Lines { body, pos: 0, number: 0, max_len }
    }

    pub(crate) fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The number of the last line returned (0 before the first).
    pub(crate) fn number(&self) -> usize {
        self.number
    }

    /// Whether every byte of the body has been returned.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.body.len()
    }

    /// The next line; `None` at the end of the body; `Err(length)` (counting it as read) when the
    /// line is longer than the limit. Looks at no more than `max_len + 1` bytes of a line, but for
    /// an over-long one, which is then measured to its end.
    pub(crate) fn next_line(&mut self) -> Option<Result<Line<'a>, usize>> {
        let rest = self.body.get(self.pos..).filter(|rest| !rest.is_empty())?;
        self.number += 1;
        let window = rest.get(..self.max_len.saturating_add(1)).unwrap_or(rest);
        let (len, terminated) = match find_newline(window) {
            Some(len) => (len, true),
            None if window.len() == rest.len() => (rest.len(), false),
            None => {
                let len = find_newline(rest).unwrap_or(rest.len());
                self.pos = self.body.len();
                return Some(Err(len));
            }
        };
        if len > self.max_len {
            self.pos = self.body.len();
            return Some(Err(len));
        }
        self.pos += len + usize::from(terminated);
        Some(Ok(Line { bytes: rest.get(..len).unwrap_or_default(), terminated }))
    }
}

/// The index of the first `\n` in `bytes`, looking at eight bytes at a time.
pub(crate) fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        // A byte of `x` is zero where the chunk holds a newline; the lowest flagged byte of
        // the classic zero-byte test is exact (false flags only appear above a real zero).
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'\n').map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let mut bytes = vec![b'a'; 40];
        assert_eq!(find_newline(&bytes), None);
        for at in [0, 1, 7, 8, 9, 15, 16, 31, 39] {
            bytes.fill(b'a');
            bytes[at] = b'\n';
            if at + 3 < bytes.len() {
                bytes[at + 3] = b'\n';
            }
            // Bytes just above and below '\n' in value, and high bytes.
            bytes[0..at].iter_mut().enumerate().for_each(|(i, b)| *b = [0x0b, 0x09, 0x8a, 0x00][i % 4]);
            assert_eq!(find_newline(&bytes), Some(at), "at {at}");
        }
    }

    #[test]
    fn lines_and_limit() {
        let mut lines = Lines::new(b"a\n\nbcd\nef", 3);
        let got: Vec<_> = std::iter::from_fn(|| lines.next_line())
            .map(|l| l.map(|l| (l.bytes.to_vec(), l.terminated)))
            .collect();
        assert_eq!(
            got,
            vec![
                Ok((b"a".to_vec(), true)),
                Ok((b"".to_vec(), true)),
                Ok((b"bcd".to_vec(), true)),
                Ok((b"ef".to_vec(), false)),
            ]
        );
        let mut lines = Lines::new(b"ab\nabcd\nx", 3);
        assert!(lines.next_line().unwrap().is_ok());
        assert_eq!(lines.next_line().unwrap().err(), Some(4));
        assert_eq!(lines.number(), 2);
        assert!(lines.at_end());
        let mut lines = Lines::new(b"abcd", 3);
        assert_eq!(lines.next_line().unwrap().err(), Some(4));
        let mut lines = Lines::new(b"abc\n", 3);
        assert!(lines.next_line().unwrap().is_ok());
        assert!(lines.next_line().is_none());
    }
}
