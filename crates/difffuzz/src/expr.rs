//! The PromQL syntax tree the generator builds, the minimiser shrinks and both print as
//! query text (with the fewest parentheses that keep the tree's meaning).

use std::fmt;

/// The type of a PromQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// A number.
    Scalar,
    /// An instant vector.
    Vector,
    /// A range vector.
    Matrix,
    /// A string.
    Str,
}

/// A duration as written (`5m`, `1m30s`, `1500ms`) and its length.
#[derive(Debug, Clone, PartialEq)]
pub struct Dur {
    /// Length in milliseconds.
    pub ms: i64,
    /// The text written in the query.
    pub text: String,
}

/// The time an `@` modifier pins to.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    /// `@ start()`.
    Start,
    /// `@ end()`.
    End,
    /// `@ <number>` (Unix seconds, as written, and in milliseconds).
    Time(String, i64),
}

/// `offset` and `@` of a selector or subquery.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mods {
    /// `offset <d>` (negative allowed: `offset -5m`).
    pub offset: Option<(bool, Dur)>,
    /// `@ <t>`.
    pub at: Option<At>,
    /// Print `@` before `offset`.
    pub at_first: bool,
}

impl Mods {
    /// No modifier.
    pub fn is_empty(&self) -> bool {
        self.offset.is_none() && self.at.is_none()
    }

    /// The offset in milliseconds (negative for `offset -d`).
    pub fn offset_ms(&self) -> i64 {
        self.offset.as_ref().map_or(0, |(neg, d)| if *neg { -d.ms } else { d.ms })
    }
}

/// One label matcher; `value` is the literal as written (with its quotes).
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    /// The string literal, quotes included.
    pub value: String,
}

/// An instant vector selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// The metric name before the braces, if any.
    pub name: Option<String>,
    /// Matchers in braces.
    pub matchers: Vec<Matcher>,
    /// Print `{}` even without matchers.
    pub braces: bool,
}

/// `by (...)` or `without (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// `without` rather than `by`.
    pub without: bool,
    /// The labels.
    pub labels: Vec<String>,
    /// Print the clause before the parenthesised argument (`sum by (x) (v)`).
    pub first: bool,
}

/// Vector matching of a binary operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// `on` rather than `ignoring`.
    pub on: bool,
    /// The labels of `on`/`ignoring`.
    pub labels: Vec<String>,
    /// `group_left` (`Some(true)`) or `group_right` (`Some(false)`) with its labels.
    pub group: Option<(bool, Vec<String>)>,
}

