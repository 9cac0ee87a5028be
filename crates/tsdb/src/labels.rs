//! Label sets: canonical (sorted, unique) form, its byte encoding and its hash.

use std::fmt;
use std::sync::Arc;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// The label holding a series' tenant (set by the HTTP layer on every write with tenants;
/// series without it are the default tenant's).
pub const TENANT_LABEL: &str = "__tenant_id__";

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
    /// More labels than [`LabelLimits::max_names`] (Mimir's `max_label_names_per_series`).
    #[error(
        "received a series whose number of labels exceeds the limit (actual: {actual}, limit: {limit}) \
         series: '{series}' (err-mimir-max-label-names-per-series). To adjust the related limit, \
         configure --ingest.max-label-names-per-series"
    )]
    TooManyLabels {
        /// Labels in the series.
        actual: usize,
        /// The limit.
        limit: usize,
        /// The series as received, cut to 200 characters.
        series: String,
    },
    /// A label name longer than [`LabelLimits::max_name_len`].
    #[error(
        "received a series whose label name length exceeds the limit, label: '{name}' series: '{series}' \
         (err-mimir-label-name-too-long). To adjust the related limit, configure \
         --ingest.max-label-name-length"
    )]
    NameTooLong {
        /// The name, cut to 200 characters.
        name: String,
        /// The series as received, cut to 200 characters.
        series: String,
    },
    /// A label value longer than [`LabelLimits::max_value_len`].
    #[error(
        "received a series whose label value length of {len} exceeds the limit of {limit}, label: '{name}', \
         value: '{value}' (truncated) series: '{series}' (err-mimir-label-value-too-long). To adjust the \
         related limit, configure --ingest.max-label-value-length"
    )]
    ValueTooLong {
        /// Length of the value, in bytes.
        len: usize,
        /// The limit, in bytes.
        limit: usize,
        /// The label name, cut to 200 characters.
        name: String,
        /// The value, cut to 200 characters.
        value: String,
        /// The series as received, cut to 200 characters.
        series: String,
    },
}

impl LabelsError {
    /// Mimir's `reason` label of `cortex_discarded_samples_total` for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            LabelsError::EmptyName(_) => "label_invalid",
            LabelsError::Duplicate { .. } => "duplicate_label_names",
            LabelsError::NoMetricName(_) => "missing_metric_name",
            LabelsError::TooManyLabels { .. } => "max_label_names_per_series",
            LabelsError::NameTooLong { .. } => "label_name_too_long",
            LabelsError::ValueTooLong { .. } => "label_value_too_long",
        }
    }
}

/// Limits on one series' labels, checked by [`validate`] (Mimir's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelLimits {
    /// Most labels in a series, `__name__` included (Mimir's `max_label_names_per_series`).
    /// 0 = no limit. Default 30.
    pub max_names: usize,
    /// Longest label name, in bytes (Mimir's `max_label_name_length`). 0 = no limit.
    /// Default 1024.
    pub max_name_len: usize,
    /// Longest label value, in bytes (Mimir's `max_label_value_length`). 0 = no limit.
    /// Default 2048.
    pub max_value_len: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_names: 30, max_name_len: 1024, max_value_len: 2048 }
    }
}

impl LabelLimits {
    /// No limits.
    pub const NONE: LabelLimits = LabelLimits { max_names: 0, max_name_len: 0, max_value_len: 0 };
}

/// Characters of a series or label shown in an error (Mimir's `%.200s`).
const SHOWN_CHARS: usize = 200;

fn cut(s: &str) -> String {
    s.chars().take(SHOWN_CHARS).collect()
}

