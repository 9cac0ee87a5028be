//! `kubernetes_sd_configs`: targets from the objects of a Kubernetes cluster, as
//! Prometheus's kubernetes SD discovers them.
//!
//! The objects the role needs are listed and watched (kube's watcher, reconnecting with
//! backoff) into stores, one per kind and namespace; whenever one changes, the role's
//! groups are rebuilt from the stores and sent if different. Roles endpoints and
//! endpointslice also watch services and pods (their labels are added to the targets),
//! and `attach_metadata.node` adds the nodes.

mod backing;
mod client;
mod config;
mod endpoints;
mod endpointslice;
mod meta;
mod node;
mod pod;
mod service;

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use config::{AttachMetadata, KubernetesSdConfig, NamespaceDiscovery, Role, SelectorConfig};

use crate::{TargetGroup, publish};

/// Pause before setting up the client again after it failed.
const CLIENT_RETRY: Duration = Duration::from_secs(10);

/// Watches the objects of `config`'s role and publishes their groups until the task is
/// aborted.
pub(crate) async fn run(config: KubernetesSdConfig, base_dir: PathBuf, tx: watch::Sender<Vec<TargetGroup>>) {
    let (client, own_namespace) = loop {
        match client::connect(&config, &base_dir).await {
            Ok(connected) => break connected,
            Err(e) => {
                tracing::warn!(role = %config.role, error = %e, "kubernetes_sd: cannot set up the API client");
                tokio::time::sleep(CLIENT_RETRY).await;
            }
        }
    };
    let mut watches = Watches {
        config: &config,
        client,
        namespaces: namespaces(&config, own_namespace),
        streams: Vec::new(),
    };
    let cluster = watches.cluster();
    let mut events = stream::select_all(watches.streams);
    let mut unsynced: HashSet<usize> = (0..events.len()).collect();
    while let Some(first) = events.next().await {
        let mut changed = false;
        let mut apply = |(stream, signal)| match signal {
            Signal::Synced => {
                unsynced.remove(&stream);
                changed = true;
            }
            Signal::Changed => changed = true,
            Signal::Nothing => {}
        };
        apply(first);
        // Take in every event already there before rebuilding the groups.
        while let Some(Some(next)) = events.next().now_or_never() {
            apply(next);
        }
        if changed && unsynced.is_empty() {
            publish(&tx, cluster.groups(config.role));
        }
    }
}

/// The namespaces to watch namespaced kinds in (`None`: all of them).
fn namespaces(config: &KubernetesSdConfig, own_namespace: String) -> Vec<Option<String>> {
    let mut names = config.namespaces.names.clone();
    if config.namespaces.own_namespace {
        names.push(own_namespace);
    }
    if names.is_empty() { vec![None] } else { names.into_iter().map(Some).collect() }
}

/// What a watch stream tells the discovery loop.
enum Signal {
    /// The store holds a complete list (the first one, or after a re-list).
    Synced,
    /// An object was added, changed or deleted.
    Changed,
    /// Nothing the groups depend on (a list in progress, an error being retried).
    Nothing,
}

/// The stores the role's groups are built from; kinds the role does not watch stay empty.
pub(super) struct Cluster {
    nodes: Objects<Node>,
    pods: Objects<Pod>,
    services: Objects<Service>,
    endpoints: Objects<Endpoints>,
    endpoint_slices: Objects<EndpointSlice>,
    /// Whether targets get the labels of their node (`attach_metadata.node`).
    node_metadata: bool,
}

impl Cluster {
    /// The groups of `role`, sorted by source.
    fn groups(&self, role: Role) -> Vec<TargetGroup> {
        let mut groups: Vec<TargetGroup> = match role {
            Role::Node => self.nodes.all().filter_map(|n| node::group(&n)).collect(),
            Role::Pod => self.pods.all().map(|p| pod::group(&p, self)).collect(),
            Role::Service => self.services.all().map(|s| service::group(&s)).collect(),
            Role::Endpoints => self.endpoints.all().map(|e| endpoints::group(&e, self)).collect(),
            Role::EndpointSlice => {
                self.endpoint_slices.all().map(|e| endpointslice::group(&e, self)).collect()
            }
        };
        groups.sort_by(|a, b| a.source.cmp(&b.source));
        groups
    }
}

