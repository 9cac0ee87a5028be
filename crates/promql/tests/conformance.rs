//! The PromQL conformance runner: executes Prometheus's own test scripts
//! (`../shared/conformance/promqltest/*.test`, format in `FORMAT.md` there) against the
//! engine, prints passes per file and in total, and fails when the total drops below the
//! committed baseline (`tests/conformance/baseline.txt`, which only ever rises).
//!
//! Evals the engine cannot run yet are skipped by policy, never by editing the data: the
//! list of skipped evals with their reasons is `tests/conformance/skipped.txt`, and the run
//! fails if it differs from what the runner skipped. `UPDATE_CONFORMANCE=1` rewrites both
//! files (the baseline only upwards).
//!
//! Per eval: the main run; for instant evals also the `@`-modifier re-runs (every selector
//! pinned to `@ T`, evaluated at −10T, 0, T/5, T and 10T) and, for each instant run, the
//! range-mode cross-check (the same expression as a range query from T−1m to T+1m, step 1m,
//! compared at T). Annotations are checked as FORMAT.md 7.2 says, except that the engine
//! reports no source positions yet, so an expected message's trailing `(line:col)` is not
//! compared.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use strata_promql::{Engine, EngineConfig, Features, MemSource, Partitioned, QueryError, Source, Value};
use strata_tsdb::{FloatHistogram, Labels, STALE_NAN_BITS};

fn shared_dir() -> PathBuf {
    match std::env::var("STRATA_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let units: [(&str, i64); 7] = [
        ("ms", 1),
        ("y", 31_536_000_000),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ];
    let mut rest = s;
    let mut total = 0i64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit())?;
        if n == 0 {
            return None;
        }
        let v: i64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (u, ms) =
            units.iter().find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        total += v * ms;
        rest = &rest[u.len()..];
    }
    Some(total)
}

fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    let (sign, body) = match l.strip_prefix('-') {
        Some(b) => (-1.0, b),
        None => (1.0, l.strip_prefix('+').unwrap_or(&l)),
    };
    match body {
        "inf" => return Some(sign * f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(h) = body.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| sign * v as f64);
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// One expected or loaded value.
#[derive(Debug, Clone)]
enum V {
    /// A float.
    F(f64),
    /// A native histogram, and whether its counter-reset hint was spelled out.
    H(FloatHistogram, bool),
}

/// One expanded value: `None` is an omitted sample.
type Vals = Vec<Option<V>>;

/// Splits a value sequence on whitespace outside `{{…}}` and `[…]`.
fn tokens(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth) = (Vec::new(), None, 0i32);
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if let Some(st) = start.take() {
                out.push(&s[st..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

/// Parses `{{schema:1 sum:3 buckets:[1 2] …}}` (FORMAT.md 5); the flag says whether
/// `counter_reset_hint` was given.
fn parse_histogram(s: &str) -> Result<(FloatHistogram, bool), &'static str> {
    use strata_tsdb::histogram::CounterResetHint;
    let body = s.strip_prefix("{{").and_then(|b| b.strip_suffix("}}")).ok_or("bad histogram")?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg, mut off, mut noff, mut hint) = (Vec::new(), Vec::new(), 0i32, 0i32, false);
    let list = |v: &str| -> Result<Vec<f64>, &'static str> {
        let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).ok_or("bad list")?;
        inner.split_whitespace().map(|x| parse_number(x).ok_or("bad number")).collect()
    };
    for tok in tokens(body) {
        let (k, v) = tok.split_once(':').ok_or("bad histogram field")?;
        match k {
            "schema" => h.schema = v.parse().map_err(|_| "bad schema")?,
            "sum" => h.sum = parse_number(v).ok_or("bad sum")?,
            "count" => h.count = parse_number(v).ok_or("bad count")?,
            "z_bucket" => h.zero_count = parse_number(v).ok_or("bad z_bucket")?,
            "z_bucket_w" => h.zero_threshold = parse_number(v).ok_or("bad z_bucket_w")?,
            "buckets" => pos = list(v)?,
            "n_buckets" => neg = list(v)?,
            "offset" => off = v.parse().map_err(|_| "bad offset")?,
            "n_offset" => noff = v.parse().map_err(|_| "bad n_offset")?,
            "custom_values" => h.custom_values = list(v)?,
            "counter_reset_hint" => {
                hint = true;
                h.hint = match v {
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => CounterResetHint::Unknown,
                };
            }
            _ => return Err("unknown histogram field"),
        }
    }
    h.positive = pos.into_iter().enumerate().map(|(i, c)| (off + i as i32, c)).collect();
    h.negative = neg.into_iter().enumerate().map(|(i, c)| (noff + i as i32, c)).collect();
    Ok((h, hint))
}

