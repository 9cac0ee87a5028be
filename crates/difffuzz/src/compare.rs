//! Answers of the Prometheus HTTP API and how two of them are compared: error against
//! error by `errorType` only, results by type, label sets (in any order) and points, values
//! within a relative 1e-6 (NaN equals NaN).

use std::collections::BTreeMap;

use serde_json::Value;

/// What a server answered to one query.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `status: success`: the `data` object.
    Ok(Value),
    /// `status: error` (or no usable answer): its `errorType` and message.
    Err {
        /// `errorType` (`bad_data`, `execution`, `timeout`, …; `transport` when the request
        /// failed).
        kind: String,
        /// The message.
        message: String,
    },
}

impl Answer {
    /// Reads a response body.
    pub fn from_body(v: &Value) -> Answer {
        if v["status"] == "success" {
            Answer::Ok(v["data"].clone())
        } else {
            Answer::Err {
                kind: v["errorType"].as_str().unwrap_or("unknown").to_owned(),
                message: v["error"].as_str().unwrap_or("").to_owned(),
            }
        }
    }

    /// Short text for reports (results cut at `max` characters).
    pub fn brief(&self, max: usize) -> String {
        let s = match self {
            Answer::Ok(d) => d.to_string(),
            Answer::Err { kind, message } => format!("error {kind}: {message}"),
        };
        if s.len() > max {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} chars)", &s[..end], s.len())
        } else {
            s
        }
    }

    /// The series of a vector or matrix result (a scalar is one series without labels).
    pub fn series(&self) -> Vec<Series> {
        match self {
            Answer::Ok(d) => series_of(d),
            Answer::Err { .. } => Vec::new(),
        }
    }
}

/// One series of a result: sorted labels and points (ms, value).
pub type Series = (BTreeMap<String, String>, Vec<(i64, f64)>);

/// A sample value as the API writes it.
pub fn value(v: &Value) -> f64 {
    match v.as_str() {
        Some("NaN") => f64::NAN,
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s.parse().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

fn point(p: &Value) -> (i64, f64) {
    ((p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64, value(&p[1]))
}

fn series_of(d: &Value) -> Vec<Series> {
    match d["resultType"].as_str() {
        Some("scalar") | Some("string") => vec![(BTreeMap::new(), vec![point(&d["result"])])],
        _ => d["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let labels = s["metric"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let pts = match s.get("values") {
                            Some(v) => v.as_array().map_or(vec![], |v| v.iter().map(point).collect()),
                            None => vec![point(&s["value"])],
                        };
                        (labels, pts)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Equal within a relative 1e-6 (NaN equals NaN, infinities by sign).
pub fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// How two answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiffKind {
    /// The reference failed, the target answered.
    RefErrorTargetResult,
    /// The reference answered, the target failed.
    RefResultTargetError,
    /// Both failed, with different error types.
    ErrorType,
    /// Both answered, differently.
    Result,
}

impl DiffKind {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            DiffKind::RefErrorTargetResult => "reference error, target result",
            DiffKind::RefResultTargetError => "reference result, target error",
            DiffKind::ErrorType => "different error types",
            DiffKind::Result => "different results",
        }
    }
}

/// The difference between a reference answer and a target's, if any: its kind and a
/// description of the first difference.
pub fn diff(reference: &Answer, target: &Answer) -> Option<(DiffKind, String)> {
    match (reference, target) {
        (Answer::Err { kind: a, .. }, Answer::Err { kind: b, .. }) => {
            (a != b).then(|| (DiffKind::ErrorType, format!("{a} vs {b}")))
        }
        (Answer::Err { kind, .. }, Answer::Ok(_)) => {
            Some((DiffKind::RefErrorTargetResult, format!("reference error {kind}, target answered")))
        }
        (Answer::Ok(_), Answer::Err { kind, message }) => {
            Some((DiffKind::RefResultTargetError, format!("target error {kind}: {message}")))
        }
        (Answer::Ok(p), Answer::Ok(s)) => diff_data(p, s).map(|d| (DiffKind::Result, d)),
    }
}

fn diff_data(p: &Value, s: &Value) -> Option<String> {
    if p["resultType"] != s["resultType"] {
        return Some(format!("resultType {} vs {}", p["resultType"], s["resultType"]));
    }
    if p["resultType"] == "string" {
        return (p["result"][1] != s["result"][1] || p["result"][0] != s["result"][0])
            .then(|| format!("{} vs {}", p["result"], s["result"]));
    }
    let key = |x: &Series| {
        let pts: Vec<String> = x.1.iter().map(|(t, v)| format!("{t}:{v}")).collect();
        (format!("{:?}", x.0), pts)
    };
    let (mut pr, mut sr) = (series_of(p), series_of(s));
    pr.sort_by_key(key);
    sr.sort_by_key(key);
    if pr.len() != sr.len() {
        let labels =
            |v: &[Series]| v.iter().take(3).map(|x| format!("{:?}", x.0)).collect::<Vec<_>>().join(" ");
        return Some(format!(
            "{} series vs {} (first: {} | {})",
            pr.len(),
            sr.len(),
            labels(&pr),
            labels(&sr)
        ));
    }
    for (a, b) in pr.iter().zip(&sr) {
        if a.0 != b.0 {
            return Some(format!("labels {:?} vs {:?}", a.0, b.0));
        }
        if a.1.len() != b.1.len() || a.1.iter().zip(&b.1).any(|(x, y)| x.0 != y.0 || !close(x.1, y.1)) {
            let first = a.1.iter().zip(&b.1).find(|(x, y)| x.0 != y.0 || !close(x.1, y.1));
            return Some(match first {
                Some((x, y)) => {
                    format!("series {:?}: {x:?} vs {y:?} ({} vs {} points)", a.0, a.1.len(), b.1.len())
                }
                None => format!("series {:?}: {} vs {} points", a.0, a.1.len(), b.1.len()),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compares_in_any_order_with_tolerance_and_nan() {
        let a = Answer::Ok(json!({"resultType": "vector", "result": [
            {"metric": {"a": "1"}, "value": [1.5, "NaN"]},
            {"metric": {"a": "2"}, "value": [1.5, "1.0000000001"]}]}));
        let b = Answer::Ok(json!({"resultType": "vector", "result": [
            {"metric": {"a": "2"}, "value": [1.5, "1"]},
            {"metric": {"a": "1"}, "value": [1.5, "NaN"]}]}));
        assert!(diff(&a, &b).is_none());
        let c = Answer::Err { kind: "bad_data".into(), message: "x".into() };
        assert_eq!(diff(&c, &b).map(|d| d.0), Some(DiffKind::RefErrorTargetResult));
        assert_eq!(diff(&a, &c).map(|d| d.0), Some(DiffKind::RefResultTargetError));
    }
}
