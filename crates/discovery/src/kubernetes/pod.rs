//! Role `pod`: one target per declared container port of each pod, or one per container
//! without ports (address = the pod IP). Also the pod labels the endpoints roles add.

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod};

use super::meta::{self, ADDRESS};
use super::{Cluster, Role, node};
use crate::{LabelSet, TargetGroup};

/// The group of `pod` (source `pod/<namespace>/<name>`): without targets while the pod
/// has no IP, or (with `attach_metadata.node`) while its node is unknown.
pub(super) fn group(pod: &Pod, cluster: &Cluster) -> TargetGroup {
    let (namespace, name) = meta::namespaced_name(&pod.metadata);
    let mut group = TargetGroup { source: format!("pod/{namespace}/{name}"), ..TargetGroup::default() };
    let status = pod.status.as_ref();
    let Some(ip) = status.and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty()) else {
        return group;
    };
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if cluster.node_metadata && node_name.and_then(|n| cluster.nodes.get(None, n)).is_none() {
        return group;
    }
    group.labels = labels(pod);
    meta::put(&mut group.labels, "namespace", namespace);
    if cluster.node_metadata {
        group.labels.extend(node::attached_labels(cluster, node_name));
    }
    for (container, init) in containers(pod) {
        let statuses = if init {
            status.and_then(|s| s.init_container_statuses.as_deref())
        } else {
            status.and_then(|s| s.container_statuses.as_deref())
        };
        let id = statuses
            .unwrap_or_default()
            .iter()
            .find(|s| s.name == container.name)
            .and_then(|s| s.container_id.clone())
            .unwrap_or_default();
        let ports = container.ports.as_deref().unwrap_or_default();
        let mut add = |address: String, port: Option<&ContainerPort>| {
            let mut target = container_labels(container, init, port);
            target.insert(ADDRESS.to_string(), address);
            meta::put(&mut target, "pod_container_id", id.clone());
            group.targets.push(target);
        };
        if ports.is_empty() {
            add(ip.to_string(), None);
        }
        for port in ports {
            add(meta::join_host_port(ip, port.container_port), Some(port));
        }
    }
    group
}

/// The labels of `pod` itself (Prometheus's `podLabels`): name, IP, readiness, phase,
/// node, host IP, UID, controller, labels and annotations.
pub(super) fn labels(pod: &Pod) -> LabelSet {
    let status = pod.status.as_ref();
    let field = |f: fn(&k8s_openapi::api::core::v1::PodStatus) -> Option<&String>| {
        status.and_then(f).cloned().unwrap_or_default()
    };
    let mut labels = LabelSet::new();
    meta::put(&mut labels, "pod_ip", field(|s| s.pod_ip.as_ref()));
    meta::put(&mut labels, "pod_ready", ready(pod));
    meta::put(&mut labels, "pod_phase", field(|s| s.phase.as_ref()));
    meta::put(
        &mut labels,
        "pod_node_name",
        pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
    );
    meta::put(&mut labels, "pod_host_ip", field(|s| s.host_ip.as_ref()));
    meta::put(&mut labels, "pod_uid", pod.metadata.uid.clone().unwrap_or_default());
    meta::put_object(&mut labels, &pod.metadata, Role::Pod.as_str());
    let controller = pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    if let Some(controller) = controller {
        if !controller.kind.is_empty() {
            meta::put(&mut labels, "pod_controller_kind", controller.kind.clone());
        }
        if !controller.name.is_empty() {
            meta::put(&mut labels, "pod_controller_name", controller.name.clone());
        }
    }
    labels
}

/// The status of the pod's `Ready` condition, lower-cased (`unknown` without one).
fn ready(pod: &Pod) -> String {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().find(|c| c.type_ == "Ready").map_or("unknown".to_string(), |c| c.status.to_lowercase())
}

/// The containers of `pod` then its init containers, each with whether it is an init
/// container.
pub(super) fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    regular.iter().map(|c| (c, false)).chain(init.iter().map(|c| (c, true)))
}

/// The `pod_container_*` labels of `container`, with those of `port` if given.
pub(super) fn container_labels(container: &Container, init: bool, port: Option<&ContainerPort>) -> LabelSet {
    let mut labels = LabelSet::new();
    meta::put(&mut labels, "pod_container_name", container.name.clone());
    meta::put(&mut labels, "pod_container_image", container.image.clone().unwrap_or_default());
    meta::put(&mut labels, "pod_container_init", init.to_string());
    if let Some(port) = port {
        meta::put(&mut labels, "pod_container_port_name", port.name.clone().unwrap_or_default());
        meta::put(&mut labels, "pod_container_port_number", port.container_port.to_string());
        meta::put(&mut labels, "pod_container_port_protocol", port.protocol.clone().unwrap_or_default());
    }
    labels
}
