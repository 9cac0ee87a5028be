//! Binary operators: arithmetic, comparison (filtering or `bool`), set operators, with
//! Prometheus's vector matching (`on`, `ignoring`, `group_left`, `group_right`).

use rustc_hash::FxHashMap;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality, VectorMatchFillValues};
use strata_tsdb::Labels;

use crate::error::{QueryError, Result};
use crate::eval::Ctx;
use std::sync::Arc;

use strata_tsdb::histogram::CounterResetHint;

use crate::Annotations;
use crate::grid::{Out, Val, drop_name, only, vals_by_step, with_label, without};
use crate::value::{Series, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
    TrimUpper,
    TrimLower,
}

impl Op {
    fn parse(s: &str) -> Result<Op> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            "</" => Op::TrimUpper,
            ">/" => Op::TrimLower,
            other => {
                return Err(QueryError::Parse(format!("unsupported binary operator {other:?}")));
            }
        })
    }

    /// Whether the result is a different quantity, so the metric name goes (arithmetic);
    /// comparisons and trims keep it.
    fn changes_schema(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow | Op::Atan2)
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Prometheus's `vectorElemBinop` for floats: (value, keep).
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless | Op::TrimUpper | Op::TrimLower => (l, true),
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::Atan2 => "atan2",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
            Op::TrimUpper => "</",
            Op::TrimLower => ">/",
        }
    }

    /// Prometheus's `vectorElemBinop` over floats and histograms: (value, keep), or `None`
    /// (with an info) for types the operator does not combine.
    fn apply_val(self, l: &Val, r: &Val, annos: &mut Annotations) -> Option<(Val, bool)> {
        let incompatible = |annos: &mut Annotations, lt: &str, rt: &str| {
            let sym = self.symbol();
            annos.info(format!(
                "incompatible sample types encountered for binary operator {sym:?}: {lt} {sym} {rt}"
            ));
            None
        };
        match (l, r) {
            (Val::F(_), Val::F(_)) if matches!(self, Op::TrimUpper | Op::TrimLower) => {
                incompatible(annos, "float", "float")
            }
            (Val::F(a), Val::F(b)) => {
                let (v, keep) = self.apply(*a, *b);
                Some((Val::F(v), keep))
            }
            (Val::F(a), Val::H(h)) => match self {
                Op::Mul => Some((Val::H(Arc::new(scaled(h, *a))), true)),
                _ => incompatible(annos, "float", "histogram"),
            },
            (Val::H(h), Val::F(b)) => match self {
                Op::Mul => Some((Val::H(Arc::new(scaled(h, *b))), true)),
                Op::Div => {
                    let mut x = (**h).clone();
                    x.div(*b);
                    x.compact();
                    Some((Val::H(Arc::new(x)), true))
                }
                Op::TrimUpper | Op::TrimLower => {
                    let mut x = (**h).clone();
                    x.trim(*b, self == Op::TrimUpper);
                    Some((Val::H(Arc::new(x)), true))
                }
                _ => incompatible(annos, "histogram", "float"),
            },
            (Val::H(a), Val::H(b)) => match self {
                Op::Add | Op::Sub => {
                    let mut x = (**a).clone();
                    let res = if self == Op::Add { x.add(b) } else { x.sub(b) };
                    let Ok(c) = res else {
                        annos.warn(format!(
                            "incompatible bucket layout encountered for binary operator {}",
                            self.symbol()
                        ));
                        return None;
                    };
                    crate::native::note(annos, c, if self == Op::Add { "addition" } else { "subtraction" });
                    if self == Op::Sub {
                        x.hint = CounterResetHint::Gauge;
                    }
                    x.compact();
                    Some((Val::H(Arc::new(x)), true))
                }
                Op::Eq => Some((Val::H(a.clone()), crate::native::equals(a, b))),
                Op::Ne => Some((Val::H(a.clone()), !crate::native::equals(a, b))),
                _ => incompatible(annos, "histogram", "histogram"),
            },
        }
    }
}