/// Expands `{{a}}`, `{{a}}xN`, `{{a}}+{{b}}xN` and `{{a}}-{{b}}xN`.
fn expand_histograms(tok: &str, out: &mut Vals) -> Result<(), &'static str> {
    let first_end = tok.find("}}").ok_or("bad histogram")? + 2;
    let (base, hint) = parse_histogram(&tok[..first_end])?;
    let rest = &tok[first_end..];
    if rest.is_empty() {
        out.push(Some(V::H(base, hint)));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n: usize = n.parse().map_err(|_| "bad repeat")?;
        out.extend(std::iter::repeat_n(Some(V::H(base, hint)), n + 1));
        return Ok(());
    }
    let sign = rest.as_bytes()[0];
    let inc_end = rest.find("}}").ok_or("bad histogram")? + 2;
    let (inc, inc_hint) = parse_histogram(&rest[1..inc_end])?;
    let n: usize = rest[inc_end..].strip_prefix('x').and_then(|n| n.parse().ok()).ok_or("bad repeat")?;
    if base.schema > inc.schema && !base.uses_custom_buckets() {
        return Err("increment schema coarser than the base");
    }
    let mut cur = base;
    out.push(Some(V::H(cur.clone(), inc_hint)));
    for _ in 0..n {
        let r = if sign == b'+' { cur.add(&inc) } else { cur.sub(&inc) };
        r.map_err(|_| "incompatible histograms")?;
        out.push(Some(V::H(cur.clone(), inc_hint)));
    }
    Ok(())
}

/// Expands the series-value notation.
fn parse_values(s: &str) -> Result<Vals, &'static str> {
    let mut out = Vec::new();
    for tok in tokens(s) {
        if tok.starts_with("{{") {
            expand_histograms(tok, &mut out)?;
            continue;
        }
        if tok == "_" {
            out.push(None);
            continue;
        }
        if tok == "stale" {
            out.push(Some(V::F(f64::from_bits(STALE_NAN_BITS))));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| "bad value")?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some((head, n)) = tok.rsplit_once('x')
            && let Ok(n) = n.parse::<usize>()
        {
            // a+bxN, a-bxN or vxN
            let bytes = head.as_bytes();
            let split = (1..bytes.len())
                .rev()
                .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
            let (a, b) = match split {
                Some(i) => (
                    parse_number(&head[..i]).ok_or("bad value")?,
                    parse_number(&head[i..]).ok_or("bad value")?,
                ),
                None => (parse_number(head).ok_or("bad value")?, 0.0),
            };
            let mut v = a;
            out.push(Some(V::F(v)));
            for _ in 0..n {
                v += b;
                out.push(Some(V::F(v)));
            }
            continue;
        }
        out.push(Some(V::F(parse_number(tok).ok_or("bad value")?)));
    }
    Ok(out)
}

/// Whether a result value equals an expected one (FORMAT.md 9.1 and 9.4).
fn value_matches(exp: &V, got: &V) -> bool {
    match (exp, got) {
        (V::F(e), V::F(g)) => almost_equal(*e, *g),
        (V::H(e, hint), V::H(g, _)) => e.approx_eq(g, almost_equal) && (!hint || e.hint == g.hint),
        _ => false,
    }
}

/// `load_with_nhcb`: classic histogram series (`_bucket`, `_count`, `_sum`) converted to
/// native histograms with custom buckets under the base name (FORMAT.md 3.1).
fn convert_nhcb(loaded: &[(Labels, Vec<(i64, f64)>)]) -> Vec<(Labels, Vec<(i64, FloatHistogram)>)> {
    // key: base labels -> (bounds -> samples, count samples, sum samples)
    type Parts = (Vec<(f64, Vec<(i64, f64)>)>, Vec<(i64, f64)>, Vec<(i64, f64)>);
    let mut groups: BTreeMap<Labels, Parts> = BTreeMap::new();
    for (l, samples) in loaded {
        let name = l.get("__name__").unwrap_or("");
        let (base, part) = if let Some(b) = name.strip_suffix("_bucket") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, 1)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, 2)
        } else {
            continue;
        };
        let pairs: Vec<(&str, &str)> = l
            .iter()
            .filter(|x| x.name != "le" && x.name != "__name__")
            .map(|x| (x.name.as_str(), x.value.as_str()))
            .chain(std::iter::once(("__name__", base)))
            .collect();
        let key = Labels::from_unchecked(pairs.into_iter());
        let g = groups.entry(key).or_default();
        match part {
            0 => {
                let Some(le) = l.get("le").and_then(parse_number).filter(|v| !v.is_nan()) else {
                    continue;
                };
                g.0.push((le, samples.clone()));
            }
            1 => g.1.extend(samples.iter().copied()),
            _ => g.2.extend(samples.iter().copied()),
        }
    }
    let mut out = Vec::new();
    for (key, (mut buckets, count, sum)) in groups {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut times: Vec<i64> = buckets
            .iter()
            .flat_map(|b| b.1.iter().map(|s| s.0))
            .chain(count.iter().map(|s| s.0))
            .chain(sum.iter().map(|s| s.0))
            .collect();
        times.sort_unstable();
        times.dedup();
        let at = |s: &[(i64, f64)], t: i64| s.iter().find(|x| x.0 == t).map(|x| x.1);
        let mut hs = Vec::new();
        for t in times {
            let bounds: Vec<f64> = buckets.iter().map(|b| b.0).filter(|b| b.is_finite()).collect();
            let mut prev = 0.0;
            let mut positive = Vec::new();
            for (i, b) in buckets.iter().enumerate() {
                let c = at(&b.1, t).unwrap_or(prev);
                positive.push((i as i32, c - prev));
                prev = c;
            }
            hs.push((
                t,
                FloatHistogram {
                    schema: strata_tsdb::histogram::CUSTOM_BUCKETS_SCHEMA,
                    count: at(&count, t).unwrap_or(prev),
                    sum: at(&sum, t).unwrap_or(0.0),
                    positive,
                    custom_values: bounds,
                    ..FloatHistogram::default()
                },
            ));
        }
        if !hs.is_empty() {
            out.push((key, hs));
        }
    }
    out
}

