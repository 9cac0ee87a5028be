//! The series part of a sample line, shared by both formats: a metric name, a label block, or
//! both (`name`, `name{l="v",...}`, `{"name", l="v"}`).

use crate::Format;
use crate::lex::{Cursor, Span, quote};

/// Where the name and labels of the last series parsed are, relative to its text.
#[derive(Debug, Default)]
pub(crate) struct SeriesSpans<'a> {
    /// The series as on the wire (checked to be UTF-8).
    pub(crate) text: &'a str,
    pub(crate) name: Span,
    /// Label name and value spans, in wire order.
    pub(crate) labels: Vec<(Span, Span)>,
}

/// Parses the series at the cursor into `out`; leaves the cursor right after it and returns it.
pub(crate) fn parse_series<'a>(
    cur: &mut Cursor<'a>,
    format: Format,
    out: &mut SeriesSpans<'a>,
) -> Result<&'a [u8], String> {
    let start = cur.pos();
    out.labels.clear();
    let mut name = cur.metric_name();
    if name.is_some() && format == Format::PrometheusText {
        // The text format allows blanks between the name and its label block.
        cur.skip_blanks_before(b'{');
    }
    if cur.eat(b'{') {
        let labels = &mut out.labels;
        label_block(cur, format, Some(&mut name), |n, v| {
            labels.push((n.rebase(start), v.rebase(start)));
        })?;
    }
    let series = cur.slice(start, cur.pos());
    let Some(name) = name else {
        return Err(if series.is_empty() {
            cur.expected("a metric name or '{'")
        } else {
            format!("metric name not set in series {}", quote(series))
        });
    };
    out.text =
        std::str::from_utf8(series).map_err(|_| format!("invalid UTF-8 in series {}", quote(series)))?;
    out.name = name.rebase(start);
    Ok(series)
}

/// Parses a label block after its `{`, through its `}`, giving each label's name and value spans
/// to `on_label`. `metric_name` is where a lone quoted string (`{"name", ...}`) puts the metric
/// name; without it (exemplars) one is an error. The text format allows blanks between tokens and
/// a missing comma between labels; OpenMetrics neither.
pub(crate) fn label_block(
    cur: &mut Cursor<'_>,
    format: Format,
    mut metric_name: Option<&mut Option<Span>>,
    mut on_label: impl FnMut(Span, Span),
) -> Result<(), String> {
    let lenient = format == Format::PrometheusText;
    let skip_blanks = |cur: &mut Cursor<'_>| {
        if lenient {
            cur.skip_blanks();
        }
    };
    loop {
        skip_blanks(cur);
        if cur.eat(b'}') {
            return Ok(());
        }
        let (name, quoted) = match cur.label_name() {
            Some(name) => (name, false),
            None => match cur.quoted()? {
                Some(name) => (name, true),
                None => return Err(cur.expected("a label name or '}'")),
            },
        };
        if quoted && name.start == name.end {
            return Err("empty quoted name in label block".to_owned());
        }
        skip_blanks(cur);
        if quoted && matches!(cur.peek(), Some(b',' | b'}')) {
            match metric_name.as_deref_mut() {
                None => return Err(cur.expected("'=' after label name")),
                Some(Some(_)) => {
                    let name = quote(cur.slice(name.start, name.end));
                    return Err(format!("metric name already set, got another one: {name}"));
                }
                Some(slot) => *slot = Some(name),
            }
            cur.eat(b',');
            continue;
        }
        if !cur.eat(b'=') {
            return Err(cur.expected("'=' after label name"));
        }
        skip_blanks(cur);
        let Some(value) = cur.quoted()? else {
            return Err(cur.expected("a quoted label value"));
        };
        on_label(name, value);
        skip_blanks(cur);
        if !cur.eat(b',') && !lenient && cur.peek() != Some(b'}') {
            return Err(cur.expected("',' or '}' after label value"));
        }
    }
}
