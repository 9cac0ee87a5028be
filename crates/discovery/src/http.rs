//! The HTTP client settings Prometheus shares between scrape and discovery
//! configurations (`basic_auth`, `authorization`, `bearer_token(_file)`, `tls_config`),
//! and its rules about combining them.

use std::fmt;

use serde::Deserialize;

/// `basic_auth` of an HTTP client configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name. Default: empty.
    #[serde(default)]
    pub username: String,
    /// Password (not with `password_file`). Default: none.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password, read when the client is set up. Default: none.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization` of an HTTP client configuration: `Authorization: <type> <credentials>`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme of the header (not `Basic`: use `basic_auth`). Default `Bearer`.
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    /// Credentials (not with `credentials_file`). Default: none.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// File holding the credentials (re-read periodically for `Bearer`, else read when the
    /// client is set up). Default: none.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_string()
}

/// `tls_config` of an HTTP client configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CAs to verify the server with. Default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (with `key_file`). Default: none.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM key of the client certificate (with `cert_file`). Default: none.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Name the server's certificate must be valid for. Default: the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate. Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Oldest TLS version accepted: `TLS12` or `TLS13`. Default: TLS 1.2. Honoured by
    /// scrapes; the Kubernetes client always uses rustls's defaults (TLS 1.2 and 1.3).
    #[serde(default)]
    pub min_version: Option<String>,
}

/// A secret of the configuration: printed as `<secret>` by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// The authentication and TLS settings of one HTTP client configuration, borrowed for
/// [`HttpClientConfig::validate`].
#[derive(Debug, Clone, Copy)]
pub struct HttpClientConfig<'a> {
    /// `basic_auth`.
    pub basic_auth: Option<&'a BasicAuth>,
    /// `authorization`.
    pub authorization: Option<&'a Authorization>,
    /// `bearer_token` (deprecated form).
    pub bearer_token: Option<&'a Secret>,
    /// `bearer_token_file` (deprecated form).
    pub bearer_token_file: Option<&'a String>,
    /// `tls_config`.
    pub tls_config: &'a TlsConfig,
}

impl HttpClientConfig<'_> {
    /// Prometheus's `HTTPClientConfig.Validate`: at most one way to authenticate, a
    /// secret given inline or by file but not both, certificate and key together.
    pub fn validate(&self) -> Result<(), String> {
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err("at most one of bearer_token & bearer_token_file must be configured".into());
        }
        if self.basic_auth.is_some() && bearer {
            return Err(
                "at most one of basic_auth, bearer_token & bearer_token_file must be configured".into()
            );
        }
        if let Some(basic) = self.basic_auth
            && basic.password.is_some()
            && basic.password_file.is_some()
        {
            return Err("at most one of basic_auth password & password_file must be configured".into());
        }
        if let Some(auth) = self.authorization {
            if bearer {
                return Err("authorization is not compatible with bearer_token & bearer_token_file".into());
            }
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(
                    "at most one of authorization credentials & credentials_file must be configured".into()
                );
            }
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(r#"authorization type cannot be set to "basic", use "basic_auth" instead"#.into());
            }
            if self.basic_auth.is_some() {
                return Err("at most one of basic_auth, oauth2 & authorization must be configured".into());
            }
        }
        let tls = self.tls_config;
        if tls.cert_file.is_some() && tls.key_file.is_none() {
            return Err(
                "exactly one of key or key_file must be configured when a client certificate is configured"
                    .into(),
            );
        }
        if tls.key_file.is_some() && tls.cert_file.is_none() {
            return Err(
                "exactly one of cert or cert_file must be configured when a client key is configured".into(),
            );
        }
        Ok(())
    }
}
