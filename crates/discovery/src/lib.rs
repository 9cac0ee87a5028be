//! # strata-discovery — where the scraper's targets come from
//!
//! Every mechanism Prometheus calls a service discovery ends in the same shape: groups of
//! targets, each target a label set holding at least `__address__` plus `__meta_*` labels,
//! each group with labels shared by its targets and a `source` naming it. A provider
//! sends the complete list of its current groups whenever it changes; the scraper
//! relabels the targets and runs them.
//!
//! Providers: `static_configs`, `file_sd_configs` (JSON or YAML files, path globs, watched
//! for changes) and `kubernetes_sd_configs` (roles node, pod, service, endpoints,
//! endpointslice, watched through the API server). Their configuration is the
//! Prometheus configuration file's, rejecting unknown keys.
//!
//! A [`Provider`] names one mechanism with its configuration; [`Discovery::spawn`] runs it
//! on the current tokio runtime and [`Discovery::subscribe`] hands out a
//! [`tokio::sync::watch`] receiver of the provider's complete current list of groups:
//!
//! - static: one group per `static_configs` entry, sent once;
//! - file: the files matching the `files` patterns are polled every second and re-read
//!   when they change (and all of them every `refresh_interval`); a file that does not
//!   parse keeps its previous groups, a removed file loses them;
//! - Kubernetes: the objects of the role are listed and watched (reconnecting with
//!   backoff), and turned into groups with the `__meta_kubernetes_*` labels Prometheus
//!   gives them. The first list is sent once every watched kind has been listed.
//!
//! Relative paths of a configuration (file_sd files, kubeconfig, TLS and credential
//! files) are resolved against the directory of the configuration file, as Prometheus
//! does.

mod duration;
mod file;
mod http;
mod kubernetes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use duration::PromDuration;
pub use file::FileSdConfig;
pub use http::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig};
pub use kubernetes::{AttachMetadata, KubernetesSdConfig, NamespaceDiscovery, Role, SelectorConfig};

/// A label set, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// A group of discovered targets (Prometheus's `targetgroup.Group`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// Names the group within its provider (a file path and index, a Kubernetes object);
    /// a later group with the same source replaces it.
    pub source: String,
    /// One label set per target; each holds `__address__` and the provider's meta labels.
    pub targets: Vec<LabelSet>,
    /// Labels every target of the group gets unless it has its own.
    pub labels: LabelSet,
}

/// One entry of `static_configs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` of each target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of every target of the entry.
    #[serde(default)]
    pub labels: LabelSet,
}

impl StaticConfig {
    /// The group this entry stands for (`source` is its index in the list).
    pub fn group(&self, index: usize) -> TargetGroup {
        TargetGroup {
            source: index.to_string(),
            targets: self
                .targets
                .iter()
                .map(|t| LabelSet::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: self.labels.clone(),
        }
    }
}

/// What one discovery mechanism of a scrape config is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few per scrape config, built once; boxing would only burden callers"
)]
pub enum Provider {
    /// `static_configs`: fixed targets.
    Static(Vec<StaticConfig>),
    /// One `file_sd_configs` entry.
    File(FileSdConfig),
    /// One `kubernetes_sd_configs` entry.
    Kubernetes(KubernetesSdConfig),
}

/// A running provider: the latest complete list of its target groups. Dropping it stops
/// the provider's task.
#[derive(Debug)]
pub struct Discovery {
    groups: watch::Receiver<Vec<TargetGroup>>,
    task: AbortHandle,
}

impl Discovery {
    /// Starts `provider` on the current tokio runtime. Relative file paths (file_sd files,
    /// kubeconfig, CA/cert/token files) are resolved against `base_dir` (the directory of
    /// the configuration file), as Prometheus does.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(provider: Provider, base_dir: &Path) -> Discovery {
        let (tx, groups) = watch::channel(Vec::new());
        let base_dir = base_dir.to_path_buf();
        let task = match provider {
            Provider::Static(configs) => tokio::spawn(run_static(configs, tx)),
            Provider::File(config) => tokio::spawn(file::run(config, base_dir, tx)),
            Provider::Kubernetes(config) => tokio::spawn(kubernetes::run(config, base_dir, tx)),
        };
        Discovery { groups, task: task.abort_handle() }
    }

    /// A receiver of the provider's complete current list of groups, updated on every
    /// change (empty until the provider's first list).
    pub fn subscribe(&self) -> watch::Receiver<Vec<TargetGroup>> {
        self.groups.clone()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends the groups of `static_configs` once, then keeps the channel open.
async fn run_static(configs: Vec<StaticConfig>, tx: watch::Sender<Vec<TargetGroup>>) {
    publish(&tx, configs.iter().enumerate().map(|(i, c)| c.group(i)).collect());
    tx.closed().await;
}

/// Makes `groups` the provider's current list, waking subscribers only if it changed.
fn publish(tx: &watch::Sender<Vec<TargetGroup>>, groups: Vec<TargetGroup>) {
    tx.send_if_modified(|current| {
        let changed = *current != groups;
        if changed {
            *current = groups;
        }
        changed
    });
}

/// `path` as Prometheus resolves a path of its configuration file: relative to `base_dir`.
fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    base_dir.join(path)
}

/// Deserializes a configuration with serde's derived `derived` (a `remote = "Self"`
/// derive) and rejects it when `validate` finds it inconsistent, as Prometheus's
/// `UnmarshalYAML` methods do.
fn validated<'de, D, T>(
    deserializer: D,
    derived: fn(D) -> Result<T, D::Error>,
    validate: fn(&T) -> Result<(), String>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let config = derived(deserializer)?;
    validate(&config).map_err(serde::de::Error::custom)?;
    Ok(config)
}
