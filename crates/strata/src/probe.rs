//! `strata probe URL`: an HTTP GET that exits 0 on a 2xx answer and 1 otherwise, for
//! container health checks in images that have nothing but the `strata` binary.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// Flags of `strata probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// The URL to GET, `http://host:port/path` (e.g. http://127.0.0.1:9090/-/ready).
    url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// Splits `http://host:port/path` into the address and the path.
fn split(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("http://").with_context(|| format!("{url:?}: only http:// URLs"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:80") };
    Ok((host, path))
}

pub(crate) fn probe(a: ProbeArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(a.timeout_secs.max(1));
    let (host, path) = split(&a.url)?;
    let addr = host.to_socket_addrs()?.next().with_context(|| format!("{host}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {host}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if !(200..300).contains(&code) {
        bail!("{}: HTTP {code}", a.url);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        assert_eq!(super::split("http://a:9090/-/ready").unwrap(), ("a:9090".into(), "/-/ready".into()));
        assert_eq!(super::split("http://a").unwrap(), ("a:80".into(), "/".into()));
        assert!(super::split("https://a").is_err());
    }
}
