//! Cluster administration: the HTTP routes storage nodes, ingestors and queriers serve
//! (`GET /api/v1/cluster/status`, `POST /api/v1/cluster/nodes/{name-or-id}/decommission`
//! and `/recommission`, `POST /api/v1/cluster/rebalance/pause` and `/resume`), and
//! `strata admin`, the same verbs from a shell (over the cluster's gRPC).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use strata_cluster::{ClientConfig, ClusterClient, Error, NodeState};
use strata_storage::admin;

use crate::roles::GrpcTlsArgs;

type Reply = (StatusCode, Json<Value>);

/// Prometheus's error envelope for a failed verb: 400 for a bad request (unknown node, a
/// decommission that would leave too few nodes), 503 while the metadata group cannot be
/// reached.
fn failed(e: &Error) -> Reply {
    let (code, kind) = match e {
        Error::Invalid(_) | Error::Config(_) => (StatusCode::BAD_REQUEST, "bad_data"),
        Error::Unavailable { .. } | Error::NoMap(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    (code, Json(json!({"status": "error", "errorType": kind, "error": e.to_string()})))
}

fn ok(data: Value) -> Reply {
    (StatusCode::OK, Json(json!({"status": "success", "data": data})))
}

async fn status(State(c): State<Arc<ClusterClient>>) -> Reply {
    match admin::status(&c).await {
        Ok(s) => ok(serde_json::to_value(s).unwrap_or(Value::Null)),
        Err(e) => failed(&e),
    }
}

async fn set_state(c: &ClusterClient, who: &str, state: NodeState) -> Reply {
    match admin::set_node_state(c, who, state).await {
        Ok(id) => ok(json!({"id": id, "state": state.name()})),
        Err(e) => failed(&e),
    }
}

async fn decommission(State(c): State<Arc<ClusterClient>>, Path(who): Path<String>) -> Reply {
    set_state(&c, &who, NodeState::Draining).await
}

async fn recommission(State(c): State<Arc<ClusterClient>>, Path(who): Path<String>) -> Reply {
    set_state(&c, &who, NodeState::Active).await
}

async fn pause(State(c): State<Arc<ClusterClient>>, paused: bool) -> Reply {
    match admin::set_paused(&c, paused).await {
        Ok(()) => ok(json!({"paused": paused})),
        Err(e) => failed(&e),
    }
}

/// Prometheus 2.42 answers a disabled admin API with 500 and this envelope.
async fn disabled() -> Reply {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"})),
    )
}

/// The cluster administration routes over `client`; the verbs only when `verbs` (else they
/// answer as Prometheus's admin APIs do when disabled).
pub(crate) fn routes(client: Arc<ClusterClient>, verbs: bool) -> axum::Router {
    let r = axum::Router::new().route("/api/v1/cluster/status", get(status));
    let r = if verbs {
        r.route("/api/v1/cluster/nodes/{who}/decommission", post(decommission))
            .route("/api/v1/cluster/nodes/{who}/recommission", post(recommission))
            .route("/api/v1/cluster/rebalance/pause", post(|s| pause(s, true)))
            .route("/api/v1/cluster/rebalance/resume", post(|s| pause(s, false)))
    } else {
        r.route("/api/v1/cluster/nodes/{who}/decommission", post(disabled))
            .route("/api/v1/cluster/nodes/{who}/recommission", post(disabled))
            .route("/api/v1/cluster/rebalance/pause", post(disabled))
            .route("/api/v1/cluster/rebalance/resume", post(disabled))
    };
    r.with_state(client)
}

/// Flags of `strata admin`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// Storage nodes to reach the cluster through (host:port of their gRPC), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    storage: Vec<String>,
    #[command(flatten)]
    tls: GrpcTlsArgs,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, clap::Subcommand)]
enum Verb {
    /// Prints the cluster's status (JSON: nodes, shards, moves).
    Status,
    /// Drains a node (name or id): its leaderships and replicas move to the others, then
    /// it reports itself decommissioned and may be deleted.
    Decommission {
        /// The node's name (pod name) or id.
        node: String,
        /// Wait until the node is decommissioned.
        #[arg(long)]
        wait: bool,
    },
    /// Waits while a node is draining, until it is decommissioned; returns at once when
    /// it is not draining. The storage pods' preStop hook: a pod deleted in the middle
    /// of its drain (a scale-down run before the drain finished) stops only once it holds
    /// nothing, while a pod that is merely restarted is not held up.
    WaitDrained {
        /// The node's name (pod name) or id [default: $POD_NAME].
        #[arg(env = "POD_NAME")]
        node: String,
    },
    /// Takes a draining or decommissioned node back: it gets replicas again.
    Recommission {
        /// The node's name (pod name) or id.
        node: String,
    },
    /// Starts no new replica moves (those in flight finish).
    Pause,
    /// Starts replica moves again.
    Resume,
}

/// Runs `strata admin`.
pub(crate) async fn run(a: AdminArgs) -> anyhow::Result<()> {
    let client = ClusterClient::new(ClientConfig {
        seeds: a.storage.clone(),
        tls: a.tls.load()?,
        ..ClientConfig::default()
    });
    match a.verb {
        Verb::Status => println!("{}", serde_json::to_string_pretty(&admin::status(&client).await?)?),
        Verb::Decommission { node, wait } => {
            let id = admin::set_node_state(&client, &node, NodeState::Draining).await?;
            println!("node {id} ({node}) draining");
            if wait {
                wait_decommissioned(&client, id, &node).await?;
            }
        }
        Verb::WaitDrained { node } => {
            let s = admin::status(&client).await?;
            let found = s.nodes.iter().find(|n| n.name == node || n.id.to_string() == node);
            match found {
                Some(n) if n.state == "draining" => wait_decommissioned(&client, n.id, &node).await?,
                Some(n) => println!("node {} ({node}) is {}: nothing to wait for", n.id, n.state),
                None => println!("no node {node} in the cluster: nothing to wait for"),
            }
        }
        Verb::Recommission { node } => {
            let id = admin::set_node_state(&client, &node, NodeState::Active).await?;
            println!("node {id} ({node}) active");
        }
        Verb::Pause => {
            admin::set_paused(&client, true).await?;
            println!("rebalancing paused");
        }
        Verb::Resume => {
            admin::set_paused(&client, false).await?;
            println!("rebalancing resumed");
        }
    }
    Ok(())
}

/// Polls the status until node `id` is decommissioned, printing what it still holds.
async fn wait_decommissioned(client: &ClusterClient, id: u64, node: &str) -> anyhow::Result<()> {
    loop {
        let s = admin::status(client).await?;
        match s.nodes.iter().find(|n| n.id == id) {
            Some(n) if n.state == "decommissioned" => {
                println!("node {id} ({node}) decommissioned: it holds nothing and may be deleted");
                return Ok(());
            }
            Some(n) if n.state == "active" => anyhow::bail!("node {id} was recommissioned meanwhile"),
            Some(n) => eprintln!("node {id}: {} replicas, {} leaderships left", n.replicas, n.leaders),
            None => anyhow::bail!("node {id} left the cluster"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
