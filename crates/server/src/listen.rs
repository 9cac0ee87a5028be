//! Serving the HTTP API on a TCP listener with limits no client can get around: a cap on
//! open connections (further ones wait in the kernel's accept queue, as Prometheus's
//! `--web.max-connections`), a deadline for a request's headers (which also closes idle
//! keep-alive connections), a deadline for its body, and HTTP/2 keep-alive pings that drop
//! dead peers. A client that opens connections and never finishes a request costs one
//! slot for at most the header deadline.

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
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(300),
            max_concurrent_streams: 100,
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

/// Serves `routes` on `listener` with the limits of `cfg` until `shutdown` completes, then
/// lets the requests in flight finish (for at most 10 s); `open` counts the connections.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Router,
    cfg: &ListenConfig,
    open: &Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let routes = routes.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(cfg.body_read_timeout));
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(cfg.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
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
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        let counted = Counted::new(open);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop((slot, counted));
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("HTTP connections still open after {DRAIN:?}: closing them");
    }
    Ok(())
}
