//! Turning one scrape's body into samples, as Prometheus's scrape loop appends them:
//! target labels attached (with `honor_labels` conflicts resolved), metric relabeling,
//! limits, timestamps, and staleness markers for the series that vanished.
//!
//! Everything here is pure: no I/O, no clock. The series of a body are cached by their raw
//! text, so a series seen in the previous scrape costs a hash lookup, not a label parse,
//! a relabeling and an encoding.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use strata_discovery::LabelSet;
use strata_textparse::{Entry, Format, Parser};
use strata_tsdb::{Labels, STALE_NAN_BITS, SeriesBatch};

use crate::relabel::{self, RelabelConfig};

/// What samples of one target get, beyond what the body says.
#[derive(Debug, Clone)]
pub(crate) struct AppendConfig {
    /// The target's labels (without `__` labels).
    pub(crate) target_labels: LabelSet,
    /// Labels added to every series that lacks them (the global `external_labels`).
    pub(crate) external_labels: LabelSet,
    pub(crate) honor_labels: bool,
    pub(crate) honor_timestamps: bool,
    pub(crate) track_timestamps_staleness: bool,
    pub(crate) metric_relabel: Vec<RelabelConfig>,
    pub(crate) sample_limit: u64,
    pub(crate) label_limit: u64,
    pub(crate) label_name_length_limit: u64,
    pub(crate) label_value_length_limit: u64,
}

/// Metadata of a metric family as the target exposes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyMetadata {
    /// `counter`, `gauge`, ..., `unknown`.
    pub kind: &'static str,
    /// The HELP text.
    pub help: String,
    /// The UNIT (OpenMetrics).
    pub unit: String,
}

/// A series known from an earlier scrape of the target.
#[derive(Debug)]
struct Cached {
    /// Hash and canonical encoding of its final labels; None when metric relabeling
    /// drops it.
    series: Option<(u64, Arc<[u8]>)>,
    /// The last scrape (by number) that returned it.
    seen: u64,
}

/// The state of one target kept from scrape to scrape.
#[derive(Debug, Default)]
pub(crate) struct TargetState {
    cache: FxHashMap<Box<[u8]>, Cached>,
    /// Staleness-tracked series of the last successful scrape (hash → encoding).
    prev: FxHashMap<u64, Arc<[u8]>>,
    /// The report series (`up`, ...) ever written, by name.
    report: Vec<Arc<[u8]>>,
    scrapes: u64,
    /// Metadata by family name, from the last successful scrape.
    pub(crate) metadata: BTreeMap<String, FamilyMetadata>,
}

/// What one append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Samples in the body.
    pub(crate) scraped: u64,
    /// Samples kept after metric relabeling.
    pub(crate) post_relabel: u64,
    /// Series not in the target's cache before.
    pub(crate) added: u64,
}

/// The synthetic series of every scrape, in the order they are written.
pub(crate) const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

