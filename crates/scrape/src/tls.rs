//! TLS settings of scrapes (`tls_config`), over reqwest's rustls (its default crypto
//! provider, so every reqwest client of a build that links this crate keeps working
//! without a process-wide provider installed).
//!
//! Without a `ca_file`, servers are verified against the system's CA certificates; where
//! the system has none (a `FROM scratch` container), against the Mozilla roots built into
//! the binary, so such a node still scrapes (plain HTTP needs no roots at all).

use std::sync::Once;

use strata_discovery::TlsConfig;

/// Builds a client from `make` (called once more for the fallback) with `tls` applied.
pub(crate) fn client(
    make: impl Fn() -> reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::Client, String> {
    match configure(make(), tls)?.build() {
        Ok(c) => Ok(c),
        // rustls-platform-verifier's words for a system without a CA store
        Err(e) if tls.ca_file.is_none() && crate::fetch::chain(&e).contains("No CA certificates") => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!("no CA certificates on this system; https targets are verified against the Mozilla roots built into Strata");
            });
            let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .filter_map(|c| reqwest::Certificate::from_der(c).ok());
            configure(make().tls_certs_only(roots), tls)?.build().map_err(|e| crate::fetch::chain(&e))
        }
        Err(e) => Err(crate::fetch::chain(&e)),
    }
}

/// Applies `tls` to a client under construction.
fn configure(mut b: reqwest::ClientBuilder, tls: &TlsConfig) -> Result<reqwest::ClientBuilder, String> {
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("reading {p}: {e}"));
    if let Some(ca) = &tls.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
            .map_err(|e| format!("{ca}: not a PEM certificate bundle: {e}"))?;
        b = b.tls_certs_only(certs);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("{cert} / {key}: not a PEM certificate and key: {e}"))?;
            b = b.identity(id);
        }
        (None, None) => {}
        _ => return Err("tls_config: cert_file and key_file must be given together".into()),
    }
    if tls.server_name.is_some() {
        return Err("tls_config: server_name is not supported; scrape the name the certificate holds".into());
    }
    match tls.min_version.as_deref() {
        None | Some("") => {}
        Some("TLS12") => b = b.tls_version_min(reqwest::tls::Version::TLS_1_2),
        Some("TLS13") => b = b.tls_version_min(reqwest::tls::Version::TLS_1_3),
        Some(v) => return Err(format!("tls_config: unsupported min_version {v:?} (TLS12 or TLS13)")),
    }
    Ok(b.danger_accept_invalid_certs(tls.insecure_skip_verify))
}
