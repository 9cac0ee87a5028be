//! The seeded generator: random PromQL trees over the data set's metrics, type-correct
//! most of the time, with every 2.42 function, aggregation (with `by`/`without` and
//! parameters), operator (`bool`, `on`/`ignoring`, `group_left`/`group_right`), all four
//! matcher kinds with the three quoting styles, offsets (negative too), `@` (times,
//! `start()`, `end()`), subqueries (with and without a step), literals with NaN, Inf, hex
//! and exponents, nested up to depth 7; and now and then a type or syntax error.
//!
//! Every expression reads no further back than [`REACH_MS`] before its evaluation time (or
//! its `@` time), so no query touches the first minutes of data, and its subqueries stay
//! cheap (see [`cost`]).

use strata_bench::workload::Rng;

use crate::data::{Metric, catalog};
use crate::exclude;
use crate::expr::{
    AGGS, ARITH, At, CMP, Dur, Expr, FUNCS, Func, Grouping, Matcher, Matching, Mods, SET, Selector, Ty,
    is_cmp, is_set,
};

/// How far back from its evaluation (or `@`) time an expression may read.
pub const REACH_MS: i64 = 90 * 60_000;
/// The instant lookback both systems use.
pub const LOOKBACK_MS: i64 = 5 * 60_000;
/// Inner evaluations an instant query may cost (product of subquery point counts).
pub const MAX_COST: f64 = 2_000.0;

/// One generated test case: an expression and the step of its range query.
#[derive(Debug, Clone)]
pub struct Case {
    /// The expression.
    pub expr: Expr,
    /// Step of its range query, in milliseconds (a multiple of 500 ms).
    pub step_ms: i64,
}

/// Where in time the generator's `@` literals may point.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// First sample time of the data set (ms).
    pub data_start: i64,
}

impl Clock {
    /// The earliest time a query (or `@`) may be evaluated at: reach plus warm-up.
    pub fn earliest(&self) -> i64 {
        self.data_start + crate::data::WARMUP_MS + REACH_MS
    }
}

/// Counters of what the generator made and threw away.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    /// Expressions regenerated because of a VERSIONS.md exclusion, by reason.
    pub excluded: std::collections::BTreeMap<&'static str, usize>,
    /// Expressions regenerated because they read too far back or cost too much.
    pub too_far_or_costly: usize,
}

/// The generator.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    metrics: Vec<Metric>,
    clock: Clock,
    focus: Option<usize>,
    max_depth: usize,
    /// Probability that a slot gets an expression of another type (an error case).
    p_type_error: f64,
    /// What was thrown away.
    pub stats: GenStats,
}

