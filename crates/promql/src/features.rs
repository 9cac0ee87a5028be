//! Prometheus's feature flags for PromQL: what a default Prometheus 3 server rejects
//! unless `--enable-feature=…` turns it on. Queries using a disabled feature fail as
//! Prometheus's parser fails them (`bad_data`, same messages).

use promql_parser::parser::Expr;

use crate::error::{QueryError, Result};

/// The PromQL features Prometheus gates behind `--enable-feature`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `promql-experimental-functions`: `limitk`, `limit_ratio`, `info`, `mad_over_time`,
    /// `ts_of_*_over_time`, `sort_by_label*`, `double_exponential_smoothing`,
    /// `histogram_quantiles`, `start()`/`end()`/`range()`/`step()`, `min_of`/`max_of`,
    /// `start_timestamp`. Default off.
    pub experimental_functions: bool,
    /// `promql-delayed-name-removal`: `__name__` is removed when the query ends, not by
    /// each operation. Default off.
    pub delayed_name_removal: bool,
    /// `promql-extended-range-selectors`: the `anchored` and `smoothed` modifiers. Default off.
    pub extended_range_selectors: bool,
    /// `promql-binop-fill-modifiers`: `fill`, `fill_left`, `fill_right`. Default off.
    pub binop_fill_modifiers: bool,
}

/// The Prometheus feature names this engine knows.
pub const FEATURE_NAMES: [&str; 4] = [
    "promql-experimental-functions",
    "promql-delayed-name-removal",
    "promql-extended-range-selectors",
    "promql-binop-fill-modifiers",
];

/// Functions Prometheus marks experimental.
const EXPERIMENTAL_FUNCTIONS: [&str; 17] = [
    "double_exponential_smoothing",
    "end",
    "histogram_quantiles",
    "info",
    "mad_over_time",
    "max_of",
    "min_of",
    "range",
    "sort_by_label",
    "sort_by_label_desc",
    "start",
    "start_timestamp",
    "step",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
];

impl Features {
    /// Every feature on (Prometheus's own test harness runs this way).
    pub fn all() -> Features {
        Features {
            experimental_functions: true,
            delayed_name_removal: true,
            extended_range_selectors: true,
            binop_fill_modifiers: true,
        }
    }

    /// Turns on a feature by its Prometheus name; `false` for a name it does not know.
    pub fn enable(&mut self, name: &str) -> bool {
        match name {
            "promql-experimental-functions" => self.experimental_functions = true,
            "promql-delayed-name-removal" => self.delayed_name_removal = true,
            "promql-extended-range-selectors" => self.extended_range_selectors = true,
            "promql-binop-fill-modifiers" => self.binop_fill_modifiers = true,
            _ => return false,
        }
        true
    }

    /// Fails on the first use of a feature that is off.
    pub fn check(&self, e: &Expr) -> Result<()> {
        let off = |msg: String| Err(QueryError::Parse(msg));
        match e {
            Expr::VectorSelector(vs) => self.check_selector(vs.anchored, vs.smoothed),
            Expr::MatrixSelector(ms) => self.check_selector(ms.vs.anchored, ms.vs.smoothed),
            Expr::Call(c) => {
                if !self.experimental_functions && EXPERIMENTAL_FUNCTIONS.contains(&c.func.name) {
                    return off(format!("function {:?} is not enabled", c.func.name));
                }
                c.args.args.iter().try_for_each(|a| self.check(a))
            }
            Expr::Aggregate(a) => {
                let op = a.op.to_string();
                if !self.experimental_functions && matches!(op.as_str(), "limitk" | "limit_ratio") {
                    return off(format!(
                        "{op}() is experimental and must be enabled with --enable-feature=promql-experimental-functions"
                    ));
                }
                self.check(&a.expr)?;
                a.param.as_deref().map_or(Ok(()), |p| self.check(p))
            }
            Expr::Binary(b) => {
                let fill = b
                    .modifier
                    .as_ref()
                    .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some());
                if fill && !self.binop_fill_modifiers {
                    return off("binop fill modifiers are experimental and not enabled".into());
                }
                self.check(&b.lhs)?;
                self.check(&b.rhs)
            }
            Expr::Unary(u) => self.check(&u.expr),
            Expr::Paren(p) => self.check(&p.expr),
            Expr::Subquery(s) => self.check(&s.expr),
            _ => Ok(()),
        }
    }

    fn check_selector(&self, anchored: bool, smoothed: bool) -> Result<()> {
        if self.extended_range_selectors {
            return Ok(());
        }
        let m = if anchored {
            "anchored"
        } else if smoothed {
            "smoothed"
        } else {
            return Ok(());
        };
        Err(QueryError::Parse(format!("{m} modifier is experimental and not enabled")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: Features, q: &str) -> std::result::Result<(), String> {
        f.check(&crate::parse(q).expect("parses")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_default_server_rejects_experimental_syntax_with_prometheus_messages() {
        let f = Features::default();
        assert_eq!(check(f, "mad_over_time(x[5m])"), Err("function \"mad_over_time\" is not enabled".into()));
        assert!(check(f, "sum(limitk(2, x))").unwrap_err().contains("limitk() is experimental"));
        assert_eq!(
            check(f, "rate(x[5m] anchored)"),
            Err("anchored modifier is experimental and not enabled".into())
        );
        assert_eq!(
            check(f, "a + fill(0) b"),
            Err("binop fill modifiers are experimental and not enabled".into())
        );
        assert_eq!(check(f, "rate(x[5m]) + on(a) group_left b"), Ok(()));
        assert_eq!(check(Features::all(), "mad_over_time(x[5m] ) + fill(0) limitk(1, y)"), Ok(()));
    }
}
