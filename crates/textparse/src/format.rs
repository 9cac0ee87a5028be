//! The two formats, and how a scrape negotiates them over HTTP.

/// Which text format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4 (`text/plain`).
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The Accept header Prometheus sends for scrapes: OpenMetrics preferred, then text 0.0.4.
    pub const ACCEPT: &'static str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    /// The format a response's Content-Type header names, as Prometheus picks its parser, by the
    /// media type alone (case-insensitive; parameters such as `version` or `charset` are not
    /// looked at, as in Prometheus): `application/openmetrics-text` → OpenMetrics, `text/plain`
    /// → PrometheusText, anything else (empty, `text/html`, `application/json`, protobuf
    /// `application/vnd.google.protobuf`, …) → `None`.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(Format::OpenMetrics)
        } else if media_type.eq_ignore_ascii_case("text/plain") {
            Some(Format::PrometheusText)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn content_types() {
        let cases = [
            ("application/openmetrics-text; version=1.0.0; charset=utf-8", Some(Format::OpenMetrics)),
            ("application/openmetrics-text;version=0.0.1", Some(Format::OpenMetrics)),
            ("Application/OpenMetrics-Text", Some(Format::OpenMetrics)),
            ("text/plain; version=0.0.4; charset=utf-8", Some(Format::PrometheusText)),
            ("text/plain", Some(Format::PrometheusText)),
            ("TEXT/PLAIN;charset=ISO-8859-1", Some(Format::PrometheusText)),
            (" text/plain ; version=0.0.4", Some(Format::PrometheusText)),
            ("", None),
            ("text/html; charset=utf-8", None),
            ("application/json", None),
            (
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
                None,
            ),
            ("text/plainx", None),
        ];
        for (content_type, want) in cases {
            assert_eq!(Format::from_content_type(content_type), want, "{content_type:?}");
        }
    }

    #[test]
    fn accept_prefers_openmetrics() {
        let first = Format::ACCEPT.split(',').next().unwrap_or_default();
        assert_eq!(Format::from_content_type(first), Some(Format::OpenMetrics));
        assert!(Format::ACCEPT.contains("text/plain;version=0.0.4;q=0.5"));
    }
}
