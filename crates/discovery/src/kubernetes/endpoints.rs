//! Role `endpoints`: one target per address and port of each `Endpoints` object (core/v1),
//! with the labels of its service and of the pods behind the addresses.

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};

use super::backing::BackingPods;
use super::meta::{self, ADDRESS};
use super::{Cluster, Role, node, service};
use crate::{LabelSet, TargetGroup};

/// The group of `endpoints` (source `endpoints/<namespace>/<name>`).
pub(super) fn group(endpoints: &Endpoints, cluster: &Cluster) -> TargetGroup {
    let (namespace, name) = meta::namespaced_name(&endpoints.metadata);
    let mut labels = LabelSet::new();
    meta::put(&mut labels, "namespace", namespace);
    if let Some(service) = cluster.services.get(Some(namespace), name) {
        labels.extend(service::labels(&service));
    }
    meta::put_object(&mut labels, &endpoints.metadata, Role::Endpoints.as_str());

    let mut pods = BackingPods::default();
    let mut targets = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
            let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, "false"));
            for (address, ready) in ready.chain(not_ready) {
                let mut target = target(address, port, ready, cluster);
                let protocol = port.protocol.as_deref().unwrap_or_default();
                pods.complete(
                    &mut target,
                    address.target_ref.as_ref(),
                    Some(port.port),
                    Some(protocol),
                    &cluster.pods,
                );
                targets.push(target);
            }
        }
    }
    targets.extend(pods.uncovered());
    TargetGroup { source: format!("endpoints/{namespace}/{name}"), targets, labels }
}

/// The target of `address` on `port`, before the labels of its pod.
fn target(address: &EndpointAddress, port: &EndpointPort, ready: &str, cluster: &Cluster) -> LabelSet {
    let mut target = LabelSet::from([(ADDRESS.to_string(), meta::join_host_port(&address.ip, port.port))]);
    meta::put(&mut target, "endpoint_port_name", port.name.clone().unwrap_or_default());
    meta::put(&mut target, "endpoint_port_protocol", port.protocol.clone().unwrap_or_default());
    meta::put(&mut target, "endpoint_ready", ready);
    let target_ref = address.target_ref.as_ref();
    if let Some(target_ref) = target_ref {
        meta::put(&mut target, "endpoint_address_target_kind", target_ref.kind.clone().unwrap_or_default());
        meta::put(&mut target, "endpoint_address_target_name", target_ref.name.clone().unwrap_or_default());
    }
    if let Some(node_name) = &address.node_name {
        meta::put(&mut target, "endpoint_node_name", node_name.clone());
    }
    if let Some(hostname) = address.hostname.as_ref().filter(|h| !h.is_empty()) {
        meta::put(&mut target, "endpoint_hostname", hostname.clone());
    }
    if cluster.node_metadata {
        let node_ref =
            target_ref.filter(|r| r.kind.as_deref() == Some("Node")).and_then(|r| r.name.as_deref());
        target.extend(node::attached_labels(cluster, address.node_name.as_deref().or(node_ref)));
    }
    target
}
