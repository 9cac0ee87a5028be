//! kubernetes_sd against a fake API server: the targets and meta labels of each role, and
//! objects added and deleted after the start.
#![allow(clippy::unwrap_used)]

mod common;
mod fake_apiserver;

use std::time::Duration;

use common::wait_for;
use fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use strata_discovery::{Discovery, LabelSet, Provider, TargetGroup};

/// Starts the discovery of `config` (YAML, `api_server` added) against `server`.
fn discover(server: &FakeApiServer, config: &str) -> Discovery {
    let config = format!("api_server: {}\n{config}", server.url);
    let config = serde_yaml::from_str(&config).unwrap();
    Discovery::spawn(Provider::Kubernetes(config), std::path::Path::new("/"))
}

/// A label set of `__meta_kubernetes_<name>` labels, plus `__address__` when given.
fn meta(address: Option<&str>, pairs: &[(&str, &str)]) -> LabelSet {
    let mut labels: LabelSet =
        pairs.iter().map(|(k, v)| (format!("__meta_kubernetes_{k}"), v.to_string())).collect();
    if let Some(address) = address {
        labels.insert("__address__".to_string(), address.to_string());
    }
    labels
}

/// Labels `pairs` with `more` added.
fn with(mut labels: LabelSet, more: &LabelSet) -> LabelSet {
    labels.extend(more.clone());
    labels
}

fn pod(name: &str, ip: &str, ports: Value) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4", "uid": "rs", "controller": true}],
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "app", "image": "web:1", "ports": ports}, {"name": "sidecar", "image": "proxy:2"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
        },
        "status": {
            "phase": "Running", "podIP": ip, "hostIP": "192.168.0.10",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://app1", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0}],
        },
    })
}

/// The labels of the pod `name` made by [`pod`].
fn pod_labels(name: &str, ip: &str) -> LabelSet {
    let uid = format!("uid-{name}");
    meta(
        None,
        &[
            ("pod_name", name),
            ("pod_ip", ip),
            ("pod_ready", "true"),
            ("pod_phase", "Running"),
            ("pod_node_name", "node-1"),
            ("pod_host_ip", "192.168.0.10"),
            ("pod_uid", &uid),
            ("pod_label_app_kubernetes_io_name", "web"),
            ("pod_labelpresent_app_kubernetes_io_name", "true"),
            ("pod_annotation_prometheus_io_scrape", "true"),
            ("pod_annotationpresent_prometheus_io_scrape", "true"),
            ("pod_controller_kind", "ReplicaSet"),
            ("pod_controller_name", "web-5d4"),
        ],
    )
}

fn node(name: &str) -> Value {
    json!({
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "z1"}, "annotations": {"note": "x"}},
        "spec": {"providerID": "aws:///i-1"},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "node-1.local"},
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "InternalIP", "address": "10.1.0.1"},
                {"type": "InternalIP", "address": "10.1.0.2"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}],
        },
    })
}

fn service(kind: &str) -> Value {
    json!({
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
        "spec": {
            "type": kind, "clusterIP": "10.96.0.5", "externalName": "web.example.com", "loadBalancerIP": "198.51.100.1",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.2"}, {"hostname": "lb.example.com"}, {"ip": "198.51.100.3"}]}},
    })
}

fn service_labels() -> LabelSet {
    meta(
        None,
        &[
            ("namespace", "default"),
            ("service_name", "web"),
            ("service_label_team", "a"),
            ("service_labelpresent_team", "true"),
        ],
    )
}

#[tokio::test]
async fn node_role_targets_the_kubelet_with_node_labels() {
    let server = FakeApiServer::start().await;
    server.apply(node("node-1"));
    let discovery = discover(&server, "role: node");
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| !g.is_empty()).await;

    let mut target = meta(
        Some("10.1.0.1:10250"),
        &[
            ("node_address_InternalIP", "10.1.0.1"),
            ("node_address_ExternalIP", "203.0.113.7"),
            ("node_address_Hostname", "node-1.local"),
        ],
    );
    target.insert("instance".to_string(), "node-1".to_string());
    let labels = meta(
        None,
        &[
            ("node_name", "node-1"),
            ("node_provider_id", "aws:///i-1"),
            ("node_condition_ready", "true"),
            ("node_condition_diskpressure", "false"),
            ("node_label_topology_kubernetes_io_zone", "z1"),
            ("node_labelpresent_topology_kubernetes_io_zone", "true"),
            ("node_annotation_note", "x"),
            ("node_annotationpresent_note", "true"),
        ],
    );
    assert_eq!(groups, vec![TargetGroup { source: "node/node-1".into(), targets: vec![target], labels }]);
}

