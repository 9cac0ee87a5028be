//! Metric metadata (type, help, unit) received with remote write or scraped, served by
//! `/api/v1/metadata`. Kept in memory, as Prometheus keeps what it scrapes.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde_json::{Value, json};

/// One metadata entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Meta {
    kind: &'static str,
    help: String,
    unit: String,
}

/// Most distinct entries kept per metric family.
const MAX_PER_METRIC: usize = 16;

/// Most bytes of names, help and units the store holds, all tenants together: past it new
/// entries are dropped (the known ones stay), so that senders inventing metric families or
/// tenants cannot grow a node's memory without bound.
pub const MAX_METADATA_BYTES: usize = 64 << 20;

/// Bytes an entry is counted for besides its strings (its vector slot and map nodes).
const ENTRY_OVERHEAD: usize = 64;

/// Metadata by tenant ("" for the default tenant, which scrapes record into) and metric
/// family name.
#[derive(Debug, Default)]
pub struct MetadataStore {
    by_metric: RwLock<Entries>,
}

/// The entries, and the bytes they are counted for.
#[derive(Debug, Default)]
struct Entries {
    map: BTreeMap<String, BTreeMap<String, Vec<Meta>>>,
    bytes: usize,
}

/// Prometheus's names of metric types, by remote-write `MetricType` number.
const KINDS: [&str; 8] =
    ["unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"];

/// Prometheus's name for a remote-write `MetricType` number.
fn kind_name(k: i32) -> &'static str {
    usize::try_from(k).ok().and_then(|i| KINDS.get(i)).copied().unwrap_or("unknown")
}

impl MetadataStore {
    /// Records one entry of remote write by `tenant` ("" the default one); ignored when
    /// already known.
    pub fn record(&self, tenant: &str, family: &str, kind: i32, help: &str, unit: &str) {
        self.record_named(tenant, family, kind_name(kind), help, unit);
    }

    /// Records one entry whose type is named as Prometheus names it (`counter`, ...; any
    /// other name counts as `unknown`); ignored when already known.
    pub fn record_named(&self, tenant: &str, family: &str, kind: &str, help: &str, unit: &str) {
        if family.is_empty() {
            return;
        }
        let kind = KINDS.iter().find(|k| **k == kind).copied().unwrap_or("unknown");
        let m = Meta { kind, help: help.to_owned(), unit: unit.to_owned() };
        if self.by_metric.read().map.get(tenant).and_then(|t| t.get(family)).is_some_and(|v| v.contains(&m)) {
            return;
        }
        let size = tenant.len() + family.len() + help.len() + unit.len() + ENTRY_OVERHEAD;
        let mut w = self.by_metric.write();
        if w.bytes + size > MAX_METADATA_BYTES {
            return;
        }
        let v = w.map.entry(tenant.to_owned()).or_default().entry(family.to_owned()).or_default();
        if !v.contains(&m) && v.len() < MAX_PER_METRIC {
            v.push(m);
            w.bytes += size;
        }
    }

    /// The `data` of `/api/v1/metadata` over the metadata of `tenants` (None: every
    /// tenant's): one metric or all, limited as asked.
    pub fn query(
        &self,
        tenants: Option<&[&str]>,
        metric: Option<&str>,
        limit: Option<usize>,
        per_metric: Option<usize>,
    ) -> Value {
        let r = self.by_metric.read();
        let r = &r.map;
        let mut merged: BTreeMap<&str, Vec<&Meta>> = BTreeMap::new();
        for (_, families) in r.iter().filter(|(t, _)| tenants.is_none_or(|ts| ts.contains(&t.as_str()))) {
            for (name, metas) in families.iter().filter(|(n, _)| metric.is_none_or(|m| m == n.as_str())) {
                let v = merged.entry(name.as_str()).or_default();
                for m in metas {
                    if !v.contains(&m) {
                        v.push(m);
                    }
                }
            }
        }
        let mut out = serde_json::Map::new();
        for (name, metas) in merged {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let entries: Vec<Value> = metas
                .iter()
                .take(per_metric.unwrap_or(usize::MAX))
                .map(|m| json!({"type": m.kind, "help": m.help, "unit": m.unit}))
                .collect();
            out.insert(name.to_owned(), Value::Array(entries));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_holds_at_most_its_bytes() {
        let store = MetadataStore::default();
        let help = "h".repeat(1 << 20);
        for i in 0..100 {
            store.record(&format!("t{i}"), &format!("family_{i}"), 1, &help, "");
        }
        let all = store.query(None, None, None, None);
        assert_eq!(all.as_object().unwrap().len(), MAX_METADATA_BYTES / ((1 << 20) + 80));
        // the first ones are kept, the later ones dropped
        assert!(store.query(Some(&["t99"]), None, None, None).as_object().unwrap().is_empty());
        assert_eq!(store.query(Some(&["t0"]), Some("family_0"), None, None).as_object().unwrap().len(), 1);
    }
}
