//! Relabeling (`relabel_configs`, `metric_relabel_configs`) with Prometheus's actions,
//! defaults and validation.

use std::fmt;

use md5::Digest;
use serde::Deserialize;
use strata_discovery::LabelSet;

/// A relabeling action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Set `target_label` to the expanded `replacement` when `regex` matches (default).
    #[default]
    Replace,
    /// Drop the label set unless `regex` matches the source value.
    Keep,
    /// Drop the label set when `regex` matches the source value.
    Drop,
    /// Drop the label set unless the source value equals `target_label`'s value.
    KeepEqual,
    /// Drop the label set when the source value equals `target_label`'s value.
    DropEqual,
    /// Set `target_label` to md5(source value) mod `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lower-cased source value.
    Lowercase,
    /// Set `target_label` to the upper-cased source value.
    Uppercase,
}

impl Action {
    const ALL: [(&'static str, Action); 11] = [
        ("replace", Action::Replace),
        ("keep", Action::Keep),
        ("drop", Action::Drop),
        ("keepequal", Action::KeepEqual),
        ("dropequal", Action::DropEqual),
        ("hashmod", Action::HashMod),
        ("labelmap", Action::LabelMap),
        ("labeldrop", Action::LabelDrop),
        ("labelkeep", Action::LabelKeep),
        ("lowercase", Action::Lowercase),
        ("uppercase", Action::Uppercase),
    ];

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("replace")
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_ascii_lowercase();
        Action::ALL
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, a)| *a)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown relabel action {s:?}")))
    }
}

/// A regular expression anchored at both ends, as relabeling uses them.
#[derive(Clone)]
pub struct Regex {
    source: String,
    re: regex::Regex,
}

impl Regex {
    /// Compiles `source` as `^(?s:source)$`.
    pub fn new(source: &str) -> Result<Regex, regex::Error> {
        let re = regex::Regex::new(&format!("^(?s:{source})$"))?;
        Ok(Regex { source: source.to_string(), re })
    }

    fn is_default(&self) -> bool {
        self.source == DEFAULT_REGEX
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

/// What the YAML says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    #[serde(default)]
    source_labels: Option<Vec<String>>,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    regex: Option<Regex>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    target_label: String,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    action: Action,
}

/// One relabeling step.
#[derive(Clone, Debug, PartialEq)]
pub struct RelabelConfig {
    /// Labels whose values, joined by `separator`, are the source value. Default none.
    pub source_labels: Vec<String>,
    /// Joins the source values. Default `;`.
    pub separator: String,
    /// Matched against the source value (or label names). Default `(.*)`.
    pub regex: Regex,
    /// Modulus of `hashmod`. Default 0.
    pub modulus: u64,
    /// The label written. Default none.
    pub target_label: String,
    /// What is written, with `$1`, `${name}` references. Default `$1`.
    pub replacement: String,
    /// The action. Default `replace`.
    pub action: Action,
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRelabel::deserialize(d)?;
        let default_regex = || Regex::new(DEFAULT_REGEX).unwrap_or_else(|_| unreachable!("a valid regex"));
        let c = RelabelConfig {
            source_labels: raw.source_labels.clone().unwrap_or_default(),
            separator: raw.separator.clone().unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex: raw.regex.clone().unwrap_or_else(default_regex),
            modulus: raw.modulus,
            target_label: raw.target_label.clone(),
            replacement: raw.replacement.clone().unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action: raw.action,
        };
        c.validate(&raw).map_err(serde::de::Error::custom)?;
        Ok(c)
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A label name that may hold `$1` / `${name}` references.
fn is_target_template(s: &str) -> bool {
    static TARGET: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    TARGET
        .get_or_init(|| {
            regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")
                .unwrap_or_else(|_| unreachable!("a valid regex"))
        })
        .is_match(s)
}

impl RelabelConfig {
    fn validate(&self, raw: &RawRelabel) -> Result<(), String> {
        use Action::*;
        let a = self.action;
        let name = a.name();
        if a == HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(a, Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual)
            && self.target_label.is_empty()
        {
            return Err(format!("relabel configuration for {name} action requires 'target_label' value"));
        }
        if matches!(a, Replace | Lowercase | Uppercase | KeepEqual | DropEqual)
            && !is_target_template(&self.target_label)
        {
            return Err(format!("{:?} is invalid 'target_label' for {name} action", self.target_label));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual | HashMod)
            && !is_label_name(&self.target_label)
        {
            return Err(format!("{:?} is invalid 'target_label' for {name} action", self.target_label));
        }
        if matches!(a, Lowercase | Uppercase)
            && raw.replacement.is_some()
            && self.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {name} action"));
        }
        if a == LabelMap && !is_target_template(&self.replacement) {
            return Err(format!("{:?} is invalid 'replacement' for {name} action", self.replacement));
        }
        if matches!(a, KeepEqual | DropEqual)
            && (!self.regex.is_default()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{name} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (raw.source_labels.is_some()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!("{name} action requires only 'regex', and no other fields"));
        }
        Ok(())
    }

