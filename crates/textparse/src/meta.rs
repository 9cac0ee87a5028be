//! Metadata lines, shared by both formats: `# HELP`, `# TYPE` and (OpenMetrics) `# UNIT`.

use crate::escape::{Escapes, unescape};
use crate::lex::{Cursor, is_blank, quote};
use crate::{Entry, Format, MetricType};

/// The word after `# ` that makes a comment a metadata line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyword {
    Help,
    Type,
    Unit,
}

impl Keyword {
    /// Consumes a keyword of `format` and the separator after it: in the text format `HELP` or
    /// `TYPE` and one or more blanks; in OpenMetrics `HELP`, `TYPE` or `UNIT` and one space.
    pub(crate) fn eat(cur: &mut Cursor<'_>, format: Format) -> Option<Keyword> {
        let rest = cur.rest();
        let keyword = match rest.get(..4)? {
            b"HELP" => Keyword::Help,
            b"TYPE" => Keyword::Type,
            b"UNIT" if format == Format::OpenMetrics => Keyword::Unit,
            _ => return None,
        };
        let separated = match format {
            Format::PrometheusText => rest.get(4).is_some_and(|&b| is_blank(b)),
            Format::OpenMetrics => rest.get(4) == Some(&b' '),
        };
        if !separated {
            return None;
        }
        cur.eat_prefix(&rest[..5]);
        if format == Format::PrometheusText {
            cur.skip_blanks();
        }
        Some(keyword)
    }

    fn as_str(self) -> &'static str {
        match self {
            Keyword::Help => "HELP",
            Keyword::Type => "TYPE",
            Keyword::Unit => "UNIT",
        }
    }
}

/// The metric family a metadata line is about: a metric name, or a quoted one (returned as
/// written between its quotes, as Prometheus does).
pub(crate) fn family<'a>(cur: &mut Cursor<'a>, keyword: Keyword) -> Result<&'a str, String> {
    let span = match cur.metric_name() {
        Some(span) => span,
        None => match cur.quoted()? {
            Some(span) if span.start < span.end => span,
            _ => return Err(cur.expected(&format!("a metric name after {}", keyword.as_str()))),
        },
    };
    let name = cur.slice(span.start, span.end);
    std::str::from_utf8(name).map_err(|_| format!("invalid UTF-8 in metric name {}", quote(name)))
}

/// The entry of a metadata line, from its keyword, family and the text after them.
pub(crate) fn entry<'a>(
    keyword: Keyword,
    family: &'a str,
    text: &'a [u8],
    format: Format,
) -> Result<Entry<'a>, String> {
    let utf8 = |what: &str| {
        std::str::from_utf8(text).map_err(|_| format!("{what} {} is not valid UTF-8", quote(text)))
    };
    Ok(match keyword {
        Keyword::Help => {
            let escapes = match format {
                Format::PrometheusText => Escapes::NoQuote,
                Format::OpenMetrics => Escapes::WithQuote,
            };
            let help = unescape(utf8("help text")?, escapes);
            Entry::Help { family, help }
        }
        Keyword::Type => Entry::Type { family, kind: metric_type(text, format)? },
        Keyword::Unit => {
            let unit = utf8("unit")?;
            let suffixed = family.strip_suffix(unit).is_some_and(|stem| stem.ends_with('_'));
            if !unit.is_empty() && !suffixed {
                return Err(format!(
                    "unit {} is not a suffix of metric {}",
                    quote(text),
                    quote(family.as_bytes())
                ));
            }
            Entry::Unit { family, unit }
        }
    })
}

/// The type a `# TYPE` line names, spelled as `format` spells it.
fn metric_type(text: &[u8], format: Format) -> Result<MetricType, String> {
    let open_metrics = format == Format::OpenMetrics;
    Ok(match text {
        b"counter" => MetricType::Counter,
        b"gauge" => MetricType::Gauge,
        b"histogram" => MetricType::Histogram,
        b"summary" => MetricType::Summary,
        b"untyped" if !open_metrics => MetricType::Unknown,
        b"unknown" if open_metrics => MetricType::Unknown,
        b"gaugehistogram" if open_metrics => MetricType::GaugeHistogram,
        b"info" if open_metrics => MetricType::Info,
        b"stateset" if open_metrics => MetricType::StateSet,
        _ => return Err(format!("invalid metric type {}", quote(text))),
    })
}