/// A PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number literal as written (`1e3`, `0x1F`, `NaN`, `Inf`).
    Num(String),
    /// A string literal as written (quotes included).
    Str(String),
    /// An instant vector selector with modifiers.
    Sel(Selector, Mods),
    /// A range vector selector `sel[range]` with modifiers.
    Range(Selector, Dur, Mods),
    /// A subquery `expr[range:step]` with modifiers.
    Sub(Box<Expr>, Dur, Option<Dur>, Mods),
    /// A function call.
    Call(&'static str, Vec<Expr>),
    /// An aggregation with its parameter and grouping.
    Agg(&'static str, Option<Box<Expr>>, Option<Grouping>, Box<Expr>),
    /// A binary operation: operator, `bool`, matching, operands.
    Bin(&'static str, bool, Option<Matching>, Box<Expr>, Box<Expr>),
    /// Unary `-` (true) or `+` (false).
    Unary(bool, Box<Expr>),
    /// Parentheses the tree does not need (written anyway).
    Paren(Box<Expr>),
}

/// A function of PromQL 2.42: name, argument types, how many trailing arguments are
/// optional, whether the last argument repeats, result type.
#[derive(Debug, Clone, Copy)]
pub struct Func {
    /// Name.
    pub name: &'static str,
    /// Argument types.
    pub args: &'static [Ty],
    /// Trailing optional arguments.
    pub optional: usize,
    /// The last argument repeats (label_join).
    pub variadic: bool,
    /// Result type.
    pub ret: Ty,
}

const fn f(name: &'static str, args: &'static [Ty], optional: usize, ret: Ty) -> Func {
    Func { name, args, optional, variadic: false, ret }
}

use Ty::{Matrix as M, Scalar as S, Str as T, Vector as V};

/// Every function Prometheus 2.42 knows (70).
pub const FUNCS: &[Func] = &[
    f("abs", &[V], 0, V),
    f("absent", &[V], 0, V),
    f("absent_over_time", &[M], 0, V),
    f("acos", &[V], 0, V),
    f("acosh", &[V], 0, V),
    f("asin", &[V], 0, V),
    f("asinh", &[V], 0, V),
    f("atan", &[V], 0, V),
    f("atanh", &[V], 0, V),
    f("avg_over_time", &[M], 0, V),
    f("ceil", &[V], 0, V),
    f("changes", &[M], 0, V),
    f("clamp", &[V, S, S], 0, V),
    f("clamp_max", &[V, S], 0, V),
    f("clamp_min", &[V, S], 0, V),
    f("cos", &[V], 0, V),
    f("cosh", &[V], 0, V),
    f("count_over_time", &[M], 0, V),
    f("days_in_month", &[V], 1, V),
    f("day_of_month", &[V], 1, V),
    f("day_of_week", &[V], 1, V),
    f("day_of_year", &[V], 1, V),
    f("deg", &[V], 0, V),
    f("delta", &[M], 0, V),
    f("deriv", &[M], 0, V),
    f("exp", &[V], 0, V),
    f("floor", &[V], 0, V),
    f("histogram_count", &[V], 0, V),
    f("histogram_sum", &[V], 0, V),
    f("histogram_fraction", &[S, S, V], 0, V),
    f("histogram_quantile", &[S, V], 0, V),
    f("holt_winters", &[M, S, S], 0, V),
    f("hour", &[V], 1, V),
    f("idelta", &[M], 0, V),
    f("increase", &[M], 0, V),
    f("irate", &[M], 0, V),
    f("label_replace", &[V, T, T, T, T], 0, V),
    Func { name: "label_join", args: &[V, T, T, T], optional: 1, variadic: true, ret: V },
    f("last_over_time", &[M], 0, V),
    f("ln", &[V], 0, V),
    f("log10", &[V], 0, V),
    f("log2", &[V], 0, V),
    f("max_over_time", &[M], 0, V),
    f("min_over_time", &[M], 0, V),
    f("minute", &[V], 1, V),
    f("month", &[V], 1, V),
    f("pi", &[], 0, S),
    f("predict_linear", &[M, S], 0, V),
    f("present_over_time", &[M], 0, V),
    f("quantile_over_time", &[S, M], 0, V),
    f("rad", &[V], 0, V),
    f("rate", &[M], 0, V),
    f("resets", &[M], 0, V),
    f("round", &[V, S], 1, V),
    f("scalar", &[V], 0, S),
    f("sgn", &[V], 0, V),
    f("sin", &[V], 0, V),
    f("sinh", &[V], 0, V),
    f("sort", &[V], 0, V),
    f("sort_desc", &[V], 0, V),
    f("sqrt", &[V], 0, V),
    f("stddev_over_time", &[M], 0, V),
    f("stdvar_over_time", &[M], 0, V),
    f("sum_over_time", &[M], 0, V),
    f("tan", &[V], 0, V),
    f("tanh", &[V], 0, V),
    f("time", &[], 0, S),
    f("timestamp", &[V], 0, V),
    f("vector", &[S], 0, V),
    f("year", &[V], 1, V),
];

/// The function named `name`.
pub fn func(name: &str) -> Option<&'static Func> {
    FUNCS.iter().find(|f| f.name == name)
}

/// Aggregation operators of 2.42 and their parameter type.
pub const AGGS: &[(&str, Option<Ty>)] = &[
    ("sum", None),
    ("avg", None),
    ("min", None),
    ("max", None),
    ("count", None),
    ("group", None),
    ("stddev", None),
    ("stdvar", None),
    ("topk", Some(S)),
    ("bottomk", Some(S)),
    ("quantile", Some(S)),
    ("count_values", Some(T)),
];

/// Arithmetic operators.
pub const ARITH: &[&str] = &["+", "-", "*", "/", "%", "^", "atan2"];
/// Comparison operators.
pub const CMP: &[&str] = &["==", "!=", ">", "<", ">=", "<="];
/// Set operators.
pub const SET: &[&str] = &["and", "or", "unless"];

/// Whether `op` is a comparison.
pub fn is_cmp(op: &str) -> bool {
    CMP.contains(&op)
}

/// Whether `op` is a set operator.
pub fn is_set(op: &str) -> bool {
    SET.contains(&op)
}

fn prec(op: &str) -> u8 {
    match op {
        "or" => 1,
        "and" | "unless" => 2,
        "==" | "!=" | ">" | "<" | ">=" | "<=" => 3,
        "+" | "-" => 4,
        "*" | "/" | "%" | "atan2" => 5,
        _ => 6, // ^
    }
}

impl Expr {
    /// The type the expression has when well typed.
    pub fn ty(&self) -> Ty {
        match self {
            Expr::Num(_) => Ty::Scalar,
            Expr::Str(_) => Ty::Str,
            Expr::Sel(..) | Expr::Agg(..) => Ty::Vector,
            Expr::Range(..) | Expr::Sub(..) => Ty::Matrix,
            Expr::Call(name, _) => func(name).map_or(Ty::Vector, |f| f.ret),
            Expr::Bin(_, _, _, l, r) => {
                if l.ty() == Ty::Scalar && r.ty() == Ty::Scalar {
                    Ty::Scalar
                } else {
                    Ty::Vector
                }
            }
            Expr::Unary(_, e) | Expr::Paren(e) => e.ty(),
        }
    }

    /// The direct children.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Num(_) | Expr::Str(_) | Expr::Sel(..) | Expr::Range(..) => vec![],
            Expr::Sub(e, ..) | Expr::Unary(_, e) | Expr::Paren(e) => vec![e],
            Expr::Call(_, a) => a.iter().collect(),
            Expr::Agg(_, p, _, e) => p.iter().map(|b| &**b).chain([&**e]).collect(),
            Expr::Bin(_, _, _, l, r) => vec![l, r],
        }
    }

    /// The direct children, mutable.
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Num(_) | Expr::Str(_) | Expr::Sel(..) | Expr::Range(..) => vec![],
            Expr::Sub(e, ..) | Expr::Unary(_, e) | Expr::Paren(e) => vec![e],
            Expr::Call(_, a) => a.iter_mut().collect(),
            Expr::Agg(_, p, _, e) => {
                let mut v: Vec<&mut Expr> = p.iter_mut().map(|b| &mut **b).collect();
                v.push(e);
                v
            }
            Expr::Bin(_, _, _, l, r) => vec![l, r],
        }
    }

    /// Every node, pre-order.
    pub fn nodes(&self) -> Vec<&Expr> {
        let mut out = vec![self];
        for c in self.children() {
            out.extend(c.nodes());
        }
        out
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        1 + self.children().iter().map(|c| c.size()).sum::<usize>()
    }

    /// Nesting depth (a leaf is 1).
    pub fn depth(&self) -> usize {
        1 + self.children().iter().map(|c| c.depth()).max().unwrap_or(0)
    }

    /// Whether any node satisfies `p`.
    pub fn any(&self, p: &dyn Fn(&Expr) -> bool) -> bool {
        p(self) || self.children().iter().any(|c| c.any(p))
    }

    /// Whether the tree calls function or aggregation `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.any(&|e| match e {
            Expr::Call(n, _) | Expr::Agg(n, ..) => *n == name,
            Expr::Bin(op, ..) => *op == name,
            _ => false,
        })
    }

    /// The node at pre-order index `i`, mutable.
    pub fn node_mut(&mut self, i: usize) -> Option<&mut Expr> {
        let mut n = i;
        self.node_mut_inner(&mut n)
    }

    fn node_mut_inner(&mut self, n: &mut usize) -> Option<&mut Expr> {
        if *n == 0 {
            return Some(self);
        }
        *n -= 1;
        for c in self.children_mut() {
            if let Some(x) = c.node_mut_inner(n) {
                return Some(x);
            }
        }
        None
    }

    /// Binding strength when printed: atoms 10, unary 7, binary by operator.
    fn strength(&self) -> u8 {
        match self {
            Expr::Bin(op, ..) => prec(op),
            Expr::Unary(..) => 7,
            Expr::Num(t) if t.starts_with('-') || t.starts_with('+') => 7,
            _ => 10,
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    write!(f, "(")?;
    for (i, l) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{l}")?;
    }
    write!(f, ")")
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.name {
            write!(f, "{n}")?;
        }
        if !self.matchers.is_empty() || self.braces || self.name.is_none() {
            write!(f, "{{")?;
            for (i, m) in self.matchers.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{}{}{}", m.name, m.op, m.value)?;
            }
            write!(f, "}}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Mods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            if let Some((neg, d)) = &self.offset {
                write!(f, " offset {}{}", if *neg { "-" } else { "" }, d.text)?;
            }
            Ok(())
        };
        let at = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            match &self.at {
                Some(At::Start) => write!(f, " @ start()"),
                Some(At::End) => write!(f, " @ end()"),
                Some(At::Time(t, _)) => write!(f, " @ {t}"),
                None => Ok(()),
            }
        };
        if self.at_first {
            at(f)?;
            off(f)
        } else {
            off(f)?;
            at(f)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Num(t) | Expr::Str(t) => write!(f, "{t}"),
            Expr::Sel(s, m) => write!(f, "{s}{m}"),
            Expr::Range(s, d, m) => write!(f, "{s}[{}]{m}", d.text),
            Expr::Sub(e, r, step, m) => {
                let inner = match **e {
                    Expr::Bin(..) | Expr::Unary(..) => format!("({e})"),
                    Expr::Num(ref t) if t.starts_with('-') || t.starts_with('+') => format!("({e})"),
                    _ => e.to_string(),
                };
                write!(f, "{inner}[{}:{}]{m}", r.text, step.as_ref().map_or("", |s| s.text.as_str()))
            }
            Expr::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
            Expr::Agg(op, param, grouping, e) => {
                let clause = |f: &mut fmt::Formatter<'_>, g: &Grouping| -> fmt::Result {
                    write!(f, "{}", if g.without { "without " } else { "by " })?;
                    write_list(f, &g.labels)
                };
                write!(f, "{op}")?;
                if let Some(g) = grouping.as_ref().filter(|g| g.first) {
                    write!(f, " ")?;
                    clause(f, g)?;
                    write!(f, " ")?;
                }
                write!(f, "(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{e})")?;
                if let Some(g) = grouping.as_ref().filter(|g| !g.first) {
                    write!(f, " ")?;
                    clause(f, g)?;
                }
                Ok(())
            }
            Expr::Bin(op, b, matching, l, r) => {
                let p = prec(op);
                let right_assoc = *op == "^";
                // unary operands always get parentheses: the grammar gives unary minus the
                // precedence of `*`, which is easy to get wrong
                let lp = l.strength() == 7 || l.strength() < p || (l.strength() == p && right_assoc);
                let rp = r.strength() == 7 || r.strength() < p || (r.strength() == p && !right_assoc);
                if lp {
                    write!(f, "({l})")?;
                } else {
                    write!(f, "{l}")?;
                }
                write!(f, " {op}")?;
                if *b {
                    write!(f, " bool")?;
                }
                if let Some(m) = matching {
                    write!(f, " {}", if m.on { "on" } else { "ignoring" })?;
                    write_list(f, &m.labels)?;
                    if let Some((left, labels)) = &m.group {
                        write!(f, " {}", if *left { "group_left" } else { "group_right" })?;
                        if !labels.is_empty() {
                            write_list(f, labels)?;
                        }
                    }
                }
                if rp { write!(f, " ({r})") } else { write!(f, " {r}") }
            }
            Expr::Unary(neg, e) => {
                let s = if *neg { "-" } else { "+" };
                match **e {
                    Expr::Bin(..) | Expr::Unary(..) => write!(f, "{s}({e})"),
                    Expr::Num(ref t) if t.starts_with('-') || t.starts_with('+') => write!(f, "{s}({e})"),
                    _ => write!(f, "{s}{e}"),
                }
            }
            Expr::Paren(e) => write!(f, "({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(n: &str) -> Expr {
        Expr::Sel(Selector { name: Some(n.into()), matchers: vec![], braces: false }, Mods::default())
    }

    #[test]
    fn prints_the_fewest_parentheses_that_keep_the_tree() {
        let a = || Box::new(sel("a"));
        let sum = Expr::Bin("+", false, None, a(), a());
        let e = Expr::Bin("*", false, None, Box::new(sum.clone()), a());
        assert_eq!(e.to_string(), "(a + a) * a");
        let e = Expr::Bin("-", false, None, a(), Box::new(Expr::Bin("-", false, None, a(), a())));
        assert_eq!(e.to_string(), "a - (a - a)");
        let e = Expr::Bin("^", false, None, Box::new(Expr::Bin("^", false, None, a(), a())), a());
        assert_eq!(e.to_string(), "(a ^ a) ^ a");
        let e = Expr::Unary(true, Box::new(sum));
        assert_eq!(e.to_string(), "-(a + a)");
        assert_eq!(FUNCS.len(), 70);
    }
}