    /// Applies this step; false when the label set is dropped.
    fn apply(&self, lb: &mut LabelSet) -> bool {
        let val = if self.source_labels.is_empty() {
            String::new()
        } else {
            let mut v = String::new();
            for (i, n) in self.source_labels.iter().enumerate() {
                if i > 0 {
                    v.push_str(&self.separator);
                }
                v.push_str(lb.get(n).map(String::as_str).unwrap_or(""));
            }
            v
        };
        let re = &self.regex.re;
        match self.action {
            Action::Drop => return !re.is_match(&val),
            Action::Keep => return re.is_match(&val),
            Action::DropEqual => return lb.get(&self.target_label).map(String::as_str).unwrap_or("") != val,
            Action::KeepEqual => return lb.get(&self.target_label).map(String::as_str).unwrap_or("") == val,
            Action::Replace => {
                let Some(caps) = re.captures(&val) else { return true };
                let mut target = String::new();
                caps.expand(&self.target_label, &mut target);
                if !is_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&self.replacement, &mut res);
                set(lb, target, res);
            }
            Action::Lowercase => set(lb, self.target_label.clone(), val.to_lowercase()),
            Action::Uppercase => set(lb, self.target_label.clone(), val.to_uppercase()),
            Action::HashMod => {
                let sum = md5::Md5::digest(val.as_bytes());
                let mut last = [0u8; 8];
                last.copy_from_slice(&sum[8..16]);
                let m = u64::from_be_bytes(last) % self.modulus;
                set(lb, self.target_label.clone(), m.to_string());
            }
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = lb
                    .iter()
                    .filter(|(n, _)| re.is_match(n))
                    .map(|(n, v)| (re.replace_all(n, self.replacement.as_str()).into_owned(), v.clone()))
                    .collect();
                for (n, v) in mapped {
                    set(lb, n, v);
                }
            }
            Action::LabelDrop => lb.retain(|n, _| !re.is_match(n)),
            Action::LabelKeep => lb.retain(|n, _| re.is_match(n)),
        }
        true
    }
}

/// Sets a label; an empty value deletes it (as Prometheus's label builder does).
fn set(lb: &mut LabelSet, name: String, value: String) {
    if value.is_empty() {
        lb.remove(&name);
    } else {
        lb.insert(name, value);
    }
}