impl AppendConfig {
    /// The final labels of a scraped series, or None when metric relabeling drops it.
    fn sample_labels(&self, scraped: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<Option<LabelSet>, String> {
        let mut lb = LabelSet::new();
        for (n, v) in scraped {
            if lb.insert(n.to_string(), v.to_string()).is_some() {
                return Err(format!("label name {n:?} is not unique: invalid sample"));
            }
        }
        if self.honor_labels {
            for (n, v) in &self.target_labels {
                lb.entry(n.clone()).or_insert_with(|| v.clone());
            }
        } else {
            let mut conflicts: Vec<(String, String)> = Vec::new();
            for (n, v) in &self.target_labels {
                if let Some(old) = lb.insert(n.clone(), v.clone()).filter(|o| !o.is_empty()) {
                    conflicts.push((n.clone(), old));
                }
            }
            conflicts.sort_by_key(|(n, _)| n.len());
            for (n, v) in conflicts {
                let mut name = n;
                loop {
                    name = format!("exported_{name}");
                    if lb.get(&name).is_none_or(|x| x.is_empty()) {
                        lb.insert(name, v);
                        break;
                    }
                }
            }
        }
        lb.retain(|_, v| !v.is_empty());
        if !relabel::process(&mut lb, &self.metric_relabel) {
            return Ok(None);
        }
        lb.retain(|_, v| !v.is_empty());
        if !lb.contains_key("__name__") {
            return Err("missing metric name (__name__ label)".into());
        }
        self.check_limits(&lb)?;
        self.add_external_labels(&mut lb);
        Ok(Some(lb))
    }

    fn check_limits(&self, lb: &LabelSet) -> Result<(), String> {
        let metric: String = lb.get("__name__").map(|s| s.chars().take(50).collect()).unwrap_or_default();
        if self.label_limit > 0 && lb.len() as u64 > self.label_limit {
            return Err(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                lb.len(),
                self.label_limit
            ));
        }
        for (n, v) in lb {
            if self.label_name_length_limit > 0 && n.len() as u64 > self.label_name_length_limit {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {n:.50}, length: {}, limit: {})",
                    n.len(),
                    self.label_name_length_limit
                ));
            }
            if self.label_value_length_limit > 0 && v.len() as u64 > self.label_value_length_limit {
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {n:.50}, value: {v:.50?}, length: {}, limit: {})",
                    v.len(),
                    self.label_value_length_limit
                ));
            }
        }
        Ok(())
    }

    /// The encoding of a report series (`up`, ...) of this target.
    fn report_series(&self, name: &str) -> Arc<[u8]> {
        let mut lb = self.target_labels.clone();
        lb.insert("__name__".into(), name.into());
        self.add_external_labels(&mut lb);
        encode(&lb).1
    }

    /// The external labels a series lacks.
    fn add_external_labels(&self, lb: &mut LabelSet) {
        for (n, v) in &self.external_labels {
            lb.entry(n.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn encode(lb: &LabelSet) -> (u64, Arc<[u8]>) {
    let enc = Labels::from_unchecked(lb.iter().map(|(n, v)| (n.as_str(), v.as_str()))).encode();
    (strata_tsdb::labels::hash_encoded(&enc), enc.into())
}

impl TargetState {
    /// Appends the samples of `body` (in `format`) scraped at `ts` (ms) to `batch`, with
    /// staleness markers for the series of the previous scrape it lacks. On error the batch
    /// holds part of the body: the caller drops it and calls [`TargetState::fail`].
    pub(crate) fn append(
        &mut self,
        cfg: &AppendConfig,
        body: &[u8],
        format: Format,
        ts: i64,
        batch: &mut SeriesBatch,
    ) -> Result<Counts, (String, Counts)> {
        self.scrapes += 1;
        let now = self.scrapes;
        let mut parser = Parser::new(body, format);
        let mut counts = Counts::default();
        let mut cur: FxHashMap<u64, Arc<[u8]>> =
            FxHashMap::with_capacity_and_hasher(self.prev.len(), Default::default());
        let mut metadata: BTreeMap<String, FamilyMetadata> = BTreeMap::new();
        let mut labels = Vec::new();
        while let Some(entry) = parser.next_entry() {
            let entry = entry.map_err(|e| (e.to_string(), counts))?;
            let (series, value, explicit_ts) = match entry {
                Entry::Series { series, value, timestamp_ms } => (series, value, timestamp_ms),
                Entry::Type { family, kind } => {
                    metadata.entry(family.to_string()).or_default().kind = kind.as_str();
                    continue;
                }
                Entry::Help { family, help } => {
                    metadata.entry(family.to_string()).or_default().help = help.into_owned();
                    continue;
                }
                Entry::Unit { family, unit } => {
                    metadata.entry(family.to_string()).or_default().unit = unit.to_string();
                    continue;
                }
            };
            counts.scraped += 1;
            let cached = match self.cache.get_mut(series) {
                Some(c) => c,
                None => {
                    labels.clear();
                    parser.labels(&mut labels);
                    let enc = cfg.sample_labels(&labels).map_err(|e| (e, counts))?.map(|lb| encode(&lb));
                    if enc.is_some() {
                        counts.added += 1;
                    }
                    self.cache.entry(series.into()).or_insert(Cached { series: enc, seen: now })
                }
            };
            cached.seen = now;
            let Some((hash, enc)) = &cached.series else { continue };
            counts.post_relabel += 1;
            if cfg.sample_limit > 0 && counts.post_relabel > cfg.sample_limit {
                return Err(("sample limit exceeded".into(), counts));
            }
            let t = match explicit_ts {
                Some(t) if cfg.honor_timestamps => t,
                _ => ts,
            };
            if explicit_ts.is_none() || !cfg.honor_timestamps || cfg.track_timestamps_staleness {
                cur.insert(*hash, enc.clone());
            }
            // on an error the caller drops the batch: nothing of a failed scrape is kept
            batch.add_encoded(enc, [(t, value)]);
        }
        for (h, enc) in &self.prev {
            if !cur.contains_key(h) {
                batch.add_encoded(enc, [(ts, stale())]);
            }
        }
        self.prev = cur;
        self.cache.retain(|_, c| c.seen + 1 >= now);
        for m in metadata.values_mut().filter(|m| m.kind.is_empty()) {
            m.kind = "unknown";
        }
        self.metadata = metadata;
        Ok(counts)
    }

    /// A failed scrape at `ts`: every series of the last successful one goes stale.
    pub(crate) fn fail(&mut self, ts: i64, batch: &mut SeriesBatch) {
        for enc in self.prev.values() {
            batch.add_encoded(enc, [(ts, stale())]);
        }
        self.prev.clear();
    }

    /// Appends the report series of a scrape: `up`, its duration, and `counts`.
    pub(crate) fn report(
        &mut self,
        cfg: &AppendConfig,
        ts: i64,
        up: bool,
        duration_s: f64,
        counts: Counts,
        batch: &mut SeriesBatch,
    ) {
        if self.report.is_empty() {
            self.report = REPORT_NAMES.iter().map(|n| cfg.report_series(n)).collect();
        }
        let values = [
            if up { 1.0 } else { 0.0 },
            duration_s,
            counts.scraped as f64,
            counts.post_relabel as f64,
            counts.added as f64,
        ];
        for (enc, v) in self.report.iter().zip(values) {
            batch.add_encoded(enc, [(ts, v)]);
        }
    }

    /// Staleness markers at `ts` for every series of the last scrape and for the report
    /// series: the target is gone.
    pub(crate) fn end(&mut self, ts: i64, batch: &mut SeriesBatch) {
        self.fail(ts, batch);
        for enc in &self.report {
            batch.add_encoded(enc, [(ts, stale())]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg() -> AppendConfig {
        AppendConfig {
            target_labels: [("instance", "h:1"), ("job", "j")]
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            external_labels: LabelSet::new(),
            honor_labels: false,
            honor_timestamps: true,
            track_timestamps_staleness: false,
            metric_relabel: Vec::new(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
        }
    }

    /// Samples as (labels text, ts, value).
    type Rows = Vec<(String, i64, f64)>;

    /// Every sample of the batch, sorted.
    fn contents(batch: SeriesBatch) -> Rows {
        let mut out = Vec::new();
        for (_, rec) in batch.into_records() {
            for s in strata_tsdb::record::decode(&rec).unwrap() {
                let l = Labels::decode(s.labels).unwrap();
                let text: Vec<String> = l.iter().map(|x| format!("{}={}", x.name, x.value)).collect();
                for (t, v) in s.samples {
                    out.push((text.join(","), t, v));
                }
            }
        }
        out.sort_by(|a, b| a.partial_cmp(b).unwrap());
        out
    }

    fn run(st: &mut TargetState, c: &AppendConfig, body: &str, ts: i64) -> (Result<Counts, String>, Rows) {
        let mut b = SeriesBatch::new(4);
        let r = st.append(c, body.as_bytes(), Format::PrometheusText, ts, &mut b).map_err(|(e, _)| e);
        if r.is_err() {
            let mut b2 = SeriesBatch::new(4);
            st.fail(ts, &mut b2);
            return (r, contents(b2));
        }
        (r, contents(b))
    }

    #[test]
    fn target_labels_are_attached_and_conflicts_exported() {
        let mut st = TargetState::default();
        let (r, out) = run(&mut st, &cfg(), "m{job=\"x\",exported_job=\"y\"} 1\nn 2 5\n", 1000);
        assert_eq!(r.unwrap(), Counts { scraped: 2, post_relabel: 2, added: 2 });
        assert_eq!(
            out,
            vec![
                ("__name__=m,exported_exported_job=x,exported_job=y,instance=h:1,job=j".into(), 1000, 1.0),
                ("__name__=n,instance=h:1,job=j".into(), 5, 2.0),
            ]
        );
        let mut honor = cfg();
        honor.honor_labels = true;
        honor.honor_timestamps = false;
        let (_, out) = run(&mut TargetState::default(), &honor, "m{job=\"x\"} 1\nn 2 5\n", 1000);
        assert_eq!(out[0].0, "__name__=m,instance=h:1,job=x");
        assert_eq!(out[1].1, 1000, "timestamps not honored");
    }

    #[test]
    fn vanished_series_and_failed_scrapes_go_stale() {
        let mut st = TargetState::default();
        let c = cfg();
        run(&mut st, &c, "a 1\nb 2\n", 1000).0.unwrap();
        let (r, out) = run(&mut st, &c, "a 1\n", 2000);
        assert_eq!(r.unwrap().added, 0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], ("__name__=a,instance=h:1,job=j".into(), 2000, 1.0));
        assert!(
            strata_tsdb::is_stale_marker(out[1].2) && out[1].0.starts_with("__name__=b") && out[1].1 == 2000
        );
        // b comes back: added again (it left the cache after two scrapes without it)
        run(&mut st, &c, "a 1\n", 3000).0.unwrap();
        let (r, _) = run(&mut st, &c, "a 1\nb 3\n", 4000);
        assert_eq!(r.unwrap().added, 1);
        // a failed scrape: nothing of the body, everything stale
        let (r, out) = run(&mut st, &c, "a 1\nb{ 3\n", 5000);
        assert!(r.unwrap_err().contains("line 2"));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, t, v)| *t == 5000 && strata_tsdb::is_stale_marker(*v)));
        // and nothing goes stale twice
        let (_, out) = run(&mut st, &c, "c 1\n", 6000);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn explicit_timestamps_are_not_tracked_for_staleness() {
        let mut st = TargetState::default();
        let c = cfg();
        run(&mut st, &c, "a 1 500\nb 1\n", 1000).0.unwrap();
        let (_, out) = run(&mut st, &c, "", 2000);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].0.starts_with("__name__=b"));
        let mut track = cfg();
        track.track_timestamps_staleness = true;
        let mut st = TargetState::default();
        run(&mut st, &track, "a 1 500\n", 1000).0.unwrap();
        let (_, out) = run(&mut st, &track, "", 2000);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn metric_relabeling_and_limits() {
        let mut c = cfg();
        c.metric_relabel =
            serde_yaml::from_str("- {source_labels: [__name__], regex: 'go_.*', action: drop}").unwrap();
        let mut st = TargetState::default();
        let (r, out) = run(&mut st, &c, "go_x 1\nkeep 2\n", 1000);
        assert_eq!(r.unwrap(), Counts { scraped: 2, post_relabel: 1, added: 1 });
        assert_eq!(out.len(), 1);
        c.sample_limit = 1;
        let (r, _) = run(&mut TargetState::default(), &c, "a 1\nb 2\ngo_y 3\n", 1000);
        assert_eq!(r.unwrap_err(), "sample limit exceeded");
        let mut c = cfg();
        c.label_limit = 3;
        let (r, _) = run(&mut TargetState::default(), &c, "a{x=\"1\"} 1\n", 1000);
        assert!(
            r.unwrap_err().starts_with("label_limit exceeded (metric: a, number of labels: 4, limit: 3)")
        );
        let mut c = cfg();
        c.label_value_length_limit = 3;
        let (r, _) = run(&mut TargetState::default(), &c, "a{x=\"long\"} 1\n", 1000);
        assert!(r.unwrap_err().starts_with("label_value_length_limit exceeded"));
        let (r, _) = run(&mut TargetState::default(), &cfg(), "a{x=\"1\",x=\"2\"} 1\n", 1000);
        assert!(r.unwrap_err().contains("not unique"));
    }

    #[test]
    fn report_series_and_end_of_run() {
        let mut st = TargetState::default();
        let mut c = cfg();
        c.external_labels.insert("cluster".into(), "eu".into());
        let mut b = SeriesBatch::new(2);
        let counts = st.append(&c, b"a 1\n", Format::PrometheusText, 1000, &mut b).unwrap();
        st.report(&c, 1000, true, 0.25, counts, &mut b);
        let out = contents(b);
        let find = |n: &str| out.iter().find(|(l, _, _)| l.starts_with(&format!("__name__={n},"))).unwrap().2;
        assert_eq!(find("up"), 1.0);
        assert_eq!(find("scrape_duration_seconds"), 0.25);
        assert_eq!(find("scrape_samples_scraped"), 1.0);
        assert_eq!(find("scrape_series_added"), 1.0);
        assert!(out.iter().all(|(l, _, _)| l.contains("cluster=eu")));
        let mut b = SeriesBatch::new(2);
        st.end(16_000, &mut b);
        let out = contents(b);
        assert_eq!(out.len(), 6);
        assert!(out.iter().all(|(_, t, v)| *t == 16_000 && strata_tsdb::is_stale_marker(*v)));
    }
}
