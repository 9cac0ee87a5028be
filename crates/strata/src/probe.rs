//! `strata probe URL`: an HTTP or HTTPS GET that exits 0 on a 2xx answer and 1 otherwise,
//! for container health checks in images that have nothing but the `strata` binary. HTTPS
//! verifies the server's certificate against `--ca-file` (rustls).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Flags of `strata probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// The URL to GET, `http://host:port/path` or `https://...` (e.g.
    /// http://127.0.0.1:9090/-/ready).
    url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
    /// HTTPS: the CA certificates (PEM) the server's certificate must chain to; its name
    /// must be the URL's host.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// A parsed probe URL.
#[derive(Debug, PartialEq)]
struct Target {
    tls: bool,
    /// `host:port`.
    host: String,
    path: String,
}

/// Splits `http[s]://host[:port]/path`.
fn split(url: &str) -> anyhow::Result<Target> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => bail!("{url:?}: only http:// and https:// URLs"),
    };
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let port = if tls { 443 } else { 80 };
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:{port}") };
    Ok(Target { tls, host, path })
}

/// A TLS client verifying servers against the CA certificates of `ca_file`.
fn tls_config(ca_file: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.context("a CA certificate")?).context("a CA certificate")?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate", ca_file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) fn probe(a: ProbeArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(a.timeout_secs.max(1));
    let t = split(&a.url)?;
    let host = &t.host;
    let addr = host.to_socket_addrs()?.next().with_context(|| format!("{host}: no address"))?;
    let s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {host}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut s: Box<dyn ReadWrite> = if t.tls {
        let ca = a.ca_file.as_deref().context("an https:// URL needs --ca-file")?;
        let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).trim_matches(['[', ']']);
        let name =
            ServerName::try_from(name.to_owned()).with_context(|| format!("{name:?}: not a server name"))?;
        let conn = rustls::ClientConnection::new(tls_config(ca)?, name)?;
        Box::new(rustls::StreamOwned::new(conn, s))
    } else {
        Box::new(s)
    };
    write!(s, "GET {} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n", t.path)?;
    s.flush()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if !(200..300).contains(&code) {
        bail!("{}: HTTP {code}", a.url);
    }
    Ok(())
}

/// A connection, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::{Target, split};

    #[test]
    fn urls() {
        let t = |tls, host: &str, path: &str| Target { tls, host: host.into(), path: path.into() };
        assert_eq!(split("http://a:9090/-/ready").unwrap(), t(false, "a:9090", "/-/ready"));
        assert_eq!(split("http://a").unwrap(), t(false, "a:80", "/"));
        assert_eq!(split("https://a/-/ready").unwrap(), t(true, "a:443", "/-/ready"));
        assert!(split("ftp://a").is_err());
    }
}