const DURS: &[(&str, i64)] = &[
    ("30s", 30_000),
    ("1m", 60_000),
    ("2m", 120_000),
    ("5m", 300_000),
    ("10m", 600_000),
    ("15m", 900_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("1m30s", 90_000),
    ("45s", 45_000),
    ("7m", 420_000),
    ("90s", 90_000),
    ("20s", 20_000),
];
const OFFSETS: &[(&str, i64)] = &[
    ("1m", 60_000),
    ("5m", 300_000),
    ("30s", 30_000),
    ("10m", 600_000),
    ("1h", 3_600_000),
    ("90s", 90_000),
    ("1m30s", 90_000),
    ("17m", 1_020_000),
];
/// Offsets of a subquery evaluated at a subquery's steps (whole seconds): half a second
/// off, so that its window never starts on one of its own steps.
const HALF_OFFSETS: &[(&str, i64)] =
    &[("500ms", 500), ("1500ms", 1_500), ("30500ms", 30_500), ("2m500ms", 120_500)];
const SUB_RANGES: &[(&str, i64)] = &[
    ("5m", 300_000),
    ("10m", 600_000),
    ("30m", 1_800_000),
    ("2m", 120_000),
    ("1h", 3_600_000),
    ("4m30s", 270_000),
    ("30s", 30_000),
    ("45s", 45_000),
];
const SUB_STEPS: &[(&str, i64)] = &[
    ("30s", 30_000),
    ("1m", 60_000),
    ("2m", 120_000),
    ("15s", 15_000),
    ("10s", 10_000),
    ("90s", 90_000),
    ("20s", 20_000),
];
const RANGE_STEPS: &[i64] = &[30_000, 60_000, 90_000, 150_000, 45_000];

const NUMS: &[&str] = &[
    "0", "1", "2", "0.5", "3.14", "1e3", "1e-3", "0x1F", "0xff", "NaN", "Inf", "-Inf", "+Inf", "100",
    "1.5e2", ".5", "5.", "-0.5", "1e308", "nan", "inf", "2E2", "42", "-1", "1e-300", "0.1", "-2", "1E+2",
    "0X0A", "7",
];
const KS: &[&str] = &["0", "1", "2", "3", "1.5", "-1", "100", "0x2", "5"];
const PHIS: &[&str] = &["0", "0.5", "0.9", "1", "-0.5", "1.5", "NaN", "0.99", ".25", "0.1"];

impl Generator {
    /// A generator for `seed` over the data set's metrics.
    pub fn new(seed: u64, clock: Clock) -> Self {
        Generator {
            rng: Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1ff),
            metrics: catalog(),
            clock,
            focus: None,
            max_depth: 5,
            p_type_error: 0.008,
            stats: GenStats::default(),
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// The next test case (regenerated until it is within reach, cheap, and not excluded).
    pub fn case(&mut self) -> Case {
        loop {
            // depth 3 to 7, weighted toward 4-6
            self.max_depth = self.pick(&[3, 4, 4, 5, 5, 5, 6, 6, 7]);
            self.p_type_error = if self.chance(0.1) { 0.08 } else { 0.0 };
            let ty = match self.unit() {
                x if x < 0.78 => Ty::Vector,
                x if x < 0.95 => Ty::Scalar,
                x if x < 0.98 => Ty::Matrix,
                _ => Ty::Str,
            };
            let mut expr = self.expr_of(ty, 1);
            if self.chance(0.03) {
                expr = self.syntax_error(expr);
            }
            self.fix_timing(&mut expr, true);
            debug_assert!(timing_ok(&expr, true), "{expr}");
            if !reach_ok(&expr, 0) || !timing_ok(&expr, true) {
                self.stats.too_far_or_costly += 1;
                continue;
            }
            let c = cost(&expr);
            if c > MAX_COST {
                self.stats.too_far_or_costly += 1;
                continue;
            }
            if let Some(why) = exclude::static_exclusion(&expr) {
                *self.stats.excluded.entry(why).or_default() += 1;
                continue;
            }
            // range queries: at most ~60 points, fewer for costly expressions
            let mut step_ms = self.pick(RANGE_STEPS);
            while c * (1_800_000 / step_ms) as f64 > 20_000.0 && step_ms < 600_000 {
                step_ms *= 2;
            }
            return Case { expr, step_ms };
        }
    }

    /// An expression of type `ty` at depth `d` (1 = root); sometimes of another type.
    fn expr_of(&mut self, ty: Ty, d: usize) -> Expr {
        let ty = if d > 1 && self.chance(self.p_type_error) {
            self.pick(&[Ty::Scalar, Ty::Vector, Ty::Matrix, Ty::Str])
        } else {
            ty
        };
        let leaf = d >= self.max_depth || self.chance(((d as f64 - 1.0) / self.max_depth as f64).powi(2));
        match ty {
            Ty::Str => self.string_lit(&["foo", "value", "a-b", "x\\ty", "$1"]),
            Ty::Scalar => self.scalar(d, leaf),
            Ty::Matrix => self.matrix(d, leaf),
            Ty::Vector => self.vector(d, leaf),
        }
    }

    fn num(&mut self) -> Expr {
        Expr::Num(self.pick(NUMS).to_owned())
    }

    fn scalar(&mut self, d: usize, leaf: bool) -> Expr {
        if leaf {
            return match self.below(10) {
                0 => Expr::Call("time", vec![]),
                1 => Expr::Call("pi", vec![]),
                _ => self.num(),
            };
        }
        match self.below(12) {
            0..=2 => self.num(),
            3 | 4 => Expr::Call("scalar", vec![self.expr_of(Ty::Vector, d + 1)]),
            5 => Expr::Call("time", vec![]),
            6..=8 => {
                let op = self.pick(&[ARITH, CMP].concat());
                let b = is_cmp(op);
                Expr::Bin(
                    op,
                    b,
                    None,
                    Box::new(self.expr_of(Ty::Scalar, d + 1)),
                    Box::new(self.expr_of(Ty::Scalar, d + 1)),
                )
            }
            9 => Expr::Unary(self.chance(0.8), Box::new(self.expr_of(Ty::Scalar, d + 1))),
            _ => Expr::Paren(Box::new(self.expr_of(Ty::Scalar, d + 1))),
        }
    }

    fn dur(&mut self, from: &[(&str, i64)]) -> Dur {
        let (t, ms) = self.pick(from);
        Dur { ms, text: t.to_owned() }
    }

    fn mods(&mut self, p_offset: f64, p_at: f64) -> Mods {
        let mut m = Mods::default();
        if self.chance(p_offset) {
            let neg = self.chance(0.15);
            m.offset = Some((neg, self.dur(OFFSETS)));
        }
        if self.chance(p_at) {
            m.at = Some(match self.below(4) {
                0 => At::Start,
                1 => At::End,
                _ => {
                    // a whole or half second between the earliest query time and 5 m after the data
                    let lo = self.clock.earliest() / 1000;
                    let hi = (self.clock.data_start + crate::data::SPAN_MS) / 1000 + 300;
                    let s = lo + (self.rng.next_u64() % (hi - lo) as u64) as i64;
                    match self.below(2) {
                        0 => At::Time(format!("{s}.5"), s * 1000 + 500),
                        _ => At::Time(format!("{s}.500"), s * 1000 + 500),
                    }
                }
            });
        }
        m.at_first = self.chance(0.3);
        m
    }

    fn metric(&mut self) -> usize {
        let focus = self.focus;
        match focus {
            Some(f) if self.chance(0.7) => f,
            _ => self.below(self.metrics.len()),
        }
    }

    /// A string literal for `raw` in a random quoting style (raw must need no escaping
    /// beyond backslashes and the quote).
    fn string_lit(&mut self, choices: &[&str]) -> Expr {
        let raw = self.pick(choices).to_owned();
        Expr::Str(self.quote(&raw))
    }

    fn quote(&mut self, raw: &str) -> String {
        match self.below(10) {
            0 | 1 if !raw.contains('`') => format!("`{raw}`"),
            2 => format!("'{}'", raw.replace('\\', "\\\\").replace('\'', "\\'")),
            _ => format!("\"{}\"", raw.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }

    fn selector(&mut self) -> Selector {
        let m = self.metric();
        let metric = self.metrics[m].clone();
        let mut matchers = Vec::new();
        let name = match self.below(20) {
            0 | 1 => {
                matchers.push(Matcher { name: "__name__".into(), op: "=", value: self.quote(&metric.name) });
                None
            }
            2 => {
                let prefix: String = metric.name.chars().take(6).collect();
                let re = format!("{prefix}.*");
                matchers.push(Matcher { name: "__name__".into(), op: "=~", value: self.quote(&re) });
                None
            }
            _ => Some(metric.name.clone()),
        };
        let n = self.pick(&[0, 0, 0, 1, 1, 1, 1, 2, 2, 3]);
        for _ in 0..n {
            if metric.labels.is_empty() {
                break;
            }
            let (label, values) = metric.labels[self.below(metric.labels.len())].clone();
            let v = values[self.below(values.len())].clone();
            let w = values[self.below(values.len())].clone();
            let op = self.pick(&["=", "=", "=", "!=", "=~", "=~", "!~"]);
            let raw = if op.len() == 1 || op == "!=" {
                match self.below(10) {
                    0 => String::new(),
                    1 => "nope".into(),
                    _ => v,
                }
            } else {
                let esc = |s: &str| s.replace('.', "\\.").replace('+', "\\+");
                match self.below(8) {
                    0 => format!("{}|{}", esc(&v), esc(&w)),
                    1 => format!("{}.*", v.chars().take(2).collect::<String>().replace('.', "\\.")),
                    2 => ".+".into(),
                    3 => ".*".into(),
                    4 => String::new(),
                    5 => "(?i)".to_owned() + &esc(&v.to_uppercase()),
                    _ => esc(&v),
                }
            };
            let value = self.quote(&raw);
            matchers.push(Matcher { name: label, op, value });
        }
        if name.is_none() && matchers.len() == 1 && self.chance(0.1) {
            // a selector of empty-matching matchers only: an error
            matchers[0] = Matcher { name: "job".into(), op: "=~", value: "\".*\"".into() };
        }
        let braces = name.is_some() && matchers.is_empty() && self.chance(0.1);
        Selector { name, matchers, braces }
    }

    fn matrix(&mut self, d: usize, leaf: bool) -> Expr {
        if leaf || self.chance(0.75) {
            let s = self.selector();
            let r = self.dur(DURS);
            let m = self.mods(0.15, 0.08);
            return Expr::Range(s, r, m);
        }
        let inner = self.expr_of(Ty::Vector, d + 1);
        let r = self.dur(SUB_RANGES);
        let step = if self.chance(0.2) { None } else { Some(self.dur(SUB_STEPS)) };
        let m = self.mods(0.15, 0.1);
        Expr::Sub(Box::new(inner), r, step, m)
    }

    /// Gives every subquery evaluated at whole seconds (under another subquery, without
    /// `@`) a half-second offset; `half` says whether `e` is evaluated at .500.
    fn fix_timing(&mut self, e: &mut Expr, half: bool) {
        let inner_half = match e {
            Expr::Sub(_, _, _, m) => {
                let at = m.at.is_some();
                let off_half = m.offset_ms().rem_euclid(1000) == 500;
                if !(at || half || off_half) {
                    let neg = self.chance(0.15);
                    m.offset = Some((neg, self.dur(HALF_OFFSETS)));
                } else if (at || half) && off_half {
                    m.offset = None;
                }
                false
            }
            _ => half,
        };
        for c in e.children_mut() {
            self.fix_timing(c, inner_half);
        }
    }

    fn param(&mut self, d: usize, pool: &[&str]) -> Expr {
        if self.chance(0.85) {
            Expr::Num(self.pick(pool).to_owned())
        } else {
            self.expr_of(Ty::Scalar, d + 1)
        }
    }

    fn grouping_labels(&mut self) -> Vec<String> {
        let mut pool: Vec<String> =
            ["instance", "job", "le", "mode", "nonexistent", "method", "__name__", "device", "cpu", "status"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        if let Some(f) = self.focus {
            pool.extend(self.metrics[f].labels.iter().map(|(l, _)| l.clone()));
        }
        let n = self.pick(&[0, 1, 1, 1, 2, 2, 3]);
        let mut out: Vec<String> = Vec::new();
        for _ in 0..n {
            let l = pool[self.below(pool.len())].clone();
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    fn call(&mut self, f: &Func, d: usize) -> Expr {
        let mut n = f.args.len() - f.optional;
        while n < f.args.len() && self.chance(0.6) {
            n += 1;
        }
        let mut args = Vec::new();
        for (i, ty) in f.args.iter().take(n).enumerate() {
            let a = match (f.name, i, ty) {
                ("histogram_quantile" | "quantile_over_time", 0, _) => self.param(d, PHIS),
                ("label_replace", 1, _) => {
                    self.string_lit(&["dst", "instance", "job", "__name__", "le", "new_label", "", "mode"])
                }
                ("label_replace", 2, _) => {
                    self.string_lit(&["$1", "${1}x", "", "foo", "$2", "$1-$1", "$name"])
                }
                ("label_replace", 3, _) => {
                    self.string_lit(&["instance", "job", "nonexistent", "__name__", "le", "mode", "method"])
                }
                ("label_replace", 4, _) => self.string_lit(&[
                    "(.*)",
                    "(.*):.*",
                    "(.*):\\d+",
                    "host-(\\d+).*",
                    "(",
                    "",
                    ".*",
                    "([a-z]+)-(.*)",
                    "node_(.*)",
                    "0\\.5",
                ]),
                ("label_join", 1, _) => self.string_lit(&["dst", "instance", "job", "new_label", "le"]),
                ("label_join", 2, _) => self.string_lit(&["-", "", ",", ":", "\\"]),
                ("label_join", _, Ty::Str) => {
                    self.string_lit(&["instance", "job", "nonexistent", "mode", "le", "__name__", "method"])
                }
                (
                    "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
                    | "month" | "year",
                    0,
                    _,
                ) if self.chance(0.5) => {
                    // negative fractions, epoch seconds, NaN samples
                    let name = self.pick(&[
                        "app_balance",
                        "app_last_success_timestamp_seconds",
                        "app_temperature_celsius",
                    ]);
                    let m = self.mods(0.2, 0.1);
                    Expr::Sel(Selector { name: Some(name.to_owned()), matchers: vec![], braces: false }, m)
                }
                ("timestamp", 0, _) if self.chance(0.5) => {
                    let sel = self.selector();
                    let m = self.mods(0.6, 0.6);
                    Expr::Sel(sel, m)
                }
                ("predict_linear", 1, _) => self.param(d, &["3600", "0", "-600", "60", "1e3", "0.5"]),
                ("holt_winters", 1 | 2, _) => self.param(d, &["0.5", "0.1", "0.9", "1.5", "0"]),
                ("round", 1, _) => self.param(d, &["1", "0.5", "10", "0.1", "3", "-2", "0"]),
                (_, _, Ty::Scalar) => self.param(d, NUMS),
                (_, _, ty) => self.expr_of(*ty, d + 1),
            };
            args.push(a);
        }
        if f.variadic {
            for _ in 0..self.below(3) {
                args.push(self.string_lit(&["instance", "job", "nonexistent", "mode", "le"]));
            }
        }
        if self.p_type_error > 0.0 && self.chance(0.1) {
            // one argument too many or too few
            if self.chance(0.5) {
                args.push(self.num());
            } else {
                args.pop();
            }
        }
        Expr::Call(f.name, args)
    }

    fn vector(&mut self, d: usize, leaf: bool) -> Expr {
        if leaf {
            return match self.below(20) {
                0 => Expr::Call("vector", vec![self.num()]),
                1 => Expr::Call(self.pick(&["hour", "minute", "day_of_week", "month", "year"]), vec![]),
                _ => {
                    let s = self.selector();
                    let m = self.mods(0.12, 0.07);
                    Expr::Sel(s, m)
                }
            };
        }
        match self.below(100) {
            // functions over range vectors
            0..=21 => {
                let fs: Vec<&Func> = FUNCS.iter().filter(|f| f.args.contains(&Ty::Matrix)).collect();
                let f = *fs[self.below(fs.len())];
                self.call(&f, d)
            }
            // functions over instant vectors and the rest
            22..=39 => {
                let fs: Vec<&Func> =
                    FUNCS.iter().filter(|f| f.ret == Ty::Vector && !f.args.contains(&Ty::Matrix)).collect();
                let f = *fs[self.below(fs.len())];
                self.call(&f, d)
            }
            40..=59 => self.aggregation(d),
            60..=85 => self.binary(d),
            86..=89 => Expr::Unary(self.chance(0.85), Box::new(self.expr_of(Ty::Vector, d + 1))),
            90..=92 => Expr::Paren(Box::new(self.expr_of(Ty::Vector, d + 1))),
            93..=96 => {
                // a histogram: quantile over (summed) bucket rates
                let saved = self.focus;
                let buckets: Vec<usize> =
                    (0..self.metrics.len()).filter(|i| self.metrics[*i].name.ends_with("_bucket")).collect();
                self.focus = Some(buckets[self.below(buckets.len())]);
                let inner = if self.chance(0.6) {
                    let f = self.pick(&["rate", "increase", "irate", "delta"]);
                    let m = self.matrix(d + 2, true);
                    let r = Expr::Call(f, vec![m]);
                    if self.chance(0.6) {
                        let mut labels = vec!["le".to_owned()];
                        labels.extend(self.grouping_labels());
                        let g = Grouping { without: false, labels, first: self.chance(0.5) };
                        Expr::Agg("sum", None, Some(g), Box::new(r))
                    } else {
                        r
                    }
                } else {
                    self.expr_of(Ty::Vector, d + 1)
                };
                self.focus = saved;
                let phi = self.param(d, PHIS);
                Expr::Call("histogram_quantile", vec![phi, inner])
            }
            _ => {
                let s = self.selector();
                let m = self.mods(0.2, 0.15);
                Expr::Sel(s, m)
            }
        }
    }

    fn aggregation(&mut self, d: usize) -> Expr {
        let (op, param_ty) = self.pick(AGGS);
        let param = match (op, param_ty) {
            ("topk" | "bottomk", _) => Some(Box::new(Expr::Num(self.pick(KS).to_owned()))),
            ("quantile", _) => Some(Box::new(Expr::Num(self.pick(PHIS).to_owned()))),
            ("count_values", _) => {
                Some(Box::new(self.string_lit(&["value", "le", "instance", "v", "job", "count", "mode"])))
            }
            _ => None,
        };
        let grouping = if self.chance(0.6) {
            let labels = self.grouping_labels();
            Some(Grouping { without: self.chance(0.3), labels, first: self.chance(0.5) })
        } else {
            None
        };
        let inner = self.expr_of(Ty::Vector, d + 1);
        Expr::Agg(op, param, grouping, Box::new(inner))
    }

    fn binary(&mut self, d: usize) -> Expr {
        let saved = self.focus;
        if self.chance(0.7) {
            self.focus = Some(self.below(self.metrics.len()));
        }
        let shape = self.below(10);
        let (l, r) = match shape {
            0..=5 => (self.expr_of(Ty::Vector, d + 1), self.expr_of(Ty::Vector, d + 1)),
            6..=7 => (self.expr_of(Ty::Vector, d + 1), self.expr_of(Ty::Scalar, d + 1)),
            _ => (self.expr_of(Ty::Scalar, d + 1), self.expr_of(Ty::Vector, d + 1)),
        };
        self.focus = saved;
        let both_vectors = shape <= 5;
        let op = match self.below(10) {
            0..=4 => self.pick(ARITH),
            5..=7 => self.pick(CMP),
            _ if both_vectors => self.pick(SET),
            _ => self.pick(CMP),
        };
        let bool_mod = is_cmp(op) && self.chance(0.4);
        let matching = if both_vectors && self.chance(0.4) {
            let labels = self.grouping_labels();
            let group = if !is_set(op) && self.chance(0.35) {
                let extra = if self.chance(0.5) { vec![] } else { self.grouping_labels() };
                Some((self.chance(0.6), extra))
            } else {
                None
            };
            Some(Matching { on: self.chance(0.6), labels, group })
        } else {
            None
        };
        Expr::Bin(op, bool_mod, matching, Box::new(l), Box::new(r))
    }

    /// Turns a tree into one Prometheus must reject at parse time (kept as a tree, so
    /// the minimiser can still shrink it).
    fn syntax_error(&mut self, e: Expr) -> Expr {
        let s = || Expr::Num("1".into());
        match self.below(6) {
            // bool on arithmetic
            0 => Expr::Bin("+", true, None, Box::new(e), Box::new(s())),
            // scalar comparison without bool
            1 => Expr::Bin(">", false, None, Box::new(s()), Box::new(Expr::Num("2".into()))),
            // grouping modifier with a set operator
            2 => Expr::Bin(
                "and",
                false,
                Some(Matching { on: true, labels: vec!["instance".into()], group: Some((true, vec![])) }),
                Box::new(e.clone()),
                Box::new(e),
            ),
            // matching on a scalar operand
            3 => Expr::Bin(
                "*",
                false,
                Some(Matching { on: true, labels: vec![], group: None }),
                Box::new(e),
                Box::new(s()),
            ),
            // an unknown function
            4 => Expr::Call("not_a_function", vec![e]),
            // a range selector where a vector is expected
            _ => {
                let sel = self.selector();
                Expr::Call(
                    "abs",
                    vec![Expr::Range(sel, Dur { ms: 300_000, text: "5m".into() }, Mods::default())],
                )
            }
        }
    }
}

/// Whether every selector reads no further back than [`REACH_MS`] before its evaluation
/// time or `@` time; `acc` is what the path above already reaches back.
pub fn reach_ok(e: &Expr, acc: i64) -> bool {
    let start = |m: &Mods| if m.at.is_some() { 0 } else { acc } + m.offset_ms().max(0);
    match e {
        Expr::Sel(_, m) => start(m) + LOOKBACK_MS <= REACH_MS,
        Expr::Range(_, r, m) => start(m) + r.ms <= REACH_MS,
        Expr::Sub(inner, r, _, m) => {
            let a = start(m) + r.ms;
            a <= REACH_MS && reach_ok(inner, a)
        }
        _ => e.children().iter().all(|c| reach_ok(c, acc)),
    }
}

/// Whether no window of `e` can start exactly on a sample or on a subquery step (where
/// 2.42's closed and 3.x's left-open windows differ): every duration is whole seconds but a
/// subquery's offset, `@` times end in .500, and a subquery's window starts on .500 (its
/// steps are whole seconds); `half` says whether `e` is evaluated at .500.
pub fn timing_ok(e: &Expr, half: bool) -> bool {
    let whole = |ms: i64| ms % 1000 == 0;
    let at_ok = |m: &Mods| match &m.at {
        Some(At::Time(_, ms)) => ms.rem_euclid(1000) == 500,
        _ => true,
    };
    match e {
        Expr::Sel(_, m) => at_ok(m) && whole(m.offset_ms()),
        Expr::Range(_, r, m) => at_ok(m) && whole(m.offset_ms()) && whole(r.ms),
        Expr::Sub(inner, r, step, m) => {
            let eval_half = (m.at.is_some() || half) != (m.offset_ms().rem_euclid(1000) == 500);
            at_ok(m)
                && eval_half
                && whole(r.ms)
                && step.as_ref().is_none_or(|s| whole(s.ms))
                && m.offset_ms() % 500 == 0
                && timing_ok(inner, false)
        }
        _ => e.children().iter().all(|c| timing_ok(c, half)),
    }
}

/// Inner evaluations per outer one: the product of subquery point counts along the most
/// expensive path.
pub fn cost(e: &Expr) -> f64 {
    match e {
        Expr::Sub(inner, r, step, _) => {
            let step = step.as_ref().map_or(60_000, |s| s.ms).max(1);
            (r.ms / step).max(1) as f64 * cost(inner)
        }
        _ => e.children().iter().map(|c| cost(c)).fold(1.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_covers_the_language() {
        let clock = Clock { data_start: 1_700_000_000_000 };
        let a: Vec<String> = {
            let mut g = Generator::new(7, clock);
            (0..300).map(|_| g.case().expr.to_string()).collect()
        };
        let mut g = Generator::new(7, clock);
        let b: Vec<String> = (0..300).map(|_| g.case().expr.to_string()).collect();
        assert_eq!(a, b);
        let mut g = Generator::new(1, clock);
        let cases: Vec<Case> = (0..3000).map(|_| g.case()).collect();
        let text: String = cases.iter().map(|c| c.expr.to_string() + "\n").collect();
        for f in FUNCS {
            if ["holt_winters", "histogram_fraction"].contains(&f.name) {
                continue;
            }
            assert!(text.contains(&format!("{}(", f.name)), "{} never generated", f.name);
        }
        for needle in [
            "offset -",
            "@ start()",
            "@ end()",
            "group_left",
            "group_right",
            "ignoring(",
            "on(",
            "without (",
            "by (",
            "=~",
            "!~",
            "!=",
            "`",
            "'",
            "0x",
            "NaN",
            "Inf",
            "e-",
            ":]",
            "bool",
            "unless",
            " or ",
            " and ",
            "topk(",
            "count_values(",
            "quantile(",
            "atan2",
        ] {
            assert!(text.contains(needle), "{needle:?} never generated");
        }
        let deep = cases.iter().filter(|c| c.expr.depth() >= 4).count();
        assert!(deep * 3 > cases.len(), "only {deep} of depth 4 or more");
        assert!(cases.iter().any(|c| c.expr.depth() >= 7));
    }
}