/// The one check every series gets before it is stored, wherever it comes from (remote
/// write, a Storage.Write record): [`canonicalize`] and the `limits`. Cheap when the series
/// is valid; only a rejected series is rendered, cut to 200 characters.
pub fn validate(v: &mut Vec<(&str, &str)>, limits: &LabelLimits) -> Result<(), LabelsError> {
    if over(v.len(), limits.max_names) {
        let series = render_cut(v);
        return Err(LabelsError::TooManyLabels { actual: v.len(), limit: limits.max_names, series });
    }
    for &(n, val) in v.iter() {
        if over(n.len(), limits.max_name_len) {
            return Err(LabelsError::NameTooLong { name: cut(n), series: render_cut(v) });
        }
        if over(val.len(), limits.max_value_len) {
            return Err(LabelsError::ValueTooLong {
                len: val.len(),
                limit: limits.max_value_len,
                name: cut(n),
                value: cut(val),
                series: render_cut(v),
            });
        }
    }
    canonicalize(v)
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

/// Whether a label set's encoding (see [`Labels::encode`]) is within `limits` — as
/// [`validate`] counts them, in bytes — read from its lengths alone, without decoding its
/// strings; `false` for a malformed encoding.
pub fn encoded_within(mut b: &[u8], limits: &LabelLimits) -> bool {
    let mut names = 0;
    while !b.is_empty() {
        for limit in [limits.max_name_len, limits.max_value_len] {
            match next_string(&mut b) {
                Some(s) if !over(s.len(), limit) => {}
                _ => return false,
            }
        }
        names += 1;
    }
    !over(names, limits.max_names)
}

/// Whether `len` is over `limit` (0: no limit).
fn over(len: usize, limit: usize) -> bool {
    limit > 0 && len > limit
}

/// The next length-prefixed string of a label encoding, as bytes (`b` moves past it);
/// `None` when its length is malformed or runs past the end.
fn next_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(crate::varint::get_uvarint(b)?).ok()?;
    let s = b.get(..n)?;
    *b = &b[n..];
    Some(s)
}

/// Decodes a canonical encoding into borrowed `(name, value)` pairs (replacing `out`'s
/// contents); `None` when it is malformed or not UTF-8.
pub fn decode_pairs<'a>(mut b: &'a [u8], out: &mut Vec<(&'a str, &'a str)>) -> Option<()> {
    out.clear();
    fn take<'a>(b: &mut &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(next_string(b)?).ok()
    }
    // a truncated pair (a length without its bytes, a name without a value) is malformed
    while !b.is_empty() {
        let name = take(&mut b)?;
        out.push((name, take(&mut b)?));
    }
    Some(())
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
    String::from_utf8(next_string(b)?.to_vec()).ok()
}

/// [`render_pairs`] cut to 200 characters, without rendering what is cut off.
fn render_cut(v: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (n, val)) in v.iter().enumerate() {
        if out.len() > SHOWN_CHARS {
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{}={:?}", cut(n), cut(val)));
    }
    out.push('}');
    cut(&out)
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

    #[test]
    fn truncated_pairs_are_malformed() {
        let mut out = Vec::new();
        // a length without its bytes; a name without its value (found by the tsdb_decode fuzz target)
        assert!(decode_pairs(&[0x05], &mut out).is_none());
        let mut whole = vec![8];
        whole.extend_from_slice(b"__name__");
        whole.extend_from_slice(&[1, b'm']);
        let truncated = [whole.as_slice(), &[5]].concat();
        assert!(decode_pairs(&truncated, &mut out).is_none());
        let mut out = Vec::new();
        assert!(decode_pairs(&whole, &mut out).is_some());
        assert_eq!(out, vec![("__name__", "m")]);
        let mut out = Vec::new();
        assert!(decode_pairs(&[], &mut out).is_some() && out.is_empty());
    }

    use super::*;

    #[test]
    fn limits_read_from_the_encoding_agree_with_validate() {
        let long = "v".repeat(40);
        let sets: Vec<Vec<(&str, &str)>> = vec![
            vec![("__name__", "up")],
            vec![("__name__", "up"), ("a_rather_long_label_name", "x"), ("job", "node")],
            vec![("__name__", "up"), ("instance", long.as_str())],
            vec![("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
        ];
        for max_names in [0, 2, 3, 5] {
            for max_name_len in [0, 8, 24] {
                for max_value_len in [0, 4, 40, 39] {
                    let limits = LabelLimits { max_names, max_name_len, max_value_len };
                    for set in &sets {
                        let enc = Labels::from_pairs(set.iter().copied()).unwrap().encode();
                        let mut pairs = Vec::new();
                        decode_pairs(&enc, &mut pairs).unwrap();
                        assert_eq!(
                            encoded_within(&enc, &limits),
                            validate(&mut pairs, &limits).is_ok(),
                            "{set:?} under {max_names}/{max_name_len}/{max_value_len}"
                        );
                    }
                }
            }
        }
        // malformed: a length past the end, a name without a value
        assert!(!encoded_within(&[0x05], &LabelLimits::NONE));
        assert!(!encoded_within(&[1, b'a'], &LabelLimits::NONE));
    }

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