/// The objects of one kind: one store per watched namespace.
pub(super) struct Objects<K: 'static + Resource<DynamicType = ()> + Clone> {
    stores: Vec<Store<K>>,
}

impl<K: 'static + Resource<DynamicType = ()> + Clone> Objects<K> {
    /// The object named `name` in `namespace` (`None` for cluster-scoped kinds).
    pub(super) fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let key = namespace.map_or_else(|| ObjectRef::new(name), |ns| ObjectRef::new(name).within(ns));
        self.stores.iter().find_map(|store| store.get(&key))
    }

    fn all(&self) -> impl Iterator<Item = Arc<K>> + '_ {
        self.stores.iter().flat_map(Store::state)
    }

    fn none() -> Self {
        Objects { stores: Vec::new() }
    }
}

/// Sets up the watches of a role: one stream per kind and namespace.
struct Watches<'a> {
    config: &'a KubernetesSdConfig,
    client: kube::Client,
    namespaces: Vec<Option<String>>,
    streams: Vec<BoxStream<'static, (usize, Signal)>>,
}

impl Watches<'_> {
    /// Starts watching what the role needs.
    fn cluster(&mut self) -> Cluster {
        let role = self.config.role;
        let node_metadata = self.config.attach_metadata.node && role != Role::Node && role != Role::Service;
        let needs = |kinds: &[Role]| kinds.contains(&role);
        Cluster {
            nodes: if role == Role::Node || node_metadata {
                self.watch(vec![Api::all(self.client.clone())], Role::Node)
            } else {
                Objects::none()
            },
            pods: self.namespaced(needs(&[Role::Pod, Role::Endpoints, Role::EndpointSlice]), Role::Pod),
            services: self
                .namespaced(needs(&[Role::Service, Role::Endpoints, Role::EndpointSlice]), Role::Service),
            endpoints: self.namespaced(needs(&[Role::Endpoints]), Role::Endpoints),
            endpoint_slices: self.namespaced(needs(&[Role::EndpointSlice]), Role::EndpointSlice),
            node_metadata,
        }
    }

    /// Watches a namespaced kind in the configured namespaces if `needed`.
    fn namespaced<K>(&mut self, needed: bool, selector_role: Role) -> Objects<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        if !needed {
            return Objects::none();
        }
        let apis = self
            .namespaces
            .iter()
            .map(|ns| match ns {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            })
            .collect();
        self.watch(apis, selector_role)
    }

    /// Lists and watches each API into a store, with the selectors of `selector_role`.
    fn watch<K>(&mut self, apis: Vec<Api<K>>, selector_role: Role) -> Objects<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let selector = self.config.selectors.iter().find(|s| s.role == selector_role);
        let watch_config = watcher::Config {
            label_selector: selector.and_then(|s| s.label.clone()),
            field_selector: selector.and_then(|s| s.field.clone()),
            ..watcher::Config::default()
        };
        let stores = apis
            .into_iter()
            .map(|api| {
                let (store, writer) = reflector::store();
                let index = self.streams.len();
                let events = reflector::reflector(writer, watcher(api, watch_config.clone()))
                    .default_backoff()
                    .map(move |event| (index, signal(event, selector_role)));
                self.streams.push(events.boxed());
                store
            })
            .collect();
        Objects { stores }
    }
}

/// What a watcher event means for the groups.
fn signal<K>(event: Result<watcher::Event<K>, watcher::Error>, kind: Role) -> Signal {
    match event {
        Ok(watcher::Event::InitDone) => Signal::Synced,
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => Signal::Changed,
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Signal::Nothing,
        Err(e) => {
            tracing::warn!(kind = %kind, error = %e, "kubernetes_sd: watch failed; retrying");
            Signal::Nothing
        }
    }
}
