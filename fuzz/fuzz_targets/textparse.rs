//! The scrape parsers of strata-textparse: arbitrary bytes to both (Prometheus text and
//! OpenMetrics, with the default and a small line limit), asking for the labels of every
//! series and checking that a parser stays stopped once done.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_textparse::{Entry, Format, Parser};

fuzz_target!(|body: &[u8]| {
    let mut labels = Vec::new();
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        for max in [Parser::DEFAULT_MAX_LINE_BYTES, 32] {
            let mut parser = Parser::new(body, format).with_max_line_bytes(max);
            let mut entries = 0;
            while let Some(entry) = parser.next_entry() {
                entries += 1;
                assert!(entries <= body.len() + 1, "more entries than lines");
                match entry {
                    Ok(Entry::Series { series, .. }) => {
                        assert!(std::str::from_utf8(series).is_ok());
                        labels.clear();
                        parser.labels(&mut labels);
                        assert_eq!(labels[0].0, "__name__");
                        assert!(!labels[0].1.is_empty());
                    }
                    Ok(_) => {}
                    Err(err) => assert!(!err.to_string().is_empty()),
                }
            }
            assert!(parser.next_entry().is_none());
        }
    }
});
