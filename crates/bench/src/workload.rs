//! node_exporter-shaped series and values, deterministic for a seed.
//!
//! A host exposes CPU mode counters, memory and filesystem gauges, disk and network
//! counters, load gauges, constant info series, collector durations and a request-duration
//! histogram with `le` buckets, padded with per-CPU interrupt counters up to the requested
//! series count. Counters advance by decimal increments and sometimes reset; gauges take a
//! bounded random walk with a few significant digits; info series stay constant.
//!
//! Calibrated on a real node_exporter 1.5 (Debian) scraped twice 15 s apart: 550 series,
//! 413 (75 %) unchanged between the scrapes; CPU idle counters grow steadily, most other
//! counters move by small amounts or not at all, collector durations are noisy floats.

/// SplitMix64: a small, seedable generator (no dependency, identical everywhere).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How a series' value evolves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Monotonic counter: mean increase per second, decimals kept.
    Counter {
        /// Mean increase per second (while moving).
        rate: f64,
        /// Decimal places of the value.
        decimals: i32,
        /// Relative spread of an increase (0.1 = ±10 %).
        jitter: f64,
        /// Probability that the counter moves in a given scrape.
        p_move: f64,
    },
    /// Random-walk gauge within `[lo, hi]`.
    Gauge {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
        /// Decimal places of the value.
        decimals: i32,
        /// Probability that the gauge moves in a given scrape.
        p_move: f64,
    },
    /// A fresh measurement every scrape (durations): `scale · u` with 9 significant digits.
    Noise(f64),
    /// Never changes.
    Const(f64),
}

/// One series of a host.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    /// Labels including `__name__`, unsorted.
    pub labels: Vec<(String, String)>,
    /// Value shape.
    pub shape: Shape,
}

fn counter(rate: f64, decimals: i32, jitter: f64, p_move: f64) -> Shape {
    Shape::Counter { rate, decimals, jitter, p_move }
}

fn gauge(lo: f64, hi: f64, decimals: i32, p_move: f64) -> Shape {
    Shape::Gauge { lo, hi, decimals, p_move }
}

fn spec(name: &str, extra: &[(&str, String)], shape: Shape) -> SeriesSpec {
    let mut labels = vec![("__name__".to_owned(), name.to_owned())];
    labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    SeriesSpec { labels, shape }
}