fn scaled(h: &strata_tsdb::FloatHistogram, f: f64) -> strata_tsdb::FloatHistogram {
    let mut x = h.clone();
    x.mul(f);
    x.compact();
    x
}

/// Evaluates a binary expression.
pub(crate) fn eval(ctx: &mut Ctx<'_>, b: &BinaryExpr) -> Result<Value> {
    let op = Op::parse(&b.op.to_string())?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ctx.eval(&b.lhs)?;
    let rhs = ctx.eval(&b.rhs)?;
    let delayed = ctx.cfg.features.delayed_name_removal;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.into_iter()
                .zip(r)
                .map(|((t, a), (_, c))| {
                    let (v, keep) = op.apply(a, c);
                    (t, if op.is_comparison() { f64::from(u8::from(keep)) } else { v })
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(ctx, v, &s, op, return_bool, false, delayed),
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(ctx, v, &s, op, return_bool, true, delayed),
        (Value::Vector(l), Value::Vector(r)) => {
            let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
            let card = b.modifier.as_ref().map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
            match op {
                Op::And | Op::Or | Op::Unless => set_op(ctx, l, r, op, matching.as_ref()),
                _ => {
                    let fill = b.modifier.as_ref().map(|m| m.fill_values.clone()).unwrap_or_default();
                    vector_vector(ctx, l, r, op, return_bool, matching.as_ref(), &card, &fill, delayed)
                }
            }
        }
        (l, r) => Err(QueryError::Execution(format!(
            "binary operator between {} and {} is not supported",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    ctx: &mut Ctx<'_>,
    v: Vec<Series>,
    s: &[(i64, f64)],
    op: Op,
    return_bool: bool,
    swap: bool,
    delayed: bool,
) -> Result<Value> {
    let steps = ctx.steps;
    let mut out = Out::default();
    // each series' output, found at its first point
    let mut outs: Vec<Option<(usize, bool)>> = vec![None; v.len()];
    for (i, present) in vals_by_step(&v, steps).iter().enumerate() {
        let t = steps.at(i);
        let sv = Val::F(s[i].1);
        for &(j, ref x) in present {
            let (l, r) = if swap { (&sv, x) } else { (x, &sv) };
            let Some((mut value, keep)) = op.apply_val(l, r, &mut ctx.annotations) else {
                continue;
            };
            if op.is_comparison() && swap {
                value = x.clone();
            }
            let value = if return_bool {
                Val::F(f64::from(u8::from(keep)))
            } else if keep {
                value
            } else {
                continue;
            };
            let series = &v[j];
            let (idx, dn) = out.index_of(&mut outs[j], || {
                let (labels, dn) = if op.changes_schema() || return_bool {
                    drop_name(&series.labels, delayed)
                } else {
                    (series.labels.clone(), false)
                };
                (labels, dn || series.drop_name)
            });
            out.push_at(idx, dn, t, value)?;
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// The matching signature of a series: the `on` labels, or all labels but the `ignoring`
/// ones and the name (`__type__`/`__unit__` stay: series of different types do not match).
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Exclude(ign)) => {
            let mut names: Vec<&str> = ign.labels.iter().map(String::as_str).collect();
            names.push(strata_tsdb::METRIC_NAME);
            without(l, &names)
        }
        Some(m) => crate::grid::project(l, Some(m)).unwrap_or_default(),
        None => without(l, &[strata_tsdb::METRIC_NAME]),
    }
}

/// The signatures of both sides' series as dense ids (equal signatures, equal ids) and the
/// signature of each id: label sets are hashed once per series, not at every step.
fn signatures(
    a: &[Series],
    b: &[Series],
    m: Option<&LabelModifier>,
) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let mut ids: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut sigs: Vec<Labels> = Vec::new();
    let mut id = |s: &Series| {
        *ids.entry(signature(&s.labels, m)).or_insert_with_key(|k| {
            sigs.push(k.clone());
            sigs.len() - 1
        })
    };
    let a_ids = a.iter().map(&mut id).collect();
    let b_ids = b.iter().map(&mut id).collect();
    (a_ids, b_ids, sigs)
}

fn set_op(ctx: &Ctx<'_>, l: Vec<Series>, r: Vec<Series>, op: Op, m: Option<&LabelModifier>) -> Result<Value> {
    let steps = ctx.steps;
    let (lsig, rsig, sigs) = signatures(&l, &r, m);
    // the last step at which a signature was seen on the side the other one is checked against
    let mut seen = vec![usize::MAX; sigs.len()];
    let (mut louts, mut routs) = (vec![None; l.len()], vec![None; r.len()]);
    let (lg, rg) = (vals_by_step(&l, steps), vals_by_step(&r, steps));
    let mut out = Out::default();
    let push = |out: &mut Out, known: &mut Option<(usize, bool)>, s: &Series, t: i64, v: Val| {
        let (idx, dn) = out.index_of(known, || (s.labels.clone(), s.drop_name));
        out.push_at(idx, dn, t, v)
    };
    for (i, (ls, rs)) in lg.iter().zip(rg.iter()).enumerate() {
        let t = steps.at(i);
        match op {
            Op::And | Op::Unless => {
                for (j, _) in rs {
                    seen[rsig[*j]] = i;
                }
                for &(j, ref v) in ls {
                    if (seen[lsig[j]] == i) == (op == Op::And) {
                        push(&mut out, &mut louts[j], &l[j], t, v.clone())?;
                    }
                }
            }
            _ => {
                for (j, _) in ls {
                    seen[lsig[*j]] = i;
                }
                for &(j, ref v) in ls {
                    push(&mut out, &mut louts[j], &l[j], t, v.clone())?;
                }
                for &(j, ref v) in rs {
                    if seen[rsig[j]] != i {
                        push(&mut out, &mut routs[j], &r[j], t, v.clone())?;
                    }
                }
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

fn render(l: &Labels) -> String {
    l.to_string()
}

/// A side of a pair that a `fill*` modifier made up.
const FILLED: usize = usize::MAX;

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    ctx: &mut Ctx<'_>,
    l: Vec<Series>,
    r: Vec<Series>,
    op: Op,
    return_bool: bool,
    m: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    fill: &VectorMatchFillValues,
    delayed: bool,
) -> Result<Value> {
    let steps = ctx.steps;
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // the "many" side is walked, the "one" side indexed by signature
    let (many, one) = if one_to_many { (&r, &l) } else { (&l, &r) };
    let (msig, osig, sigs) = signatures(many, one, m);
    let (mg, og) = (vals_by_step(many, steps), vals_by_step(one, steps));
    let include: Vec<String> = card.labels().map(|x| x.labels.clone()).unwrap_or_default();
    let mut out = Out::default();
    let fill = fill.clone();
    let no_fill = fill.lhs.is_none() && fill.rhs.is_none();
    // steps are marked rather than sets cleared: for each signature, the last step at which
    // a one-side series had it (and that series' place in the step) and at which it matched
    let mut one_at = vec![(usize::MAX, 0); sigs.len()];
    let mut sig_matched = vec![usize::MAX; sigs.len()];
    // for each one-side series, the last step at which it matched; for each output, the last
    // step it was given a point
    let mut one_matched = vec![usize::MAX; one.len()];
    let mut out_at: Vec<usize> = Vec::new();
    // (many, one) pair → its output and name-drop flag
    let mut outs: FxHashMap<(usize, usize), (usize, bool)> = FxHashMap::default();
    for (i, (ms, os)) in mg.iter().zip(og.iter()).enumerate() {
        // as Prometheus: a step where either side is empty matches nothing, and so is not
        // checked for duplicates either (unless a `fill*` modifier makes up the other side)
        if (ms.is_empty() && os.is_empty()) || ((ms.is_empty() || os.is_empty()) && no_fill) {
            continue;
        }
        let t = steps.at(i);
        for (pos, (j, _)) in os.iter().enumerate() {
            let s = osig[*j];
            if one_at[s].0 == i {
                let prev = os[one_at[s].1].0;
                let side = if one_to_many { "left" } else { "right" };
                // the two series in order, as Prometheus 3 reports them
                let (mut a, mut b) = (render(&one[prev].labels), render(&one[*j].labels));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be unique on one side",
                    render(&sigs[s]),
                )));
            }
            one_at[s] = (i, pos);
        }
        // (many index, one index) pairs; `FILLED` is a side filled in by `fill*`
        let mut pairs: Vec<(usize, usize, &Val, Val)> = Vec::with_capacity(ms.len());
        for (j, mv) in ms {
            let (at, pos) = one_at[msig[*j]];
            if at == i {
                let (k, ov) = &os[pos];
                one_matched[*k] = i;
                pairs.push((*j, *k, mv, ov.clone()));
            } else if let Some(f) = fill.rhs {
                pairs.push((*j, FILLED, mv, Val::F(f)));
            }
        }
        let filled_lhs = Val::F(fill.lhs.unwrap_or_default());
        if fill.lhs.is_some() {
            for (k, ov) in os {
                if one_matched[*k] != i {
                    pairs.push((FILLED, *k, &filled_lhs, ov.clone()));
                }
            }
        }
        for (j, k, mv, ov) in pairs {
            let sig = if j != FILLED { msig[j] } else { osig[k] };
            // checked before filtering, so the error does not depend on the values
            if one_to_one {
                if sig_matched[sig] == i {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                sig_matched[sig] = i;
            }
            let (fl, fr) = if one_to_many { (&ov, mv) } else { (mv, &ov) };
            let Some((value, keep)) = op.apply_val(fl, fr, &mut ctx.annotations) else {
                continue;
            };
            let value = if return_bool {
                Val::F(f64::from(u8::from(keep)))
            } else if keep {
                value
            } else {
                continue;
            };
            let (idx, dn) = match outs.get(&(j, k)) {
                Some(&o) => o,
                None => {
                    // a filled-in side has just the matching labels of its partner
                    let many_side = if j != FILLED {
                        (&many[j].labels, many[j].drop_name)
                    } else {
                        (&sigs[osig[k]], false)
                    };
                    let one_side = if k != FILLED { &one[k].labels } else { &sigs[msig[j]] };
                    let (labels, dn) =
                        result_labels(many_side, one_side, op, return_bool, m, card, &include, delayed);
                    let o = (out.index(labels), dn);
                    outs.insert((j, k), o);
                    o
                }
            };
            if !one_to_one {
                if out_at.len() <= idx {
                    out_at.resize(idx + 1, usize::MAX);
                }
                if out_at[idx] == i {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches".into(),
                    ));
                }
                out_at[idx] = i;
            }
            out.push_at(idx, dn, t, value)?;
        }
    }
    Ok(Value::Vector(out.finish()))
}

#[allow(clippy::too_many_arguments)]
fn result_labels(
    (many, many_dn): (&Labels, bool),
    one: &Labels,
    op: Op,
    return_bool: bool,
    m: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    include: &[String],
    delayed: bool,
) -> (Labels, bool) {
    let (mut labels, mut dn) =
        if op.changes_schema() || return_bool { drop_name(many, delayed) } else { (many.clone(), many_dn) };
    if matches!(card, VectorMatchCardinality::OneToOne) {
        match m {
            Some(LabelModifier::Include(on)) => {
                let names: Vec<&str> = on.labels.iter().map(String::as_str).collect();
                let keep_name = dn && names.contains(&strata_tsdb::METRIC_NAME);
                labels = only(&labels, &names);
                dn = keep_name;
            }
            Some(LabelModifier::Exclude(ign)) => {
                let names: Vec<&str> = ign.labels.iter().map(String::as_str).collect();
                labels = without(&labels, &names);
            }
            None => {}
        }
    }
    for name in include {
        let v = one.get(name).unwrap_or("");
        labels = with_label(&labels, name, v);
    }
    (labels, dn)
}
