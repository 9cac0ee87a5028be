//! # strata-bench — load generation and peer comparison
//!
//! * [`workload`]: node_exporter-shaped series and value streams (seeded, deterministic);
//! * [`fleet`]: hosts that turn those into remote-write requests;
//! * [`client`]: a remote-write client recording acknowledgements and latency;
//! * [`dashboards`]: the Grafana dashboard query workload with variables substituted;
//! * [`peers`]: starting Strata, Prometheus and VictoriaMetrics on fresh data directories
//!   and measuring them.
//!
//! The `strata-bench` binary drives them; integration tests reuse the library.

pub mod client;
pub mod dashboards;
pub mod exposition;
pub mod fleet;
pub mod peers;
pub mod scrape_bench;
pub mod workload;

/// Milliseconds since the Unix epoch now (0 before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