/// The series one node_exporter host exposes (without host labels), `n` of them.
pub fn host_series(n: usize) -> Vec<SeriesSpec> {
    let mut v = Vec::with_capacity(n);
    // (mode, share of a CPU, relative jitter, probability of moving in a scrape)
    let modes = [
        ("idle", 0.97, 0.01, 1.0),
        ("user", 0.02, 0.5, 0.9),
        ("system", 0.01, 0.5, 0.8),
        ("iowait", 0.002, 0.5, 0.3),
        ("irq", 0.0, 0.0, 0.0),
        ("softirq", 0.001, 0.5, 0.3),
        ("steal", 0.01, 0.3, 0.8),
        ("nice", 0.0, 0.0, 0.0),
    ];
    for cpu in 0..8 {
        for (mode, share, jitter, p) in modes {
            let l = [("cpu", cpu.to_string()), ("mode", mode.into())];
            v.push(spec("node_cpu_seconds_total", &l, counter(share, 2, jitter, p)));
        }
    }
    for (name, lo, hi) in [
        ("node_memory_MemTotal_bytes", 16e9, 16e9),
        ("node_memory_MemFree_bytes", 1e9, 4e9),
        ("node_memory_MemAvailable_bytes", 4e9, 9e9),
        ("node_memory_Buffers_bytes", 1e8, 3e8),
        ("node_memory_Cached_bytes", 3e9, 6e9),
        ("node_memory_SwapTotal_bytes", 0.0, 0.0),
        ("node_memory_Active_bytes", 4e9, 8e9),
        ("node_memory_Inactive_bytes", 2e9, 4e9),
        ("node_memory_Dirty_bytes", 0.0, 2e7),
        ("node_memory_Slab_bytes", 3e8, 5e8),
    ] {
        let shape = if lo == hi { Shape::Const(lo) } else { gauge(lo, hi, 0, 0.5) };
        v.push(spec(name, &[], shape));
    }
    for (mnt, dev) in
        [("/", "sda1"), ("/boot", "sda2"), ("/var", "sdb1"), ("/home", "sdc1"), ("/run", "tmpfs")]
    {
        let l = [("device", format!("/dev/{dev}")), ("fstype", "ext4".into()), ("mountpoint", mnt.into())];
        v.push(spec("node_filesystem_size_bytes", &l, Shape::Const(1e11)));
        v.push(spec("node_filesystem_avail_bytes", &l, gauge(2e10, 2.001e10, 0, 0.2)));
        v.push(spec("node_filesystem_free_bytes", &l, gauge(2.5e10, 2.501e10, 0, 0.2)));
        v.push(spec("node_filesystem_files", &l, Shape::Const(6_553_600.0)));
        v.push(spec("node_filesystem_files_free", &l, gauge(6e6, 6.001e6, 0, 0.2)));
        v.push(spec("node_filesystem_readonly", &l, Shape::Const(0.0)));
        v.push(spec("node_filesystem_device_error", &l, Shape::Const(0.0)));
    }
    for dev in ["eth0", "eth1", "lo", "docker0"] {
        let l = [("device", dev.to_owned())];
        for (name, rate, p) in [
            ("node_network_receive_bytes_total", 2e4, 0.9),
            ("node_network_transmit_bytes_total", 1e4, 0.9),
            ("node_network_receive_packets_total", 30.0, 0.9),
            ("node_network_transmit_packets_total", 25.0, 0.9),
            ("node_network_receive_errs_total", 0.0, 0.0),
            ("node_network_receive_drop_total", 0.01, 0.05),
        ] {
            v.push(spec(name, &l, counter(rate, 0, 0.5, p)));
        }
        v.push(spec("node_network_up", &l, Shape::Const(1.0)));
    }
    for dev in ["sda", "sdb", "sdc", "nvme0n1"] {
        let l = [("device", dev.to_owned())];
        for (name, rate, d) in [
            ("node_disk_reads_completed_total", 2.0, 0),
            ("node_disk_writes_completed_total", 4.0, 0),
            ("node_disk_read_bytes_total", 8192.0, 0),
            ("node_disk_written_bytes_total", 16384.0, 0),
            ("node_disk_io_time_seconds_total", 0.005, 3),
            ("node_disk_read_time_seconds_total", 0.001, 3),
            ("node_disk_write_time_seconds_total", 0.003, 3),
        ] {
            v.push(spec(name, &l, counter(rate, d, 0.5, 0.6)));
        }
        v.push(spec("node_disk_io_now", &l, gauge(0.0, 8.0, 0, 0.2)));
    }
    for (name, lo, hi) in [("node_load1", 0.0, 4.0), ("node_load5", 0.2, 3.0), ("node_load15", 0.3, 2.5)] {
        v.push(spec(name, &[], gauge(lo, hi, 2, 1.0)));
    }
    let uname =
        [("sysname", "Linux".into()), ("release", "6.1.0-13-amd64".into()), ("machine", "x86_64".into())];
    v.push(spec("node_uname_info", &uname, Shape::Const(1.0)));
    v.push(spec("node_boot_time_seconds", &[], Shape::Const(1_699_000_000.0)));
    v.push(spec("node_time_seconds", &[], counter(1.0, 3, 0.001, 1.0)));
    for c in ["cpu", "diskstats", "filesystem", "meminfo", "netdev", "stat", "loadavg", "time"] {
        let l = [("collector", c.to_owned())];
        v.push(spec("node_scrape_collector_duration_seconds", &l, Shape::Noise(0.002)));
        v.push(spec("node_scrape_collector_success", &l, Shape::Const(1.0)));
    }
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
    for handler in ["/metrics", "/"] {
        for (i, le) in les.iter().enumerate() {
            let rate = 0.1 * (i as f64 + 1.0) / les.len() as f64;
            let l = [("handler", handler.to_owned()), ("le", (*le).to_owned())];
            v.push(spec("promhttp_request_duration_seconds_bucket", &l, counter(rate, 0, 0.0, 0.5)));
        }
        let l = [("handler", handler.to_owned())];
        v.push(spec("promhttp_request_duration_seconds_sum", &l, counter(0.004, 6, 0.5, 0.5)));
        v.push(spec("promhttp_request_duration_seconds_count", &l, counter(0.1, 0, 0.0, 0.5)));
    }
    let mut i = 0;
    while v.len() < n {
        let l = [("cpu", (i % 64).to_string()), ("type", format!("IRQ{}", i / 64))];
        // most interrupt lines of most CPUs are idle
        let shape = if i % 4 == 0 {
            counter(1.0 + (i % 7) as f64, 0, 0.3, 0.7)
        } else {
            Shape::Const((i * 13) as f64)
        };
        v.push(spec("node_interrupts_total", &l, shape));
        i += 1;
    }
    v.truncate(n);
    v
}

