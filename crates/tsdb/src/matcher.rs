//! Label matchers with Prometheus semantics: `=`, `!=`, `=~`, `!~`, regexes fully anchored
//! (RE2 syntax, `.` matching newlines), an absent label matching as the empty string.

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

/// Compiled regexes by source: dashboards repeat the same matchers on every refresh, and
/// compiling dominates small queries. Bounded: cleared when it grows past 4,096 entries.
fn compile_cached(value: &str) -> Result<Regex> {
    static CACHE: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashMap<String, Regex>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().get(value) {
        return Ok(re.clone());
    }
    let re = Regex::new(&format!("^(?s:{value})$"))
        .map_err(|e| Error::BadRegex { pattern: value.to_owned(), reason: e.to_string() })?;
    let mut c = cache.lock();
    if c.len() >= 4096 {
        c.clear();
    }
    c.insert(value.to_owned(), re.clone());
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
}
