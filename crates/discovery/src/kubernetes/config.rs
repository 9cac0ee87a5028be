//! The `kubernetes_sd_configs` entry, with Prometheus's defaults and checks.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::http::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig};
use crate::validated;

/// `kubernetes_sd_configs` entry: which objects to discover and how to reach the API
/// server. Without `api_server` and `kubeconfig_file`, the in-cluster configuration (the
/// pod's service account) is used; the HTTP client settings (`basic_auth` … `enable_http2`)
/// need `api_server`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct KubernetesSdConfig {
    /// URL of the API server (`https://host:port`). Default: none (in-cluster
    /// configuration, or the kubeconfig file's).
    #[serde(default)]
    pub api_server: Option<String>,
    /// Kind of the discovered objects. Required: no default.
    pub role: Role,
    /// kubeconfig file to read the API server and credentials from (not with
    /// `api_server`). Default: none.
    #[serde(default)]
    pub kubeconfig_file: Option<String>,
    /// Namespaces to watch. Default: all namespaces.
    #[serde(default)]
    pub namespaces: NamespaceDiscovery,
    /// Label and field selectors of the watched objects, at most one per role. Default:
    /// none (every object).
    #[serde(default)]
    pub selectors: Vec<SelectorConfig>,
    /// Metadata of other objects to add to the targets. Default: none.
    #[serde(default)]
    pub attach_metadata: AttachMetadata,
    /// HTTP basic authentication. Default: none.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header credentials. Default: none.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Bearer token (deprecated form of `authorization`). Default: none.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// File holding the bearer token (deprecated form of `authorization`). Default: none.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings of the connection to the API server. Default: system roots, verified.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// HTTP(S) or SOCKS5 proxy to reach the API server through. Default: none.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Whether HTTP redirects are followed (the API server sends none). Default `true`.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Whether HTTP/2 may be used (the client speaks HTTP/1.1). Default `true`.
    #[serde(default = "yes")]
    pub enable_http2: bool,
}

fn yes() -> bool {
    true
}

/// Kind of Kubernetes object a `kubernetes_sd_configs` entry discovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One target per node, at its kubelet port.
    Node,
    /// One target per declared container port of each pod (or per container without ports).
    Pod,
    /// One target per port of each service, at the service's DNS name.
    Service,
    /// One target per address and port of each `Endpoints` object.
    Endpoints,
    /// One target per address and port of each `EndpointSlice` (discovery.k8s.io/v1).
    #[serde(rename = "endpointslice")]
    EndpointSlice,
}

impl Role {
    /// The name of the role in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Pod => "pod",
            Role::Service => "service",
            Role::Endpoints => "endpoints",
            Role::EndpointSlice => "endpointslice",
        }
    }

    /// The roles whose selectors a config of this role may have (Prometheus's list).
    fn allowed_selectors(self) -> &'static [Role] {
        match self {
            Role::Node => &[Role::Node],
            Role::Pod => &[Role::Pod, Role::Node],
            Role::Service => &[Role::Service],
            Role::Endpoints => &[Role::Pod, Role::Service, Role::Endpoints],
            Role::EndpointSlice => &[Role::Pod, Role::Service, Role::EndpointSlice],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `namespaces` of a `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDiscovery {
    /// Also watch the namespace Strata runs in (in-cluster only). Default `false`.
    #[serde(default)]
    pub own_namespace: bool,
    /// Namespaces to watch. Default: none (all namespaces unless `own_namespace`).
    #[serde(default)]
    pub names: Vec<String>,
}

/// One `selectors` entry: restricts the watched objects of one role.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    /// Role whose objects are selected. Required: no default.
    pub role: Role,
    /// Label selector (`app=web,tier!=db`). Default: none.
    #[serde(default)]
    pub label: Option<String>,
    /// Field selector (`spec.nodeName=n1`). Default: none.
    #[serde(default)]
    pub field: Option<String>,
}

/// `attach_metadata` of a `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachMetadata {
    /// Add the `__meta_kubernetes_node_*` labels of the node of each target (roles pod,
    /// endpoints and endpointslice; nodes are watched too). Default `false`.
    #[serde(default)]
    pub node: bool,
}

impl<'de> Deserialize<'de> for KubernetesSdConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        validated(deserializer, Self::deserialize, Self::validate)
    }
}

impl KubernetesSdConfig {
    /// Whether any HTTP client setting differs from its default.
    fn custom_http_client(&self) -> bool {
        self.basic_auth.is_some()
            || self.authorization.is_some()
            || self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.tls_config != TlsConfig::default()
            || self.proxy_url.is_some()
            || !self.follow_redirects
            || !self.enable_http2
    }

