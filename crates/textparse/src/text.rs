//! Lines of the Prometheus text exposition format 0.0.4.
//!
//! Tokens may be separated by any run of spaces and tabs; blank lines and comments other than
//! `# HELP` and `# TYPE` are skipped; a sample's timestamp is an integer of milliseconds.

use crate::lex::{Cursor, is_blank};
use crate::meta::{self, Keyword};
use crate::number::{parse_float, parse_int};
use crate::parser::Parsed;
use crate::series::{SeriesSpans, parse_series};
use crate::{Entry, Format};

/// Parses one line (without its `\n`).
pub(crate) fn parse_line<'a>(line: &'a [u8], series: &mut SeriesSpans<'a>) -> Result<Parsed<'a>, String> {
    let mut cur = Cursor::new(line);
    cur.skip_blanks();
    match cur.peek() {
        None => Ok(Parsed::Skip),
        Some(b'#') => comment(cur),
        Some(_) => sample(cur, series),
    }
}

/// A line starting with `#`: metadata, or a comment to skip.
fn comment(mut cur: Cursor<'_>) -> Result<Parsed<'_>, String> {
    cur.eat(b'#');
    if !cur.skip_blanks() {
        return Ok(Parsed::Skip);
    }
    let Some(keyword) = Keyword::eat(&mut cur, Format::PrometheusText) else {
        return Ok(Parsed::Skip);
    };
    let family = meta::family(&mut cur, keyword)?;
    // The text is what follows the blank after the name (further blanks included); nothing
    // or only blanks make an empty text.
    let rest = cur.rest();
    let text = match rest.split_first() {
        _ if rest.iter().all(|&b| is_blank(b)) => &[][..],
        Some((&b, text)) if is_blank(b) => text,
        _ => return Err(cur.expected("a space after the metric name")),
    };
    meta::entry(keyword, family, text, Format::PrometheusText).map(Parsed::Entry)
}

/// A sample: `series value [timestamp]`.
fn sample<'a>(mut cur: Cursor<'a>, spans: &mut SeriesSpans<'a>) -> Result<Parsed<'a>, String> {
    let series = parse_series(&mut cur, Format::PrometheusText, spans)?;
    cur.skip_blanks();
    let token = cur.take_while(|b| !is_blank(b) && b != b'{');
    if token.is_empty() {
        return Err(cur.expected("a value after the series"));
    }
    let value = parse_float(token).map_err(|e| e.describe("value", token))?;
    cur.skip_blanks();
    let mut timestamp_ms = None;
    if !cur.at_end() {
        let token = cur.take_while(|b| b.is_ascii_digit());
        if token.is_empty() {
            return Err(cur.expected("a timestamp or the end of the line"));
        }
        timestamp_ms = Some(parse_int(token).map_err(|e| e.describe("timestamp", token))?);
        cur.skip_blanks();
        if !cur.at_end() {
            return Err(cur.expected("the end of the line after the timestamp"));
        }
    }
    Ok(Parsed::Entry(Entry::Series { series, value, timestamp_ms }))
}
