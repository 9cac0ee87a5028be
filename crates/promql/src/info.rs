//! `info(v, {data label selector})`: enriches each series with the data labels of the info
//! series (by default `target_info`) that share its identifying labels `instance` and
//! `job`, as Prometheus's experimental function does.

use rustc_hash::{FxHashMap, FxHashSet};

use promql_parser::parser::{AtModifier, Expr};
use strata_tsdb::{Labels, METRIC_NAME, MatchOp, Matcher};

use crate::error::{QueryError, Result};
use crate::eval::{Ctx, selector_matchers};
use crate::grid::{Out, Val, labels_from, vals_by_step};
use crate::value::{Series, Value};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

fn matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher> {
    Matcher::new(op, name, value).map_err(|e| QueryError::Parse(e.to_string()))
}

/// The name matchers that pick info series: the given ones when one of them is positive,
/// otherwise `__name__=~".+_info"` plus the given ones, or `target_info` when none is given.
fn effective_name_matchers(given: Vec<Matcher>) -> Result<Vec<Matcher>> {
    if given.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex)) {
        return Ok(given);
    }
    if given.is_empty() {
        return Ok(vec![matcher(MatchOp::Equal, METRIC_NAME, TARGET_INFO)?]);
    }
    let mut out = vec![matcher(MatchOp::Regex, METRIC_NAME, ".+_info")?];
    out.extend(given);
    Ok(out)
}

/// The `@` time and offset (ms) at which the info series are read: those of the first
/// selector of the argument, plus the offsets of the subqueries around it up to the first
/// one with an `@` when the selector has none (Prometheus's `infoSelectTimestampAndOffset`).
fn reference(e: &Expr) -> Option<(Option<AtModifier>, i64)> {
    let off = crate::eval::offset_ms;
    match e {
        Expr::VectorSelector(vs) => Some((vs.at.clone(), off(&vs.offset))),
        Expr::MatrixSelector(ms) => Some((ms.vs.at.clone(), off(&ms.vs.offset))),
        Expr::Paren(p) => reference(&p.expr),
        Expr::Unary(u) => reference(&u.expr),
        Expr::Subquery(s) => reference(&s.expr).map(|(at, o)| match at {
            Some(at) => (Some(at), o),
            None => (s.at.clone(), o.saturating_add(off(&s.offset))),
        }),
        Expr::Aggregate(a) => reference(&a.expr),
        Expr::Binary(b) => reference(&b.lhs).or_else(|| reference(&b.rhs)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| reference(a)),
        _ => None,
    }
}

/// Evaluates `info(args[0], args[1])`.
pub(crate) fn eval(ctx: &mut Ctx<'_>, args: &[&Expr]) -> Result<Value> {
    let (at, offset) = reference(args[0]).unwrap_or((None, 0));
    let base = match ctx.eval(args[0])? {
        Value::Vector(v) => v,
        other => return Err(QueryError::Execution(format!("info over {}", other.type_name()))),
    };
    // data label matchers by label name, and the name matchers among them
    let mut data: FxHashMap<String, Vec<Matcher>> = FxHashMap::default();
    let mut given_names = Vec::new();
    if let Some(Expr::VectorSelector(vs)) = args.get(1) {
        for m in selector_matchers(vs)? {
            if m.name == METRIC_NAME {
                given_names.push(m.clone());
            }
            data.entry(m.name.clone()).or_default().push(m);
        }
    }
    let names = effective_name_matchers(given_names.clone())?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let n = s.labels.get(METRIC_NAME).unwrap_or("");
            names.iter().all(|m| m.matches(n))
        })
        .collect();
    data.remove(METRIC_NAME);
    let info = fetch_info(ctx, &base, &ignored, &data, given_names, at, offset)?;
    combine(ctx, &base, &ignored, &info, &data)
}

