// Copyright 2026 The Strata Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Duration expressions (Prometheus 3.4+): arithmetic in range selectors, subquery ranges and
//! steps, and offsets, e.g. `x[5m+30s]`, `x[1h:2m*3] offset (2*3)`, `x[step()*2]`.
//!
//! Expressions made of literals only are folded while parsing, so the AST keeps plain
//! [`Duration`]s for them. Expressions that use the query's `step()` or `range()` stay as a
//! [`DurationExpr`] next to the field they set, for the engine to resolve with
//! [`DurationExpr::eval`] once it knows the query's step and range.

use std::fmt;
use std::time::Duration;

/// A binary operator of a duration expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    MinOf,
    MaxOf,
}

/// A duration expression; values are in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    /// A number of seconds (a duration literal or a plain number).
    Number(f64),
    /// The query's step (`step()`), 0 for an instant query.
    Step,
    /// The query's range, end − start (`range()`), 0 for an instant query.
    Range,
    /// `-e`.
    Neg(Box<DurationExpr>),
    /// `a op b`, or `min_of(a, b)` / `max_of(a, b)`.
    Binary(DurationOp, Box<DurationExpr>, Box<DurationExpr>),
    /// `(e)`, kept for printing.
    Paren(Box<DurationExpr>),
}

impl DurationExpr {
    /// `step()`, `range()`: the query-dependent atoms (names case-insensitive).
    pub(crate) fn query_fn(name: &str) -> Result<Self, String> {
        match name.to_lowercase().as_str() {
            "step" => Ok(DurationExpr::Step),
            "range" => Ok(DurationExpr::Range),
            _ => Err(format!(
                "unexpected function {name}() in duration, expected step() or range()"
            )),
        }
    }

    /// `min_of(a, b)`, `max_of(a, b)`.
    pub(crate) fn min_max(name: &str, a: Self, b: Self) -> Result<Self, String> {
        let op = match name.to_lowercase().as_str() {
            "min_of" => DurationOp::MinOf,
            "max_of" => DurationOp::MaxOf,
            _ => {
                return Err(format!(
                    "unexpected function {name}() in duration, expected min_of() or max_of()"
                ))
            }
        };
        Ok(DurationExpr::Binary(op, Box::new(a), Box::new(b)))
    }

    /// `a op b`; a literal zero divisor is an error as in Prometheus.
    pub(crate) fn binary(op: DurationOp, a: Self, b: Self) -> Result<Self, String> {
        if b == DurationExpr::Number(0.0) {
            match op {
                DurationOp::Div => return Err("division by zero".into()),
                DurationOp::Mod => return Err("modulo by zero".into()),
                _ => {}
            }
        }
        Ok(DurationExpr::Binary(op, Box::new(a), Box::new(b)))
    }

    /// Whether the value depends on the query (`step()`, `range()`).
    pub fn is_constant(&self) -> bool {
        match self {
            DurationExpr::Number(_) => true,
            DurationExpr::Step | DurationExpr::Range => false,
            DurationExpr::Neg(e) | DurationExpr::Paren(e) => e.is_constant(),
            DurationExpr::Binary(_, a, b) => a.is_constant() && b.is_constant(),
        }
    }

    /// The value in seconds, for a query with this step and range (both in seconds).
    pub fn eval(&self, step: f64, range: f64) -> f64 {
        match self {
            DurationExpr::Number(v) => *v,
            DurationExpr::Step => step,
            DurationExpr::Range => range,
            DurationExpr::Neg(e) => -e.eval(step, range),
            DurationExpr::Paren(e) => e.eval(step, range),
            DurationExpr::Binary(op, a, b) => {
                let (x, y) = (a.eval(step, range), b.eval(step, range));
                match op {
                    DurationOp::Add => x + y,
                    DurationOp::Sub => x - y,
                    DurationOp::Mul => x * y,
                    DurationOp::Div => x / y,
                    DurationOp::Mod => x % y,
                    DurationOp::Pow => x.powf(y),
                    DurationOp::MinOf => x.min(y),
                    DurationOp::MaxOf => x.max(y),
                }
            }
        }
    }

    /// A value in seconds as a duration, rounded to nanoseconds as Prometheus does; `None`
    /// when negative or not finite.
    pub fn to_duration(secs: f64) -> Option<Duration> {
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_nanos((secs * 1e9).round() as u64))
    }
}

impl fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationExpr::Number(v) => match DurationExpr::to_duration(*v) {
                Some(d) if v.fract() != 0.0 || *v >= 1.0 || *v == 0.0 => {
                    write!(f, "{}", crate::util::duration::display_duration(&d))
                }
                _ => write!(f, "{v}"),
            },
            DurationExpr::Step => write!(f, "step()"),
            DurationExpr::Range => write!(f, "range()"),
            DurationExpr::Neg(e) => write!(f, "-{e}"),
            DurationExpr::Paren(e) => write!(f, "({e})"),
            DurationExpr::Binary(op, a, b) => match op {
                DurationOp::MinOf => write!(f, "min_of({a}, {b})"),
                DurationOp::MaxOf => write!(f, "max_of({a}, {b})"),
                _ => {
                    let sym = match op {
                        DurationOp::Add => "+",
                        DurationOp::Sub => "-",
                        DurationOp::Mul => "*",
                        DurationOp::Div => "/",
                        DurationOp::Mod => "%",
                        _ => "^",
                    };
                    write!(f, "{a} {sym} {b}")
                }
            },
        }
    }
}