/// Splits `metric{a="b"} 1 2 3` into labels and the value text.
fn parse_series_line(line: &str) -> Option<(Labels, &str)> {
    let end = match line.find('{') {
        Some(open) if line[..open].chars().all(|c| !c.is_whitespace()) => {
            let mut in_q: Option<char> = None;
            let mut esc = false;
            let mut close = None;
            for (i, c) in line[open..].char_indices() {
                match (in_q, c) {
                    (Some(_), '\\') if !esc => {
                        esc = true;
                        continue;
                    }
                    (Some(q), c) if c == q && !esc => in_q = None,
                    (None, '"' | '\'' | '`') => in_q = Some(c),
                    (None, '}') => {
                        close = Some(open + i + 1);
                        break;
                    }
                    _ => {}
                }
                esc = false;
            }
            close?
        }
        _ => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    let (sel, rest) = line.split_at(end);
    let labels = if sel == "{}" {
        Labels::default()
    } else {
        let e = promql_parser::parser::parse(sel).ok()?;
        let promql_parser::parser::Expr::VectorSelector(vs) = e else {
            return None;
        };
        let mut pairs: Vec<(String, String)> =
            vs.matchers.matchers.iter().map(|m| (m.name.clone(), m.value.clone())).collect();
        if let Some(n) = vs.name {
            pairs.push(("__name__".into(), n));
        }
        Labels::from_unchecked(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
    };
    Some((labels, rest.trim()))
}

/// promqltest's comparison: stale markers equal only each other, the rest as
/// Prometheus's `almost.Equal` with epsilon 1e-6.
fn almost_equal(a: f64, b: f64) -> bool {
    let (sa, sb) = (a.to_bits() == STALE_NAN_BITS, b.to_bits() == STALE_NAN_BITS);
    if sa || sb {
        return sa && sb;
    }
    strata_promql::almost_equal(a, b, 1e-6)
}

#[derive(Debug, Default)]
struct Expect {
    fail: Option<Option<(bool, String)>>,
    /// Expected warnings / infos (`None` = any text), and "at least one" flags.
    warn: Vec<Option<(bool, String)>>,
    info: Vec<Option<(bool, String)>>,
    any_warn: bool,
    any_info: bool,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
    range_vector: Option<(i64, i64, i64)>,
    string: Option<String>,
    scalar: Option<f64>,
    series: Vec<(Labels, Vals)>,
}

/// A result series as compared: labels and (timestamp, value) points in time order.
type Got = (Labels, Vec<(i64, V)>);

/// A result series' points, floats and histograms merged in time order.
fn points_of(points: &[(i64, f64)], hists: &[strata_promql::HPoint]) -> Vec<(i64, V)> {
    let mut all: Vec<(i64, V)> = points.iter().map(|&(t, v)| (t, V::F(v))).collect();
    all.extend(hists.iter().map(|(t, h)| (*t, V::H((**h).clone(), false))));
    all.sort_by_key(|p| p.0);
    all
}

enum Kind {
    Instant(i64),
    Range(i64, i64, i64),
}

struct EvalCase {
    line: usize,
    kind: Kind,
    expr: String,
    expect: Expect,
}

/// Compares a vector result (instant: one value per series).
fn compare_vector(got: &[(Labels, V)], exp: &Expect) -> Result<(), String> {
    if exp.scalar.is_some() || exp.string.is_some() {
        return Err("expected a scalar or string, got a vector".into());
    }
    if got.len() != exp.series.len() {
        return Err(format!("expected {} series, got {}: {:?}", exp.series.len(), got.len(), got));
    }
    for (i, (l, v)) in got.iter().enumerate() {
        let Some(pos) = exp.series.iter().position(|(el, _)| el == l) else {
            return Err(format!("unexpected series {l} {v:?}"));
        };
        let ev = exp.series[pos].1.first().cloned().flatten();
        match &ev {
            Some(e) if value_matches(e, v) => {}
            _ => return Err(format!("series {l}: expected {ev:?}, got {v:?}")),
        }
        if exp.ordered && pos != i {
            return Err(format!("series {l} at position {i}, expected {pos}"));
        }
    }
    Ok(())
}

fn compare_matrix(got: &[Got], exp: &Expect, start: i64, step: i64) -> Result<(), String> {
    if exp.scalar.is_some() || exp.string.is_some() {
        return Err("expected a scalar or string, got a matrix".into());
    }
    if got.windows(2).any(|w| w[0].0 > w[1].0) {
        return Err("matrix is not sorted by labels".into());
    }
    if got.len() != exp.series.len() {
        return Err(format!("expected {} series, got {}", exp.series.len(), got.len()));
    }
    for (l, pts) in got {
        let Some((_, vals)) = exp.series.iter().find(|(el, _)| el == l) else {
            return Err(format!("unexpected series {l}"));
        };
        let want: Vec<(i64, &V)> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (start + i as i64 * step, v)))
            .collect();
        if want.len() != pts.len()
            || want.iter().zip(pts).any(|(a, b)| a.0 != b.0 || !value_matches(a.1, &b.1))
        {
            return Err(format!("series {l}: expected {want:?}, got {pts:?}"));
        }
    }
    Ok(())
}

