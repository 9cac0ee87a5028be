//! `GET /api/v1/targets` and `GET /api/v1/targets/metadata` in Prometheus's JSON (reloads
//! are the binary's lifecycle endpoint's: [`ScrapeManager::reload`]).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::manager::ScrapeManager;
use strata_discovery::PromDuration;

/// The scraper's HTTP routes.
pub fn routes(manager: ScrapeManager) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/metadata", get(metadata))
        .with_state(manager)
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"status": "error", "errorType": "bad_data", "error": msg})))
        .into_response()
}

fn rfc3339(t: Option<std::time::SystemTime>) -> String {
    match t {
        Some(t) => {
            chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        }
        None => "0001-01-01T00:00:00Z".into(),
    }
}

/// A target's URL as others can reach it (Prometheus's `globalUrl`): a loopback host is
/// replaced by this node's host name; a target on this node's own port is this node.
fn global_url(url: &str, external: Option<&(String, u16)>) -> String {
    let (Some((name, own_port)), Ok(u)) = (external, reqwest::Url::parse(url)) else {
        return url.to_owned();
    };
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let Some(port) = u.port_or_known_default().filter(|_| loopback) else {
        return url.to_owned();
    };
    // this node scraping itself is reached over http; the host name as the system spells it
    let scheme = if port == *own_port { "http" } else { u.scheme() };
    let mut out = format!("{scheme}://{name}:{port}{}", u.path());
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn targets(State(m): State<ScrapeManager>, Query(q): Query<HashMap<String, String>>) -> Response {
    let state = q.get("state").map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| "any".into());
    let (want_active, want_dropped) = match state.as_str() {
        "active" => (true, false),
        "dropped" => (false, true),
        "any" | "" => (true, true),
        _ => (false, false),
    };
    let pool_filter = q.get("scrapePool").filter(|s| !s.is_empty());
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = serde_json::Map::new();
    for (job, pool) in m.pools() {
        if pool_filter.is_some_and(|p| *p != job) {
            continue;
        }
        let st = pool.state.lock();
        dropped_counts.insert(job.clone(), json!(st.dropped_count));
        if want_active {
            for t in st.active.values() {
                let Some(h) = t.health() else { continue };
                let target = &t.target;
                active.push(json!({
                    "discoveredLabels": target.discovered,
                    "labels": target.public_labels().collect::<std::collections::BTreeMap<_, _>>(),
                    "scrapePool": job,
                    "scrapeUrl": target.url,
                    "globalUrl": global_url(&target.url, m.external()),
                    "lastError": h.last_error,
                    "lastScrape": rfc3339(h.last_scrape),
                    "lastScrapeDuration": h.last_duration,
                    "health": match h.up { Some(true) => "up", Some(false) => "down", None => "unknown" },
                    "scrapeInterval": PromDuration(target.interval).to_string(),
                    "scrapeTimeout": PromDuration(target.timeout).to_string(),
                }));
            }
        }
        if want_dropped {
            dropped.extend(st.dropped.iter().map(|d| json!({"discoveredLabels": d})));
        }
    }
    success(
        json!({"activeTargets": active, "droppedTargets": dropped, "droppedTargetCounts": dropped_counts}),
    )
}

async fn metadata(State(m): State<ScrapeManager>, Query(q): Query<HashMap<String, String>>) -> Response {
    let matchers = match q.get("match_target").filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(s) => match strata_promql::parse_selector(s) {
            Ok(mut sets) if sets.len() == 1 => sets.remove(0),
            Ok(_) => return bad_request("match_target: one set of matchers expected".into()),
            Err(e) => return bad_request(e),
        },
    };
    let metric = q.get("metric").filter(|s| !s.is_empty());
    let limit: usize = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => usize::MAX,
        Some(Ok(n)) if n < 0 => usize::MAX,
        Some(Ok(n)) => n as usize,
        Some(Err(_)) => return bad_request("limit must be a number".into()),
    };
    let mut out = Vec::new();
    'pools: for (_, pool) in m.pools() {
        let st = pool.state.lock();
        for t in st.active.values() {
            let Some(h) = t.health() else { continue };
            let labels: std::collections::BTreeMap<_, _> = t.target.public_labels().collect();
            let matches =
                matchers.iter().all(|mt| mt.matches(labels.get(&mt.name).map(|s| s.as_str()).unwrap_or("")));
            if !matches {
                continue;
            }
            for (family, md) in &h.metadata {
                if metric.is_some_and(|m| m != family) {
                    continue;
                }
                if out.len() >= limit {
                    break 'pools;
                }
                out.push(json!({"target": labels, "metric": family, "type": md.kind, "help": md.help, "unit": md.unit}));
            }
        }
    }
    success(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::global_url;

    #[test]
    fn global_urls_name_this_machine_for_loopback_targets() {
        let me = ("node-a".to_owned(), 9090);
        let g = |u: &str| global_url(u, Some(&me));
        assert_eq!(g("http://127.0.0.1:9100/metrics"), "http://node-a:9100/metrics");
        assert_eq!(g("https://localhost:9100/metrics?x=1"), "https://node-a:9100/metrics?x=1");
        assert_eq!(g("http://[::1]:9100/metrics"), "http://node-a:9100/metrics");
        // this node itself
        assert_eq!(g("https://127.0.0.1:9090/metrics"), "http://node-a:9090/metrics");
        // others as they are
        assert_eq!(g("http://10.0.0.1:9100/metrics"), "http://10.0.0.1:9100/metrics");
        assert_eq!(g("http://host:9100/metrics"), "http://host:9100/metrics");
        // a default port, and a host name kept as it is spelled
        assert_eq!(g("http://localhost/metrics"), "http://node-a:80/metrics");
        let upper = ("DESKTOP-A".to_owned(), 9090);
        assert_eq!(global_url("http://127.0.0.1:9100/m", Some(&upper)), "http://DESKTOP-A:9100/m");
        assert_eq!(global_url("http://127.0.0.1:9100/metrics", None), "http://127.0.0.1:9100/metrics");
    }
}
