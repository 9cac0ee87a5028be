//! Property: whatever the bytes, parsing neither panics nor loops, stops for good at its end or
//! first error, and every sample it returns has labels.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use strata_textparse::{Entry, Format, Parser};

/// Parses `body` in both formats (and with a small line limit), checking the invariants.
fn exercise(body: &[u8]) -> Result<(), TestCaseError> {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        for max in [Parser::DEFAULT_MAX_LINE_BYTES, 16] {
            let mut parser = Parser::new(body, format).with_max_line_bytes(max);
            let mut entries = 0usize;
            let mut labels = Vec::new();
            while let Some(entry) = parser.next_entry() {
                entries += 1;
                // Every entry consumes at least one line.
                prop_assert!(entries <= body.len() + 1, "too many entries");
                let Ok(entry) = entry else { break };
                if let Entry::Series { series, .. } = entry {
                    let start = series.as_ptr() as usize - body.as_ptr() as usize;
                    prop_assert!(start + series.len() <= body.len());
                    labels.clear();
                    parser.labels(&mut labels);
                    prop_assert_eq!(&labels[0].0, "__name__");
                    prop_assert!(!labels[0].1.is_empty());
                    prop_assert!(std::str::from_utf8(series).is_ok());
                }
            }
            prop_assert!(parser.next_entry().is_none());
            prop_assert!(parser.next_entry().is_none());
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
}

fn apply(body: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Insert(at, bytes) => {
            let at = at % (body.len() + 1);
            body.splice(at..at, bytes.iter().copied());
        }
        Edit::Delete(at, len) if !body.is_empty() => {
            let at = at % body.len();
            let end = (at + len).min(body.len());
            body.drain(at..end);
        }
        Edit::Replace(at, b) if !body.is_empty() => {
            let at = at % body.len();
            body[at] = *b;
        }
        _ => {}
    }
}

/// Bytes that matter to the grammar, so that mutations reach deep.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"{}=,\"\\# \t\n\r\0.:_eE+-0123456789aInNf\xff\xc3".to_vec()),
        any::<u8>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::collection::vec(interesting_byte(), 1..8))
            .prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), 1usize..20).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), interesting_byte()).prop_map(|(a, b)| Edit::Replace(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&body)?;
    }

    #[test]
    fn grammar_bytes(body in prop::collection::vec(interesting_byte(), 0..256)) {
        exercise(&body)?;
    }

    #[test]
    fn mutated_bodies(edits in prop::collection::vec(edit(), 1..6), open_metrics in any::<bool>()) {
        let mut body = if open_metrics {
            common::NODE_EXPORTER_OPENMETRICS
        } else {
            common::NODE_EXPORTER_TEXT
        }
        .as_bytes()
        .to_vec();
        for e in &edits {
            apply(&mut body, e);
        }
        exercise(&body)?;
    }
}