/// FORMAT.md 7.2: every expected line matches some annotation and every annotation matches
/// some expected line; positions `(l:c)` are not compared.
fn check_annotations(
    kind: &str,
    got: &[String],
    want: &[Option<(bool, String)>],
    any: bool,
    none: bool,
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("no {kind} expected, got {got:?}"));
    }
    if (any || !want.is_empty()) && got.is_empty() {
        return Err(format!("{kind} expected, none produced"));
    }
    let pos = regex::Regex::new(r"\s*\(\d+:\d+\)$").expect("regex");
    let matches = |w: &Option<(bool, String)>, g: &str| match w {
        None => true,
        Some((false, msg)) => pos.replace(msg, "") == pos.replace(g, ""),
        Some((true, re)) => regex::Regex::new(re).is_ok_and(|r| r.is_match(g)),
    };
    for w in want {
        if !got.iter().any(|g| matches(w, g)) {
            return Err(format!("expected {kind} {w:?} not in {got:?}"));
        }
    }
    if !want.is_empty()
        && let Some(g) = got.iter().find(|g| !want.iter().any(|w| matches(w, g)))
    {
        return Err(format!("unexpected {kind} {g:?}"));
    }
    Ok(())
}

fn check_result(
    res: Result<strata_promql::Output, strata_promql::QueryError>,
    exp: &Expect,
    mode: &Kind,
) -> Result<(), String> {
    let v = match (res, &exp.fail) {
        (Err(e), Some(m)) => {
            return match m {
                None => Ok(()),
                Some((false, msg)) if e.to_string() == *msg => Ok(()),
                Some((true, re)) if regex::Regex::new(re).is_ok_and(|r| r.is_match(&e.to_string())) => Ok(()),
                Some(_) => Err(format!("error message {:?} does not match", e.to_string())),
            };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected a failure".into()),
        (Ok(v), None) => v,
    };
    check_annotations("warning", &v.annotations.warnings, &exp.warn, exp.any_warn, exp.no_warn)?;
    check_annotations("info", &v.annotations.infos, &exp.info, exp.any_info, exp.no_info)?;
    let v = v.value;
    match (v, mode) {
        (Value::Scalar(s), _) => match (exp.scalar, s.last()) {
            (Some(e), Some(&(_, g))) if almost_equal(e, g) => Ok(()),
            (e, g) => Err(format!("scalar: expected {e:?}, got {g:?}")),
        },
        (Value::String(s), _) => match &exp.string {
            Some(e) if *e == s => Ok(()),
            None if s.is_empty() && exp.series.is_empty() => Ok(()),
            e => Err(format!("string: expected {e:?}, got {s:?}")),
        },
        (Value::Vector(v), Kind::Instant(_)) => {
            let got: Vec<(Labels, V)> = v
                .iter()
                .filter_map(|s| points_of(&s.points, &s.hists).pop().map(|p| (s.labels.clone(), p.1)))
                .collect();
            compare_vector(&got, exp)
        }
        (Value::Vector(v), Kind::Range(start, _, step)) => {
            let got: Vec<Got> =
                v.iter().map(|s| (s.labels.clone(), points_of(&s.points, &s.hists))).collect();
            compare_matrix(&got, exp, *start, *step)
        }
        (Value::Matrix(m), Kind::Instant(_)) => {
            let Some((start, _, step)) = exp.range_vector else {
                return Err("got a range vector, expected an instant result".into());
            };
            let got: Vec<Got> =
                m.iter().map(|s| (s.labels.clone(), points_of(&s.samples, &s.hists))).collect();
            compare_matrix(&got, exp, start, step)
        }
        (Value::Matrix(_), _) => Err("range query returned a matrix".into()),
    }
}

fn run_eval(engine: &Engine, src: &dyn Source, c: &EvalCase) -> Result<(), String> {
    let expr = match strata_promql::parse(&c.expr) {
        Ok(e) => e,
        Err(e) => {
            return if c.expect.fail.is_some() { Ok(()) } else { Err(format!("parse: {e}")) };
        }
    };
    match c.kind {
        Kind::Range(s, e, st) => check_result(engine.range(src, &expr, s, e, st), &c.expect, &c.kind),
        Kind::Instant(t) => {
            let t = c.expect.range_vector.map_or(t, |r| r.1);
            run_instant(engine, src, c, &expr, t)?;
            // the step-invariance re-runs with `@ T` added (FORMAT.md 8.2)
            let time_dependent = regex::Regex::new(
                r"\b(days_in_month|day_of_month|day_of_week|day_of_year|end|hour|minute|month|year|predict_linear|range|start|step|time|timestamp)\s*\(",
            )
            .is_ok_and(|r| r.is_match(&c.expr));
            if !time_dependent {
                let mut pinned = expr.clone();
                add_at(&mut pinned, t);
                let times = if t == 0 { vec![-1000, 0, 1000] } else { vec![-10 * t, 0, t / 5, t, 10 * t] };
                for at in times {
                    run_instant(engine, src, c, &pinned, at)
                        .map_err(|e| format!("@ {t} evaluated at {at}: {e}"))?;
                }
            }
            Ok(())
        }
    }
}

/// Adds `@ t` to every selector and subquery without one, not below a subquery.
fn add_at(e: &mut promql_parser::parser::Expr, t: i64) {
    use promql_parser::parser::{AtModifier, Expr};
    let at = || {
        let d = std::time::Duration::from_millis(t.unsigned_abs());
        AtModifier::At(if t >= 0 { std::time::UNIX_EPOCH + d } else { std::time::UNIX_EPOCH - d })
    };
    match e {
        Expr::VectorSelector(vs) => {
            vs.at.get_or_insert_with(at);
        }
        Expr::MatrixSelector(ms) => {
            ms.vs.at.get_or_insert_with(at);
        }
        Expr::Subquery(sq) => {
            sq.at.get_or_insert_with(at);
        }
        Expr::Aggregate(a) => {
            add_at(&mut a.expr, t);
            if let Some(p) = a.param.as_mut() {
                add_at(p, t);
            }
        }
        Expr::Unary(u) => add_at(&mut u.expr, t),
        Expr::Binary(b) => {
            add_at(&mut b.lhs, t);
            add_at(&mut b.rhs, t);
        }
        Expr::Paren(p) => add_at(&mut p.expr, t),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| add_at(a, t)),
        _ => {}
    }
}

