//! Scraping on a node that writes (`strata standalone`, `strata ingestor`): the scrape
//! manager, its routes, and configuration reloads on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;

use strata_scrape::{ManagerConfig, ScrapeManager, ring};

/// Starts scraping per `file` (none: only the routes, with nothing to scrape) on the node
/// listening on `listen_addr` and returns the routes to serve beside the node's API and the
/// manager (which `POST /-/reload` reloads). A bad file fails the start.
pub(crate) async fn start(
    file: Option<PathBuf>,
    ring: Option<ring::MembershipConfig>,
    listen_addr: &str,
    state: &strata_server::AppState,
    writer: Arc<dyn strata_api::Writer>,
) -> anyhow::Result<(axum::Router, ScrapeManager)> {
    let ring = ring.map(ring::spawn_membership);
    let cfg = ManagerConfig {
        config_file: file,
        ring,
        metadata: Some(state.metadata()),
        listen_addr: Some(listen_addr.to_owned()),
        clock: None,
    };
    let manager = ScrapeManager::start(cfg, writer)
        .await
        .map_err(|e| anyhow::anyhow!("invalid scrape configuration: {e}"))?;
    let m = manager.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the scrape configuration");
            // a bad file is logged by reload and the running configuration kept
            let _ = m.reload().await;
        }
    });
    let routes =
        strata_server::default_tenant_only(strata_scrape::routes(manager.clone()), &state.config().tenancy);
    Ok((routes, manager))
}
