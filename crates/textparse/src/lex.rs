//! A cursor over one line, with the tokens both formats share: names, quoted strings, runs of
//! bytes, and the error messages that quote what was found instead.

/// A token's position: `start..end` of the bytes it covers (for a quoted string, between the
/// quotes), and whether those bytes hold a backslash escape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) escaped: bool,
}

impl Span {
    /// The same span, counted from `base` instead of from 0.
    pub(crate) fn rebase(self, base: usize) -> Span {
        Span { start: self.start - base, end: self.end - base, escaped: self.escaped }
    }
}

/// Whether `b` separates tokens in the text format.
pub(crate) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A position in one line (without its `\n`).
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Self {
        Cursor { line, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The bytes from the cursor to the end of the line.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.line.get(self.pos..).unwrap_or_default()
    }

    /// The bytes `start..end` of the line.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.line.get(start..end).unwrap_or_default()
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        self.pos += usize::from(found);
        found
    }

    /// Consumes `prefix` if the rest of the line starts with it.
    pub(crate) fn eat_prefix(&mut self, prefix: &[u8]) -> bool {
        let found = self.rest().starts_with(prefix);
        if found {
            self.pos += prefix.len();
        }
        found
    }

    /// Consumes bytes while `keep` holds; returns them.
    pub(crate) fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        let len = self.rest().iter().position(|&b| !keep(b)).unwrap_or(self.rest().len());
        self.pos += len;
        self.slice(start, self.pos)
    }

    /// Skips spaces and tabs; returns whether there were any.
    pub(crate) fn skip_blanks(&mut self) -> bool {
        !self.take_while(is_blank).is_empty()
    }

    /// Skips spaces and tabs if `next` follows them.
    pub(crate) fn skip_blanks_before(&mut self, next: u8) {
        let rest = self.rest();
        let blanks = rest.iter().take_while(|&&b| is_blank(b)).count();
        if rest.get(blanks) == Some(&next) {
            self.pos += blanks;
        }
    }

    /// A metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`, if one starts here.
    pub(crate) fn metric_name(&mut self) -> Option<Span> {
        self.name(|b| is_name_start(b) || b == b':', |b| is_name_char(b) || b == b':')
    }

    /// A label name, `[a-zA-Z_][a-zA-Z0-9_]*`, if one starts here.
    pub(crate) fn label_name(&mut self) -> Option<Span> {
        self.name(is_name_start, is_name_char)
    }

    fn name(&mut self, first: impl Fn(u8) -> bool, then: impl Fn(u8) -> bool) -> Option<Span> {
        let start = self.pos;
        if !self.peek().is_some_and(first) {
            return None;
        }
        self.pos += 1;
        self.take_while(then);
        Some(Span { start, end: self.pos, escaped: false })
    }

    /// A double-quoted string (any byte but an unescaped `"`; a backslash escapes the next
    /// byte), if one starts here: its span between the quotes. An unterminated one is an error.
    pub(crate) fn quoted(&mut self) -> Result<Option<Span>, String> {
        if self.peek() != Some(b'"') {
            return Ok(None);
        }
        let open = self.pos;
        let mut i = open + 1;
        let mut escaped = false;
        while let Some(&b) = self.line.get(i) {
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Some(Span { start: open + 1, end: i, escaped }));
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Err(format!("unterminated quoted string {}", quote(self.slice(open, self.line.len()))))
    }

    /// `expected {what}, got "<the token here>"`.
    pub(crate) fn expected(&self, what: &str) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return format!("expected {what}, got end of line");
        }
        let len = rest.iter().skip(1).position(|&b| is_blank(b)).map_or(rest.len(), |n| n + 1);
        let token = self.slice(self.pos, self.pos + len);
        format!("expected {what}, got {}", quote(token))
    }
}

/// `bytes` quoted and escaped for an error message, cut after 100 bytes; a carriage return in
/// them earns a hint.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 100;
    let shown = bytes.get(..MAX).unwrap_or(bytes);
    let mut quoted = format!("{:?}", String::from_utf8_lossy(shown));
    if shown.len() < bytes.len() {
        quoted.push_str("...");
    }
    if bytes.contains(&b'\r') {
        quoted.push_str(" (a carriage return: lines must end with \"\\n\" alone)");
    }
    quoted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names() {
        let mut cur = Cursor::new(b"a:b_1{");
        assert_eq!(cur.metric_name().map(|s| (s.start, s.end)), Some((0, 5)));
        assert_eq!(cur.peek(), Some(b'{'));
        let mut cur = Cursor::new(b"a:b");
        assert_eq!(cur.label_name().map(|s| (s.start, s.end)), Some((0, 1)));
        assert_eq!(Cursor::new(b"1a").metric_name(), None);
        assert_eq!(Cursor::new(b":a").label_name(), None);
        assert!(Cursor::new(b":a").metric_name().is_some());
    }

    #[test]
    fn quoted_strings() {
        let mut cur = Cursor::new(br#""a\"b\\" x"#);
        let span = cur.quoted().unwrap().unwrap();
        assert_eq!((span.start, span.end, span.escaped), (1, 7, true));
        assert_eq!(cur.rest(), b" x");
        assert_eq!(Cursor::new(b"x").quoted(), Ok(None));
        assert!(Cursor::new(br#""abc\""#).quoted().is_err());
        assert!(Cursor::new(br#""abc\"#).quoted().is_err());
        let plain = Cursor::new(br#""abc""#).quoted().unwrap().unwrap();
        assert!(!plain.escaped);
    }

    #[test]
    fn messages() {
        let cur = Cursor::new(b"INVALID rest");
        assert_eq!(cur.expected("value"), r#"expected value, got "INVALID""#);
        assert_eq!(Cursor::new(b"").expected("value"), "expected value, got end of line");
        let long = quote(&[b'x'; 300]);
        assert!(long.len() < 110 && long.ends_with("..."), "{long}");
        assert!(quote(b"1\r").contains("carriage return"));
    }
}