/// One instant run with its range-mode cross-check (FORMAT.md 8.3).
fn run_instant(
    engine: &Engine,
    src: &dyn Source,
    c: &EvalCase,
    expr: &promql_parser::parser::Expr,
    t: i64,
) -> Result<(), String> {
    check_result(engine.instant(src, expr, t), &c.expect, &Kind::Instant(t))?;
    let cross = c.expect.range_vector.is_none()
        && c.expect.string.is_none()
        && !c.expect.ordered
        && c.expect.fail.is_none()
        && !regex::Regex::new(r"(start|end|range|step)\(\)").is_ok_and(|r| r.is_match(&c.expr));
    if !cross {
        return Ok(());
    }
    let v = engine
        .range(src, expr, t - 60_000, t + 60_000, 60_000)
        .map_err(|e| format!("range-mode check: {e}"))?;
    let at_t = match v.value {
        Value::Vector(v) => {
            if v.windows(2).any(|w| w[0].labels > w[1].labels) {
                return Err("range-mode check: unsorted".into());
            }
            let got: Vec<(Labels, V)> = v
                .iter()
                .filter_map(|s| {
                    points_of(&s.points, &s.hists)
                        .into_iter()
                        .find(|p| p.0 == t)
                        .map(|p| (s.labels.clone(), p.1))
                })
                .collect();
            if let Some(e) = c.expect.scalar {
                return match got.first() {
                    Some((_, V::F(g))) if almost_equal(e, *g) => Ok(()),
                    g => Err(format!("range-mode check: scalar {g:?}")),
                };
            }
            got
        }
        _ => return Err("range-mode check: unexpected type".into()),
    };
    let exp = Expect { series: c.expect.series.clone(), ..Expect::default() };
    compare_vector(&at_t, &exp).map_err(|e| format!("range-mode check: {e}"))
}

