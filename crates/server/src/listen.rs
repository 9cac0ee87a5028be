//! Serving the HTTP API on a TCP listener with limits no client can get around: a cap on
//! open connections (further ones wait in the kernel's accept queue, as Prometheus's
//! `--web.max-connections`), a deadline for a request's headers (which also closes idle
//! keep-alive connections), a deadline for its body, and HTTP/2 keep-alive pings that drop
//! dead peers. A client that opens connections and never finishes a request costs one
//! slot for at most the header deadline.
//!
//! With a web configuration file that turns TLS on, every connection is a TLS one (the
//! handshake bounded by the header deadline, the certificates of the file as it is when
//! the connection comes); authentication and response headers are a middleware over every
//! route (see [`crate::web_auth`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::web_auth::{WebSecurity, WebSecurityConfig};

/// Limits of an HTTP listener.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Most connections open at once; more wait to be accepted. Default 512
    /// (Prometheus's `--web.max-connections`).
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, and to start its next
    /// request on a kept-alive HTTP/1 connection. Default 30 s.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body. Default 5 minutes
    /// (Prometheus's `--web.read-timeout`).
    pub body_read_timeout: Duration,
    /// Most concurrent HTTP/2 streams (gRPC calls) on one connection. Default 100.
    pub max_concurrent_streams: u32,
    /// TLS and authentication. Default: none (plain HTTP, anyone).
    pub security: WebSecurityConfig,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(300),
            max_concurrent_streams: 100,
            security: WebSecurityConfig::default(),
        }
    }
}

/// One served connection: counted in the open-connections gauge while it lives.
struct Counted(Gauge);

impl Counted {
    fn new(open: &Gauge) -> Self {
        open.inc();
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How long a shutdown waits for the requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `routes` on `listener` with the limits of `cfg`, behind `security`, until
/// `shutdown` completes, then lets the requests in flight finish (for at most 10 s); `open`
/// counts the connections.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Router,
    cfg: &ListenConfig,
    security: Arc<WebSecurity>,
    open: &Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = security.tls().is_some();
    tracing::info!(tls, addr = %listener.local_addr()?, "HTTP listener");
    let routes = routes
        .layer(axum::middleware::from_fn_with_state(security.clone(), crate::web_auth::middleware))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(cfg.body_read_timeout));
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(cfg.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let http1_only = Arc::new(builder.clone().http1_only());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let handshake_deadline = cfg.header_read_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors and the like: wait instead of spinning
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(routes.clone());
        let counted = Counted::new(open);
        let (builder, http1_only, watcher, security) =
            (builder.clone(), http1_only.clone(), graceful.watcher(), security.clone());
        tokio::spawn(async move {
            if !tls {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            } else {
                // the TLS settings of the files as they are now (a changed file applies to
                // the connections that come after it)
                let Some(config) =
                    security.current().ok().and_then(|c| c.web.tls.clone().map(|t| (t, c.web.http2)))
                else {
                    tracing::warn!(%peer, "TLS connection refused: the web configuration has no usable TLS settings");
                    return;
                };
                let (config, http2) = config;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let stream = match tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let builder = if http2 { builder } else { http1_only };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "HTTPS connection ended with an error");
                }
            }
            drop((slot, counted));
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTP connections still open after {DRAIN:?}: closing them");
    }
    Ok(())
}