/// Runs `steps` over `labels`; false when a step drops the set (its contents are then
/// unspecified).
pub fn process(labels: &mut LabelSet, steps: &[RelabelConfig]) -> bool {
    steps.iter().all(|s| s.apply(labels))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn steps(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<LabelSet> {
        let mut l = ls(input);
        process(&mut l, &steps(yaml)).then_some(l)
    }

    #[test]
    fn replace() {
        let out = run(
            "- {source_labels: [a, b], regex: '(.*);(.*)', target_label: c, replacement: '${2}-$1'}",
            &[("a", "x"), ("b", "y")],
        );
        assert_eq!(out, Some(ls(&[("a", "x"), ("b", "y"), ("c", "y-x")])));
        // no match: unchanged; the regex is anchored
        assert_eq!(
            run("- {source_labels: [a], regex: 'x', target_label: c}", &[("a", "xx")]),
            Some(ls(&[("a", "xx")]))
        );
        // an empty result deletes the target label
        assert_eq!(run("- {source_labels: [a], target_label: b}", &[("b", "1")]), Some(ls(&[])));
        // a target label built from the value; an invalid one is skipped
        assert_eq!(
            run("- {source_labels: [a], regex: '(.+)', target_label: 'l_$1', replacement: v}", &[("a", "k")]),
            Some(ls(&[("a", "k"), ("l_k", "v")]))
        );
        assert_eq!(
            run(
                "- {source_labels: [a], regex: '(.+)', target_label: '$1', replacement: v}",
                &[("a", "0bad")]
            ),
            Some(ls(&[("a", "0bad")]))
        );
        // no source labels: the value is "", the default regex matches, replacement set
        assert_eq!(run("- {target_label: env, replacement: prod}", &[]), Some(ls(&[("env", "prod")])));
        // (?s): a dot matches a newline
        assert_eq!(
            run("- {source_labels: [a], regex: 'x.y', target_label: b, replacement: ok}", &[("a", "x\ny")]),
            Some(ls(&[("a", "x\ny"), ("b", "ok")]))
        );
    }

    #[test]
    fn keep_and_drop() {
        let keep = "- {source_labels: [job], regex: 'node|api', action: keep}";
        assert!(run(keep, &[("job", "node")]).is_some());
        assert!(run(keep, &[("job", "nodes")]).is_none());
        assert!(run(keep, &[]).is_none());
        let drop = "- {source_labels: [job], regex: 'node', action: drop}";
        assert!(run(drop, &[("job", "node")]).is_none());
        assert!(run(drop, &[("job", "api")]).is_some());
        // action names are case-insensitive
        assert!(run("- {source_labels: [a], regex: x, action: DROP}", &[("a", "x")]).is_none());
    }

    #[test]
    fn keepequal_and_dropequal() {
        let keq = "- {source_labels: [a], target_label: b, action: keepequal}";
        assert!(run(keq, &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(keq, &[("a", "1"), ("b", "2")]).is_none());
        assert!(run(keq, &[]).is_some());
        let deq = "- {source_labels: [a], target_label: b, action: dropequal}";
        assert!(run(deq, &[("a", "1"), ("b", "1")]).is_none());
        assert!(run(deq, &[("a", "1")]).is_some());
    }

    #[test]
    fn hashmod() {
        // md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; its last 8 bytes, big-endian, mod 1000
        let want = (0xedef654fccc4a4d8u64 % 1000).to_string();
        let out =
            run("- {source_labels: [a], modulus: 1000, target_label: h, action: hashmod}", &[("a", "foo")]);
        assert_eq!(out.unwrap()["h"], want);
    }

    #[test]
    fn labelmap() {
        let out = run(
            "- {regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}",
            &[("__meta_kubernetes_pod_label_app", "web"), ("x", "1")],
        );
        assert_eq!(out, Some(ls(&[("__meta_kubernetes_pod_label_app", "web"), ("app", "web"), ("x", "1")])));
        let out = run("- {regex: 'a(.*)', replacement: 'b${1}_x', action: labelmap}", &[("ak", "v")]);
        assert_eq!(out, Some(ls(&[("ak", "v"), ("bk_x", "v")])));
    }

    #[test]
    fn labeldrop_and_labelkeep() {
        let input = [("__name__", "m"), ("pod", "p"), ("pod_ip", "1"), ("zone", "z")];
        assert_eq!(
            run("- {regex: 'pod.*', action: labeldrop}", &input),
            Some(ls(&[("__name__", "m"), ("zone", "z")]))
        );
        assert_eq!(
            run("- {regex: '__name__|zone', action: labelkeep}", &input),
            Some(ls(&[("__name__", "m"), ("zone", "z")]))
        );
    }

    #[test]
    fn lowercase_and_uppercase() {
        assert_eq!(
            run("- {source_labels: [a, b], target_label: c, action: lowercase}", &[("a", "AbC"), ("b", "É")]),
            Some(ls(&[("a", "AbC"), ("b", "É"), ("c", "abc;é")]))
        );
        assert_eq!(
            run("- {source_labels: [a], target_label: a, action: uppercase}", &[("a", "abc")]),
            Some(ls(&[("a", "ABC")]))
        );
    }

    #[test]
    fn steps_run_in_order_and_stop_at_a_drop() {
        let yaml = "- {source_labels: [a], target_label: b}\n- {source_labels: [b], regex: x, action: drop}\n- {target_label: c, replacement: never}";
        assert!(run(yaml, &[("a", "x")]).is_none());
        assert_eq!(run(yaml, &[("a", "y")]), Some(ls(&[("a", "y"), ("b", "y"), ("c", "never")])));
    }

    #[test]
    fn validation_as_prometheus() {
        let bad = |y: &str, want: &str| {
            let e = serde_yaml::from_str::<Vec<RelabelConfig>>(y).unwrap_err().to_string();
            assert!(e.contains(want), "{y}: {e}");
        };
        bad("- {action: hashmod, target_label: h}", "requires non-zero modulus");
        bad("- {action: replace, source_labels: [a]}", "requires 'target_label' value");
        bad("- {action: lowercase, source_labels: [a], target_label: '1x'}", "is invalid 'target_label'");
        bad("- {action: uppercase, source_labels: [a], target_label: b, replacement: x}", "can not be set");
        bad(
            "- {action: keepequal, source_labels: [a], target_label: b, regex: x}",
            "requires only 'source_labels'",
        );
        bad("- {action: labeldrop, regex: x, source_labels: [a]}", "requires only 'regex'");
        bad("- {action: labelmap, replacement: '1-bad'}", "is invalid 'replacement'");
        bad("- {action: explode}", "unknown relabel action");
        bad("- {regex: '(unclosed'}", "invalid regex");
        bad("- {sourcelabels: [a]}", "unknown field");
    }
}
