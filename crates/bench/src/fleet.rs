//! A fleet of node_exporter hosts producing remote-write requests.

use prost::Message;
use strata_proto::prometheus as pb;

use crate::workload::{SeriesSpec, Values, host_series};

/// Settings of a [`Fleet`].
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of hosts.
    pub hosts: usize,
    /// Series per host. Default 1000 (what node_exporter exposes).
    pub series_per_host: usize,
    /// Seed of every value stream.
    pub seed: u64,
    /// Scrape interval in milliseconds. Default 15 000.
    pub interval_ms: i64,
    /// Share of hosts replaced by new ones (new `instance`, new series) every 10 minutes
    /// of data, as pods and nodes come and go. Default 0.01 (1 %).
    pub churn: f64,
    /// Every value drawn uniformly at random instead of evolving like node_exporter's:
    /// chunks that do not compress (about 8 bytes per sample), to build large shards.
    /// Default false.
    pub random_values: bool,
    /// The first host's number: hosts are `host-<first_host>`, `host-<first_host + 1>`, …
    /// (a second load beside a first one, on series of its own). Default 0.
    pub first_host: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            hosts: 10,
            series_per_host: 1000,
            seed: 1,
            interval_ms: 15_000,
            churn: 0.01,
            random_values: false,
            first_host: 0,
        }
    }
}

impl FleetConfig {
    /// `hosts` hosts of `series_per_host` series scraped every 15 s, none replaced (no
    /// churn): the steady fleet tests compare answers over.
    pub fn steady(hosts: usize, series_per_host: usize, seed: u64) -> Self {
        FleetConfig {
            hosts,
            series_per_host,
            seed,
            interval_ms: 15_000,
            churn: 0.0,
            ..FleetConfig::default()
        }
    }
}

#[derive(Debug)]
struct Host {
    instance: String,
    values: Values,
    /// Scrape phase within the interval.
    offset_ms: i64,
}

/// Hosts with their series and evolving values.
#[derive(Debug)]
pub struct Fleet {
    cfg: FleetConfig,
    specs: Vec<SeriesSpec>,
    hosts: Vec<Host>,
    /// Scrapes done, the next host id, the next host to replace, fractional churn owed.
    scrapes: u64,
    next_id: usize,
    next_replace: usize,
    churn_owed: f64,
    /// Hosts replaced so far.
    replaced: usize,
}

impl Fleet {
    /// A fleet; host `i` is `instance="host-<first_host + i>:9100"`.
    pub fn new(cfg: FleetConfig) -> Self {
        let specs = host_series(cfg.series_per_host);
        let first = cfg.first_host;
        let hosts = (first..first + cfg.hosts).map(|i| Self::host(&cfg, &specs, i)).collect();
        Fleet {
            next_id: first + cfg.hosts,
            cfg,
            specs,
            hosts,
            scrapes: 0,
            next_replace: 0,
            churn_owed: 0.0,
            replaced: 0,
        }
    }

    fn host(cfg: &FleetConfig, specs: &[SeriesSpec], i: usize) -> Host {
        Host {
            instance: format!("host-{i}:9100"),
            values: Values::new(specs, cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
            offset_ms: (i as i64 * 7_919) % cfg.interval_ms,
        }
    }

    /// Series alive at once.
    pub fn series(&self) -> usize {
        self.hosts.len() * self.specs.len()
    }

    /// Series ever created (alive ones and those of replaced hosts).
    pub fn series_created(&self) -> usize {
        (self.hosts.len() + self.replaced) * self.specs.len()
    }

    /// Replaces the churned share of hosts when another 10 minutes of data begin.
    fn churn(&mut self) {
        let per_10m = (600_000 / self.cfg.interval_ms.max(1)).max(1) as u64;
        if self.scrapes == 0 || !self.scrapes.is_multiple_of(per_10m) {
            return;
        }
        self.churn_owed += self.cfg.churn * self.hosts.len() as f64;
        while self.churn_owed >= 1.0 && !self.hosts.is_empty() {
            self.churn_owed -= 1.0;
            let k = self.next_replace % self.hosts.len();
            self.hosts[k] = Self::host(&self.cfg, &self.specs, self.next_id);
            self.next_id += 1;
            self.next_replace += 1;
            self.replaced += 1;
        }
    }

    /// Scrapes every host once for the interval starting at `t0` (each host at its own
    /// phase) and returns the samples as time series, host after host.
    pub fn scrape(&mut self, t0: i64) -> Vec<pb::TimeSeries> {
        self.churn();
        self.scrapes += 1;
        let secs = self.cfg.interval_ms as f64 / 1000.0;
        let mut out = Vec::with_capacity(self.series());
        for h in &mut self.hosts {
            let t = t0 + h.offset_ms;
            let vals = if self.cfg.random_values {
                h.values.uniform(self.specs.len())
            } else {
                h.values.step(&self.specs, secs).to_vec()
            };
            for (s, v) in self.specs.iter().zip(vals) {
                let mut labels: Vec<pb::Label> =
                    s.labels.iter().map(|(n, v)| pb::Label { name: n.clone(), value: v.clone() }).collect();
                labels.push(pb::Label { name: "instance".into(), value: h.instance.clone() });
                labels.push(pb::Label { name: "job".into(), value: "node".into() });
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                out.push(pb::TimeSeries {
                    labels,
                    samples: vec![pb::Sample { value: v, timestamp: t }],
                    exemplars: vec![],
                    histograms: vec![],
                });
            }
        }
        out
    }
}

/// Splits series into snappy-compressed remote-write bodies of about `per_request` samples.
pub fn encode_requests(series: Vec<pb::TimeSeries>, per_request: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut n = 0;
    for s in series {
        n += s.samples.len();
        cur.push(s);
        if n >= per_request {
            out.push(encode(std::mem::take(&mut cur)));
            n = 0;
        }
    }
    if !cur.is_empty() {
        out.push(encode(cur));
    }
    out
}

/// One snappy-compressed remote-write body.
pub fn encode(series: Vec<pb::TimeSeries>) -> Vec<u8> {
    let raw = pb::WriteRequest { timeseries: series, metadata: vec![] }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_percent_of_hosts_is_replaced_every_ten_minutes() {
        let mut f = Fleet::new(FleetConfig { hosts: 200, series_per_host: 10, ..FleetConfig::default() });
        let instances = |f: &mut Fleet, t| {
            let mut v: Vec<String> = f
                .scrape(t)
                .iter()
                .filter_map(|s| s.labels.iter().find(|l| l.name == "instance").map(|l| l.value.clone()))
                .collect();
            v.dedup();
            v
        };
        let first = instances(&mut f, 0);
        for r in 1..40 {
            assert_eq!(instances(&mut f, r * 15_000), first);
        }
        let after = instances(&mut f, 40 * 15_000);
        assert_eq!(after.len(), 200);
        assert_eq!(after.iter().filter(|i| !first.contains(i)).count(), 2);
        assert_eq!(f.series_created(), 202 * 10);
    }
}
