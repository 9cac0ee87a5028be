//! Label sets: canonical (sorted, unique) form, its byte encoding and its hash.

use std::fmt;
use std::sync::Arc;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A single label pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value (never empty in a stored label set).
    pub value: String,
}

/// A canonical label set: sorted by name, names unique, no empty values.
///
/// Cheap to clone (shared).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Arc<[Label]>);

/// Why a label set cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    /// A label name is empty.
    #[error("invalid label name: empty label name in {0}")]
    EmptyName(String),
    /// The same name appears twice.
    #[error("invalid labels for series, labels {labels}, duplicated label {name}")]
    Duplicate {
        /// The series as received.
        labels: String,
        /// The repeated name.
        name: String,
    },
    /// `__name__` is missing or empty.
    #[error("invalid metric name or labels, got {0}")]
    NoMetricName(String),
}

impl Labels {
    /// Builds a canonical set from pairs in any order: drops empty values, sorts,
    /// and rejects empty or duplicated names and a missing metric name.
    pub fn from_pairs<I, N, V>(pairs: I) -> Result<Self, LabelsError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let owned: Vec<(String, String)> = pairs.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        let mut refs: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        canonicalize(&mut refs)?;
        let v = refs.iter().map(|(n, v)| Label { name: (*n).to_owned(), value: (*v).to_owned() }).collect();
        Ok(Labels::from_sorted(v))
    }

    /// Builds a set from pairs whose names are known to be unique (any order; pairs with
    /// empty values are dropped). No metric name is required: query results need not have one.
    pub fn from_unchecked<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut v: Vec<Label> = pairs
            .filter(|(_, val)| !val.is_empty())
            .map(|(n, val)| Label { name: n.to_owned(), value: val.to_owned() })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|a, b| a.name == b.name);
        Labels::from_sorted(v)
    }

    /// True when `enc` is this set's canonical encoding (compared without allocating).
    pub fn encoded_eq(&self, mut enc: &[u8]) -> bool {
        for l in self.0.iter() {
            for part in [l.name.as_bytes(), l.value.as_bytes()] {
                match crate::varint::get_uvarint(&mut enc) {
                    Some(n) if n as usize == part.len() && enc.len() >= part.len() => {
                        if &enc[..part.len()] != part {
                            return false;
                        }
                        enc = &enc[part.len()..];
                    }
                    _ => return false,
                }
            }
        }
        enc.is_empty()
    }

    /// Builds a set that is known to be canonical (decoded from storage), without checks.
    fn from_sorted(v: Vec<Label>) -> Self {
        Labels(v.into())
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.0[i].value.as_str())
    }

    /// The canonical byte encoding: for each label, varint length + name, varint length + value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.iter().map(|l| l.name.len() + l.value.len() + 2).sum());
        encode_pairs(self.0.iter().map(|l| (l.name.as_bytes(), l.value.as_bytes())), &mut out);
        out
    }

    /// Decodes [`Labels::encode`]'s output.
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let name = take_str(&mut b)?;
            let value = take_str(&mut b)?;
            v.push(Label { name, value });
        }
        Some(Labels::from_sorted(v))
    }

    /// Prometheus's `Labels.Hash()`: XXH64 of the same encoding (its default `stringlabels`
    /// layout), so that hash-based choices such as `limit_ratio` pick the series Prometheus
    /// picks.
    pub fn prometheus_hash(&self) -> u64 {
        xxhash_rust::xxh64::xxh64(&self.encode(), 0)
    }

    /// The stable 64-bit hash of the canonical encoding (xxh3); identical in every process and version.
    pub fn stable_hash(&self) -> u64 {
        hash_encoded(&self.encode())
    }
}

/// Validates and canonicalises borrowed pairs in place: sorts by name, rejects empty or
/// repeated names and a missing or empty metric name, drops pairs with empty values.
pub fn canonicalize(v: &mut Vec<(&str, &str)>) -> Result<(), LabelsError> {
    if v.iter().any(|(n, _)| n.is_empty()) {
        return Err(LabelsError::EmptyName(render_pairs(v)));
    }
    if !v.iter().any(|(n, val)| *n == METRIC_NAME && !val.is_empty()) {
        return Err(LabelsError::NoMetricName(render_pairs(v)));
    }
    if !v.is_sorted_by(|a, b| a.0 < b.0) {
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LabelsError::Duplicate { labels: render_pairs(v), name: w[0].0.to_owned() });
        }
    }
    v.retain(|(_, val)| !val.is_empty());
    Ok(())
}

/// Hash of an already canonical encoding (see [`Labels::encode`]).
pub fn hash_encoded(encoded: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(encoded)
}

/// Appends the canonical encoding of sorted `(name, value)` byte pairs to `out`.
pub fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    for (n, v) in pairs {
        crate::varint::put_uvarint(out, n.len() as u64);
        out.extend_from_slice(n);
        crate::varint::put_uvarint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

fn take_str(b: &mut &[u8]) -> Option<String> {
    let n = usize::try_from(crate::varint::get_uvarint(b)?).ok()?;
    if b.len() < n {
        return None;
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    String::from_utf8(s.to_vec()).ok()
}

fn render_pairs(v: &[(&str, &str)]) -> String {
    let inner: Vec<String> = v.iter().map(|(n, val)| format!("{n}={val:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<(&str, &str)> = self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        f.write_str(&render_pairs(&pairs))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_drops_empty_and_round_trips() {
        let l = Labels::from_pairs([("job", "node"), ("__name__", "up"), ("empty", "")]).unwrap();
        assert_eq!(l.to_string(), r#"{__name__="up", job="node"}"#);
        assert_eq!(Labels::decode(&l.encode()).unwrap(), l);
        assert!(l.encoded_eq(&l.encode()));
        assert!(!l.encoded_eq(&l.encode()[1..]));
        assert!(!l.encoded_eq(&[l.encode(), vec![0, 0]].concat()));
        assert_eq!(l.get("job"), Some("node"));
        assert_eq!(
            l.stable_hash(),
            Labels::from_pairs([("__name__", "up"), ("job", "node")]).unwrap().stable_hash()
        );
    }

    #[test]
    fn rejects_bad_sets() {
        assert!(matches!(Labels::from_pairs([("a", "1")]), Err(LabelsError::NoMetricName(_))));
        assert!(matches!(Labels::from_pairs([("__name__", "")]), Err(LabelsError::NoMetricName(_))));
        assert!(matches!(
            Labels::from_pairs([("__name__", "x"), ("a", "1"), ("a", "2")]),
            Err(LabelsError::Duplicate { .. })
        ));
        assert!(matches!(Labels::from_pairs([("__name__", "x"), ("", "1")]), Err(LabelsError::EmptyName(_))));
    }
}