#[tokio::test]
async fn pod_role_targets_each_container_port_with_node_metadata() {
    let server = FakeApiServer::start().await;
    server.apply(node("node-1"));
    let ports = json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090, "protocol": "UDP"}]);
    server.apply(pod("web-1", "10.0.0.1", ports));
    let config = "role: pod\nattach_metadata: {node: true}\nselectors: [{role: pod, label: app.kubernetes.io/name=web}]";
    let discovery = discover(&server, config);
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| !g.is_empty()).await;

    let container =
        |address: Option<&str>, name: &str, image: &str, id: &str, init: &str, port: &[(&str, &str)]| {
            let mut pairs = vec![
                ("pod_container_name", name),
                ("pod_container_image", image),
                ("pod_container_id", id),
                ("pod_container_init", init),
            ];
            pairs.extend_from_slice(port);
            meta(address, &pairs)
        };
    let targets = vec![
        container(
            Some("10.0.0.1:8080"),
            "app",
            "web:1",
            "containerd://app1",
            "false",
            &[
                ("pod_container_port_name", "http"),
                ("pod_container_port_number", "8080"),
                ("pod_container_port_protocol", "TCP"),
            ],
        ),
        container(
            Some("10.0.0.1:9090"),
            "app",
            "web:1",
            "containerd://app1",
            "false",
            &[
                ("pod_container_port_name", ""),
                ("pod_container_port_number", "9090"),
                ("pod_container_port_protocol", "UDP"),
            ],
        ),
        container(Some("10.0.0.1"), "sidecar", "proxy:2", "", "false", &[]),
        container(Some("10.0.0.1"), "init", "busybox", "", "true", &[]),
    ];
    let node_labels = meta(
        None,
        &[
            ("node_name", "node-1"),
            ("node_label_topology_kubernetes_io_zone", "z1"),
            ("node_labelpresent_topology_kubernetes_io_zone", "true"),
            ("node_annotation_note", "x"),
            ("node_annotationpresent_note", "true"),
        ],
    );
    let labels =
        with(with(pod_labels("web-1", "10.0.0.1"), &node_labels), &meta(None, &[("namespace", "default")]));
    assert_eq!(groups, vec![TargetGroup { source: "pod/default/web-1".into(), targets, labels }]);
}

#[tokio::test]
async fn pods_added_and_deleted_after_the_start_come_and_go() {
    let server = FakeApiServer::start().await;
    server.apply(pod("web-1", "10.0.0.1", json!([])));
    let discovery = discover(&server, "role: pod\nnamespaces: {names: [default]}");
    let sources = |groups: &[TargetGroup]| groups.iter().map(|g| g.source.clone()).collect::<Vec<_>>();
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| !g.is_empty()).await;
    assert_eq!(sources(&groups), ["pod/default/web-1"]);

    server.apply(pod("web-2", "10.0.0.2", json!([{"containerPort": 80}])));
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| g.len() == 2).await;
    assert_eq!(sources(&groups), ["pod/default/web-1", "pod/default/web-2"]);
    assert_eq!(groups[1].targets[0]["__address__"], "10.0.0.2:80");

    server.apply(pod("web-2", "10.0.0.3", json!([{"containerPort": 80}])));
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| {
        g.len() == 2 && g[1].targets[0]["__address__"] == "10.0.0.3:80"
    })
    .await;
    assert_eq!(groups[1].labels["__meta_kubernetes_pod_ip"], "10.0.0.3");

    server.delete("Pod", "default", "web-1");
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| g.len() == 1).await;
    assert_eq!(sources(&groups), ["pod/default/web-2"]);
}

#[tokio::test]
async fn service_role_targets_each_port_at_the_service_name() {
    let server = FakeApiServer::start().await;
    server.apply(service("LoadBalancer"));
    let discovery = discover(&server, "role: service");
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| !g.is_empty()).await;

    let common = [
        ("service_type", "LoadBalancer"),
        ("service_cluster_ip", "10.96.0.5"),
        ("service_loadbalancer_ip", "198.51.100.2,198.51.100.3"),
    ];
    let port = |address, name, number| {
        let mut pairs = vec![
            ("service_port_name", name),
            ("service_port_number", number),
            ("service_port_protocol", "TCP"),
        ];
        pairs.extend_from_slice(&common);
        meta(Some(address), &pairs)
    };
    let targets = vec![port("web.default.svc:80", "http", "80"), port("web.default.svc:9090", "", "9090")];
    assert_eq!(
        groups,
        vec![TargetGroup { source: "svc/default/web".into(), targets, labels: service_labels() }]
    );

    let mut external = service("ExternalName");
    external["metadata"]["name"] = json!("ext");
    server.apply(external);
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| g.len() == 2).await;
    assert_eq!(groups[0].source, "svc/default/ext");
    assert_eq!(
        groups[0].targets[0],
        meta(
            Some("ext.default.svc:80"),
            &[
                ("service_port_name", "http"),
                ("service_port_number", "80"),
                ("service_port_protocol", "TCP"),
                ("service_type", "ExternalName"),
                ("service_external_name", "web.example.com"),
            ]
        )
    );
}