/// A measurement such as a duration: `scale · u`, nine significant digits.
fn noise(rng: &mut Rng, scale: f64) -> f64 {
    let v = scale * (0.2 + rng.unit());
    let digits = 8 - v.abs().log10().floor() as i32;
    round(v, digits)
}

fn round(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

/// Evolving values of a set of series.
#[derive(Debug, Clone)]
pub struct Values {
    rng: Rng,
    cur: Vec<f64>,
}

impl Values {
    /// Initial values for `specs`.
    pub fn new(specs: &[SeriesSpec], seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let cur = specs
            .iter()
            .map(|s| match s.shape {
                Shape::Counter { rate, decimals, .. } => round(rate * 86_400.0 * rng.unit(), decimals),
                Shape::Gauge { lo, hi, decimals, .. } => round(lo + (hi - lo) * rng.unit(), decimals),
                Shape::Noise(scale) => noise(&mut rng, scale),
                Shape::Const(c) => c,
            })
            .collect();
        Values { rng, cur }
    }

    /// `n` values drawn uniformly from [0, 1e6): 52 random mantissa bits each.
    pub fn uniform(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rng.unit() * 1e6).collect()
    }

    /// Advances every series by `secs` seconds and returns the new values.
    pub fn step(&mut self, specs: &[SeriesSpec], secs: f64) -> &[f64] {
        for (v, s) in self.cur.iter_mut().zip(specs) {
            match s.shape {
                Shape::Counter { rate, decimals, jitter, p_move } => {
                    if self.rng.unit() < 1e-4 {
                        *v = 0.0; // counter reset (restart)
                    } else if self.rng.unit() < p_move {
                        let inc = rate * secs * (1.0 + jitter * (2.0 * self.rng.unit() - 1.0));
                        *v = round(*v + inc, decimals);
                    }
                }
                Shape::Gauge { lo, hi, decimals, p_move } => {
                    if self.rng.unit() < p_move {
                        let stepped = *v + (hi - lo) * 0.02 * (self.rng.unit() - 0.5);
                        *v = round(stepped.clamp(lo, hi), decimals);
                    }
                }
                Shape::Noise(scale) => *v = noise(&mut self.rng, scale),
                Shape::Const(_) => {}
            }
        }
        &self.cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_the_requested_shape() {
        let s = host_series(1000);
        assert_eq!(s.len(), 1000);
        let mut sets: Vec<_> = s.iter().map(|x| x.labels.clone()).collect();
        sets.sort();
        sets.dedup();
        assert_eq!(sets.len(), 1000, "label sets are unique");
        let mut a = Values::new(&s, 7);
        let mut b = Values::new(&s, 7);
        assert_eq!(a.step(&s, 15.0), b.step(&s, 15.0));
    }
}
