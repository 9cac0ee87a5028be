//! The in-memory inverted index of a shard: label name → value → sorted series ids.
//! It answers matchers with Prometheus's semantics without scanning all series.

use std::collections::{BTreeMap, HashMap};

use crate::labels::Labels;
use crate::matcher::Matcher;

/// Postings of one shard.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    map: HashMap<String, BTreeMap<String, Vec<u64>>>,
    all: Vec<u64>,
}

fn insert_sorted(v: &mut Vec<u64>, id: u64) {
    match v.last() {
        Some(&last) if last >= id => {
            if let Err(i) = v.binary_search(&id) {
                v.insert(i, id);
            }
        }
        _ => v.push(id),
    }
}

fn remove_sorted(v: &mut Vec<u64>, id: u64) {
    if let Ok(i) = v.binary_search(&id) {
        v.remove(i);
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|&x| {
            while j < b.len() && b[j] < x {
                j += 1;
            }
            !(j < b.len() && b[j] == x)
        })
        .collect()
}

fn union(lists: Vec<&Vec<u64>>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].clone(),
        _ => {
            let mut out: Vec<u64> = lists.into_iter().flatten().copied().collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

impl Postings {
    pub(crate) fn add(&mut self, id: u64, labels: &Labels) {
        for l in labels.iter() {
            let values = self.map.entry(l.name.clone()).or_default();
            insert_sorted(values.entry(l.value.clone()).or_default(), id);
        }
        insert_sorted(&mut self.all, id);
    }

    pub(crate) fn remove(&mut self, id: u64, labels: &Labels) {
        for l in labels.iter() {
            if let Some(values) = self.map.get_mut(&l.name) {
                if let Some(ids) = values.get_mut(&l.value) {
                    remove_sorted(ids, id);
                    if ids.is_empty() {
                        values.remove(&l.value);
                    }
                }
                if values.is_empty() {
                    self.map.remove(&l.name);
                }
            }
        }
        remove_sorted(&mut self.all, id);
    }

    /// Postings of every value of `m.name` for which `pred(value)` holds, unioned.
    fn values_where(&self, m: &Matcher, want: bool) -> Vec<u64> {
        let Some(values) = self.map.get(&m.name) else {
            return Vec::new();
        };
        if let Some(set) = m.set_values().filter(|_| want) {
            return union(set.iter().filter_map(|v| values.get(*v)).collect());
        }
        union(values.iter().filter(|(v, _)| m.matches(v) == want).map(|(_, ids)| ids).collect())
    }

    /// Sorted ids of the series every matcher accepts.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let (positive, empty_matching): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| !m.matches(""));
        let mut ids: Option<Vec<u64>> = None;
        for m in positive {
            let p = self.values_where(m, true);
            ids = Some(match ids {
                None => p,
                Some(cur) => intersect(&cur, &p),
            });
            if ids.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut ids = ids.unwrap_or_else(|| self.all.clone());
        for m in empty_matching {
            // the series to drop are those whose value of the label does not match
            ids = subtract(&ids, &self.values_where(m, false));
        }
        ids
    }

    /// Label names present (sorted).
    pub(crate) fn names(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    /// Values of `name` and their postings (sorted by value).
    pub(crate) fn values(&self, name: &str) -> Option<&BTreeMap<String, Vec<u64>>> {
        self.map.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::MatchOp;

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn prometheus_matcher_semantics() {
        let mut p = Postings::default();
        let sets = [
            vec![("__name__", "up"), ("job", "a")],
            vec![("__name__", "up"), ("job", "b"), ("x", "1")],
            vec![("__name__", "down"), ("job", "a"), ("x", "2")],
        ];
        for (i, s) in sets.iter().enumerate() {
            p.add(i as u64, &Labels::from_pairs(s.iter().copied()).unwrap());
        }
        use MatchOp::*;
        assert_eq!(p.select(&[m(Equal, "__name__", "up")]), vec![0, 1]);
        assert_eq!(p.select(&[m(Equal, "__name__", "up"), m(Equal, "x", "")]), vec![0]);
        assert_eq!(p.select(&[m(NotEqual, "x", "")]), vec![1, 2]);
        assert_eq!(p.select(&[m(NotEqual, "x", "1")]), vec![0, 2]);
        assert_eq!(p.select(&[m(Regex, "job", "a|b"), m(NotRegex, "__name__", "d.*")]), vec![0, 1]);
        assert_eq!(p.select(&[m(Regex, "x", "1|")]), vec![0, 1]);
        assert_eq!(p.select(&[m(Regex, "job", ".+")]), vec![0, 1, 2]);
        assert!(p.select(&[m(Equal, "job", "zzz")]).is_empty());
        p.remove(1, &Labels::from_pairs(sets[1].iter().copied()).unwrap());
        assert_eq!(p.select(&[m(Equal, "__name__", "up")]), vec![0]);
        assert!(p.values("x").unwrap().get("1").is_none());
        assert_eq!(p.select(&[m(Regex, "job", ".*")]).len(), 2);
    }
}
