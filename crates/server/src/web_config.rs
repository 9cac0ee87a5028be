//! Prometheus's web configuration file (`--web.config.file`, the exporter-toolkit format of
//! Prometheus 2.42): TLS (`tls_server_config`), response headers (`http_server_config`) and
//! basic-auth users with bcrypt hashes (`basic_auth_users`). A file is checked in the order
//! and with the messages of `promtool check web-config`, so a file one accepts the other
//! accepts, and a rejected one is rejected for the same reason.
//!
//! What rustls cannot do is said where it matters: TLS 1.0/1.1, CBC and RSA-key-exchange
//! suites and the P-521 curve are accepted in the file (as Prometheus does) but not offered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde::Deserialize;

/// The file as written: unknown keys are refused (Go's strict unmarshalling).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    tls_server_config: TlsFile,
    http_server_config: HttpFile,
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TlsFile {
    cert_file: String,
    key_file: String,
    client_auth_type: String,
    client_ca_file: String,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HttpFile {
    http2: bool,
    headers: BTreeMap<String, String>,
}

impl Default for HttpFile {
    fn default() -> Self {
        HttpFile { http2: true, headers: BTreeMap::new() }
    }
}

/// A checked web configuration, ready to serve with.
#[derive(Debug, Default)]
pub(crate) struct WebConfig {
    /// User name → bcrypt hash; empty: no basic auth.
    pub(crate) users: BTreeMap<String, String>,
    /// Headers added to every response.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The TLS server configuration, when the file turns TLS on.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether HTTP/2 is offered over TLS (`http_server_config.http2`, default true).
    pub(crate) http2: bool,
    /// The files the configuration was read from (the file itself, certificates, CA): a
    /// change to any of them reloads it.
    pub(crate) files: Vec<PathBuf>,
}

/// Headers a web configuration may set, and the values allowed (none listed: any).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Go's names of the cipher suites `crypto/tls` implements (what Prometheus accepts).
const GO_CIPHER_SUITES: [&str; 17] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Go's TLS versions by name: (name, major.minor as 0x0301..0x0304).
const TLS_VERSIONS: [(&str, u16); 4] =
    [("TLS10", 0x0301), ("TLS11", 0x0302), ("TLS12", 0x0303), ("TLS13", 0x0304)];

/// Go's curve names and the rustls (ring) key-exchange group of each; None: not offered.
fn curve(name: &str) -> Option<Option<&'static dyn rustls::crypto::SupportedKxGroup>> {
    use rustls::crypto::ring::kx_group;
    match name {
        "CurveP256" => Some(Some(kx_group::SECP256R1)),
        "CurveP384" => Some(Some(kx_group::SECP384R1)),
        "CurveP521" => Some(None),
        "X25519" => Some(Some(kx_group::X25519)),
        _ => None,
    }
}

/// An I/O error as Go prints it: `open /path: no such file or directory`.
fn go_io_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let lowered = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect::<String>(),
        None => String::new(),
    };
    format!("{op} {}: {lowered}", path.display())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| go_io_error("open", path, &e))
}

/// A YAML error in the words of Go's yaml.v2 where the meaning is the same (an unknown key,
/// a key set twice), else serde_yaml's own.
fn yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let line = e.location().map_or(0, |l| l.line());
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        let field = rest.split('`').next().unwrap_or_default();
        let ty = if msg.starts_with("tls_server_config") {
            "web.TLSConfig"
        } else if msg.starts_with("http_server_config") {
            "web.HTTPConfig"
        } else {
            "web.Config"
        };
        return format!("yaml: unmarshal errors:\n  line {line}: field {field} not found in type {ty}");
    }
    if let Some(rest) = msg.split("duplicate entry with key \"").nth(1) {
        let key = rest.split('"').next().unwrap_or_default();
        return format!("yaml: unmarshal errors:\n  line {line}: key \"{key}\" already set in map");
    }
    // a value of the wrong kind where a section is expected
    if let Some(rest) = msg.split("invalid type: ").nth(1)
        && let Some((found, expected)) = rest.split_once(", expected struct ")
    {
        let tag = match found.split_whitespace().next().unwrap_or_default() {
            "sequence" => "!!seq",
            "map" => "!!map",
            "string" => "!!str",
            "integer" => "!!int",
            "boolean" => "!!bool",
            "floating" => "!!float",
            other => other,
        };
        let ty = match expected.split_whitespace().next().unwrap_or_default() {
            "TlsFile" => "web.TLSConfig",
            "HttpFile" => "web.HTTPConfig",
            _ => "web.Config",
        };
        return format!("yaml: unmarshal errors:\n  line {line}: cannot unmarshal {tag} into {ty}");
    }
    format!("yaml: {msg}")
}

