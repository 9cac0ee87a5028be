//! Meta labels shared by every role: `__meta_kubernetes_*` names, sanitised label names,
//! and the labels and annotations of an object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::LabelSet;

/// Label naming a target's address.
pub(super) const ADDRESS: &str = "__address__";

/// `__meta_kubernetes_<name>`.
pub(super) fn name(name: &str) -> String {
    format!("__meta_kubernetes_{name}")
}

/// Sets `__meta_kubernetes_<name>` to `value`.
pub(super) fn put(labels: &mut LabelSet, name: &str, value: impl Into<String>) {
    labels.insert(self::name(name), value.into());
}

/// `name` with every character that may not appear in a label name replaced by `_`
/// (Prometheus's `strutil.SanitizeLabelName`).
pub(super) fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// `<kind>_name` and, for each label and annotation of the object, `<kind>_label_<name>`,
/// `<kind>_labelpresent_<name>`, `<kind>_annotation_<name>` and
/// `<kind>_annotationpresent_<name>` (Prometheus's `addObjectMetaLabels`).
pub(super) fn put_object(labels: &mut LabelSet, meta: &ObjectMeta, kind: &str) {
    put(labels, &format!("{kind}_name"), meta.name.clone().unwrap_or_default());
    for (map, what) in [(&meta.labels, "label"), (&meta.annotations, "annotation")] {
        for (key, value) in map.iter().flatten() {
            let key = sanitize(key);
            put(labels, &format!("{kind}_{what}_{key}"), value.clone());
            put(labels, &format!("{kind}_{what}present_{key}"), "true");
        }
    }
}

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
pub(super) fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The object's namespace and name.
pub(super) fn namespaced_name(meta: &ObjectMeta) -> (&str, &str) {
    (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_as_prometheus() {
        assert_eq!(sanitize("app.kubernetes.io/name"), "app_kubernetes_io_name");
        assert_eq!(sanitize("héllo-wörld_1"), "h_llo_w_rld_1");
    }

    #[test]
    fn joins_host_and_port() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
