//! Role `node`: one target per node, at its kubelet port.

use k8s_openapi::api::core::v1::Node;

use super::meta::{self, ADDRESS};
use super::{Cluster, Role};
use crate::{LabelSet, TargetGroup};

/// Address types in the order Prometheus prefers them for `__address__`.
const ADDRESS_PREFERENCE: [&str; 6] =
    ["InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname"];

/// The group of `node` (source `node/<name>`), or none when it has no address.
pub(super) fn group(node: &Node) -> Option<TargetGroup> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let status = node.status.as_ref();
    let addresses = status.and_then(|s| s.addresses.as_deref()).unwrap_or_default();
    let first_of = |kind: &str| addresses.iter().find(|a| a.type_ == kind).map(|a| a.address.as_str());
    let Some(address) = ADDRESS_PREFERENCE.into_iter().find_map(first_of) else {
        tracing::warn!(node = %name, "kubernetes_sd: no node address found");
        return None;
    };
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |k| k.port);

    let mut labels = LabelSet::new();
    meta::put(
        &mut labels,
        "node_provider_id",
        node.spec.as_ref().and_then(|s| s.provider_id.clone()).unwrap_or_default(),
    );
    for condition in status.and_then(|s| s.conditions.as_deref()).unwrap_or_default() {
        let name = meta::sanitize(&condition.type_.to_lowercase());
        meta::put(&mut labels, &format!("node_condition_{name}"), condition.status.to_lowercase());
    }
    meta::put_object(&mut labels, &node.metadata, Role::Node.as_str());

    let mut target = LabelSet::from([
        (ADDRESS.to_string(), meta::join_host_port(address, port)),
        ("instance".to_string(), name.clone()),
    ]);
    for a in addresses {
        let label = meta::name(&format!("node_address_{}", meta::sanitize(&a.type_)));
        target.entry(label).or_insert_with(|| a.address.clone());
    }
    Some(TargetGroup { source: format!("node/{name}"), targets: vec![target], labels })
}

/// The `__meta_kubernetes_node_*` name, label and annotation labels of the node `name`
/// (`attach_metadata.node`); empty when the node is unknown.
pub(super) fn attached_labels(cluster: &Cluster, name: Option<&str>) -> LabelSet {
    let mut labels = LabelSet::new();
    if let Some(node) = name.and_then(|n| cluster.nodes.get(None, n)) {
        meta::put_object(&mut labels, &node.metadata, Role::Node.as_str());
    }
    labels
}