/// bcrypt's check of a stored hash, as Go's `bcrypt.Cost` (the messages are Go's).
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let b = hash.as_bytes();
    if b.len() < 59 {
        return Err("crypto/bcrypt: hashedSecret too short to be a bcrypted password".into());
    }
    if b[0] != b'$' {
        return Err(format!(
            "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with '{}'",
            char::from(b[0])
        ));
    }
    if b[1] > b'2' {
        return Err(format!(
            "crypto/bcrypt: bcrypt algorithm version '{}' requested is newer than current version '2'",
            char::from(b[1])
        ));
    }
    let at = if b[2] == b'$' { 3 } else { 4 };
    let digits = std::str::from_utf8(&b[at..at + 2]).unwrap_or("");
    let cost: u32 =
        digits.parse().map_err(|_| format!("strconv.Atoi: parsing {digits:?}: invalid syntax"))?;
    if !(4..=31).contains(&cost) {
        return Err(format!("crypto/bcrypt: cost {cost} is outside allowed range (4,31)"));
    }
    Ok(cost)
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for (k, v) in headers {
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(name, _)| name == k) else {
            return Err(format!("HTTP header {k:?} can not be configured"));
        };
        if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
            // Go's %q of a string slice: ["deny" "sameorigin"]
            let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            return Err(format!(
                "invalid value for {k}. Expected one of: [{}], but got: {v:?}",
                quoted.join(" ")
            ));
        }
        let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value for {k}: {v:?}"))?;
        out.push((HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?, value));
    }
    Ok(out)
}

/// Reads and checks the web configuration file at `path`: the checks and messages of
/// Prometheus's (`promtool check web-config`), then what rustls needs.
pub(crate) fn load(path: &Path) -> Result<WebConfig, String> {
    let text = read(path)?;
    // keys set twice are refused (as Go's yaml.v2 does; a typed map would keep the last)
    serde_yaml::from_slice::<serde_yaml::Value>(&text).map_err(|e| yaml_error(&e))?;
    let file: FileConfig =
        serde_yaml::from_slice::<Option<FileConfig>>(&text).map_err(|e| yaml_error(&e))?.unwrap_or_default();
    let t = &file.tls_server_config;
    // checked while unmarshalling in Go: before the headers and the users
    for s in &t.cipher_suites {
        if !GO_CIPHER_SUITES.contains(&s.as_str()) {
            return Err(format!("unknown cipher: {s}"));
        }
    }
    for c in &t.curve_preferences {
        if curve(c).is_none() {
            return Err(format!("unknown curve: {c}"));
        }
    }
    let version = |v: &Option<String>, default: u16| match v {
        None => Ok(default),
        Some(v) => TLS_VERSIONS
            .iter()
            .find(|(n, _)| n == v)
            .map(|(_, x)| *x)
            .ok_or_else(|| format!("unknown TLS version: {v}")),
    };
    let (min, max) = (version(&t.min_version, 0x0303)?, version(&t.max_version, 0x0304)?);
    let headers = check_headers(&file.http_server_config.headers)?;
    for hash in file.basic_auth_users.values() {
        bcrypt_cost(hash)?;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![path.to_path_buf()];
    let tls = tls_config(t, dir, (min, max), file.http_server_config.http2, &mut files)?;
    Ok(WebConfig { users: file.basic_auth_users, headers, tls, http2: file.http_server_config.http2, files })
}

/// A path of the file relative to the file's directory (as Prometheus's `JoinDir`).
fn join(dir: &Path, p: &str) -> PathBuf {
    if p.is_empty() || Path::new(p).is_absolute() { PathBuf::from(p) } else { dir.join(p) }
}

fn load_key_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&read(cert)?).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err("tls: failed to find any PEM data in certificate input".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| "tls: failed to find any PEM data in key input".to_owned())?;
    Ok((certs, key))
}

