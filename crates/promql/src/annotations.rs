//! Annotations: the warnings and infos Prometheus attaches to a query's result.

/// Warnings and infos raised while evaluating a query (deduplicated, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `PromQL warning: …` texts.
    pub warnings: Vec<String>,
    /// `PromQL info: …` texts.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds `other`'s warnings and infos that are not here yet (annotations of the parts
    /// of a pushed-down aggregation).
    pub fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        for i in other.infos {
            if !self.infos.contains(&i) {
                self.infos.push(i);
            }
        }
    }

    pub(crate) fn warn(&mut self, text: String) {
        let t = format!("PromQL warning: {text}");
        if !self.warnings.contains(&t) {
            self.warnings.push(t);
        }
    }

    pub(crate) fn info(&mut self, text: String) {
        let t = format!("PromQL info: {text}");
        if !self.infos.contains(&t) {
            self.infos.push(t);
        }
    }
}

/// What a query returns: its value and its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The result.
    pub value: crate::Value,
    /// Warnings and infos.
    pub annotations: Annotations,
}