struct FileResult {
    /// Evals whose result differs between the unsplit and the pushed-down plan.
    pushdown_mismatches: Vec<String>,
    /// Aggregations the pushed-down plan pushed down.
    pushed: usize,
    passed: usize,
    total: usize,
    skipped: Vec<(usize, String)>,
    failures: Vec<String>,
}

fn skip_reason(expr: &str) -> Option<String> {
    for f in ["start_timestamp("] {
        if expr.contains(f) {
            return Some(format!("experimental {} not implemented", f.trim_end_matches('(')));
        }
    }
    None
}

/// Runs one test file on an engine with `features` (Prometheus's test harness enables
/// every feature, FORMAT.md 11; a Prometheus server has them off).
fn run_file(path: &Path, features: Features) -> FileResult {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(|l| l.trim()).collect();
    let mut cfg = EngineConfig { features, max_samples: 10_000, ..EngineConfig::default() };
    cfg.default_subquery_step_ms = 60_000;
    // pushdown is off under delayed name removal: the plans are compared without it
    let mut pushdown_cfg = cfg.clone();
    pushdown_cfg.features.delayed_name_removal = false;
    let pushdown_engine = Engine::new(pushdown_cfg);
    let engine = Engine::new(cfg);
    let mut src = MemSource::new();
    let mut res = FileResult {
        pushdown_mismatches: Vec::new(),
        pushed: 0,
        passed: 0,
        total: 0,
        skipped: Vec::new(),
        failures: Vec::new(),
    };
    let instant_re =
        regex::Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
            .expect("regex");
    let range_re = regex::Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .expect("regex");
    let expect_re =
        regex::Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
            .expect("regex");
    let mut i = 0;
    let is_blank = |l: &str| l.is_empty() || l.starts_with('#');
    while i < lines.len() {
        let line = lines[i];
        if is_blank(line) {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        if line == "clear" {
            src.clear();
            i += 1;
            continue;
        }
        if line.starts_with("load") {
            let nhcb = line.starts_with("load_with_nhcb");
            let interval = parse_duration_ms(line.split_whitespace().nth(1).unwrap_or("")).unwrap_or(0);
            let mut block: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
            i += 1;
            while i < lines.len() && !is_blank(lines[i]) {
                let l = lines[i];
                i += 1;
                let Some((labels, vals)) = parse_series_line(l) else {
                    continue;
                };
                if l.split_whitespace().next().is_some_and(|w| w.ends_with("@st")) {
                    continue;
                }
                let Ok(v) = parse_values(vals) else {
                    continue;
                };
                let at = |k: usize| k as i64 * interval;
                let floats: Vec<(i64, f64)> = v
                    .iter()
                    .enumerate()
                    .filter_map(|(k, x)| match x {
                        Some(V::F(f)) => Some((at(k), *f)),
                        _ => None,
                    })
                    .collect();
                let hists: Vec<(i64, FloatHistogram)> = v
                    .into_iter()
                    .enumerate()
                    .filter_map(|(k, x)| match x {
                        Some(V::H(h, _)) => Some((at(k), h)),
                        _ => None,
                    })
                    .collect();
                block.retain(|b| b.0 != labels);
                block.push((labels.clone(), floats.clone()));
                src.add(labels.clone(), floats);
                src.add_histograms(labels, hists);
            }
            if nhcb {
                for (l, hs) in convert_nhcb(&block) {
                    src.add_histograms(l, hs);
                }
            }
            continue;
        }
        // eval
        let (kind, expr, flag) = if let Some(c) = instant_re.captures(line) {
            let t = c.get(2).and_then(|m| parse_duration_ms(m.as_str())).unwrap_or(0);
            (Kind::Instant(t), c[3].to_owned(), c.get(1).map(|m| m.as_str().to_owned()))
        } else if let Some(c) = range_re.captures(line) {
            let s = parse_duration_ms(&c[2]).unwrap_or(0);
            let e = parse_duration_ms(&c[3]).unwrap_or(0);
            let st = parse_duration_ms(&c[4]).unwrap_or(1);
            (Kind::Range(s, e, st), c[5].to_owned(), c.get(1).map(|m| m.as_str().to_owned()))
        } else {
            i += 1;
            continue;
        };
        let mut exp = Expect::default();
        match flag.as_deref() {
            Some("fail") => exp.fail = Some(None),
            Some("warn") => exp.any_warn = true,
            Some("info") => exp.any_info = true,
            Some("ordered") => exp.ordered = true,
            _ => {}
        }
        let mut skip: Option<String> = None;
        i += 1;
        while i < lines.len() && !is_blank(lines[i]) {
            let l = lines[i];
            i += 1;
            if let Some(c) = expect_re.captures(l) {
                let m = c.get(3).map(|m| (&c[2] == "regex", m.as_str().trim().to_owned()));
                match &c[1] {
                    "fail" => exp.fail = Some(m),
                    "warn" => exp.warn.push(m),
                    "info" => exp.info.push(m),
                    "no_warn" => exp.no_warn = true,
                    "no_info" => exp.no_info = true,
                    "ordered" => exp.ordered = true,
                    _ => {}
                }
                continue;
            }
            if let Some(rest) = l.strip_prefix("expect range vector from ") {
                let p: Vec<&str> = rest.split_whitespace().collect();
                if p.len() == 5 {
                    exp.range_vector = Some((
                        parse_duration_ms(p[0]).unwrap_or(0),
                        parse_duration_ms(p[2]).unwrap_or(0),
                        parse_duration_ms(p[4]).unwrap_or(1),
                    ));
                }
                continue;
            }
            if let Some(rest) = l.strip_prefix("expect string ") {
                let r = rest.trim();
                exp.string = Some(
                    r.trim_matches(|c| c == '"' || c == '`').replace("\\\"", "\"").replace("\\\\", "\\"),
                );
                continue;
            }
            if let Some(v) = parse_number(l) {
                exp.scalar = Some(v);
                break;
            }
            match parse_series_line(l) {
                Some((labels, vals)) => match parse_values(vals) {
                    Ok(v) => {
                        exp.series.retain(|(x, _)| *x != labels);
                        exp.series.push((labels, v));
                    }
                    Err(why) => skip = Some(format!("expects {why}")),
                },
                None => skip = Some(format!("unparsed expectation line {l:?}")),
            }
        }
        let skip = skip.or_else(|| skip_reason(&expr));
        if let Some(why) = skip {
            res.skipped.push((lineno, why));
            continue;
        }
        res.total += 1;
        let case = EvalCase { line: lineno, kind, expr, expect: exp };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_eval(&engine, &src, &case)))
                .unwrap_or_else(|_| Err("panicked".into()));
        match outcome {
            Ok(()) => res.passed += 1,
            Err(e) => res.failures.push(format!("{}:{}: {}: {}", path.display(), case.line, case.expr, e)),
        }
        if let Err(e) = compare_plans(&pushdown_engine, &src, &case, &mut res.pushed) {
            res.pushdown_mismatches.push(format!("{}:{}: {}: {}", path.display(), case.line, case.expr, e));
        }
    }
    res
}

