//! JSON text as Prometheus 2.42's API writes it (Go's `encoding/json` and jsoniter's
//! standard-library configuration), for the query results, where serde_json's forms differ:
//! sample values (`jsonutil.MarshalFloat`: `1e-07`), the timestamps of points
//! (`marshalTimestamp`: `1700000000.500`) and strings (HTML-safe: `\u003c`, `\u2028`); and
//! every other answer and error with Go's string escapes ([`response`]).

use std::io::{self, Write};

/// A JSON string as Go writes it: `"` and `\` escaped, `\n`, `\r` and `\t` by their short
/// forms, every other control character as `\u00XX` (`\b` is `\u0008`), `<`, `>` and `&`
/// as `\u003c`, `\u003e` and `\u0026`, and U+2028 and U+2029 as `\u2028` and `\u2029`.
pub(crate) fn string(out: &mut impl Write, s: &str) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            c if c < ' ' || c == '<' || c == '>' || c == '&' => None,
            _ => continue,
        };
        out.write_all(&s.as_bytes()[start..i])?;
        match esc {
            Some(e) => out.write_all(e)?,
            None => {
                let b = c as u8;
                out.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ])?;
            }
        }
        start = i + c.len_utf8();
    }
    out.write_all(&s.as_bytes()[start..])?;
    out.write_all(b"\"")
}

/// The timestamp of a point (a vector's sample, a matrix's point), in ms, as Prometheus's
/// `marshalTimestamp` writes it: whole seconds, then `.` and always three digits of
/// milliseconds when there are any (`1700000000.500`, `-1.050`, `4`).
pub(crate) fn point_time(out: &mut impl Write, t: i64) -> io::Result<()> {
    let sign = if t < 0 { "-" } else { "" };
    let (secs, ms) = (t.unsigned_abs() / 1000, t.unsigned_abs() % 1000);
    if ms == 0 { write!(out, "{sign}{secs}") } else { write!(out, "{sign}{secs}.{ms:03}") }
}

/// The timestamp of a scalar or string result, in ms: Go's `json.Marshal` of
/// `float64(t) / 1000` (`1700000030.5`, `-0.05`).
pub(crate) fn float_time(out: &mut impl Write, t: i64) -> io::Result<()> {
    out.write_all(strata_promql::format_float(t as f64 / 1000.0).as_bytes())
}

/// A sample value, a histogram's count, sum or bucket bound, quoted as Prometheus's
/// `marshalValue` writes it (`"1e-07"`, `"0.000001"`, `"1e+21"`, `"NaN"`, `"-Inf"`).
pub(crate) fn value(out: &mut impl Write, v: f64) -> io::Result<()> {
    write!(out, "\"{}\"", strata_promql::format_value(v))
}

/// serde_json's compact form with Go's string escapes (see [`string`]), for the API's
/// other answers and its errors.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        e: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        match e {
            CharEscape::Backspace => w.write_all(b"\\u0008"),
            CharEscape::FormFeed => w.write_all(b"\\u000c"),
            other => serde_json::ser::CompactFormatter.write_char_escape(w, other),
        }
    }
}

/// `v` as JSON text with Go's string escapes (`\u003c`, `\u0008`).
pub(crate) fn to_vec(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // a Value always serializes
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

/// A JSON response whose strings are escaped as Go escapes them.
pub(crate) fn response(status: axum::http::StatusCode, v: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], to_vec(v)).into_response()
}

#[cfg(test)]
mod tests {
    fn s(x: &str) -> String {
        let mut out = Vec::new();
        super::string(&mut out, x).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn pt(t: i64) -> String {
        let mut out = Vec::new();
        super::point_time(&mut out, t).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn ft(t: i64) -> String {
        let mut out = Vec::new();
        super::float_time(&mut out, t).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Strings as Prometheus 2.42 wrote a label value holding them.
    #[test]
    fn strings_as_go() {
        assert_eq!(s("<&>\n\"\\ \u{2028} \u{7f} é"), "\"\\u003c\\u0026\\u003e\\n\\\"\\\\ \\u2028 \u{7f} é\"");
        assert_eq!(s("\u{8}\u{c}\u{1}\r\t\u{2029}"), r#""\u0008\u000c\u0001\r\t\u2029""#);
        assert_eq!(s(""), r#""""#);
        assert_eq!(s("plain"), r#""plain""#);
    }

    /// Other answers' strings take Go's escapes too.
    #[test]
    fn values_as_go() {
        let v = serde_json::json!({"error": "`(?<` & \u{8}\u{c}\n\u{2028}", "n": [1, "x"]});
        let text = String::from_utf8(super::to_vec(&v)).unwrap();
        assert_eq!(text, r#"{"error":"`(?\u003c` \u0026 \u0008\u000c\n\u2028","n":[1,"x"]}"#);
        let mut direct = Vec::new();
        super::string(&mut direct, v["error"].as_str().unwrap()).unwrap();
        assert!(text.contains(std::str::from_utf8(&direct).unwrap()));
    }

    /// Timestamps as Prometheus 2.42 wrote them for a vector (`point_time`) and a scalar.
    #[test]
    fn times_as_go() {
        assert_eq!(pt(1_700_000_030_500), "1700000030.500");
        assert_eq!(pt(1_700_000_000_005), "1700000000.005");
        assert_eq!(pt(1_700_000_000_000), "1700000000");
        assert_eq!(pt(-1500), "-1.500");
        assert_eq!(pt(-50), "-0.050");
        assert_eq!(pt(1), "0.001");
        assert_eq!(pt(0), "0");
        assert_eq!(pt(i64::MIN), "-9223372036854775.808");
        assert_eq!(ft(1_700_000_030_500), "1700000030.5");
        assert_eq!(ft(1_700_000_000_123), "1700000000.123");
        assert_eq!(ft(-50), "-0.05");
        assert_eq!(ft(0), "0");
        assert_eq!(ft(1050), "1.05");
    }
}