/// The targets the endpoints roles make of pod web-1 (ports 8080 named http, and 9090 no
/// address covers) behind an address on port 8080.
fn backing_pod_targets(address_labels: LabelSet, protocol: &str) -> Vec<LabelSet> {
    let pod = pod_labels("web-1", "10.0.0.1");
    let container = |number: &str, name: &str, protocol: &str| {
        meta(
            None,
            &[
                ("pod_container_name", "app"),
                ("pod_container_image", "web:1"),
                ("pod_container_init", "false"),
                ("pod_container_port_name", name),
                ("pod_container_port_number", number),
                ("pod_container_port_protocol", protocol),
            ],
        )
    };
    vec![
        with(with(address_labels, &pod), &container("8080", "http", protocol)),
        with(with(meta(Some("10.0.0.1:9090"), &[]), &pod), &container("9090", "metrics", "UDP")),
    ]
}

fn backing_pod() -> Value {
    let ports = json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "UDP"}]);
    pod("web-1", "10.0.0.1", ports)
}

#[tokio::test]
async fn endpoints_role_targets_addresses_with_service_and_pod_labels() {
    let server = FakeApiServer::start().await;
    server.apply(service("ClusterIP"));
    server.apply(backing_pod());
    server.apply(json!({
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default", "labels": {"k": "v"}},
        "subsets": [{
            "addresses": [{"ip": "10.0.0.1", "nodeName": "node-1", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}],
            "notReadyAddresses": [{"ip": "10.0.0.9", "hostname": "h9"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "SCTP"}],
        }],
    }));
    let discovery = discover(&server, "role: endpoints");
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| {
        g.first().is_some_and(|g| g.labels.contains_key("__meta_kubernetes_service_name"))
    })
    .await;

    let port = [("endpoint_port_name", "http"), ("endpoint_port_protocol", "SCTP")];
    let ready = meta(
        Some("10.0.0.1:8080"),
        &[
            ("endpoint_ready", "true"),
            ("endpoint_address_target_kind", "Pod"),
            ("endpoint_address_target_name", "web-1"),
            ("endpoint_node_name", "node-1"),
        ],
    );
    let mut targets = backing_pod_targets(with(ready, &meta(None, &port)), "SCTP");
    let not_ready = meta(Some("10.0.0.9:8080"), &[("endpoint_ready", "false"), ("endpoint_hostname", "h9")]);
    targets.insert(1, with(not_ready, &meta(None, &port)));
    let labels = with(
        service_labels(),
        &meta(
            None,
            &[("endpoints_name", "web"), ("endpoints_label_k", "v"), ("endpoints_labelpresent_k", "true")],
        ),
    );
    assert_eq!(groups, vec![TargetGroup { source: "endpoints/default/web".into(), targets, labels }]);
}

#[tokio::test]
async fn endpointslice_role_targets_endpoints_with_service_and_pod_labels() {
    let server = FakeApiServer::start().await;
    server.apply(service("ClusterIP"));
    server.apply(backing_pod());
    server.apply(json!({
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.0.0.1"], "nodeName": "node-1", "zone": "z1",
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            },
            {"addresses": ["10.0.0.9"], "hostname": "h9", "deprecatedTopology": {"kubernetes.io/hostname": "n9"}},
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
    }));
    let discovery = discover(&server, "role: endpointslice");
    let groups = wait_for(&discovery, Duration::from_secs(10), |g| {
        g.first().is_some_and(|g| g.labels.contains_key("__meta_kubernetes_service_name"))
    })
    .await;

    let port = meta(
        None,
        &[
            ("endpointslice_port_name", "http"),
            ("endpointslice_port_protocol", "TCP"),
            ("endpointslice_port", "8080"),
            ("endpointslice_port_app_protocol", "http"),
        ],
    );
    let first = meta(
        Some("10.0.0.1:8080"),
        &[
            ("endpointslice_endpoint_conditions_ready", "true"),
            ("endpointslice_endpoint_conditions_serving", "true"),
            ("endpointslice_endpoint_conditions_terminating", "false"),
            ("endpointslice_address_target_kind", "Pod"),
            ("endpointslice_address_target_name", "web-1"),
            ("endpointslice_endpoint_node_name", "node-1"),
            ("endpointslice_endpoint_zone", "z1"),
        ],
    );
    let second = meta(
        Some("10.0.0.9:8080"),
        &[
            ("endpointslice_endpoint_hostname", "h9"),
            ("endpointslice_endpoint_topology_kubernetes_io_hostname", "n9"),
            ("endpointslice_endpoint_topology_present_kubernetes_io_hostname", "true"),
        ],
    );
    let mut targets = backing_pod_targets(with(first, &port), "TCP");
    targets.insert(1, with(second, &port));
    let slice_labels = meta(
        None,
        &[
            ("endpointslice_name", "web-abc"),
            ("endpointslice_address_type", "IPv4"),
            ("endpointslice_label_kubernetes_io_service_name", "web"),
            ("endpointslice_labelpresent_kubernetes_io_service_name", "true"),
        ],
    );
    let labels = with(service_labels(), &slice_labels);
    assert_eq!(groups, vec![TargetGroup { source: "endpointslice/default/web-abc".into(), targets, labels }]);
}
