//! Shrinking a disagreeing expression to the smallest one that still disagrees: greedy
//! passes over the tree, root first, that replace a node by a child of its type (or a
//! scalar by `1`), drop modifiers, matchers, grouping and matching labels and optional
//! arguments, and keep a change when the candidate still disagrees the same way.

use crate::exclude::static_exclusion;
use crate::expr::{Expr, Ty};
use crate::generator::{MAX_COST, cost, reach_ok, timing_ok};

/// Every one-step simplification of `e`.
pub fn candidates(e: &Expr) -> Vec<Expr> {
    let mut out = Vec::new();
    for i in 0..e.size() {
        let mut base = e.clone();
        let Some(node) = base.node_mut(i) else { continue };
        for alt in local(node) {
            let mut c = e.clone();
            if let Some(slot) = c.node_mut(i) {
                *slot = alt;
            }
            out.push(c);
        }
    }
    out
}

/// Simplifications of one node.
fn local(n: &Expr) -> Vec<Expr> {
    let mut out = Vec::new();
    let ty = n.ty();
    for c in n.children() {
        if c.ty() == ty {
            out.push(c.clone());
        }
    }
    if ty == Ty::Scalar && !matches!(n, Expr::Num(t) if t == "1") {
        out.push(Expr::Num("1".into()));
    }
    match n {
        Expr::Sel(s, m) | Expr::Range(s, _, m) => {
            let rebuild = |s: crate::expr::Selector, m: crate::expr::Mods| match n {
                Expr::Range(_, r, _) => Expr::Range(s, r.clone(), m),
                _ => Expr::Sel(s, m),
            };
            if m.offset.is_some() {
                let mut m2 = m.clone();
                m2.offset = None;
                out.push(rebuild(s.clone(), m2));
            }
            if m.at.is_some() {
                let mut m2 = m.clone();
                m2.at = None;
                out.push(rebuild(s.clone(), m2));
            }
            for k in 0..s.matchers.len() {
                let mut s2 = s.clone();
                s2.matchers.remove(k);
                if s2.name.is_some() || !s2.matchers.is_empty() {
                    out.push(rebuild(s2, m.clone()));
                }
            }
        }
        Expr::Sub(e, r, step, m) => {
            if m.offset.is_some() {
                let mut m2 = m.clone();
                m2.offset = None;
                out.push(Expr::Sub(e.clone(), r.clone(), step.clone(), m2));
            }
            if m.at.is_some() {
                let mut m2 = m.clone();
                m2.at = None;
                out.push(Expr::Sub(e.clone(), r.clone(), step.clone(), m2));
            }
        }
        Expr::Agg(op, p, Some(g), e) => {
            out.push(Expr::Agg(op, p.clone(), None, e.clone()));
            for k in 0..g.labels.len() {
                let mut g2 = g.clone();
                g2.labels.remove(k);
                out.push(Expr::Agg(op, p.clone(), Some(g2), e.clone()));
            }
        }
        Expr::Bin(op, b, Some(m), l, r) => {
            out.push(Expr::Bin(op, *b, None, l.clone(), r.clone()));
            if m.group.is_some() {
                let mut m2 = m.clone();
                m2.group = None;
                out.push(Expr::Bin(op, *b, Some(m2), l.clone(), r.clone()));
            }
            for k in 0..m.labels.len() {
                let mut m2 = m.clone();
                m2.labels.remove(k);
                out.push(Expr::Bin(op, *b, Some(m2), l.clone(), r.clone()));
            }
        }
        Expr::Call(f, args) => {
            if let Some(func) = crate::expr::func(f)
                && args.len() > func.args.len() - func.optional
            {
                out.push(Expr::Call(f, args[..args.len() - 1].to_vec()));
            }
        }
        _ => {}
    }
    out
}

/// Shrinks `e` while `still_differs` holds, trying at most `budget` candidates.
pub fn minimise(e: &Expr, still_differs: &mut dyn FnMut(&Expr) -> bool, budget: usize) -> Expr {
    let mut best = e.clone();
    let mut tried = 0;
    'outer: loop {
        for c in candidates(&best) {
            if tried >= budget {
                break 'outer;
            }
            if !reach_ok(&c, 0)
                || !timing_ok(&c, true)
                || cost(&c) > MAX_COST
                || static_exclusion(&c).is_some()
            {
                continue;
            }
            tried += 1;
            if still_differs(&c) {
                best = c;
                continue 'outer;
            }
        }
        break;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Mods, Selector};

    #[test]
    fn shrinks_to_the_part_that_matters() {
        let sel = |n: &str| {
            Expr::Sel(Selector { name: Some(n.into()), matchers: vec![], braces: false }, Mods::default())
        };
        let e = Expr::Agg(
            "sum",
            None,
            None,
            Box::new(Expr::Bin(
                "*",
                false,
                None,
                Box::new(sel("a")),
                Box::new(Expr::Call("abs", vec![sel("b")])),
            )),
        );
        let small = minimise(&e, &mut |c| c.to_string().contains("abs"), 100);
        assert_eq!(small.to_string(), "abs(b)");
    }
}
