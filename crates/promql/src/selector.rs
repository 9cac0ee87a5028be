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

/// Adds `m` (an equality or a regex matcher) to every selector of `expr`, and to each `or`
/// alternative of one: the expression then reads only series `m` matches (a tenant's).
pub fn restrict(expr: &mut Expr, m: &Matcher) -> Result<(), String> {
    let op = match m.op {
        MatchOp::Equal => PMatchOp::Equal,
        MatchOp::Regex => PMatchOp::Re(
            regex::Regex::new(&format!("^(?:{})$", m.value)).map_err(|e| format!("{}: {e}", m.value))?,
        ),
        _ => return Err("only = and =~ matchers restrict a query".into()),
    };
    let pm = promql_parser::label::Matcher::new(op, &m.name, &m.value);
    add_to_selectors(expr, &pm)
}

fn add_to_selectors(expr: &mut Expr, m: &promql_parser::label::Matcher) -> Result<(), String> {
    let add = |vs: &mut parser::VectorSelector| {
        vs.matchers.matchers.push(m.clone());
        for alt in &mut vs.matchers.or_matchers {
            alt.push(m.clone());
        }
    };
    match expr {
        Expr::VectorSelector(vs) => add(vs),
        Expr::MatrixSelector(ms) => add(&mut ms.vs),
        Expr::Aggregate(a) => {
            add_to_selectors(&mut a.expr, m)?;
            if let Some(p) = &mut a.param {
                add_to_selectors(p, m)?;
            }
        }
        Expr::Unary(u) => add_to_selectors(&mut u.expr, m)?,
        Expr::Binary(b) => {
            add_to_selectors(&mut b.lhs, m)?;
            add_to_selectors(&mut b.rhs, m)?;
        }
        Expr::Paren(p) => add_to_selectors(&mut p.expr, m)?,
        Expr::Subquery(s) => add_to_selectors(&mut s.expr, m)?,
        Expr::Call(c) => {
            for a in &mut c.args.args {
                add_to_selectors(a, m)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => return Err("unsupported expression".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricting_reaches_every_selector() {
        let mut e = parser::parse(
            r#"sum by (a) (rate(x{b="1"}[5m])) / on() group_left count(y offset 1m) + scalar(z)"#,
        )
        .unwrap();
        restrict(&mut e, &Matcher::new(MatchOp::Equal, "__tenant_id__", "t").unwrap()).unwrap();
        let text = e.to_string();
        assert_eq!(text.matches(r#"__tenant_id__="t""#).count(), 3, "{text}");
        let mut or = parser::parse(r#"x{a="1" or b="2"}"#).unwrap();
        restrict(&mut or, &Matcher::new(MatchOp::Regex, "__tenant_id__", "t|u").unwrap()).unwrap();
        assert_eq!(or.to_string().matches(r#"__tenant_id__=~"t|u""#).count(), 2, "{or}");
    }

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
