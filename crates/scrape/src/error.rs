//! Errors of the scraper's configuration.

use std::fmt;
use std::path::Path;

/// A configuration file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (empty when parsing text that came from no file).
    pub file: String,
    /// The 1-based line the problem is on, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(file: &Path, line: Option<usize>, reason: String) -> ConfigError {
        ConfigError { file: file.display().to_string(), line, reason }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (false, Some(l)) => write!(f, "{}:{l}: {}", self.file, self.reason),
            (false, None) => write!(f, "{}: {}", self.file, self.reason),
            (true, Some(l)) => write!(f, "line {l}: {}", self.reason),
            (true, None) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}
