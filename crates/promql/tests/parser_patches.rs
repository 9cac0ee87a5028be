//! The Prometheus 3 syntax Strata's fork of promql-parser adds (`vendor/promql-parser/
//! PATCHES.md`): duration expressions, histogram trim operators, `anchored`/`smoothed`.

use std::time::Duration;

use promql_parser::parser::{Expr, Offset, parse};

fn range_of(q: &str) -> Duration {
    match parse(q).expect("parses") {
        Expr::Call(c) => match *c.args.args[0].clone() {
            Expr::MatrixSelector(ms) => ms.range,
            Expr::Subquery(sq) => sq.range,
            e => panic!("{e:?}"),
        },
        e => panic!("{e:?}"),
    }
}

#[test]
fn constant_expressions_fold_while_parsing() {
    let m30 = Duration::from_secs(1800);
    for q in [
        "changes(x[26m+4m])",
        "changes(x[1800])",
        "changes(x[60*30])",
        "changes(x[2m*(10+5)])",
        "changes(x[25m+((1.5*2m)+2m)])",
        "changes(x[-5m+35m])",
        "changes(x[1h/2])",
        "changes(x[1h30m % 1h])",
        "changes(x[30m1s-30m1s % 1m])",
        "changes(x[(9m30s+30s)*3])",
        "sum_over_time(x[29m+1m:5s+5s])",
    ] {
        assert_eq!(range_of(q), m30, "{q}");
    }
}

#[test]
fn offsets_bind_tighter_than_binary_operators() {
    // `x offset 100 + 2` is `(x offset 100) + 2`
    let Expr::Binary(b) = parse("x offset 100 + 2").expect("parses") else { panic!() };
    let Expr::VectorSelector(vs) = *b.lhs else { panic!() };
    assert_eq!(vs.offset, Some(Offset::Pos(Duration::from_secs(100))));
    // `x offset -2 ^ 2` is `(x offset -2) ^ 2`
    let Expr::Binary(b) = parse("x offset -2 ^ 2").expect("parses") else { panic!() };
    let Expr::VectorSelector(vs) = *b.lhs else { panic!() };
    assert_eq!(vs.offset, Some(Offset::Neg(Duration::from_secs(2))));
    // parenthesised, the expression is the offset: -(2^2)
    let Expr::VectorSelector(vs) = parse("x offset (-2 ^ 2)").expect("parses") else { panic!() };
    assert_eq!(vs.offset, Some(Offset::Neg(Duration::from_secs(4))));
}

#[test]
fn query_dependent_expressions_stay_expressions() {
    let Expr::Call(c) = parse("count_over_time(x[step()+1ms])").expect("parses") else { panic!() };
    let Expr::MatrixSelector(ms) = *c.args.args[0].clone() else { panic!() };
    let e = ms.range_expr.expect("expression kept");
    assert_eq!(e.eval(10.0, 0.0), 10.001);
    let Expr::VectorSelector(vs) = parse("x offset min_of(step(), 1s)").expect("parses") else { panic!() };
    let Some(Offset::Expr(e)) = vs.offset else { panic!() };
    assert_eq!(e.eval(5.0, 0.0), 1.0);
}

#[test]
fn zero_divisors_and_empty_ranges_are_errors() {
    assert!(parse("x[1m/0]").is_err());
    assert!(parse("x[1m%0]").is_err());
    assert!(parse("rate(x[1m-1m])").is_err());
}

#[test]
fn trim_operators_parse_as_binary_operators() {
    for (q, op) in [("h </ 2", "</"), ("h >/ -1", ">/")] {
        let Expr::Binary(b) = parse(q).expect("parses") else { panic!("{q}") };
        assert_eq!(b.op.to_string(), op);
    }
}

#[test]
fn anchored_and_smoothed_mark_the_selector() {
    let Expr::Call(c) = parse("increase(x[1m] anchored)").expect("parses") else { panic!() };
    let Expr::MatrixSelector(ms) = *c.args.args[0].clone() else { panic!() };
    assert!(ms.vs.anchored && !ms.vs.smoothed);
    let Expr::VectorSelector(vs) = parse("x smoothed").expect("parses") else { panic!() };
    assert!(vs.smoothed);
    assert!(parse("x[1m] anchored smoothed").is_err());
    assert!(parse("rate(x[5m:1m] anchored)").is_err());
    // still metric names
    assert!(matches!(parse("anchored").expect("parses"), Expr::VectorSelector(_)));
}

#[test]
fn only_the_data_label_selector_of_info_may_match_everything() {
    assert!(parse(r#"info(x, {data=~".*"})"#).is_ok());
    for q in ["{}", r#"{a=~".*"}"#, r#"rate({a=""}[5m])"#, r#"sum({a=~".*"})"#, r#"info({a=~".*"})"#] {
        assert_eq!(
            parse(q).err().as_deref(),
            Some("vector selector must contain at least one non-empty matcher"),
            "{q}"
        );
    }
}
