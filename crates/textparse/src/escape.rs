//! Undoing the backslash escapes of label values and help texts.

use std::borrow::Cow;

/// Which escapes a string may hold besides `\\` and `\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// Only `\\` and `\n` (text-format help).
    NoQuote,
    /// Also `\"` (label values, names, OpenMetrics help).
    WithQuote,
}

/// `s` with its escapes replaced (a backslash before any other character stays, as in
/// Prometheus); borrowed when it holds no backslash.
pub(crate) fn unescape(s: &str, escapes: Escapes) -> Cow<'_, str> {
    let Some(first) = s.find('\\') else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let replacement = match after.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if escapes == Escapes::WithQuote => Some('"'),
            _ => None,
        };
        match replacement {
            Some(c) => {
                out.push(c);
                rest = &after[1..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let with = |s| unescape(s, Escapes::WithQuote);
        assert!(matches!(with("plain"), Cow::Borrowed("plain")));
        assert_eq!(with(r#"a\"b"#), "a\"b");
        assert_eq!(with(r"a\\b"), "a\\b");
        assert_eq!(with(r"a\nb"), "a\nb");
        assert_eq!(with(r"\\n"), "\\n");
        assert_eq!(with(r"\x\é\"), "\\x\\é\\");
        assert_eq!(with(r"é\\"), "é\\");
        let without = |s| unescape(s, Escapes::NoQuote);
        assert_eq!(without(r#"a\"b\\c\nd"#), "a\\\"b\\c\nd");
    }
}
