//! The parser: lines in, entries out, with the state `labels` reads.

use std::borrow::Cow;

use crate::escape::{Escapes, unescape};
use crate::lex::Span;
use crate::lines::Lines;
use crate::number::{format_openmetrics_float, parse_float};
use crate::series::SeriesSpans;
use crate::{Entry, Format, MetricType, ParseError, openmetrics, text};

/// What one line gives.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// An entry to return.
    Entry(Entry<'a>),
    /// Nothing (a blank line or a comment of the text format).
    Skip,
    /// The end of the body (OpenMetrics `# EOF`).
    Eof,
}

/// A parser of one body, yielding its entries in order.
///
/// It allocates nothing per line: the label positions of the current series live in a buffer
/// reused from line to line.
#[derive(Debug)]
pub struct Parser<'a> {
    lines: Lines<'a>,
    format: Format,
    done: bool,
    series: SeriesSpans<'a>,
    /// The type of the last `# TYPE` line (decides which label values are normalised).
    kind: Option<MetricType>,
}

impl<'a> Parser<'a> {
    /// Longest accepted line by default: 1 MiB. A longer line is an error naming its length and
    /// the limit, found in time linear in the line's length, without copying it.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

    /// A parser of `body`, which is in `format`.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Parser {
            lines: Lines::new(body, Self::DEFAULT_MAX_LINE_BYTES),
            format,
            done: false,
            series: SeriesSpans::default(),
            kind: None,
        }
    }

    /// The same parser, accepting lines of at most `n` bytes (without their `\n`).
    pub fn with_max_line_bytes(mut self, n: usize) -> Self {
        self.lines.set_max_len(n);
        self
    }

    /// The next entry; `None` at the end of the body (OpenMetrics: after `# EOF`). After an
    /// error, always `None`.
    pub fn next_entry(&mut self) -> Option<Result<Entry<'a>, ParseError>> {
        while !self.done {
            let line = match self.lines.next_line() {
                Some(Ok(line)) => line,
                Some(Err(len)) => {
                    let max = self.lines.max_len();
                    return self.fail(format!("line is {len} bytes long, over the limit of {max} bytes"));
                }
                None => {
                    self.done = true;
                    return match self.format {
                        Format::PrometheusText => None,
                        Format::OpenMetrics => Some(Err(ParseError {
                            line: self.lines.number() + 1,
                            reason: openmetrics::MISSING_EOF.to_owned(),
                        })),
                    };
                }
            };
            let parsed = match self.format {
                Format::PrometheusText => text::parse_line(line.bytes, &mut self.series),
                Format::OpenMetrics => openmetrics::parse_line(line, &mut self.series),
            };
            match parsed {
                Ok(Parsed::Entry(entry)) => {
                    if let Entry::Type { kind, .. } = &entry {
                        self.kind = Some(*kind);
                    }
                    return Some(Ok(entry));
                }
                Ok(Parsed::Skip) => {}
                Ok(Parsed::Eof) => {
                    self.done = true;
                    if !self.lines.at_end() {
                        return Some(Err(ParseError {
                            line: self.lines.number() + 1,
                            reason: "unexpected data after # EOF".to_owned(),
                        }));
                    }
                }
                Err(reason) => return self.fail(reason),
            }
        }
        None
    }

    /// Stops the parser with an error on the current line.
    fn fail(&mut self, reason: String) -> Option<Result<Entry<'a>, ParseError>> {
        self.done = true;
        Some(Err(ParseError { line: self.lines.number(), reason }))
    }

    /// Appends the labels of the series of the last [`Entry::Series`] returned to `out` (which
    /// the caller clears): first `("__name__", name)`, then the labels in wire order. Names and
    /// values are unescaped (`\\`, `\"` and `\n`; a backslash before anything else stays) and
    /// borrowed from the body unless they held an escape. Their positions were found by
    /// [`Parser::next_entry`]: this only slices (and unescapes).
    pub fn labels(&self, out: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>) {
        let text = self.series.text;
        out.reserve(self.series.labels.len() + 1);
        out.push((Cow::Borrowed("__name__"), label_text(text, self.series.name)));
        let float_label = match self.kind {
            Some(MetricType::Histogram) => "le",
            Some(MetricType::Summary) => "quantile",
            _ => "",
        };
        for &(name, value) in &self.series.labels {
            let (name, mut value) = (label_text(text, name), label_text(text, value));
            if !float_label.is_empty()
                && name == float_label
                && let Ok(f) = parse_float(value.as_bytes())
            {
                value = Cow::Owned(format_openmetrics_float(f));
            }
            out.push((name, value));
        }
    }
}

/// The unescaped text of `span` in `series` (empty if it is not there, which only a series whose
/// parse failed could cause).
fn label_text(series: &str, span: Span) -> Cow<'_, str> {
    let raw = series.get(span.start..span.end).unwrap_or_default();
    if span.escaped { unescape(raw, Escapes::WithQuote) } else { Cow::Borrowed(raw) }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}
