//! Prometheus's lifecycle endpoints, `POST|PUT /-/reload` and `/-/quit`, served only with
//! `--web.enable-lifecycle` (else 403 "Lifecycle API is not enabled.", and 405 for other
//! methods, Prometheus's answers), and the process-wide shutdown they and signals trigger.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use strata_scrape::ScrapeManager;
use tokio::sync::watch;

/// Set once a shutdown is asked for (`/-/quit`).
static QUIT: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(false).0);

/// Completes on SIGINT, SIGTERM or `POST /-/quit`.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let mut quit = QUIT.subscribe();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        _ = quit.wait_for(|q| *q) => {}
    }
    tracing::info!("shutdown requested");
}

async fn reload(State(scrape): State<Option<ScrapeManager>>) -> Response {
    let Some(m) = scrape else { return StatusCode::OK.into_response() };
    match m.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response()
        }
    }
}

async fn quit() -> &'static str {
    if QUIT.send_replace(true) {
        "Termination already in progress."
    } else {
        "Requesting termination... Goodbye!"
    }
}

async fn not_enabled() -> Response {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response()
}

async fn wrong_method() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, "Only POST or PUT requests allowed").into_response()
}

/// `/-/reload` (reloading `scrape`'s configuration, when the node scrapes) and `/-/quit`;
/// working only when `enabled`.
pub(crate) fn routes(enabled: bool, scrape: Option<ScrapeManager>) -> Router {
    let route = |on: MethodRouter<Option<ScrapeManager>>| on.fallback(wrong_method);
    let (reload, quit): (MethodRouter<_>, MethodRouter<_>) = if enabled {
        (post(reload).put(reload), post(quit).put(quit))
    } else {
        (post(not_enabled).put(not_enabled), post(not_enabled).put(not_enabled))
    };
    Router::new().route("/-/reload", route(reload)).route("/-/quit", route(quit)).with_state(scrape)
}
