//! Series selectors (`match[]`) parsed with promql-parser into engine matchers.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, Expr};
use strata_tsdb::{METRIC_NAME, MatchOp, Matcher};

/// The engine's matcher for a parsed one.
pub(crate) fn engine_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, String> {
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::Regex,
        PMatchOp::NotRe(_) => MatchOp::NotRegex,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())
}

/// Parses a series selector such as `up{job=~"a|b"}` into alternatives of matcher sets
/// (more than one for Prometheus 3's `{a="1" or b="2"}`).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let Expr::VectorSelector(vs) = parser::parse(s)? else {
        return Err(format!("1:1: parse error: unexpected expression, expected a series selector: {s}"));
    };
    let name = match &vs.name {
        Some(n) => Some(Matcher::new(MatchOp::Equal, METRIC_NAME, n.clone()).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut sets = Vec::new();
    let alternatives = std::iter::once(&vs.matchers.matchers)
        .chain(vs.matchers.or_matchers.iter())
        .filter(|a| !a.is_empty());
    for alt in alternatives {
        let mut set = alt.iter().map(engine_matcher).collect::<Result<Vec<_>, _>>()?;
        if let Some(n) = &name {
            set.push(n.clone());
        }
        sets.push(set);
    }
    if let Some(n) = name.filter(|_| sets.is_empty()) {
        sets.push(vec![n]);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let s = parse_selector(r#"up{job=~"a|b"}"#).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].len(), 2);
        assert_eq!(parse_selector("up").unwrap()[0][0].value, "up");
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("{").is_err());
    }
}
