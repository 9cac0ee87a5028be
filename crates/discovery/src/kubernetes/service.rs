//! Role `service`: one target per port of each service, at `<name>.<namespace>.svc:<port>`.
//! Also the service labels the endpoints roles add.

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use super::Role;
use super::meta::{self, ADDRESS};
use crate::{LabelSet, TargetGroup};

/// The group of `service` (source `svc/<namespace>/<name>`).
pub(super) fn group(service: &Service) -> TargetGroup {
    let (namespace, name) = meta::namespaced_name(&service.metadata);
    let no_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&no_spec);
    let kind = spec.type_.as_deref().unwrap_or_default();
    let targets = spec
        .ports
        .iter()
        .flatten()
        .map(|port| {
            let mut target = LabelSet::from([(
                ADDRESS.to_string(),
                meta::join_host_port(&format!("{name}.{namespace}.svc"), port.port),
            )]);
            meta::put(&mut target, "service_port_name", port.name.clone().unwrap_or_default());
            meta::put(&mut target, "service_port_number", port.port.to_string());
            meta::put(&mut target, "service_port_protocol", port.protocol.clone().unwrap_or_default());
            meta::put(&mut target, "service_type", kind);
            if kind == "ExternalName" {
                meta::put(
                    &mut target,
                    "service_external_name",
                    spec.external_name.clone().unwrap_or_default(),
                );
            } else {
                meta::put(&mut target, "service_cluster_ip", spec.cluster_ip.clone().unwrap_or_default());
            }
            if kind == "LoadBalancer" {
                meta::put(&mut target, "service_loadbalancer_ip", load_balancer_ips(service));
            }
            target
        })
        .collect();
    TargetGroup { source: format!("svc/{namespace}/{name}"), targets, labels: labels(service) }
}

/// The labels of `service` itself: namespace, name, labels and annotations.
pub(super) fn labels(service: &Service) -> LabelSet {
    let mut labels = LabelSet::new();
    meta::put(&mut labels, "namespace", meta::namespaced_name(&service.metadata).0);
    meta::put_object(&mut labels, &service.metadata, Role::Service.as_str());
    labels
}

/// The load balancer's ingress IPs, comma-separated, else `spec.loadBalancerIP`.
fn load_balancer_ips(service: &Service) -> String {
    let ingress =
        service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_deref());
    let ips: Vec<&str> = ingress
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() {
        service.spec.as_ref().and_then(|s| s.load_balancer_ip.clone()).unwrap_or_default()
    } else {
        ips.join(",")
    }
}
