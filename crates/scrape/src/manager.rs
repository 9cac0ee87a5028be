//! The scrape manager: one pool per job, each following its service discoveries and the
//! ring of ingestors, starting and stopping target loops; configuration reloads that
//! keep what did not change running.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_api::Writer;
use strata_discovery::{Discovery, LabelSet, TargetGroup};
use tokio::sync::watch;

use crate::append::AppendConfig;
use crate::config::{Config, GlobalConfig, ScrapeConfig};
use crate::error::ConfigError;
use crate::fetch::Fetcher;
use crate::ring::Ring;
use crate::scrape_loop::{self, Health, LoopHandle, LoopShared, Stop};
use crate::target::{Outcome, Target, targets};

/// Settings of a [`ScrapeManager`].
#[derive(Debug)]
pub struct ManagerConfig {
    /// The Prometheus configuration file; None: nothing is scraped (reloads succeed and
    /// change nothing).
    pub config_file: Option<PathBuf>,
    /// The ring of ingestors sharing the targets. Default: this one alone.
    pub ring: Option<watch::Receiver<Ring>>,
    /// Where the scraped metric metadata goes (the node's `/api/v1/metadata`). Default none.
    pub metadata: Option<Arc<strata_api::MetadataStore>>,
    /// This node's HTTP listen address (`host:port`): with the host name, the
    /// `globalUrl` of loopback targets in `/api/v1/targets`, as Prometheus's default
    /// external URL. Default none: loopback URLs are shown as they are.
    pub listen_addr: Option<String>,
    /// The wall clock scrapes are scheduled and timestamped by. Default none: the system
    /// clock.
    pub clock: Option<Arc<dyn strata_tsdb::Clock>>,
}

/// Runs the scrape configuration of one node.
#[derive(Debug, Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: Option<PathBuf>,
    writer: Arc<dyn Writer>,
    ring: watch::Receiver<Ring>,
    metadata: Option<Arc<strata_api::MetadataStore>>,
    /// This node as others reach it: host name and HTTP port (see `ManagerConfig::listen_addr`).
    external: Option<(String, u16)>,
    clock: Arc<dyn strata_tsdb::Clock>,
    running: tokio::sync::Mutex<Running>,
    /// The pools as the API sees them.
    pools: RwLock<BTreeMap<String, Arc<Pool>>>,
}

#[derive(Debug, Default)]
struct Running {
    global: Option<GlobalConfig>,
    pools: BTreeMap<String, PoolRun>,
}

/// A running pool: its discoveries and the task following them.
#[derive(Debug)]
struct PoolRun {
    pool: Arc<Pool>,
    task: tokio::task::JoinHandle<()>,
    _discoveries: Vec<Discovery>,
}

impl PoolRun {
    /// Stops the pool; its targets go stale.
    fn stop(self) {
        self.task.abort();
        let loops = std::mem::take(&mut self.pool.state.lock().active);
        for (_, t) in loops {
            if let Some(h) = t.handle {
                h.stop(Stop::Removed);
            }
        }
    }
}

/// One job's targets.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) cfg: ScrapeConfig,
    external_labels: LabelSet,
    shared: Arc<LoopShared>,
    pub(crate) state: Mutex<PoolState>,
}

/// The targets of a pool.
#[derive(Debug, Default)]
pub(crate) struct PoolState {
    /// Active targets by hash, in the ring's view: a handle when this ingestor scrapes it.
    pub(crate) active: BTreeMap<u64, ActiveTarget>,
    /// Discovered labels of the dropped targets (at most `keep_dropped_targets`).
    pub(crate) dropped: Vec<LabelSet>,
    /// How many targets relabeling dropped.
    pub(crate) dropped_count: usize,
}

/// An active target.
#[derive(Debug)]
pub(crate) struct ActiveTarget {
    pub(crate) target: Target,
    handle: Option<LoopHandle>,
}

impl ActiveTarget {
    /// The target's health when this ingestor scrapes it.
    pub(crate) fn health(&self) -> Option<Health> {
        self.handle.as_ref().map(|h| h.health.lock().clone())
    }
}

