//! The Prometheus text exposition format 0.0.4, rule by rule.

#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::{Owned, parse, parse_err, parse_ok, series};
use strata_textparse::{Entry, Format, MetricType, Parser};

const TEXT: Format = Format::PrometheusText;

fn one(body: &str) -> Owned {
    common::one_series(body, TEXT)
}

fn err(body: &str) -> String {
    parse_err(body.as_bytes(), TEXT).to_string()
}

#[test]
fn samples() {
    assert_eq!(one("up 1\n"), series("up", &[("__name__", "up")], 1.0, None));
    assert_eq!(
        one(r#"http_requests_total{method="post",code="200"} 1027 1395066363000"#),
        series(
            r#"http_requests_total{method="post",code="200"}"#,
            &[("__name__", "http_requests_total"), ("method", "post"), ("code", "200")],
            1027.0,
            Some(1_395_066_363_000),
        )
    );
    assert_eq!(one("a:b_c:d 2").clone(), series("a:b_c:d", &[("__name__", "a:b_c:d")], 2.0, None));
    assert_eq!(one("_x{_y=\"\"} 3"), series("_x{_y=\"\"}", &[("__name__", "_x"), ("_y", "")], 3.0, None));
}

#[test]
fn whitespace_between_tokens() {
    let want =
        |series_bytes: &str| series(series_bytes, &[("__name__", "m"), ("a", "1"), ("b", "2")], 5.0, Some(7));
    assert_eq!(one("m{a=\"1\",b=\"2\"} 5 7"), want("m{a=\"1\",b=\"2\"}"));
    assert_eq!(one("  \tm{a=\"1\",b=\"2\"}\t 5  \t7 \t"), want("m{a=\"1\",b=\"2\"}"));
    assert_eq!(one("m { a = \"1\" , b = \"2\" , } 5 7"), want("m { a = \"1\" , b = \"2\" , }"));
    // The value may follow the block directly, and labels may lack commas (as in Prometheus).
    assert_eq!(one("m{a=\"1\" b=\"2\"}5 7"), want("m{a=\"1\" b=\"2\"}"));
    // Trailing comma and empty block.
    assert_eq!(one("m{a=\"1\",b=\"2\",} 5 7"), want("m{a=\"1\",b=\"2\",}"));
    assert_eq!(one("m{} 1"), series("m{}", &[("__name__", "m")], 1.0, None));
    assert_eq!(one("m {} 1"), series("m {}", &[("__name__", "m")], 1.0, None));
}

#[test]
fn series_bytes_are_a_stable_cache_key() {
    let body = "m{a=\"1\"} 1 10\nm{a=\"1\"}  2\t20  \nm{a=\"1\"}\t3\nm 4\nm{a=\"2\"} 5\n";
    let keys: Vec<_> = parse_ok(body, TEXT)
        .into_iter()
        .map(|e| match e {
            Owned::Series { series, .. } => series,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, ["m{a=\"1\"}", "m{a=\"1\"}", "m{a=\"1\"}", "m", "m{a=\"2\"}"]);
}

#[test]
fn blank_lines_and_comments_are_skipped() {
    let body = b"\n  \n\t\n# a comment\n#no space\n#\n# HELPER not help\n# TYPEx\n  # indented comment\n# \xff invalid utf-8 is fine in a comment\nm 1\n\n";
    let (entries, err) = parse(body, TEXT);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(entries.len(), 1);
    let (entries, err) = parse(b"# \xff\xfe\nm 1\n", TEXT);
    assert!(err.is_none());
    assert_eq!(entries.len(), 1);
    assert!(parse_ok("", TEXT).is_empty());
    assert!(parse_ok("\n\n", TEXT).is_empty());
}

#[test]
fn last_line_may_lack_its_newline() {
    assert_eq!(one("m 1 2"), series("m", &[("__name__", "m")], 1.0, Some(2)));
    assert_eq!(parse_ok("a 1\nb 2", TEXT).len(), 2);
}

#[test]
fn help_and_type() {
    let body = "# HELP m Some help.\n# TYPE m counter\n#\tTYPE\tg\tgauge\n# HELP  x   two  spaces kept \n# HELP e\n# HELP f   \n";
    assert_eq!(
        parse_ok(body, TEXT),
        vec![
            Owned::Help("m".into(), "Some help.".into()),
            Owned::Type("m".into(), MetricType::Counter),
            Owned::Type("g".into(), MetricType::Gauge),
            Owned::Help("x".into(), "  two  spaces kept ".into()),
            Owned::Help("e".into(), String::new()),
            Owned::Help("f".into(), String::new()),
        ]
    );
    let kinds = [
        ("counter", MetricType::Counter),
        ("gauge", MetricType::Gauge),
        ("histogram", MetricType::Histogram),
        ("summary", MetricType::Summary),
        ("untyped", MetricType::Unknown),
    ];
    for (text, kind) in kinds {
        assert_eq!(parse_ok(&format!("# TYPE m {text}\n"), TEXT), vec![Owned::Type("m".into(), kind)]);
    }
    for bad in ["gaugehistogram", "info", "stateset", "unknown", "Counter", "counter ", " counter", ""] {
        let msg = err(&format!("# TYPE m {bad}\n"));
        assert!(msg.starts_with("line 1: invalid metric type"), "{bad:?}: {msg}");
    }
}

#[test]
fn help_escapes() {
    let body = r#"# HELP m a\\b\nc \"q\" \t"#;
    let entries = parse_ok(body, TEXT);
    assert_eq!(entries, vec![Owned::Help("m".into(), "a\\b\nc \\\"q\\\" \\t".into())]);
    let mut parser = Parser::new(b"# HELP m plain\n", TEXT);
    match parser.next_entry() {
        Some(Ok(Entry::Help { help, .. })) => assert!(matches!(help, Cow::Borrowed("plain"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_metadata() {
    assert_eq!(err("# HELP 1m x\n"), r#"line 1: expected a metric name after HELP, got "1m""#);
    assert!(err("# TYPE\tm{counter\n").contains("expected a space after the metric name"));
    assert!(err("# HELP \n").contains("expected a metric name after HELP"));
    assert!(parse_err(b"# HELP m \xff\n", TEXT).reason.contains("is not valid UTF-8"));
    let entries = parse_ok("# HELP \"my.metric\" dotted\n# TYPE \"my.metric\" gauge\n", TEXT);
    assert_eq!(
        entries,
        vec![
            Owned::Help("my.metric".into(), "dotted".into()),
            Owned::Type("my.metric".into(), MetricType::Gauge)
        ]
    );
}

#[test]
fn label_value_escapes() {
    let line = r#"m{a="x\\y",b="say \"hi\"",c="l1\nl2",d="\t\z",e="é\\"} 1"#;
    let Owned::Series { labels, .. } = one(line) else { panic!() };
    let want = [
        ("__name__", "m"),
        ("a", "x\\y"),
        ("b", "say \"hi\""),
        ("c", "l1\nl2"),
        ("d", "\\t\\z"),
        ("e", "é\\"),
    ];
    let want: Vec<_> = want.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect();
    assert_eq!(labels, want);

    // Values without escapes are borrowed from the body.
    let body = b"m{a=\"plain\",b=\"esc\\\\\"} 1\n";
    let mut parser = Parser::new(body, TEXT);
    assert!(matches!(parser.next_entry(), Some(Ok(Entry::Series { .. }))));
    let mut labels = Vec::new();
    parser.labels(&mut labels);
    assert!(matches!(labels[0], (Cow::Borrowed("__name__"), Cow::Borrowed("m"))));
    assert!(matches!(labels[1].1, Cow::Borrowed("plain")));
    assert!(matches!(&labels[2].1, Cow::Owned(v) if v == "esc\\"));
}

#[test]
fn label_values_may_hold_any_utf8_but_no_invalid_utf8() {
    let Owned::Series { labels, .. } = one("m{a=\"日本 \u{0} } { , = #\"} 1") else { panic!() };
    assert_eq!(labels[1].1, "日本 \u{0} } { , = #");
    let e = parse_err(b"m{a=\"\xff\"} 1\n", TEXT);
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("invalid UTF-8"), "{e}");
}

#[test]
fn quoted_utf8_names() {
    assert_eq!(
        one(r#"{"my.metric", "label.name"="v", plain="w"} 1"#),
        series(
            r#"{"my.metric", "label.name"="v", plain="w"}"#,
            &[("__name__", "my.metric"), ("label.name", "v"), ("plain", "w")],
            1.0,
            None
        )
    );
    assert_eq!(one(r#"{"a\"b"} 2"#), series(r#"{"a\"b"}"#, &[("__name__", "a\"b")], 2.0, None));
    assert_eq!(
        one(r#"{a="1", "name.after"} 3"#),
        series(r#"{a="1", "name.after"}"#, &[("__name__", "name.after"), ("a", "1")], 3.0, None)
    );
    assert_eq!(one(r#"m{"ü"="x"} 4"#), series(r#"m{"ü"="x"}"#, &[("__name__", "m"), ("ü", "x")], 4.0, None));
    assert!(err(r#"m{"other"} 1"#).contains("metric name already set"));
    assert!(err(r#"{"a", "b"} 1"#).contains("metric name already set"));
    assert!(err(r#"{a="b"} 1"#).contains("metric name not set"));
    assert!(err(r#"{} 1"#).contains("metric name not set"));
    assert!(err(r#"{""} 1"#).contains("empty quoted name"));
    assert!(err(r#""m" 1"#).contains("expected a metric name or '{'"));
}

#[test]
fn special_values() {
    let value = |body: &str| match one(body) {
        Owned::Series { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("m +Inf"), f64::INFINITY);
    assert_eq!(value("m Inf"), f64::INFINITY);
    assert_eq!(value("m inf"), f64::INFINITY);
    assert_eq!(value("m -Inf"), f64::NEG_INFINITY);
    assert_eq!(value("m -infinity"), f64::NEG_INFINITY);
    assert_eq!(value("m NaN").to_bits(), 0x7ff8_0000_0000_0001);
    assert_eq!(value("m nan").to_bits(), 0x7ff8_0000_0000_0001);
    assert_eq!(value("m -0").to_bits(), (-0.0f64).to_bits());
    assert_eq!(value("m 1.5e3"), 1500.0);
    assert_eq!(value("m 1E-3"), 0.001);
    assert_eq!(value("m .5"), 0.5);
    assert_eq!(value("m 5."), 5.0);
    assert_eq!(value("m 4.9e-324"), 5e-324);
    assert_eq!(value("m 1e-400"), 0.0);
    assert_eq!(value("m 18446744073709551616"), 18_446_744_073_709_551_616.0);
    assert_eq!(err("m INVALID"), r#"line 1: invalid value "INVALID""#);
    for bad in ["1e400", "-1e400"] {
        assert!(err(&format!("m {bad}")).contains("out of range"), "{bad}");
    }
    for bad in ["+NaN", "0x10", "1_000", "1p3", "1e", "--1", "1,5", "1..2"] {
        assert!(err(&format!("m {bad}")).contains("invalid value"), "{bad}");
    }
}

#[test]
fn timestamps() {
    let ts = |body: &str| match one(body) {
        Owned::Series { timestamp_ms, .. } => timestamp_ms,
        other => panic!("{other:?}"),
    };
    assert_eq!(ts("m 1 0"), Some(0));
    assert_eq!(ts("m 1 9223372036854775807"), Some(i64::MAX));
    assert_eq!(ts("m 1"), None);
    assert!(err("m 1 9223372036854775808").contains(r#"timestamp "9223372036854775808" out of range"#));
    assert!(err("m 1 -5").contains(r#"expected a timestamp or the end of the line, got "-5""#));
    assert!(err("m 1 1.5").contains(r#"expected the end of the line after the timestamp, got ".5""#));
    assert!(err("m 1 2 3").contains(r#"expected the end of the line after the timestamp, got "3""#));
    assert!(err("m 1 2x").contains(r#"got "x""#));
}

#[test]
fn syntax_errors_quote_the_token() {
    assert_eq!(err("m\n"), "line 1: expected a value after the series, got end of line");
    assert_eq!(err("m{a=\"1\"}\n"), "line 1: expected a value after the series, got end of line");
    assert_eq!(
        err("m{a=\"1\"} {b=\"2\"} 1\n"),
        r#"line 1: expected a value after the series, got "{b=\"2\"}""#
    );
    assert_eq!(err("m{a} 1\n"), r#"line 1: expected '=' after label name, got "}""#);
    assert_eq!(err("m{a=1} 1\n"), r#"line 1: expected a quoted label value, got "1}""#);
    assert_eq!(err("m{,a=\"1\"} 1\n"), r#"line 1: expected a label name or '}', got ",a=\"1\"}""#);
    assert_eq!(err("m{a=\"1\",,} 1\n"), r#"line 1: expected a label name or '}', got ",}""#);
    assert_eq!(err("m{1=\"1\"} 1\n"), r#"line 1: expected a label name or '}', got "1=\"1\"}""#);
    assert!(err("m{a=\"1} 1\n").starts_with("line 1: unterminated quoted string"));
    assert!(err("m{a=\"1\"\n").starts_with("line 1: expected a label name or '}', got end of line"));
    assert_eq!(err("1m 1\n"), r#"line 1: expected a metric name or '{', got "1m""#);
    assert_eq!(err("m 1 2 {\n"), r#"line 1: expected the end of the line after the timestamp, got "{""#);
    let long = "x".repeat(500);
    let msg = err(&format!("m {long}\n"));
    assert!(msg.len() < 150 && msg.ends_with("..."), "{msg}");
}

#[test]
fn raw_newline_in_a_label_value_is_an_error() {
    assert!(err("m{a=\"1\n2\"} 1\n").starts_with("line 1: unterminated quoted string"));
}

#[test]
fn carriage_returns_are_rejected_with_a_hint() {
    let e = parse_err(b"a 1\r\nb 2\r\n", TEXT);
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("invalid value \"1\\r\"") && e.reason.contains("carriage return"), "{e}");
    assert!(err("a 1 2\r\n").contains("carriage return"));
}

#[test]
fn error_line_numbers_and_stop() {
    let body = b"# HELP a x\n\na 1\n  \nb 2\nc{ 3\nd 4\n";
    let (entries, e) = parse(body, TEXT);
    assert_eq!(entries.len(), 3);
    let e = e.unwrap();
    assert_eq!(e.line, 6);
    assert!(e.to_string().starts_with("line 6: "), "{e}");

    let mut parser = Parser::new(b"bad\nm 1\n", TEXT);
    assert!(parser.next_entry().unwrap().is_err());
    assert!(parser.next_entry().is_none());
    assert!(parser.next_entry().is_none());
}

#[test]
fn nul_bytes() {
    assert!(parse_err(b"\0m 1\n", TEXT).reason.contains("expected a metric name"));
    let (entries, e) = parse(b"# HELP m a\0b\nm{a=\"\0\"} 1\n", TEXT);
    assert!(e.is_none());
    assert_eq!(entries[0], Owned::Help("m".into(), "a\0b".into()));
}

#[test]
fn long_lines() {
    let line = format!("m{{a=\"{}\"}} 1\n", "v".repeat(100));
    let len = line.len() - 1;
    assert_eq!(Parser::new(line.as_bytes(), TEXT).with_max_line_bytes(len).count(), 1);
    let body = format!("ok 1\n{line}");
    let e = parse_err_with_limit(body.as_bytes(), len - 1);
    assert_eq!(e.line, 2);
    assert_eq!(e.reason, format!("line is {len} bytes long, over the limit of {} bytes", len - 1));
    assert_eq!(Parser::DEFAULT_MAX_LINE_BYTES, 1 << 20);
}

fn parse_err_with_limit(body: &[u8], max: usize) -> strata_textparse::ParseError {
    let mut parser = Parser::new(body, TEXT).with_max_line_bytes(max);
    loop {
        match parser.next_entry() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return e,
            None => panic!("no error"),
        }
    }
}

#[test]
fn huge_line_fails_fast() {
    // 64 MiB in a label value, and in a line without any newline.
    let mut body = b"m{a=\"".to_vec();
    body.resize(64 << 20, b'v');
    body.extend_from_slice(b"\"} 1\nm 2\n");
    let start = Instant::now();
    let e = parse_err(&body, TEXT);
    assert_eq!(e.line, 1);
    assert_eq!(e.reason, format!("line is {} bytes long, over the limit of 1048576 bytes", (64 << 20) + 4));
    let e = parse_err(&vec![b'x'; 64 << 20], TEXT);
    assert_eq!(e.reason, format!("line is {} bytes long, over the limit of 1048576 bytes", 64 << 20));
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[test]
fn node_exporter_body() {
    let entries = parse_ok(common::NODE_EXPORTER_TEXT, TEXT);
    let samples: Vec<_> = entries.iter().filter(|e| matches!(e, Owned::Series { .. })).collect();
    assert_eq!(entries.len(), 41);
    assert_eq!(samples.len(), 21);
    assert_eq!(
        entries[0],
        Owned::Help(
            "go_gc_duration_seconds".into(),
            "A summary of the pause duration of garbage collection cycles.".into()
        )
    );
    assert_eq!(entries[1], Owned::Type("go_gc_duration_seconds".into(), MetricType::Summary));
    assert_eq!(
        *samples[13],
        series(
            r##"node_uname_info{domainname="(none)",machine="x86_64",nodename="host-1",release="6.1.0-18-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"}"##,
            &[
                ("__name__", "node_uname_info"),
                ("domainname", "(none)"),
                ("machine", "x86_64"),
                ("nodename", "host-1"),
                ("release", "6.1.0-18-amd64"),
                ("sysname", "Linux"),
                ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"),
            ],
            1.0,
            None
        )
    );
    assert!(
        matches!(samples[15], Owned::Series { value, labels, .. } if *value == 5.0 && labels[2].1 == "+Inf")
    );
}

#[test]
fn le_and_quantile_values_are_normalised_as_prometheus_3() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"0.005\"} 0\n\
                # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.99\",le=\"1\"} 2\n# TYPE g gauge\ng{le=\"1\"} 1\n";
    let mut p = Parser::new(body.as_bytes(), TEXT);
    let mut got = Vec::new();
    while let Some(e) = p.next_entry() {
        if let Entry::Series { .. } = e.unwrap() {
            let mut l = Vec::new();
            p.labels(&mut l);
            got.push(l.iter().skip(1).map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(","));
        }
    }
    assert_eq!(got, ["le=1.0", "le=+Inf", "le=0.005", "quantile=0.0", "quantile=0.99,le=1", "le=1"]);
}
