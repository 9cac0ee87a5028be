//! Property: series rendered in either format parse back to the same names, labels, values and
//! timestamps, and metadata to the same families, types and help texts.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Owned, parse};
use proptest::prelude::*;
use strata_textparse::{Format, MetricType};

/// A metric or label name, bare when it can be, else quoted.
#[derive(Clone, Debug)]
struct Name {
    text: String,
    quoted: bool,
}

#[derive(Clone, Debug)]
struct Sample {
    name: Name,
    labels: Vec<(Name, String)>,
    value: f64,
    exponent_form: bool,
    timestamp_ms: Option<i64>,
    help: Option<String>,
    kind: Option<MetricType>,
}

fn metric_name() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}".prop_map(|text| Name { text, quoted: false }),
        1 => ".{1,12}".prop_map(|text| Name { text, quoted: true }),
    ]
}

fn label_name() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,12}".prop_map(|text| Name { text, quoted: false }),
        1 => ".{1,12}".prop_map(|text| Name { text, quoted: true }),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 3.0),
        Just(-5e-324),
        Just(f64::MAX),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
    ]
}

fn kind() -> impl Strategy<Value = MetricType> {
    prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Histogram),
        Just(MetricType::Summary),
        Just(MetricType::Unknown),
    ]
}

fn sample(timestamps: impl Strategy<Value = i64>) -> impl Strategy<Value = Sample> {
    (
        metric_name(),
        prop::collection::vec((label_name(), any::<String>()), 0..=5),
        value(),
        any::<bool>(),
        prop::option::of(timestamps),
        prop::option::of(any::<String>()),
        prop::option::of(kind()),
    )
        .prop_map(|(name, labels, value, exponent_form, timestamp_ms, help, kind)| Sample {
            name,
            labels,
            value,
            exponent_form,
            timestamp_ms,
            help,
            kind,
        })
}

fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn render_name(name: &Name) -> String {
    if name.quoted { format!("\"{}\"", escape(&name.text, true)) } else { name.text.clone() }
}

fn render_value(v: f64, exponent_form: bool, format: Format) -> String {
    match (v, format) {
        (v, Format::OpenMetrics) if v == f64::INFINITY => "+Inf".to_owned(),
        (v, Format::OpenMetrics) if v == f64::NEG_INFINITY => "-Inf".to_owned(),
        _ if exponent_form => format!("{v:e}"),
        _ => format!("{v}"),
    }
}

/// The family name as `# HELP`/`# TYPE` return it: a quoted name's bytes as written.
fn family(name: &Name) -> String {
    if name.quoted { escape(&name.text, true) } else { name.text.clone() }
}

fn render(samples: &[Sample], format: Format) -> String {
    let mut body = String::new();
    let text_format = format == Format::PrometheusText;
    for s in samples {
        let family_name = render_name(&s.name);
        if let Some(help) = &s.help {
            body.push_str(&format!("# HELP {family_name} {}\n", escape(help, !text_format)));
        }
        if let Some(kind) = s.kind {
            let kind = if kind == MetricType::Unknown && text_format { "untyped" } else { kind.as_str() };
            body.push_str(&format!("# TYPE {family_name} {kind}\n"));
        }
        let mut labels: Vec<String> =
            s.labels.iter().map(|(n, v)| format!("{}=\"{}\"", render_name(n), escape(v, true))).collect();
        let series = if s.name.quoted {
            labels.insert(0, render_name(&s.name));
            format!("{{{}}}", labels.join(","))
        } else if labels.is_empty() {
            s.name.text.clone()
        } else {
            format!("{}{{{}}}", s.name.text, labels.join(","))
        };
        let value = render_value(s.value, s.exponent_form, format);
        body.push_str(&format!("{series} {value}"));
        match (s.timestamp_ms, format) {
            (Some(ts), Format::PrometheusText) => body.push_str(&format!(" {ts}")),
            (Some(ts), Format::OpenMetrics) => {
                let sign = if ts < 0 { "-" } else { "" };
                let abs = ts.unsigned_abs();
                body.push_str(&format!(" {sign}{}.{:03}", abs / 1000, abs % 1000));
            }
            (None, _) => {}
        }
        body.push('\n');
    }
    if !text_format {
        body.push_str("# EOF\n");
    }
    body
}

fn check(samples: &[Sample], format: Format) -> Result<(), TestCaseError> {
    let body = render(samples, format);
    let (entries, err) = parse(body.as_bytes(), format);
    prop_assert!(err.is_none(), "{:?}\nbody: {:?}", err, body);
    let mut entries = entries.into_iter();
    for s in samples {
        if let Some(help) = &s.help {
            // The text format cannot tell a help of only blanks from none.
            let blank = help.chars().all(|c| c == ' ' || c == '\t');
            let want = if format == Format::PrometheusText && blank { String::new() } else { help.clone() };
            prop_assert_eq!(entries.next(), Some(Owned::Help(family(&s.name), want)));
        }
        if let Some(kind) = s.kind {
            prop_assert_eq!(entries.next(), Some(Owned::Type(family(&s.name), kind)));
        }
        let Some(Owned::Series { labels, value, timestamp_ms, .. }) = entries.next() else {
            return Err(TestCaseError::fail(format!("no series for {s:?} in {body:?}")));
        };
        let mut want = vec![("__name__".to_owned(), s.name.text.clone())];
        want.extend(s.labels.iter().map(|(n, v)| (n.text.clone(), v.clone())));
        prop_assert_eq!(labels, want);
        prop_assert!(
            value.to_bits() == s.value.to_bits() || (value.is_nan() && s.value.is_nan()),
            "value {} for {} in {:?}",
            value,
            s.value,
            body
        );
        match (timestamp_ms, s.timestamp_ms, format) {
            // Float seconds times 1000, truncated, may land 1 ms low (as in Prometheus).
            (Some(got), Some(want), Format::OpenMetrics) if want % 1000 != 0 => {
                prop_assert!(got == want || got == want - 1 || got == want + 1, "{got} for {want}")
            }
            (got, want, _) => prop_assert_eq!(got, want),
        }
    }
    prop_assert_eq!(entries.next(), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn text_format_round_trip(samples in prop::collection::vec(sample(0..=i64::MAX), 0..12)) {
        check(&samples, Format::PrometheusText)?;
    }

    #[test]
    fn openmetrics_round_trip(samples in prop::collection::vec(sample(-1_000_000_000_000i64..10_000_000_000_000), 0..12)) {
        check(&samples, Format::OpenMetrics)?;
    }
}
