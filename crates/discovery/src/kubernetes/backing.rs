//! The pods behind the addresses of an `Endpoints` or `EndpointSlice` object: their
//! labels on the targets that refer to them, and one more target for each of their
//! container ports no address covers (as Prometheus's endpoints roles do).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

use super::meta::{self, ADDRESS};
use super::{Objects, pod};
use crate::LabelSet;

/// The pods met so far among an object's addresses, in the order met, with the ports of
/// the addresses that referred to them.
#[derive(Default)]
pub(super) struct BackingPods {
    seen: Vec<(Arc<Pod>, Vec<i32>)>,
}

impl BackingPods {
    /// Completes `target`, an address of the object on `port`, with the labels of the pod
    /// `target_ref` names if it is known: the pod's own labels, and those of the container
    /// port numbered `port` if there is one (its protocol is `protocol` when given, else
    /// the container port's).
    pub(super) fn complete(
        &mut self,
        target: &mut LabelSet,
        target_ref: Option<&ObjectReference>,
        port: Option<i32>,
        protocol: Option<&str>,
        pods: &Objects<Pod>,
    ) {
        let Some(pod) = target_ref.filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| {
            pods.get(Some(r.namespace.as_deref().unwrap_or_default()), r.name.as_deref().unwrap_or_default())
        }) else {
            return;
        };
        target.extend(pod::labels(&pod));
        let matching = pod::containers(&pod).find_map(|(container, init)| {
            let ports = container.ports.as_deref().unwrap_or_default();
            ports
                .iter()
                .find(|p| Some(p.container_port) == port)
                .map(|p| pod::container_labels(container, init, Some(p)))
        });
        if let Some(container) = matching {
            target.extend(container);
            if let Some(protocol) = protocol {
                meta::put(target, "pod_container_port_protocol", protocol);
            }
        }
        let key = meta::namespaced_name(&pod.metadata);
        let index = match self.seen.iter().position(|(p, _)| meta::namespaced_name(&p.metadata) == key) {
            Some(index) => index,
            None => {
                self.seen.push((pod, Vec::new()));
                self.seen.len() - 1
            }
        };
        self.seen[index].1.extend(port);
    }

    /// A target for each container port of the pods met that no address covered.
    pub(super) fn uncovered(&self) -> Vec<LabelSet> {
        let mut targets = Vec::new();
        for (pod, ports) in &self.seen {
            let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty())
            else {
                continue;
            };
            for (container, init) in pod::containers(pod) {
                for port in container.ports.iter().flatten().filter(|p| !ports.contains(&p.container_port)) {
                    let mut target = pod::container_labels(container, init, Some(port));
                    target.insert(ADDRESS.to_string(), meta::join_host_port(ip, port.container_port));
                    target.extend(pod::labels(pod));
                    targets.push(target);
                }
            }
        }
        targets
    }
}