impl Pool {
    fn append_config(&self, t: &Target) -> AppendConfig {
        let c = &self.cfg;
        AppendConfig {
            target_labels: t.public_labels().map(|(n, v)| (n.clone(), v.clone())).collect(),
            external_labels: self.external_labels.clone(),
            honor_labels: c.honor_labels,
            honor_timestamps: c.honor_timestamps,
            track_timestamps_staleness: c.track_timestamps_staleness,
            metric_relabel: c.metric_relabel_configs.clone(),
            sample_limit: c.sample_limit,
            label_limit: c.label_limit,
            label_name_length_limit: c.label_name_length_limit,
            label_value_length_limit: c.label_value_length_limit,
        }
    }

    /// Brings the loops in line with the discovered `groups` and the `ring`.
    fn sync(&self, groups: &[TargetGroup], ring: &Ring) {
        let mut active: Vec<Target> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut dropped = Vec::new();
        let mut dropped_count = 0;
        for o in targets(&self.cfg, groups) {
            match o {
                Outcome::Active(t) => {
                    if seen.insert(t.hash) {
                        active.push(t);
                    }
                }
                Outcome::Dropped(labels, why) => {
                    if let Some(why) = why {
                        tracing::warn!(job = %self.cfg.job_name, ?labels, %why, "invalid target dropped");
                    }
                    dropped_count += 1;
                    let keep = self.cfg.keep_dropped_targets;
                    if keep == 0 || (dropped.len() as u64) < keep {
                        dropped.push(labels);
                    }
                }
            }
        }
        let limit = self.cfg.target_limit;
        *self.shared.forced_error.lock() = (limit > 0 && active.len() as u64 > limit)
            .then(|| format!("target_limit exceeded (number of targets: {}, limit: {limit})", active.len()));
        let mut st = self.state.lock();
        let mut old = std::mem::take(&mut st.active);
        for t in active {
            let owned = ring.owns(t.hash);
            let handle = match old.remove(&t.hash) {
                Some(prev) if prev.target == t && prev.handle.is_some() == owned => prev.handle,
                Some(prev) => {
                    if let Some(h) = prev.handle {
                        h.stop(if owned { Stop::Removed } else { Stop::Quiet });
                    }
                    owned.then(|| scrape_loop::spawn(self.shared.clone(), t.clone(), self.append_config(&t)))
                }
                None => {
                    owned.then(|| scrape_loop::spawn(self.shared.clone(), t.clone(), self.append_config(&t)))
                }
            };
            st.active.insert(t.hash, ActiveTarget { target: t, handle });
        }
        for (_, gone) in old {
            if let Some(h) = gone.handle {
                h.stop(Stop::Removed);
            }
        }
        st.dropped = dropped;
        st.dropped_count = dropped_count;
    }
}

/// Resolves when `rx` changes; never when its sender is gone (a provider that finished,
/// like a static list, never changes again).
async fn changed_or_never<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits for a change of any of `rxs` or of `ring`.
async fn changed(rxs: &mut [watch::Receiver<Vec<TargetGroup>>], ring: &mut watch::Receiver<Ring>) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = rxs
        .iter_mut()
        .map(|r| Box::pin(changed_or_never(r)) as Pin<Box<dyn Future<Output = ()> + Send + '_>>)
        .collect();
    waits.push(Box::pin(changed_or_never(ring)));
    futures_util::future::select_all(waits).await;
}

async fn follow(
    pool: Arc<Pool>,
    mut rxs: Vec<watch::Receiver<Vec<TargetGroup>>>,
    mut ring: watch::Receiver<Ring>,
) {
    loop {
        let mut groups = Vec::new();
        for (i, r) in rxs.iter_mut().enumerate() {
            for g in r.borrow_and_update().iter() {
                groups.push(TargetGroup { source: format!("{i}/{}", g.source), ..g.clone() });
            }
        }
        let current = ring.borrow_and_update().clone();
        pool.sync(&groups, &current);
        changed(&mut rxs, &mut ring).await;
    }
}

impl ScrapeManager {
    /// Loads the configuration and starts scraping; a bad file fails the start.
    pub async fn start(cfg: ManagerConfig, writer: Arc<dyn Writer>) -> Result<ScrapeManager, ConfigError> {
        let ring = cfg.ring.unwrap_or_else(|| watch::channel(Ring::single()).1);
        let m = ScrapeManager {
            inner: Arc::new(Inner {
                file: cfg.config_file,
                writer,
                ring,
                metadata: cfg.metadata,
                external: cfg.listen_addr.as_deref().and_then(external_of),
                clock: cfg.clock.unwrap_or_else(|| Arc::new(strata_tsdb::SystemClock)),
                running: tokio::sync::Mutex::default(),
                pools: RwLock::default(),
            }),
        };
        m.reload().await?;
        Ok(m)
    }