/// The rustls server configuration of `t` (None: the file does not turn TLS on); every
/// file read is added to `files`.
fn tls_config(
    t: &TlsFile,
    dir: &Path,
    (min, max): (u16, u16),
    http2: bool,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    if t.cert_file.is_empty()
        && t.key_file.is_empty()
        && t.client_auth_type.is_empty()
        && t.client_ca_file.is_empty()
    {
        return Ok(None);
    }
    if t.cert_file.is_empty() {
        return Err("missing cert_file".into());
    }
    if t.key_file.is_empty() {
        return Err("missing key_file".into());
    }
    let (cert_path, key_path) = (join(dir, &t.cert_file), join(dir, &t.key_file));
    files.extend([cert_path.clone(), key_path.clone()]);
    let (certs, key) =
        load_key_pair(&cert_path, &key_path).map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    let provider = provider(t);
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("failed to load X509KeyPair: tls: failed to parse private key: {e}"))?;
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        rustls::sign::CertifiedKey::new(certs.clone(), signing).keys_match()
    {
        return Err("failed to load X509KeyPair: tls: private key does not match public key".into());
    }
    let mut roots = None;
    if !t.client_ca_file.is_empty() {
        let ca_path = join(dir, &t.client_ca_file);
        let pem = read(&ca_path)?;
        files.push(ca_path.clone());
        let mut store = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
            let _ = store.add(c);
        }
        if store.is_empty() {
            return Err(format!("client_ca_file {}: no certificate in it", ca_path.display()));
        }
        roots = Some(store);
    }
    let provider = Arc::new(provider);
    let verifier = client_verifier(&t.client_auth_type, roots, &provider)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(0x0303, &rustls::version::TLS12), (0x0304, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        return Err(
            "min_version..max_version holds neither TLS12 nor TLS13, the versions Strata serves".into()
        );
    }
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("failed to load X509KeyPair: {e}"))?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols =
        if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Some(Arc::new(cfg)))
}

/// ring's provider narrowed to the configured TLS 1.2 suites (Go ignores `cipher_suites`
/// for TLS 1.3, and so does this) and curves.
fn provider(t: &TlsFile) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        p.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13
                || s.suite().as_str().is_some_and(|n| t.cipher_suites.iter().any(|c| c == n))
        });
    }
    if !t.curve_preferences.is_empty() {
        let groups: Vec<_> = t.curve_preferences.iter().filter_map(|c| curve(c).flatten()).collect();
        if !groups.is_empty() {
            p.kx_groups = groups;
        }
    }
    p
}

/// The client-certificate policy of `client_auth_type` (Go's `tls.ClientAuthType` names).
fn client_verifier(
    kind: &str,
    roots: Option<rustls::RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let algs = provider.signature_verification_algorithms;
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let roots = roots.clone().unwrap_or_else(|| {
            let mut s = rustls::RootCertStore::empty();
            for c in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
                let _ = s.add(c.clone());
            }
            s
        });
        let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let b = if optional { b.allow_unauthenticated() } else { b };
        b.build().map_err(|e| format!("client_ca_file: {e}"))
    };
    let v: Arc<dyn ClientCertVerifier> = match kind {
        "RequestClientCert" => Arc::new(AnyClientCert { mandatory: false, algs }),
        "RequireAnyClientCert" | "RequireClientCert" => Arc::new(AnyClientCert { mandatory: true, algs }),
        "VerifyClientCertIfGiven" => verified(true)?,
        "RequireAndVerifyClientCert" => verified(false)?,
        "" | "NoClientCert" => {
            if roots.is_some() {
                return Err("Client CA's have been configured without a Client Auth Policy".into());
            }
            WebPkiClientVerifier::no_client_auth()
        }
        other => return Err(format!("Invalid ClientAuth: {other}")),
    };
    Ok(v)
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for
/// (and required when `mandatory`) but its chain is not verified; the client still proves
/// it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::bcrypt_cost;

    #[test]
    fn bcrypt_hashes_are_checked_as_go_checks_them() {
        let good = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
        assert_eq!(bcrypt_cost(good), Ok(10));
        assert_eq!(
            bcrypt_cost("notahash"),
            Err("crypto/bcrypt: hashedSecret too short to be a bcrypted password".into())
        );
        let bad_prefix = good.replacen('$', "x", 1);
        assert!(bcrypt_cost(&bad_prefix).unwrap_err().contains("must start with '$'"));
        let low = good.replace("$10$", "$03$");
        assert_eq!(bcrypt_cost(&low), Err("crypto/bcrypt: cost 3 is outside allowed range (4,31)".into()));
    }
}