/// Evaluates the case's query over the whole source and over the source split in three
/// parts with aggregations pushed down to the parts (a querier over shards), and compares.
fn compare_plans(engine: &Engine, src: &MemSource, c: &EvalCase, pushed: &mut usize) -> Result<(), String> {
    let Ok(expr) = strata_promql::parse(&c.expr) else {
        return Ok(());
    };
    let parts = Partitioned::new(src, 3, engine.clone());
    let run = |s: &dyn Source| match c.kind {
        Kind::Range(st, e, step) => engine.range(s, &expr, st, e, step),
        Kind::Instant(t) => engine.instant(s, &expr, c.expect.range_vector.map_or(t, |r| r.1)),
    };
    let (whole, split) = (run(src), run(&parts));
    *pushed += parts.pushed();
    same_output(whole, split)
}

fn same_output(
    a: Result<strata_promql::Output, QueryError>,
    b: Result<strata_promql::Output, QueryError>,
) -> Result<(), String> {
    let (a, b) = match (a, b) {
        (Err(x), Err(y)) if x == y => return Ok(()),
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => return Err(format!("unsplit {:?} vs pushed down {:?}", a.err(), b.err())),
    };
    // annotations are a set (Prometheus keeps them in a map); parts raise them in their order
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<String>>();
    if set(&a.annotations.warnings) != set(&b.annotations.warnings)
        || set(&a.annotations.infos) != set(&b.annotations.infos)
    {
        return Err(format!("annotations {:?} vs {:?}", a.annotations, b.annotations));
    }
    let series = |v: Value| -> Vec<(Labels, Vec<(i64, V)>)> {
        match v {
            Value::Vector(v) => {
                v.iter().map(|s| (s.labels.clone(), points_of(&s.points, &s.hists))).collect()
            }
            Value::Matrix(m) => {
                m.iter().map(|s| (s.labels.clone(), points_of(&s.samples, &s.hists))).collect()
            }
            Value::Scalar(p) => vec![(Labels::default(), points_of(&p, &[]))],
            Value::String(s) => vec![(Labels::from_unchecked([("s", s.as_str())].into_iter()), Vec::new())],
        }
    };
    // an instant vector's order is unspecified (the conformance files say `ordered` when not)
    let (mut x, mut y) = (series(a.value), series(b.value));
    x.sort_by(|p, q| p.0.cmp(&q.0));
    y.sort_by(|p, q| p.0.cmp(&q.0));
    if x.len() != y.len() {
        return Err(format!("{} series vs {}", x.len(), y.len()));
    }
    for ((la, pa), (lb, pb)) in x.iter().zip(&y) {
        let same = la == lb
            && pa.len() == pb.len()
            && pa.iter().zip(pb).all(|(p, q)| p.0 == q.0 && value_matches(&p.1, &q.1));
        if !same {
            return Err(format!("{la:?} {pa:?} vs {lb:?} {pb:?}"));
        }
    }
    Ok(())
}

