//! Role `endpointslice`: one target per address and port of each `EndpointSlice`
//! (discovery.k8s.io/v1), with the labels of its service and of the pods behind the
//! addresses.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};

use super::backing::BackingPods;
use super::meta::{self, ADDRESS};
use super::{Cluster, Role, node, service};
use crate::{LabelSet, TargetGroup};

/// Label of a slice naming its service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The group of `slice` (source `endpointslice/<namespace>/<name>`): without targets when
/// it is the non-primary address family of a dual-stack service (its endpoints are those
/// of the primary family's slice).
pub(super) fn group(slice: &EndpointSlice, cluster: &Cluster) -> TargetGroup {
    let (namespace, name) = meta::namespaced_name(&slice.metadata);
    let mut labels = LabelSet::new();
    meta::put(&mut labels, "namespace", namespace);
    meta::put(&mut labels, "endpointslice_address_type", slice.address_type.clone());
    meta::put_object(&mut labels, &slice.metadata, Role::EndpointSlice.as_str());
    let service_name = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    let service = service_name.and_then(|s| cluster.services.get(Some(namespace), s));
    if let Some(service) = &service {
        labels.extend(service::labels(service));
    }
    let source = format!("endpointslice/{namespace}/{name}");
    if service.is_some_and(|s| non_primary_family(&s, slice)) {
        return TargetGroup { source, targets: Vec::new(), labels };
    }

    let mut pods = BackingPods::default();
    let mut targets = Vec::new();
    for endpoint in slice.endpoints.iter().flatten() {
        for port in slice.ports.iter().flatten() {
            for address in &endpoint.addresses {
                let mut target = target(address, endpoint, port, cluster);
                pods.complete(&mut target, endpoint.target_ref.as_ref(), port.port, None, &cluster.pods);
                targets.push(target);
            }
        }
    }
    targets.extend(pods.uncovered());
    TargetGroup { source, targets, labels }
}

/// Whether `slice` holds the secondary address family of a dual-stack `service`.
fn non_primary_family(service: &Service, slice: &EndpointSlice) -> bool {
    let Some(spec) = &service.spec else { return false };
    let dual_stack = matches!(spec.ip_family_policy.as_deref(), Some("PreferDualStack" | "RequireDualStack"));
    let primary = spec.ip_families.as_deref().and_then(<[String]>::first);
    dual_stack && primary.is_some_and(|family| *family != slice.address_type)
}

/// The target of `address` of `endpoint` on `port`, before the labels of its pod.
fn target(address: &str, endpoint: &Endpoint, port: &EndpointPort, cluster: &Cluster) -> LabelSet {
    let host_port = port.port.map_or_else(|| address.to_string(), |p| meta::join_host_port(address, p));
    let mut target = LabelSet::from([(ADDRESS.to_string(), host_port)]);
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            meta::put(&mut target, name, value);
        }
    };
    put("endpointslice_port_name", port.name.clone());
    put("endpointslice_port_protocol", port.protocol.clone());
    put("endpointslice_port", port.port.map(|p| p.to_string()));
    put("endpointslice_port_app_protocol", port.app_protocol.clone());
    let conditions = endpoint.conditions.clone().unwrap_or_default();
    put("endpointslice_endpoint_conditions_ready", conditions.ready.map(|b| b.to_string()));
    put("endpointslice_endpoint_conditions_serving", conditions.serving.map(|b| b.to_string()));
    put("endpointslice_endpoint_conditions_terminating", conditions.terminating.map(|b| b.to_string()));
    put("endpointslice_endpoint_hostname", endpoint.hostname.clone());
    let target_ref = endpoint.target_ref.as_ref();
    put("endpointslice_address_target_kind", target_ref.map(|r| r.kind.clone().unwrap_or_default()));
    put("endpointslice_address_target_name", target_ref.map(|r| r.name.clone().unwrap_or_default()));
    put("endpointslice_endpoint_node_name", endpoint.node_name.clone());
    put("endpointslice_endpoint_zone", endpoint.zone.clone());
    for (key, value) in endpoint.deprecated_topology.iter().flatten() {
        let key = meta::sanitize(key);
        put(&format!("endpointslice_endpoint_topology_{key}"), Some(value.clone()));
        put(&format!("endpointslice_endpoint_topology_present_{key}"), Some("true".to_string()));
    }
    if cluster.node_metadata {
        let node_ref =
            target_ref.filter(|r| r.kind.as_deref() == Some("Node")).and_then(|r| r.name.as_deref());
        target.extend(node::attached_labels(cluster, node_ref.or(endpoint.node_name.as_deref())));
    }
    target
}
