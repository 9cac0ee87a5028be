//! Helpers shared by the integration tests: a body parsed into owned values.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use strata_textparse::{Entry, Format, MetricType, ParseError, Parser};

/// An entry with everything owned, and a sample's labels as `labels()` gave them.
#[derive(Clone, Debug, PartialEq)]
pub enum Owned {
    Series { series: String, labels: Vec<(String, String)>, value: f64, timestamp_ms: Option<i64> },
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
}

/// A sample, for tests that build the expected entries.
pub fn series(series: &str, labels: &[(&str, &str)], value: f64, timestamp_ms: Option<i64>) -> Owned {
    Owned::Series {
        series: series.to_owned(),
        labels: labels.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect(),
        value,
        timestamp_ms,
    }
}

/// Every entry of `body` up to the end or the first error, and that error.
pub fn parse(body: &[u8], format: Format) -> (Vec<Owned>, Option<ParseError>) {
    let mut parser = Parser::new(body, format);
    let mut out = Vec::new();
    let mut labels = Vec::new();
    while let Some(entry) = parser.next_entry() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                assert!(parser.next_entry().is_none(), "entries after an error");
                return (out, Some(err));
            }
        };
        out.push(match entry {
            Entry::Series { series, value, timestamp_ms } => {
                labels.clear();
                parser.labels(&mut labels);
                Owned::Series {
                    series: String::from_utf8(series.to_vec()).unwrap(),
                    labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                    value,
                    timestamp_ms,
                }
            }
            Entry::Help { family, help } => Owned::Help(family.to_owned(), help.into_owned()),
            Entry::Type { family, kind } => Owned::Type(family.to_owned(), kind),
            Entry::Unit { family, unit } => Owned::Unit(family.to_owned(), unit.to_owned()),
        });
    }
    (out, None)
}

/// Every entry of a body that must parse.
pub fn parse_ok(body: &str, format: Format) -> Vec<Owned> {
    let (entries, err) = parse(body.as_bytes(), format);
    if let Some(err) = err {
        panic!("{body:?}: {err}");
    }
    entries
}

/// The error of a body that must not parse.
pub fn parse_err(body: &[u8], format: Format) -> ParseError {
    match parse(body, format) {
        (_, Some(err)) => err,
        (entries, None) => panic!("{:?} parsed: {entries:?}", String::from_utf8_lossy(body)),
    }
}

/// The only sample of a one-line body that must parse.
pub fn one_series(body: &str, format: Format) -> Owned {
    let entries = parse_ok(body, format);
    assert_eq!(entries.len(), 1, "{body:?}: {entries:?}");
    entries.into_iter().next().unwrap()
}

/// A node_exporter-like body in the text format.
pub const NODE_EXPORTER_TEXT: &str = r##"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.4e-05
go_gc_duration_seconds{quantile="0.25"} 3.1529e-05
go_gc_duration_seconds{quantile="1"} 0.000436813
go_gc_duration_seconds_sum 0.012408764
go_gc_duration_seconds_count 127
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1.0593454e+06
node_cpu_seconds_total{cpu="0",mode="iowait"} 1234.56
node_cpu_seconds_total{cpu="1",mode="idle"} 1.05935e+06
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 4.1168359424e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/1000"} 8.33765376e+08
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 9.87654321e+09
# HELP node_scrape_collector_duration_seconds node_exporter: Duration of a collector scrape.
# TYPE node_scrape_collector_duration_seconds gauge
node_scrape_collector_duration_seconds{collector="cpu"} 0.000213454
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="x86_64",nodename="host-1",release="6.1.0-18-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"} 1
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 4
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 5
prometheus_http_request_duration_seconds_sum{handler="/metrics"} 0.0123
prometheus_http_request_duration_seconds_count{handler="/metrics"} 5
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.71234567891e+09
# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered by the promhttp metric handler.
# TYPE promhttp_metric_handler_errors_total counter
promhttp_metric_handler_errors_total{cause="encoding"} 0
promhttp_metric_handler_errors_total{cause="gathering"} 0
"##;

/// The same body in OpenMetrics, with what only OpenMetrics has.
pub const NODE_EXPORTER_OPENMETRICS: &str = r##"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 2.4e-05
go_gc_duration_seconds{quantile="0.25"} 3.1529e-05
go_gc_duration_seconds{quantile="1"} 0.000436813
go_gc_duration_seconds_sum 0.012408764
go_gc_duration_seconds_count 127
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP node_cpu_seconds Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1.0593454e+06
node_cpu_seconds_created{cpu="0",mode="idle"} 1.7e+09
node_cpu_seconds_total{cpu="0",mode="iowait"} 1234.56 1712345678.123
node_cpu_seconds_total{cpu="1",mode="idle"} 1.05935e+06 # {trace_id="KOO5S4vxi0o"} 0.67 1712345678.5
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info info
node_uname_info{machine="x86_64",nodename="host-1",version="#1 SMP PREEMPT_DYNAMIC"} 1
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 4 # {trace_id="abc"} 0.05
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 5
prometheus_http_request_duration_seconds_sum{handler="/metrics"} 0.0123
prometheus_http_request_duration_seconds_count{handler="/metrics"} 5
# TYPE disk_state stateset
disk_state{disk="sda",disk_state="ok"} 1
disk_state{disk="sda",disk_state="failed"} 0
# TYPE queue_depth gaugehistogram
queue_depth_bucket{le="+Inf"} 3
queue_depth_gcount 3
queue_depth_gsum 7
# TYPE mystery unknown
mystery NaN
# EOF
"##;
