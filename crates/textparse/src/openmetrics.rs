//! Lines of OpenMetrics 1.0 text.
//!
//! Tokens are separated by exactly one space; every line ends with `\n` and none is blank; the
//! body ends with `# EOF`; `#` lines other than `# HELP`, `# TYPE`, `# UNIT` and `# EOF` are
//! errors; timestamps are float seconds; a sample may carry an exemplar (` # {labels} value
//! [timestamp]`), which is checked and skipped.

use crate::lex::Cursor;
use crate::lines::Line;
use crate::meta::{self, Keyword};
use crate::number::{parse_float, parse_seconds_as_millis};
use crate::parser::Parsed;
use crate::series::{SeriesSpans, label_block, parse_series};
use crate::{Entry, Format};

/// The error of a body that stops before its `# EOF`.
pub(crate) const MISSING_EOF: &str = "data does not end with # EOF";

/// Parses one line.
pub(crate) fn parse_line<'a>(line: Line<'a>, series: &mut SeriesSpans<'a>) -> Result<Parsed<'a>, String> {
    if line.bytes == b"# EOF" {
        return Ok(Parsed::Eof);
    }
    if !line.terminated {
        return Err(MISSING_EOF.to_owned());
    }
    let cur = Cursor::new(line.bytes);
    match cur.peek() {
        None => Err("blank line (OpenMetrics allows none)".to_owned()),
        Some(b'#') => metadata(cur),
        Some(_) => sample(cur, series),
    }
}

/// `# HELP`, `# TYPE` or `# UNIT`, each followed by a family, a space and a text.
fn metadata(mut cur: Cursor<'_>) -> Result<Parsed<'_>, String> {
    if cur.rest().starts_with(b"# EOF") {
        return Err("unexpected data after # EOF".to_owned());
    }
    if !cur.eat_prefix(b"# ") {
        return Err(cur.expected("\"# \" (OpenMetrics comments are metadata)"));
    }
    let Some(keyword) = Keyword::eat(&mut cur, Format::OpenMetrics) else {
        return Err(cur.expected("HELP, TYPE, UNIT or EOF and a space after \"# \""));
    };
    let family = meta::family(&mut cur, keyword)?;
    if !cur.eat(b' ') {
        return Err(cur.expected("a space and a text after the metric name"));
    }
    meta::entry(keyword, family, cur.rest(), Format::OpenMetrics).map(Parsed::Entry)
}

/// A sample: `series value [timestamp] [# {labels} value [timestamp]]`.
fn sample<'a>(mut cur: Cursor<'a>, spans: &mut SeriesSpans<'a>) -> Result<Parsed<'a>, String> {
    let series = parse_series(&mut cur, Format::OpenMetrics, spans)?;
    if !cur.eat(b' ') {
        return Err(cur.expected("a space and a value after the series"));
    }
    let token = next_token(&mut cur, "a value")?;
    let value = parse_float(token).map_err(|e| e.describe("value", token))?;
    let mut timestamp_ms = None;
    if cur.eat(b' ') && !exemplar(&mut cur)? {
        let token = next_token(&mut cur, "a timestamp or an exemplar")?;
        timestamp_ms = Some(parse_seconds_as_millis(token).map_err(|e| e.describe("timestamp", token))?);
        if cur.eat(b' ') && !exemplar(&mut cur)? {
            return Err(cur.expected("an exemplar (\"# {\") after the timestamp"));
        }
    }
    if !cur.at_end() {
        return Err(cur.expected("the end of the line"));
    }
    Ok(Parsed::Entry(Entry::Series { series, value, timestamp_ms }))
}

/// Checks and skips an exemplar if one starts here (`# {labels} value [timestamp]`); returns
/// whether there was one.
fn exemplar(cur: &mut Cursor<'_>) -> Result<bool, String> {
    if !cur.eat_prefix(b"# {") {
        return Ok(false);
    }
    let start = cur.pos();
    label_block(cur, Format::OpenMetrics, None, |_, _| {})?;
    let labels = cur.slice(start, cur.pos());
    if std::str::from_utf8(labels).is_err() {
        return Err(format!("invalid UTF-8 in exemplar labels {}", crate::lex::quote(labels)));
    }
    if !cur.eat(b' ') {
        return Err(cur.expected("a space and a value after the exemplar's labels"));
    }
    let token = next_token(cur, "an exemplar value")?;
    parse_float(token).map_err(|e| e.describe("exemplar value", token))?;
    if cur.eat(b' ') {
        let token = next_token(cur, "an exemplar timestamp")?;
        parse_seconds_as_millis(token).map_err(|e| e.describe("exemplar timestamp", token))?;
    }
    Ok(true)
}

/// The bytes up to the next space or the end of the line, at least one.
fn next_token<'a>(cur: &mut Cursor<'a>, what: &str) -> Result<&'a [u8], String> {
    let token = cur.take_while(|b| b != b' ');
    if token.is_empty() {
        return Err(cur.expected(what));
    }
    Ok(token)
}
