//! Turning discovered target groups into targets: labels populated and relabeled as
//! Prometheus does, the scrape URL, and the hash that identifies and places a target.

use std::time::Duration;

use strata_discovery::{LabelSet, PromDuration, TargetGroup};

use crate::config::ScrapeConfig;
use crate::relabel;

/// A target to scrape (after relabeling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Labels before relabeling (group labels merged in, job and scrape settings added).
    pub discovered: LabelSet,
    /// Labels after relabeling, `__` labels included (`__address__`, `__scheme__`, ...).
    pub labels: LabelSet,
    /// The URL scraped.
    pub url: String,
    /// Time between scrapes (from `__scrape_interval__`).
    pub interval: Duration,
    /// Longest a scrape may take (from `__scrape_timeout__`).
    pub timeout: Duration,
    /// Identifies the target within its job and places it on the ring of ingestors.
    pub hash: u64,
}

impl Target {
    /// The labels every sample of the target gets: those not starting with `__`.
    pub fn public_labels(&self) -> impl Iterator<Item = (&String, &String)> {
        self.labels.iter().filter(|(n, _)| !n.starts_with("__"))
    }
}

/// What became of one discovered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It is scraped.
    Active(Target),
    /// Relabeling dropped it (its discovered labels), or it is invalid (with why).
    Dropped(LabelSet, Option<String>),
}

/// Every target of `groups` for the job `cfg`, in discovery order.
pub fn targets(cfg: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for g in groups {
        for t in &g.targets {
            let mut lb = t.clone();
            for (n, v) in &g.labels {
                lb.entry(n.clone()).or_insert_with(|| v.clone());
            }
            out.push(populate(cfg, lb));
        }
    }
    out
}

