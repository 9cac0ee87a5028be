//! OpenMetrics 1.0 text, rule by rule.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Owned, parse, parse_err, parse_ok, series};
use strata_textparse::{Format, MetricType, Parser};

const OM: Format = Format::OpenMetrics;

fn one(line: &str) -> Owned {
    common::one_series(&format!("{line}\n# EOF\n"), OM)
}

/// The error of `line` in a body that is otherwise fine.
fn err(line: &str) -> String {
    parse_err(format!("{line}\n# EOF\n").as_bytes(), OM).to_string()
}

#[test]
fn samples_and_timestamps() {
    assert_eq!(one("up 1"), series("up", &[("__name__", "up")], 1.0, None));
    assert_eq!(
        one(r#"m{a="1",b="2"} 2.5 1520879607.789"#),
        series(
            r#"m{a="1",b="2"}"#,
            &[("__name__", "m"), ("a", "1"), ("b", "2")],
            2.5,
            Some(1_520_879_607_789)
        )
    );
    let ts = |line: &str| match one(line) {
        Owned::Series { timestamp_ms, .. } => timestamp_ms,
        other => panic!("{other:?}"),
    };
    assert_eq!(ts("m 1 1520879607"), Some(1_520_879_607_000));
    assert_eq!(ts("m 1 1.5e9"), Some(1_500_000_000_000));
    assert_eq!(ts("m 1 -1.5"), Some(-1500));
    assert_eq!(ts("m 1 0.0004"), Some(0));
    for bad in ["NaN", "+Inf", "-Inf"] {
        assert!(err(&format!("m 1 {bad}")).contains(&format!("invalid timestamp \"{bad}\"")), "{bad}");
    }
    assert!(err("m 1 1e400").contains("timestamp \"1e400\" out of range"));
    assert!(err("m 1 abc").contains("invalid timestamp \"abc\""));
}

#[test]
fn eof_rules() {
    assert!(parse_ok("# EOF\n", OM).is_empty());
    assert!(parse_ok("# EOF", OM).is_empty());
    assert_eq!(parse_ok("a 1\n# EOF", OM).len(), 1);
    let missing = |body: &[u8]| parse_err(body, OM);
    for body in [&b""[..], b"a 1\n", b"a 1", b"# HELP a x\n", b"a 1\n# EO", b"a 1\n# EOF\r\n"] {
        let e = missing(body);
        assert!(
            e.reason == "data does not end with # EOF" || e.reason.contains("after # EOF"),
            "{body:?}: {e}"
        );
    }
    assert_eq!(missing(b"").to_string(), "line 1: data does not end with # EOF");
    assert_eq!(missing(b"a 1\n").to_string(), "line 2: data does not end with # EOF");
    assert_eq!(missing(b"a 1\nb 2").to_string(), "line 2: data does not end with # EOF");
    for body in [&b"# EOF\n\n"[..], b"# EOF\na 1\n", b"a 1\n# EOF\n# EOF\n"] {
        assert!(missing(body).reason.contains("unexpected data after # EOF"), "{body:?}");
    }
    assert!(missing(b"# EOF x\n").reason.contains("unexpected data after # EOF"));
    // Nothing after the end, however often asked.
    let mut parser = Parser::new(b"a 1\n# EOF\n", OM);
    assert!(parser.next_entry().unwrap().is_ok());
    assert!(parser.next_entry().is_none());
    assert!(parser.next_entry().is_none());
}

#[test]
fn strict_separators() {
    assert!(err("").contains("blank line"));
    for line in [
        "m  1",
        "m\t1",
        "m 1 ",
        "m 1  2",
        " m 1",
        "m {a=\"1\"} 1",
        "m{a=\"1\", b=\"2\"} 1",
        "m{a=\"1\" ,b=\"2\"} 1",
        "m{ a=\"1\"} 1",
        "m{a =\"1\"} 1",
        "m{a=\"1\"b=\"2\"} 1",
        "m{a=\"1\"}1",
        "m 1\r",
    ] {
        let e = err(line);
        assert!(e.starts_with("line 1: "), "{line:?}: {e}");
    }
    assert_eq!(err("m  1"), r#"line 1: expected a value, got " 1""#);
    assert_eq!(
        err("m{a=\"1\"b=\"2\"} 1"),
        r#"line 1: expected ',' or '}' after label value, got "b=\"2\"}""#
    );
    assert_eq!(one("m{a=\"1\",} 1"), series("m{a=\"1\",}", &[("__name__", "m"), ("a", "1")], 1.0, None));
    assert_eq!(one("m{} 1"), series("m{}", &[("__name__", "m")], 1.0, None));
}

#[test]
fn comments_are_errors() {
    for line in
        ["# comment", "#", "#HELP m x", "# HELPER m x", "# help m x", "#  HELP m x", "# TYPE\tm counter"]
    {
        let e = err(line);
        assert!(e.starts_with("line 1: expected"), "{line:?}: {e}");
    }
}

#[test]
fn metadata() {
    let body = "# HELP m A \\\"quoted\\\" \\\\ help\\nwith newline\n# TYPE m counter\n# UNIT m_seconds seconds\n# UNIT m \n# HELP e \n# HELP s  two\n# EOF\n";
    assert_eq!(
        parse_ok(body, OM),
        vec![
            Owned::Help("m".into(), "A \"quoted\" \\ help\nwith newline".into()),
            Owned::Type("m".into(), MetricType::Counter),
            Owned::Unit("m_seconds".into(), "seconds".into()),
            Owned::Unit("m".into(), String::new()),
            Owned::Help("e".into(), String::new()),
            Owned::Help("s".into(), " two".into()),
        ]
    );
    let kinds = [
        ("counter", MetricType::Counter),
        ("gauge", MetricType::Gauge),
        ("histogram", MetricType::Histogram),
        ("gaugehistogram", MetricType::GaugeHistogram),
        ("summary", MetricType::Summary),
        ("info", MetricType::Info),
        ("stateset", MetricType::StateSet),
        ("unknown", MetricType::Unknown),
    ];
    for (text, kind) in kinds {
        assert_eq!(parse_ok(&format!("# TYPE m {text}\n# EOF\n"), OM), vec![Owned::Type("m".into(), kind)]);
        assert_eq!(kind.as_str(), text);
    }
    assert_eq!(err("# TYPE m untyped"), r#"line 1: invalid metric type "untyped""#);
    assert_eq!(err("# TYPE m counter "), r#"line 1: invalid metric type "counter ""#);
    assert_eq!(
        err("# UNIT m_bytes seconds"),
        r#"line 1: unit "seconds" is not a suffix of metric "m_bytes""#
    );
    assert!(err("# UNIT mseconds seconds").contains("not a suffix"));
    assert!(err("# HELP m").contains("expected a space and a text after the metric name"));
    assert!(err("# TYPE m").contains("expected a space and a text after the metric name"));
    assert!(err("# HELP  m x").contains("expected a metric name after HELP"));
    assert_eq!(
        parse_ok("# TYPE \"my.metric\" gauge\n# EOF\n", OM),
        vec![Owned::Type("my.metric".into(), MetricType::Gauge)]
    );
}

#[test]
fn label_escapes_and_quoted_names() {
    let Owned::Series { labels, .. } = one(r#"m{a="x\\y",b="\"q\"",c="l1\nl2",d="\z"} 1"#) else { panic!() };
    let values: Vec<_> = labels.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["m", "x\\y", "\"q\"", "l1\nl2", "\\z"]);
    assert_eq!(
        one(r#"{"my.metric","label.name"="v"} 1"#),
        series(
            r#"{"my.metric","label.name"="v"}"#,
            &[("__name__", "my.metric"), ("label.name", "v")],
            1.0,
            None
        )
    );
    assert!(err(r#"{a="1"} 1"#).contains("metric name not set"));
    assert!(parse_err(b"m{a=\"\xc3\x28\"} 1\n# EOF\n", OM).reason.contains("invalid UTF-8"));
}

#[test]
fn exemplars_are_checked_and_skipped() {
    let ok = [
        r#"m_total 1 # {trace_id="abc"} 0.5"#,
        r#"m_total 1 # {trace_id="abc"} 0.5 1520879607.789"#,
        r#"m_total 1 1520879607 # {trace_id="abc",span_id="d"} 0.5 1520879607.789"#,
        r#"m_total 1 # {} 0.5"#,
        r#"m_bucket{le="1"} 1 # {a="1",} NaN"#,
    ];
    for line in ok {
        let Owned::Series { series, labels, .. } = one(line) else { panic!() };
        assert!(series.starts_with('m'), "{line}");
        assert!(labels.iter().all(|(n, _)| n != "trace_id"), "{line}");
    }
    assert_eq!(
        one(r#"m_total 3 7 # {trace_id="abc"} 0.5 8"#),
        series("m_total", &[("__name__", "m_total")], 3.0, Some(7000))
    );
    let bad = [
        (r#"m 1 # {a="1"}"#, "expected a space and a value after the exemplar's labels"),
        (r#"m 1 # {a="1"} "#, "expected an exemplar value"),
        (r#"m 1 # {a="1"} x"#, "invalid exemplar value \"x\""),
        (r#"m 1 # {a="1"} 1 NaN"#, "invalid exemplar timestamp \"NaN\""),
        (r#"m 1 # {a="1"} 1 2 3"#, "expected the end of the line"),
        (r#"m 1 # {"a"} 1"#, "expected '=' after label name"),
        (r#"m 1 # {a=1} 1"#, "expected a quoted label value"),
        (r#"m 1 # {a="1"  1"#, "expected ',' or '}' after label value"),
        (r#"m 1 #{a="1"} 1"#, "invalid timestamp \"#{a=\\\"1\\\"}\""),
        (r#"m 1 2 3"#, "expected an exemplar (\"# {\") after the timestamp"),
    ];
    for (line, want) in bad {
        let e = err(line);
        assert!(e.contains(want), "{line:?}: {e}");
    }
}

#[test]
fn created_series_are_ordinary_series() {
    let body = "# TYPE r counter\nr_total 5\nr_created 1.7e+09\n# EOF\n";
    let entries = parse_ok(body, OM);
    assert_eq!(entries[2], series("r_created", &[("__name__", "r_created")], 1.7e9, None));
}

#[test]
fn error_lines_and_limits() {
    let (entries, e) = parse(b"# TYPE a gauge\na 1\nb 2\nc{ 3\n# EOF\n", OM);
    assert_eq!(entries.len(), 3);
    assert_eq!(e.unwrap().line, 4);
    let mut parser = Parser::new(b"abcdef 1\n# EOF\n", OM).with_max_line_bytes(4);
    assert_eq!(
        parser.next_entry().unwrap().unwrap_err().to_string(),
        "line 1: line is 8 bytes long, over the limit of 4 bytes"
    );
    assert!(parser.next_entry().is_none());
}

#[test]
fn node_exporter_body() {
    let entries = parse_ok(common::NODE_EXPORTER_OPENMETRICS, OM);
    let samples: Vec<_> = entries.iter().filter(|e| matches!(e, Owned::Series { .. })).collect();
    assert_eq!(samples.len(), 21);
    assert_eq!(entries.len(), 35);
    assert_eq!(entries[2], Owned::Unit("go_gc_duration_seconds".into(), "seconds".into()));
    assert_eq!(
        *samples[9],
        series(
            r#"node_cpu_seconds_total{cpu="1",mode="idle"}"#,
            &[("__name__", "node_cpu_seconds_total"), ("cpu", "1"), ("mode", "idle")],
            1.05935e+06,
            None
        )
    );
    assert!(matches!(samples[8], Owned::Series { timestamp_ms: Some(1_712_345_678_123), .. }));
    assert!(matches!(samples[20], Owned::Series { value, .. } if value.is_nan()));
}
