//! # strata-textparse — the exposition formats a scrape returns
//!
//! Parsers for the two text formats a Prometheus scrape target answers with, accepting what
//! Prometheus's `model/textparse` package accepts:
//!
//! * the Prometheus text exposition format 0.0.4 ([`Format::PrometheusText`]), including
//!   Prometheus 3's quoted UTF-8 metric and label names (`{"my.metric", "label.name"="v"}`);
//! * OpenMetrics 1.0 text ([`Format::OpenMetrics`]).
//!
//! ```
//! use strata_textparse::{Entry, Format, Parser};
//!
//! let body = b"# TYPE up gauge\nup{job=\"node\"} 1\n";
//! let mut parser = Parser::new(body, Format::PrometheusText);
//! let mut labels = Vec::new();
//! while let Some(entry) = parser.next_entry() {
//!     if let Entry::Series { series, value, .. } = entry? {
//!         labels.clear();
//!         parser.labels(&mut labels);
//!         assert_eq!(series, b"up{job=\"node\"}");
//!         assert_eq!(value, 1.0);
//!         assert_eq!(labels[1].1, "node");
//!     }
//! }
//! # Ok::<(), strata_textparse::ParseError>(())
//! ```
//!
//! ## Design
//!
//! The scraper parses every target's body every scrape interval, so the hot path neither
//! allocates nor copies:
//!
//! * The body is cut into lines first (`lines.rs`), with a word-at-a-time search for `\n` that
//!   looks no further than [`Parser::DEFAULT_MAX_LINE_BYTES`] (or the configured limit): an
//!   over-long line is an error found in time linear in its length, without buffering it.
//! * Each line is parsed by a hand-written scanner over its bytes (`lex.rs`). Both formats share
//!   the series part, i.e. metric name and label block (`series.rs`), the metadata lines
//!   (`meta.rs`), numbers as Go reads them (`number.rs`) and unescaping (`escape.rs`); the two
//!   format modules (`text.rs`, `openmetrics.rs`) hold only what differs: token separators,
//!   comments, `# EOF`, exemplars and timestamp units.
//! * Entries borrow from the body: a sample's `series` is a slice of it, usable as a cache key.
//!   Label names and values are not materialised by [`Parser::next_entry`]: it records their
//!   spans (in a buffer reused from line to line), and [`Parser::labels`] slices them, copying
//!   only the values that hold escapes.
//! * After the first error the parser stops, as Prometheus's does.
//!
//! ## Where this differs from Prometheus
//!
//! * A raw (unescaped) newline inside a quoted label value, which Prometheus's text-format lexer
//!   tolerates, is an error here: lines are cut before they are lexed (exporters escape it as
//!   `\n`).
//! * A NUL byte where a line should start is an error, not a silent end of the body.
//! * In `# HELP`/`# TYPE` of the text format, the metric name must be followed by a space or a
//!   tab (Prometheus would also accept e.g. `# TYPE foo{counter` as `counter`).
//! * As Prometheus 3 (not 2.x), [`Parser::labels`] rewrites the `le` values of a family typed
//!   `histogram` and the `quantile` values of one typed `summary` to Prometheus's float
//!   formatting ([`format_openmetrics_float`]: `1` → `1.0`), the type being the last `# TYPE`.
//! * OpenMetrics timestamps beyond the `i64` range of milliseconds saturate instead of wrapping.

mod entry;
mod escape;
mod format;
mod lex;
mod lines;
mod meta;
mod number;
mod openmetrics;
mod parser;
mod series;
mod text;

pub use entry::{Entry, MetricType, ParseError};
pub use format::Format;
pub use number::format_openmetrics_float;
pub use parser::Parser;