/// Prometheus's PopulateLabels: defaults, relabeling, checks.
fn populate(cfg: &ScrapeConfig, mut lb: LabelSet) -> Outcome {
    let defaults = [
        ("job", cfg.job_name.clone()),
        ("__scrape_interval__", PromDuration(cfg.scrape_interval).to_string()),
        ("__scrape_timeout__", PromDuration(cfg.scrape_timeout).to_string()),
        ("__metrics_path__", cfg.metrics_path.clone()),
        ("__scheme__", cfg.scheme.clone()),
    ];
    for (n, v) in defaults {
        if lb.get(n).is_none_or(|x| x.is_empty()) {
            lb.insert(n.to_string(), v);
        }
    }
    for (k, v) in &cfg.params {
        if let Some(first) = v.first() {
            lb.insert(format!("__param_{k}"), first.clone());
        }
    }
    let discovered = lb.clone();
    if !relabel::process(&mut lb, &cfg.relabel_configs) {
        return Outcome::Dropped(discovered, None);
    }
    let fail = |why: String| Outcome::Dropped(discovered.clone(), Some(why));
    let addr = match lb.get("__address__") {
        Some(a) if !a.is_empty() => a.clone(),
        _ => return fail("no address".into()),
    };
    if addr.contains('/') {
        return fail(format!("{addr:?} is not a valid hostname"));
    }
    let duration = |name: &str| -> Result<Duration, String> {
        let v = lb.get(name).map(String::as_str).unwrap_or("");
        v.parse::<PromDuration>().map(|d| d.0).map_err(|e| format!("error parsing {name}: {e}"))
    };
    let interval = match duration("__scrape_interval__") {
        Ok(d) if d.is_zero() => return fail("scrape interval cannot be 0".into()),
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let timeout = match duration("__scrape_timeout__") {
        Ok(d) if d.is_zero() => return fail("scrape timeout cannot be 0".into()),
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    if timeout > interval {
        return fail(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            PromDuration(timeout).to_string(),
            PromDuration(interval).to_string()
        ));
    }
    lb.retain(|n, _| !n.starts_with("__meta_"));
    if lb.get("instance").is_none_or(|v| v.is_empty()) {
        lb.insert("instance".into(), addr.clone());
    }
    lb.retain(|_, v| !v.is_empty());
    let url = url(cfg, &lb, &addr);
    let mut key = Vec::new();
    for (n, v) in lb.iter().filter(|(n, _)| !n.starts_with("__")) {
        key.extend_from_slice(n.as_bytes());
        key.push(0xff);
        key.extend_from_slice(v.as_bytes());
        key.push(0xff);
    }
    key.extend_from_slice(url.as_bytes());
    let hash = xxhash_rust::xxh3::xxh3_64(&key);
    Outcome::Active(Target { discovered, labels: lb, url, interval, timeout, hash })
}

/// scheme://address/path?params, `__param_<name>` labels overriding the config's first
/// value of `name`.
fn url(cfg: &ScrapeConfig, lb: &LabelSet, addr: &str) -> String {
    let mut params = cfg.params.clone();
    for (n, v) in lb {
        if let Some(k) = n.strip_prefix("__param_") {
            let vals = params.entry(k.to_string()).or_default();
            match vals.first_mut() {
                Some(first) => *first = v.clone(),
                None => vals.push(v.clone()),
            }
        }
    }
    let scheme = lb.get("__scheme__").map(String::as_str).unwrap_or("http");
    let path = lb.get("__metrics_path__").map(String::as_str).unwrap_or("/metrics");
    let query = form_urlencoded_pairs(&params);
    if query.is_empty() {
        format!("{scheme}://{addr}{path}")
    } else {
        format!("{scheme}://{addr}{path}?{query}")
    }
}

/// Go's `url.Values.Encode`: keys sorted, `k=v` pairs joined by `&`, query-escaped as Go
/// escapes (`~` kept, `*` escaped: unlike `form_urlencoded`, so URLs read as Prometheus's).
fn form_urlencoded_pairs(params: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    let esc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => o.push(char::from(b)),
                b' ' => o.push('+'),
                _ => o.push_str(&format!("%{b:02X}")),
            }
        }
        o
    };
    let mut parts = Vec::new();
    for (k, vs) in params {
        for v in vs {
            parts.push(format!("{}={}", esc(k), esc(v)));
        }
    }
    parts.join("&")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;

    fn job(yaml: &str) -> ScrapeConfig {
        Config::parse(yaml, std::path::Path::new(".")).unwrap().scrape_configs.remove(0)
    }

    fn group(targets: &[&[(&str, &str)]], labels: &[(&str, &str)]) -> TargetGroup {
        let ls = |p: &[(&str, &str)]| p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        TargetGroup {
            source: "0".into(),
            targets: targets.iter().map(|t| ls(t)).collect(),
            labels: ls(labels),
        }
    }

    #[test]
    fn labels_url_and_defaults() {
        let cfg = job(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    params: {module: [a, b]}\n",
        );
        let out =
            targets(&cfg, &[group(&[&[("__address__", "h:9100"), ("__meta_x", "m")]], &[("env", "p")])]);
        let Outcome::Active(t) = &out[0] else { panic!("{out:?}") };
        let public: Vec<_> = t.public_labels().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(public, ["env=p", "instance=h:9100", "job=node"]);
        assert_eq!(t.url, "http://h:9100/metrics?module=a&module=b");
        assert_eq!(t.interval, Duration::from_secs(15));
        assert_eq!(t.discovered["__meta_x"], "m");
        assert_eq!(t.discovered["__scrape_interval__"], "15s");
        assert_eq!(t.discovered["__param_module"], "a");
    }

    #[test]
    fn relabeling_drops_changes_and_overrides_settings() {
        let cfg = job(
            "scrape_configs:\n  - job_name: j\n    relabel_configs:\n      - {source_labels: [__address__], regex: 'skip.*', action: drop}\n      - {source_labels: [__address__], target_label: __param_target}\n      - {target_label: __address__, replacement: 'probe:1'}\n      - {target_label: __scrape_interval__, replacement: 30s}\n      - {target_label: __metrics_path__, replacement: /probe}\n",
        );
        let out =
            targets(&cfg, &[group(&[&[("__address__", "skip-me")], &[("__address__", "web:80")]], &[])]);
        assert!(matches!(&out[0], Outcome::Dropped(l, None) if l["__address__"] == "skip-me"));
        let Outcome::Active(t) = &out[1] else { panic!() };
        assert_eq!(t.url, "http://probe:1/probe?target=web%3A80");
        assert_eq!(t.labels["instance"], "probe:1");
        assert_eq!(t.interval, Duration::from_secs(30));
    }

    #[test]
    fn invalid_targets_are_dropped_with_a_reason() {
        let cfg = job(
            "scrape_configs:\n  - job_name: j\n    scrape_interval: 10s\n    relabel_configs:\n      - {source_labels: [t], target_label: __scrape_timeout__}\n",
        );
        let out = targets(
            &cfg,
            &[group(
                &[&[("__address__", "a/b")], &[("__address__", "a:1"), ("t", "1m")], &[("x", "1")]],
                &[],
            )],
        );
        let reasons: Vec<_> = out
            .iter()
            .map(|o| match o {
                Outcome::Dropped(_, Some(r)) => r.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(reasons[0].contains("not a valid hostname"));
        assert!(reasons[1].contains("scrape timeout cannot be greater than scrape interval"));
        assert_eq!(reasons[2], "no address");
    }
}