    /// Prometheus's checks of `SDConfig.UnmarshalYAML` and `HTTPClientConfig.Validate`.
    fn validate(&self) -> Result<(), String> {
        self.validate_http_client()?;
        if self.api_server.is_some() && self.kubeconfig_file.is_some() {
            return Err("cannot use 'kubeconfig_file' and 'api_server' simultaneously".into());
        }
        if self.kubeconfig_file.is_some() && self.custom_http_client() {
            return Err(
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'".into()
            );
        }
        if self.api_server.is_none() && self.custom_http_client() {
            return Err(
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
                    .into(),
            );
        }
        if self.api_server.is_some() && self.namespaces.own_namespace {
            return Err("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously".into());
        }
        if self.kubeconfig_file.is_some() && self.namespaces.own_namespace {
            return Err("cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously".into());
        }
        if let Some(url) = &self.api_server {
            check_url("api_server", url)?;
        }
        if let Some(url) = &self.proxy_url {
            check_url("proxy_url", url)?;
        }
        let allowed = self.role.allowed_selectors();
        for (i, selector) in self.selectors.iter().enumerate() {
            if self.selectors[..i].iter().any(|s| s.role == selector.role) {
                return Err(format!("duplicated selector role: {}", selector.role));
            }
            if !allowed.contains(&selector.role) {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(format!("{} role supports only {} selectors", self.role, names.join(", ")));
            }
        }
        Ok(())
    }

    fn validate_http_client(&self) -> Result<(), String> {
        HttpClientConfig {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token: self.bearer_token.as_ref(),
            bearer_token_file: self.bearer_token_file.as_ref(),
            tls_config: &self.tls_config,
        }
        .validate()
    }
}

/// Checks that `url` is an absolute URL (scheme and host).
fn check_url(field: &str, url: &str) -> Result<(), String> {
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Ok(()),
        Ok(_) => Err(format!("{field} {url:?} is not an absolute URL")),
        Err(e) => Err(format!("{field} {url:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(yaml: &str) -> Result<KubernetesSdConfig, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let config = parse("role: endpointslice").unwrap();
        assert_eq!(config.role, Role::EndpointSlice);
        assert_eq!(config.api_server, None);
        assert_eq!(config.namespaces, NamespaceDiscovery::default());
        assert!(config.follow_redirects && config.enable_http2);
        assert!(!config.custom_http_client());
        let config =
            parse("role: pod\napi_server: https://k8s:6443\nauthorization: {credentials: t}").unwrap();
        assert_eq!(config.authorization.unwrap().kind, "Bearer");
    }

    #[test]
    fn accepts_the_full_prometheus_form() {
        let yaml = "
role: pod
api_server: https://k8s:6443
namespaces: {names: [a, b]}
selectors: [{role: pod, label: 'app=web', field: 'spec.nodeName=n1'}, {role: node, label: 'x=y'}]
attach_metadata: {node: true}
basic_auth: {username: u, password_file: pw}
tls_config: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: k8s, insecure_skip_verify: false}
proxy_url: http://proxy:3128
follow_redirects: false
enable_http2: false
";
        let config = parse(yaml).unwrap();
        assert_eq!(config.selectors.len(), 2);
        assert_eq!(config.tls_config.server_name.as_deref(), Some("k8s"));
        assert!(config.attach_metadata.node);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for (yaml, error) in [
            ("{}", "missing field `role`"),
            ("role: ingres", "unknown variant"),
            ("role: pod\nbogus: 1", "unknown field `bogus`"),
            ("role: pod\ntls_config: {bogus: 1}", "unknown field `bogus`"),
            ("role: pod\napi_server: http://a\nkubeconfig_file: k", "simultaneously"),
            ("role: pod\nbearer_token: t", "provide the 'api_server' URL"),
            ("role: pod\nkubeconfig_file: k\nbearer_token: t", "together with 'kubeconfig_file'"),
            ("role: pod\napi_server: http://a\nnamespaces: {own_namespace: true}", "own_namespace"),
            (
                "role: pod\napi_server: http://a\nbearer_token: t\nbearer_token_file: f",
                "at most one of bearer_token",
            ),
            ("role: pod\napi_server: http://a\nauthorization: {type: Basic}", "use \"basic_auth\""),
            (
                "role: pod\napi_server: http://a\nbasic_auth: {username: u, password: p, password_file: f}",
                "password & password_file",
            ),
            ("role: pod\napi_server: http://a\ntls_config: {cert_file: c}", "key_file"),
            ("role: pod\napi_server: not a url", "api_server"),
            ("role: service\nselectors: [{role: pod}]", "service role supports only service selectors"),
            ("role: pod\nselectors: [{role: pod}, {role: pod}]", "duplicated selector role: pod"),
        ] {
            let got = parse(yaml).unwrap_err();
            assert!(got.contains(error), "{yaml:?}: {got}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let config = parse("role: pod\napi_server: http://a\nbearer_token: hunter2").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
