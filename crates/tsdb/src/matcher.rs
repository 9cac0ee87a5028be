//! Label matchers with Prometheus semantics: `=`, `!=`, `=~`, `!~`, regexes fully anchored
//! (Go's RE2 syntax and meaning, translated by [`strata_goregex`]; `.` matching newlines
//! as in Prometheus 3), an absent label matching as the empty string.

use std::fmt;

use regex::Regex;

use crate::error::{Error, Result};

/// The comparison a matcher applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name the matcher tests.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Literal value or regex source.
    pub value: String,
    re: Option<Regex>,
    /// For regexes that are a plain alternation of literals (`a|b|c`): those literals.
    alternatives: Option<Vec<String>>,
}

impl Matcher {
    /// Builds a matcher; regexes are compiled anchored as Prometheus does.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let (re, alternatives) = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let re = compile_cached(&value)?;
                (Some(re), literal_alternatives(&value))
            }
            MatchOp::Equal | MatchOp::NotEqual => (None, None),
        };
        Ok(Matcher { name, op, value, re, alternatives })
    }

    /// Tests a label value (`""` for an absent label).
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re_match(v),
            MatchOp::NotRegex => !self.re_match(v),
        }
    }

    fn re_match(&self, v: &str) -> bool {
        match &self.alternatives {
            Some(alts) => alts.iter().any(|a| a == v),
            None => self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// The exact values that can match, when the matcher is a positive literal set.
    pub fn set_values(&self) -> Option<Vec<&str>> {
        match self.op {
            MatchOp::Equal => Some(vec![self.value.as_str()]),
            MatchOp::Regex => self.alternatives.as_ref().map(|a| a.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

/// Largest compiled program one regex may have, in bytes (the `regex` crate's default
/// size limit); a regex over it is refused as invalid (400 for a query) instead of
/// compiling. 10 MiB.
pub const REGEX_MAX_COMPILED_BYTES: usize = 10 << 20;

/// Largest lazy-DFA cache one regex may grow while matching, in bytes. 1 MiB.
const REGEX_DFA_BYTES: usize = 1 << 20;

/// Most bytes the cache of compiled regexes may hold (each entry charged its estimated
/// size: see [`compile_cached`]); a regex that would pass it empties the cache first.
/// 128 MiB.
pub const REGEX_CACHE_BYTES: usize = 128 << 20;

/// Compiled-size tiers a regex is tried at: the smallest that compiles is what its cache
/// entry is charged (an upper bound of its program), plus its lazy-DFA cache.
const REGEX_TIERS: [usize; 4] = [16 << 10, 256 << 10, 2 << 20, REGEX_MAX_COMPILED_BYTES];

/// A regex already translated from Go's syntax and anchored
/// ([`strata_goregex::translate_anchored`]) compiled within `limit` bytes of program.
fn compile(value: &str, limit: usize) -> std::result::Result<Regex, regex::Error> {
    regex::RegexBuilder::new(value).size_limit(limit).dfa_size_limit(REGEX_DFA_BYTES).build()
}

/// A regex and the bytes it is estimated to hold: compiled at the smallest size tier it
/// fits (a regex over the last tier is an error).
fn compile_sized(value: &str) -> Result<(Regex, usize)> {
    let bad = |e: regex::Error| Error::BadRegex { pattern: value.to_owned(), reason: e.to_string() };
    let translated = strata_goregex::translate_anchored(value)
        .map_err(|reason| Error::BadRegex { pattern: value.to_owned(), reason })?;
    let value = translated.as_str();
    for limit in &REGEX_TIERS[..REGEX_TIERS.len() - 1] {
        match compile(value, *limit) {
            Ok(re) => return Ok((re, limit + REGEX_DFA_BYTES + value.len())),
            Err(regex::Error::CompiledTooBig(_)) => continue,
            Err(e) => return Err(bad(e)),
        }
    }
    let re = compile(value, REGEX_MAX_COMPILED_BYTES).map_err(bad)?;
    Ok((re, REGEX_MAX_COMPILED_BYTES + REGEX_DFA_BYTES + value.len()))
}

/// Compiled regexes by source, with the bytes they are charged.
#[derive(Default)]
struct RegexCache {
    map: std::collections::HashMap<String, (Regex, usize)>,
    bytes: usize,
}

/// Compiled regexes by source: dashboards repeat the same matchers on every refresh, and
/// compiling dominates small queries. Bounded by bytes ([`REGEX_CACHE_BYTES`]), not
/// entries: emptied when the next regex would pass the bound.
static CACHE: std::sync::OnceLock<parking_lot::Mutex<RegexCache>> = std::sync::OnceLock::new();

/// A regex from the cache, compiled and cached if it is not there.
fn compile_cached(value: &str) -> Result<Regex> {
    let cache = CACHE.get_or_init(Default::default);
    if let Some((re, _)) = cache.lock().map.get(value) {
        return Ok(re.clone());
    }
    let (re, cost) = compile_sized(value)?;
    let mut c = cache.lock();
    if c.bytes.saturating_add(cost) > REGEX_CACHE_BYTES {
        c.map.clear();
        c.bytes = 0;
    }
    if cost <= REGEX_CACHE_BYTES && !c.map.contains_key(value) {
        c.bytes += cost;
        c.map.insert(value.to_owned(), (re.clone(), cost));
    }
    Ok(re)
}

/// `a|b|c` with no regex metacharacters → the literals.
fn literal_alternatives(src: &str) -> Option<Vec<String>> {
    const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$'];
    if src.contains(META) {
        return None;
    }
    Some(src.split('|').map(str::to_owned).collect())
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_regex_and_empty() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::new(MatchOp::Regex, "a", "a|b").unwrap();
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab") && !m.matches(""));
        assert!(Matcher::new(MatchOp::Regex, "a", ".*").unwrap().matches(""));
        assert!(Matcher::new(MatchOp::Regex, "a", "x.y").unwrap().matches("x\ny"));
        assert!(Matcher::new(MatchOp::NotEqual, "a", "").unwrap().matches("v"));
        assert!(Matcher::new(MatchOp::Regex, "a", "(").is_err());
    }

    #[test]
    fn regexes_are_charged_by_size_and_huge_ones_refused() {
        let (_, small) = compile_sized("fo+|ba[rz]").unwrap();
        assert!(small <= (16 << 10) + REGEX_DFA_BYTES + 64, "{small}");
        let (_, big) = compile_sized(r"\w{1,200}").unwrap();
        assert!(big > small, "{big} <= {small}");
        let e = Matcher::new(MatchOp::Regex, "a", r"(\w{1,1000}){1,100}").unwrap_err();
        assert!(e.to_string().contains("exceeds size limit"), "{e}");
        // distinct regexes never hold more than the cache's bound
        for i in 0..24 {
            Matcher::new(MatchOp::Regex, "a", format!(r"\w{{1,{}}}", 120 + i)).unwrap();
            let c = CACHE.get_or_init(Default::default).lock();
            assert!(c.bytes <= REGEX_CACHE_BYTES && c.map.values().map(|e| e.1).sum::<usize>() == c.bytes);
        }
    }
}
