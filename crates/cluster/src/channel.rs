//! gRPC channels between cluster members and clients: one message size limit, one way to
//! reach an address (plain HTTP/2 or mutual TLS).

use std::time::Duration;

use tonic::transport::Endpoint;

use crate::tls::GrpcTls;

/// Largest gRPC message accepted or sent between nodes and clients: 256 MiB.
pub const MAX_MESSAGE: usize = 256 << 20;

/// How often an open connection is pinged (HTTP/2 keep-alive, also while idle) and how
/// long a ping may go unanswered before the connection counts as dead and its calls fail:
/// 1 s each, so that a peer whose host vanished (no FIN, no RST) is noticed within ~2 s,
/// not after each call's own timeout.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// A lazily connecting endpoint for `addr` (`host:port` or a URL), over mutual TLS when
/// `tls` is given (plain HTTP/2 otherwise); connects within 2 s, pinged every
/// [`KEEP_ALIVE`].
pub fn endpoint(addr: &str, tls: Option<&GrpcTls>) -> Result<Endpoint, String> {
    let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let url = match tls {
        Some(_) => format!("https://{host_port}"),
        None if addr.contains("://") => addr.to_string(),
        None => format!("http://{addr}"),
    };
    let bad = |e: tonic::transport::Error| format!("bad address {addr:?}: {e}");
    let e = Endpoint::from_shared(url)
        .map_err(bad)?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(true);
    match tls {
        Some(t) => e.tls_config(t.client()).map_err(bad),
        None => Ok(e),
    }
}
