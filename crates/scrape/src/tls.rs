//! TLS settings of scrapes (`tls_config`).

use crate::config::TlsConfig;

/// Applies `tls` to a client under construction.
pub(crate) fn configure(b: reqwest::ClientBuilder, tls: &TlsConfig) -> Result<reqwest::ClientBuilder, String> {
    if *tls != TlsConfig::default() {
        return Err("tls_config is not supported by this build".into());
    }
    Ok(b)
}