/// The info series for the base series' identifying labels, one float per step: the
/// timestamp of the sample the lookback picked (newest wins among duplicates).
fn fetch_info(
    ctx: &mut Ctx<'_>,
    base: &[Series],
    ignored: &[bool],
    data: &FxHashMap<String, Vec<Matcher>>,
    given_names: Vec<Matcher>,
    at: Option<AtModifier>,
    offset: i64,
) -> Result<Vec<Series>> {
    let mut values: Vec<(&str, Vec<&str>)> = Vec::new();
    for (s, _) in base.iter().zip(ignored).filter(|(_, ig)| !**ig) {
        for l in IDENTIFYING {
            if let Some(v) = s.labels.get(l).filter(|v| !v.is_empty()) {
                match values.iter_mut().find(|x| x.0 == l) {
                    Some(x) if !x.1.contains(&v) => x.1.push(v),
                    Some(_) => {}
                    None => values.push((l, vec![v])),
                }
            }
        }
    }
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let mut matchers = Vec::new();
    for (name, vals) in &values {
        let re = vals.iter().map(|v| regex::escape(v)).collect::<Vec<_>>().join("|");
        matchers.push(matcher(MatchOp::Regex, name, &re)?);
    }
    matchers.extend(data.values().flatten().cloned());
    matchers.extend(effective_name_matchers(given_names)?);
    let steps = ctx.steps;
    let times: Vec<i64> = steps.iter().map(|t| ctx.eval_time(t, &at, &None).saturating_sub(offset)).collect();
    let (lo, hi) = (times.iter().copied().min().unwrap_or(0), times.iter().copied().max().unwrap_or(0));
    let lookback = ctx.cfg.lookback_ms;
    let hints = crate::SelectHints {
        start: lo.saturating_sub(lookback).saturating_add(1),
        end: hi,
        step: ctx.query_step,
        range: 0,
        func: Some("info"),
    };
    let found = ctx.src.select(&matchers, &hints)?;
    let mut out = Vec::with_capacity(found.len());
    for sd in found {
        if sd
            .histograms
            .iter()
            .any(|h| times.iter().any(|&et| h.0 <= et && h.0 > et.saturating_sub(lookback)))
        {
            return Err(QueryError::Execution("info sample should be float".into()));
        }
        let mut points = Vec::new();
        for (i, &et) in times.iter().enumerate() {
            let k = sd.samples.partition_point(|s| s.0 <= et);
            if let Some(&(ts, v)) = k.checked_sub(1).map(|k| &sd.samples[k])
                && ts > et.saturating_sub(lookback)
                && !strata_tsdb::is_stale_marker(v)
            {
                points.push((steps.at(i), ts as f64));
            }
        }
        if !points.is_empty() {
            out.push(Series::floats(sd.labels, false, points));
        }
    }
    Ok(out)
}

/// The signature joining a series to an info metric: the info metric's name with the
/// series' identifying labels.
fn signature(info_name: &str, l: &Labels) -> Labels {
    let pairs = std::iter::once((METRIC_NAME, info_name))
        .chain(IDENTIFYING.iter().filter_map(|n| l.get(n).map(|v| (*n, v))));
    labels_from(pairs)
}

fn combine(
    ctx: &mut Ctx<'_>,
    base: &[Series],
    ignored: &[bool],
    info: &[Series],
    data: &FxHashMap<String, Vec<Matcher>>,
) -> Result<Value> {
    let steps = ctx.steps;
    let mut info_names: Vec<&str> = info.iter().filter_map(|s| s.labels.get(METRIC_NAME)).collect();
    info_names.sort_unstable();
    info_names.dedup();
    let info_sigs: Vec<Labels> =
        info.iter().map(|s| signature(s.labels.get(METRIC_NAME).unwrap_or(""), &s.labels)).collect();
    let all_match_empty = data.values().flatten().all(|m| m.matches(""));
    let (bg, ig) = (vals_by_step(base, steps), vals_by_step(info, steps));
    let mut out = Out::default();
    for (i, (bs, is)) in bg.iter().zip(ig.iter()).enumerate() {
        let t = steps.at(i);
        let mut by_sig: FxHashMap<&Labels, (usize, f64)> = FxHashMap::default();
        for &(k, ref v) in is {
            let Val::F(orig) = *v else {
                return Err(QueryError::Execution("info sample should be float".into()));
            };
            match by_sig.get(&info_sigs[k]) {
                Some(&(e, eo)) if eo == orig => {
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        info[e].labels, orig as i64, info[k].labels, orig as i64
                    )));
                }
                Some(&(_, eo)) if eo > orig => {}
                _ => {
                    by_sig.insert(&info_sigs[k], (k, orig));
                }
            }
        }
        for &(j, ref v) in bs {
            let v = v.clone();
            let s = &base[j];
            if ignored[j] {
                out.push_val(s.labels.clone(), s.drop_name, t, v)?;
                continue;
            }
            let mut added: Vec<(String, String)> = Vec::new();
            let mut seen = FxHashSet::default();
            for name in &info_names {
                let Some(&(k, _)) = by_sig.get(&signature(name, &s.labels)) else {
                    continue;
                };
                seen.insert(*name);
                for l in info[k].labels.iter() {
                    if l.name == METRIC_NAME || (!data.is_empty() && !data.contains_key(&l.name)) {
                        continue;
                    }
                    if let Some(prev) = added.iter().find(|a| a.0 == l.name) {
                        if prev.1 != l.value {
                            return Err(QueryError::Execution(format!("conflicting label: {}", l.name)));
                        }
                        continue;
                    }
                    if s.labels.get(&l.name).is_some() {
                        continue;
                    }
                    added.push((l.name.clone(), l.value.clone()));
                }
            }
            if seen.is_empty() && !all_match_empty {
                continue;
            }
            let labels = labels_from(
                s.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
            );
            out.push_val(labels, s.drop_name, t, v)?;
        }
    }
    Ok(Value::Vector(out.finish()))
}