    /// Re-reads the configuration file. A bad file changes nothing (the error says where
    /// and why); otherwise jobs whose configuration changed restart, removed jobs stop
    /// (their series go stale) and the others keep running undisturbed.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let Some(file) = &self.inner.file else { return Ok(()) };
        let cfg = match Config::load(file) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration not reloaded: keeping the running one");
                return Err(e);
            }
        };
        let mut run = self.inner.running.lock().await;
        let global_changed = run.global.as_ref() != Some(&cfg.global);
        let wanted: BTreeMap<&str, &ScrapeConfig> =
            cfg.scrape_configs.iter().map(|s| (s.job_name.as_str(), s)).collect();
        let old = std::mem::take(&mut run.pools);
        for (job, p) in old {
            match wanted.get(job.as_str()) {
                Some(c) if !global_changed && p.pool.cfg == **c => {
                    run.pools.insert(job, p);
                }
                _ => p.stop(),
            }
        }
        for sc in &cfg.scrape_configs {
            if run.pools.contains_key(&sc.job_name) {
                continue;
            }
            match self.start_pool(sc, &cfg) {
                Ok(p) => {
                    run.pools.insert(sc.job_name.clone(), p);
                }
                Err(e) => tracing::error!(job = %sc.job_name, error = %e, "scrape pool not started"),
            }
        }
        run.global = Some(cfg.global.clone());
        *self.inner.pools.write() = run.pools.iter().map(|(j, p)| (j.clone(), p.pool.clone())).collect();
        tracing::info!(file = %file.display(), jobs = run.pools.len(), "scrape configuration loaded");
        Ok(())
    }

    fn start_pool(&self, sc: &ScrapeConfig, cfg: &Config) -> Result<PoolRun, String> {
        let ext = &cfg.global.external_labels;
        let mut seed_text = String::new();
        for (n, v) in ext {
            seed_text.push_str(&format!("{n}\u{ff}{v}\u{ff}"));
        }
        let shared = Arc::new(LoopShared {
            fetcher: Fetcher::new(sc)?,
            writer: self.inner.writer.clone(),
            forced_error: Mutex::new(None),
            metadata: self.inner.metadata.clone(),
            seed: xxhash_rust::xxh3::xxh3_64(seed_text.as_bytes()),
            clock: self.inner.clock.clone(),
        });
        let pool =
            Arc::new(Pool { cfg: sc.clone(), external_labels: ext.clone(), shared, state: Mutex::default() });
        let discoveries: Vec<Discovery> =
            sc.providers.iter().map(|p| Discovery::spawn(p.clone(), &cfg.base_dir)).collect();
        let rxs = discoveries.iter().map(Discovery::subscribe).collect();
        let task = tokio::spawn(follow(pool.clone(), rxs, self.inner.ring.clone()));
        Ok(PoolRun { pool, task, _discoveries: discoveries })
    }

    /// Stops every loop without staleness markers (the process is shutting down, or
    /// another ingestor takes over).
    pub async fn stop(&self) {
        let mut run = self.inner.running.lock().await;
        for (_, p) in std::mem::take(&mut run.pools) {
            p.task.abort();
            p.pool.state.lock().active.clear();
        }
        self.inner.pools.write().clear();
    }

    /// The pools by job name (for the targets API).
    pub(crate) fn pools(&self) -> BTreeMap<String, Arc<Pool>> {
        self.inner.pools.read().clone()
    }

    /// This node's host name and HTTP port, when known.
    pub(crate) fn external(&self) -> Option<&(String, u16)> {
        self.inner.external.as_ref()
    }
}

/// The host name of this machine and the port of `listen` (`host:port`).
fn external_of(listen: &str) -> Option<(String, u16)> {
    let port = listen.rsplit_once(':')?.1.parse().ok()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_owned();
    (!host.is_empty()).then_some((host, port))
}
