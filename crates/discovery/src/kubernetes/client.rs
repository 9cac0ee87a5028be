//! The API client of a `kubernetes_sd_configs` entry: in-cluster, from a kubeconfig file
//! or from `api_server` with Prometheus's HTTP client settings.

use std::path::{Path, PathBuf};

use http::{HeaderValue, header};
use kube::config::{AuthInfo, InClusterError, KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::config::KubernetesSdConfig;
use crate::http::Secret;
use crate::resolve;

/// Why the API client could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig { path: PathBuf, source: KubeconfigError },
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] InClusterError),
    #[error("{field} {url:?}: {source}")]
    Url { field: &'static str, url: String, source: http::uri::InvalidUri },
    #[error("reading {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("authorization credentials: {0}")]
    Header(#[from] http::header::InvalidHeaderValue),
    #[error("{0}")]
    Client(#[from] kube::Error),
}

/// The client of `config` and the namespace it runs in (the in-cluster service account's,
/// the kubeconfig context's, else `default`).
pub(crate) async fn connect(
    config: &KubernetesSdConfig,
    base_dir: &Path,
) -> Result<(kube::Client, String), ClientError> {
    // rustls picks the process-wide provider; make it `ring` unless one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube_config = if let Some(file) = &config.kubeconfig_file {
        let path = resolve(base_dir, file);
        let kubeconfig = |source| ClientError::Kubeconfig { path: path.clone(), source };
        let file = Kubeconfig::read_from(&path).map_err(kubeconfig)?;
        kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await.map_err(kubeconfig)?
    } else if let Some(url) = &config.api_server {
        explicit(config, url, base_dir)?
    } else {
        kube::Config::incluster()?
    };
    let namespace = kube_config.default_namespace.clone();
    Ok((kube::Client::try_from(kube_config)?, namespace))
}

/// The configuration of a client of `url` with the HTTP client settings of `config`.
fn explicit(config: &KubernetesSdConfig, url: &str, base_dir: &Path) -> Result<kube::Config, ClientError> {
    let uri = |field, url: &str| {
        url.parse().map_err(|source| ClientError::Url { field, url: url.to_string(), source })
    };
    let path = |p: &String| resolve(base_dir, p).to_string_lossy().into_owned();
    let mut c = kube::Config::new(uri("api_server", url)?);
    let tls = &config.tls_config;
    c.accept_invalid_certs = tls.insecure_skip_verify;
    c.root_cert_file = tls.ca_file.as_ref().map(|f| resolve(base_dir, f));
    c.tls_server_name.clone_from(&tls.server_name);
    c.proxy_url = config.proxy_url.as_deref().map(|p| uri("proxy_url", p)).transpose()?;
    c.auth_info = AuthInfo {
        client_certificate: tls.cert_file.as_ref().map(path),
        client_key: tls.key_file.as_ref().map(path),
        ..AuthInfo::default()
    };
    if let Some(basic) = &config.basic_auth {
        c.auth_info.username = Some(basic.username.clone());
        c.auth_info.password = match (&basic.password, &basic.password_file) {
            (Some(Secret(password)), _) => Some(password.clone().into()),
            (None, Some(file)) => Some(read(&resolve(base_dir, file))?.into()),
            (None, None) => None,
        };
    }
    c.auth_info.token = config.bearer_token.as_ref().map(|Secret(t)| t.clone().into());
    c.auth_info.token_file = config.bearer_token_file.as_ref().map(path);
    if let Some(auth) = &config.authorization {
        if auth.kind.eq_ignore_ascii_case("bearer") {
            c.auth_info.token = auth.credentials.as_ref().map(|Secret(t)| t.clone().into());
            c.auth_info.token_file = auth.credentials_file.as_ref().map(path);
        } else {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (Some(Secret(credentials)), _) => credentials.clone(),
                (None, Some(file)) => read(&resolve(base_dir, file))?,
                (None, None) => String::new(),
            };
            let mut value = HeaderValue::from_str(&format!("{} {credentials}", auth.kind))?;
            value.set_sensitive(true);
            c.headers.push((header::AUTHORIZATION, value));
        }
    }
    Ok(c)
}

/// A credentials file, without surrounding white space (as Prometheus trims them).
fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| ClientError::ReadFile { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn builds_a_tls_client_with_ring() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        let yaml = "role: node\napi_server: https://127.0.0.1:6443\nbearer_token_file: token\ntls_config: {insecure_skip_verify: true}";
        let config: KubernetesSdConfig = serde_yaml::from_str(yaml).unwrap();
        let (_client, namespace) = connect(&config, dir.path()).await.unwrap();
        assert_eq!(namespace, "default");
        let built = explicit(&config, "https://127.0.0.1:6443", dir.path()).unwrap();
        assert_eq!(built.auth_info.token_file, Some(dir.path().join("token").to_string_lossy().into_owned()));
    }

    #[tokio::test]
    async fn reports_a_missing_ca_file() {
        let yaml = "role: node\napi_server: https://127.0.0.1:6443\ntls_config: {ca_file: missing.pem}";
        let config: KubernetesSdConfig = serde_yaml::from_str(yaml).unwrap();
        let Err(error) = connect(&config, Path::new("/nonexistent")).await else {
            panic!("connected without the CA file");
        };
        let error = error.to_string();
        assert!(error.contains("missing.pem") || error.contains("No such file"), "{error}");
    }
}
