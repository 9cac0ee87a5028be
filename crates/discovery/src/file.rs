//! `file_sd_configs`: target groups read from JSON or YAML files, as Prometheus's file SD.
//!
//! The files matching the patterns are polled every second: a file is re-read when its
//! modification time or length changed or when the patterns match it anew, and every file
//! is re-read every `refresh_interval` in any case. Each file is a list of
//! `{targets: [...], labels: {...}}`; its i-th entry becomes the group `<path>:<i>` with
//! the label `__meta_filepath` = the path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Deserializer};
use tokio::sync::watch;

use crate::{PromDuration, StaticConfig, TargetGroup, publish, resolve, validated};

/// How often the matched files are looked at.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Label holding the path of the file a group comes from.
const FILEPATH_LABEL: &str = "__meta_filepath";

/// One `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct FileSdConfig {
    /// Path patterns of the files to read, ending in `.json`, `.yml` or `.yaml`; the last
    /// path component may hold `*` globs. Relative paths are relative to the configuration
    /// file's directory. Required: no default, at least one.
    pub files: Vec<String>,
    /// How often every file is re-read even when it looks unchanged. Default `5m`.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: PromDuration,
}

fn default_refresh_interval() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}

impl<'de> Deserialize<'de> for FileSdConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        validated(deserializer, Self::deserialize, Self::validate)
    }
}

impl FileSdConfig {
    /// Prometheus's checks: at least one pattern, each `^[^*]*(\*[^/]*)?\.(json|yml|yaml)$`
    /// (extension all lower or all upper case).
    fn validate(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        const EXTENSIONS: [&str; 6] = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"];
        for name in &self.files {
            let glob_in_last_component = name.find('*').is_none_or(|i| !name[i..].contains('/'));
            if !glob_in_last_component || !EXTENSIONS.iter().any(|e| name.ends_with(e)) {
                return Err(format!("path name {name:?} is not valid for file discovery"));
            }
        }
        Ok(())
    }
}

/// Polls the files of `config` until the task is aborted.
pub(crate) async fn run(config: FileSdConfig, base_dir: PathBuf, tx: watch::Sender<Vec<TargetGroup>>) {
    let mut files = Files {
        patterns: config.files.iter().map(|f| resolve(&base_dir, f)).collect(),
        read: BTreeMap::new(),
    };
    let refresh = config.refresh_interval.0;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_full_read: Option<Instant> = None;
    loop {
        poll.tick().await;
        let reread_all = last_full_read.is_none_or(|t| t.elapsed() >= refresh);
        if reread_all {
            last_full_read = Some(Instant::now());
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let changed = files.scan(reread_all);
            (files, changed)
        })
        .await;
        let Ok((scanned_files, changed)) = scanned else {
            return; // the runtime is shutting down
        };
        files = scanned_files;
        if changed {
            publish(&tx, files.groups());
        }
    }
}

/// The files of one `file_sd_configs` entry and what was last read from each.
struct Files {
    /// The `files` patterns, resolved against the configuration's directory.
    patterns: Vec<PathBuf>,
    /// Every file the patterns matched at the last scan.
    read: BTreeMap<PathBuf, FileState>,
}

/// What is known of one matched file.
#[derive(Default)]
struct FileState {
    /// Modification time and length when last read (`None`: could not be looked at).
    stamp: Option<(Option<SystemTime>, u64)>,
    /// Its groups as last read successfully.
    groups: Vec<TargetGroup>,
}

impl Files {
    /// Matches the patterns anew and re-reads the new and changed files (all of them when
    /// `reread_all`); tells whether any file's groups may have changed.
    fn scan(&mut self, reread_all: bool) -> bool {
        let matched = self.matched();
        let count = self.read.len();
        self.read.retain(|path, _| matched.contains(path));
        let mut changed = self.read.len() != count;
        for path in matched {
            let stamp = std::fs::metadata(&path).ok().map(|m| (m.modified().ok(), m.len()));
            if !reread_all && stamp.is_some() && self.read.get(&path).is_some_and(|s| s.stamp == stamp) {
                continue;
            }
            let groups = read_file(&path);
            if let Err(e) = &groups {
                tracing::warn!(
                    file = %path.display(),
                    line = e.line(),
                    reason = %e,
                    "file_sd: cannot read the file; keeping its previous targets"
                );
            }
            let state = self.read.entry(path).or_default();
            state.stamp = stamp;
            if let Ok(groups) = groups {
                changed |= state.groups != groups;
                state.groups = groups;
            }
        }
        changed
    }

    /// The paths the patterns match now.
    fn matched(&self) -> BTreeSet<PathBuf> {
        let mut matched = BTreeSet::new();
        for pattern in &self.patterns {
            let pattern = pattern.to_string_lossy();
            match glob::glob(&pattern) {
                Ok(paths) => matched.extend(paths.filter_map(|p| {
                    p.map_err(|e| tracing::warn!(pattern = %pattern, error = %e, "file_sd: cannot read a matched path"))
                        .ok()
                })),
                Err(e) => tracing::warn!(pattern = %pattern, error = %e, "file_sd: invalid path pattern"),
            }
        }
        matched
    }

    /// The groups of every file, in path order.
    fn groups(&self) -> Vec<TargetGroup> {
        self.read.values().flat_map(|f| f.groups.iter().cloned()).collect()
    }
}

/// The groups of one file.
fn read_file(path: &Path) -> Result<Vec<TargetGroup>, ReadError> {
    let content = std::fs::read(path)?;
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let entries: Vec<StaticConfig> = if json {
        serde_json::from_slice(&content)?
    } else if content.trim_ascii().is_empty() {
        Vec::new() // an empty YAML document is an empty list
    } else {
        serde_yaml::from_slice(&content)?
    };
    let name = path.to_string_lossy();
    Ok(entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let mut group = entry.group(i);
            group.source = format!("{name}:{i}");
            group.labels.insert(FILEPATH_LABEL.to_string(), name.to_string());
            group
        })
        .collect())
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl ReadError {
    /// The line of the file where parsing failed, when known.
    fn line(&self) -> Option<usize> {
        match self {
            ReadError::Io(_) => None,
            ReadError::Json(e) => Some(e.line()),
            ReadError::Yaml(e) => e.location().map(|l| l.line()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refresh_interval_defaults_to_five_minutes() {
        let config: FileSdConfig = serde_yaml::from_str("files: [a.json]").unwrap();
        assert_eq!(config.refresh_interval.0, Duration::from_secs(300));
        let config: FileSdConfig = serde_yaml::from_str("files: [a.json]\nrefresh_interval: 30s").unwrap();
        assert_eq!(config.refresh_interval.0, Duration::from_secs(30));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for (yaml, error) in [
            ("files: []", "at least one path name"),
            ("files: [a.txt]", "not valid for file discovery"),
            ("files: ['*/a.json']", "not valid for file discovery"),
            ("files: [a.Json]", "not valid for file discovery"),
            ("files: [a.json]\nbogus: 1", "unknown field `bogus`"),
        ] {
            let got = serde_yaml::from_str::<FileSdConfig>(yaml).unwrap_err().to_string();
            assert!(got.contains(error), "{yaml:?}: {got}");
        }
        assert!(
            serde_yaml::from_str::<FileSdConfig>("files: ['/etc/sd/*-targets*.YML', 'x/y.yaml']").is_ok()
        );
    }
}