#[test]
fn promql_conformance() {
    let dir = shared_dir().join("conformance/promqltest");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set STRATA_SHARED to the shared/ directory)", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut per_file: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut mismatches, mut pushed) = (Vec::new(), 0);
    let mut skipped = String::new();
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let r = run_file(f, Features::all());
        for (line, why) in &r.skipped {
            let _ = writeln!(skipped, "{name}:{line}\t{why}");
        }
        failures.extend(r.failures);
        mismatches.extend(r.pushdown_mismatches);
        pushed += r.pushed;
        per_file.insert(name, (r.passed, r.total));
    }
    let passed: usize = per_file.values().map(|v| v.0).sum();
    let total: usize = per_file.values().map(|v| v.1).sum();
    let skipped_n = skipped.lines().count();
    let mut report = String::new();
    for (f, (p, t)) in &per_file {
        let _ = writeln!(report, "{f}\t{p}/{t}");
    }
    let _ = writeln!(report, "total\t{passed}/{total}\t(skipped {skipped_n})");
    println!("{report}");
    println!("pushdown: {pushed} aggregations pushed down, {} evals differ", mismatches.len());
    assert!(
        mismatches.is_empty(),
        "pushed-down plan differs from the unsplit one:\n{}",
        mismatches.join("\n")
    );
    assert!(pushed > 100, "only {pushed} aggregations were pushed down: the comparison proves little");
    if let Ok(p) = std::env::var("CONFORMANCE_FAILURES") {
        let _ = std::fs::write(p, failures.join("\n"));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let baseline_path = here.join("baseline.txt");
    let skipped_path = here.join("skipped.txt");
    let baseline: usize = std::fs::read_to_string(&baseline_path)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("total\t")).and_then(|v| v.split('/').next()?.parse().ok())
        })
        .unwrap_or(0);
    if std::env::var("UPDATE_CONFORMANCE").is_ok() {
        assert!(passed >= baseline, "passes fell from {baseline} to {passed}: the baseline only rises");
        std::fs::write(&baseline_path, &report).expect("write baseline");
        std::fs::write(&skipped_path, &skipped).expect("write skip list");
        return;
    }
    let committed = std::fs::read_to_string(&skipped_path).unwrap_or_default();
    assert_eq!(
        committed, skipped,
        "skipped evals differ from tests/conformance/skipped.txt (UPDATE_CONFORMANCE=1 rewrites it)"
    );
    assert!(passed >= baseline, "conformance passes fell below the baseline: {passed} < {baseline}");
}

/// The project's own regression files (`tests/regressions/*.test`, same format): answers
/// where Strata once differed from Prometheus, each checked against a Prometheus server.
/// They run with the features a server has by default (eager name removal), and every
/// eval must pass.
#[test]
fn regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no regression files in {}", dir.display());
    let (mut problems, mut total) = (Vec::new(), 0);
    for f in &files {
        let r = run_file(f, Features::default());
        println!("{}\t{}/{}", f.display(), r.passed, r.total);
        total += r.total;
        problems.extend(r.failures);
        problems.extend(r.pushdown_mismatches.into_iter().map(|m| format!("pushdown: {m}")));
        problems.extend(r.skipped.into_iter().map(|(l, why)| format!("{}:{l}: skipped: {why}", f.display())));
        if r.total == 0 {
            problems.push(format!("{}: no evals", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {total} regression evals fail:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
