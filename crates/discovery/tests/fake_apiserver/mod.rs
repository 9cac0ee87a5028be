//! A fake Kubernetes API server: list and watch (newline-delimited JSON events) of the
//! kinds the discovery watches, over plain HTTP on 127.0.0.1. One table of kinds drives
//! every route; objects are added, changed and deleted by the test.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A kind of object the server serves.
struct Kind {
    /// `kind` of the objects.
    kind: &'static str,
    /// Path prefix of its API group version.
    prefix: &'static str,
    /// Resource name in paths.
    plural: &'static str,
    /// `apiVersion` of the objects.
    api_version: &'static str,
}

const KINDS: [Kind; 5] = [
    Kind { kind: "Node", prefix: "/api/v1", plural: "nodes", api_version: "v1" },
    Kind { kind: "Pod", prefix: "/api/v1", plural: "pods", api_version: "v1" },
    Kind { kind: "Service", prefix: "/api/v1", plural: "services", api_version: "v1" },
    Kind { kind: "Endpoints", prefix: "/api/v1", plural: "endpoints", api_version: "v1" },
    Kind {
        kind: "EndpointSlice",
        prefix: "/apis/discovery.k8s.io/v1",
        plural: "endpointslices",
        api_version: "discovery.k8s.io/v1",
    },
];

/// Identifies an object: kind, namespace ("" for nodes), name.
type Key = (&'static str, String, String);

/// One change, as a watch reports it.
struct Event {
    version: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Objects {
    current: BTreeMap<Key, Value>,
    log: Vec<Event>,
}

/// The server's state, shared with its handler.
struct Shared {
    objects: Mutex<Objects>,
    /// The latest resource version, to wake watches.
    version: watch::Sender<u64>,
}

/// A running fake API server; dropping it stops it.
pub(crate) struct FakeApiServer {
    shared: Arc<Shared>,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    pub(crate) async fn start() -> FakeApiServer {
        let shared = Arc::new(Shared { objects: Mutex::default(), version: watch::channel(1).0 });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApiServer { shared, url, task }
    }

    /// Adds or replaces `object` (its `kind` and `metadata.name`/`namespace` say which).
    pub(crate) fn apply(&self, object: Value) {
        let kind = kind_of(object["kind"].as_str().unwrap());
        let key = key(kind, &object);
        let event = {
            let objects = self.shared.objects.lock().unwrap();
            if objects.current.contains_key(&key) { "MODIFIED" } else { "ADDED" }
        };
        self.record(key, event, object);
    }

    /// Deletes the object `kind` `namespace`/`name`.
    pub(crate) fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let key = (kind_of(kind).kind, namespace.to_string(), name.to_string());
        let object = self.shared.objects.lock().unwrap().current[&key].clone();
        self.record(key, "DELETED", object);
    }

    fn record(&self, key: Key, event: &'static str, mut object: Value) {
        let mut objects = self.shared.objects.lock().unwrap();
        let version = *self.shared.version.borrow() + 1;
        object["apiVersion"] = json!(kind_of(key.0).api_version);
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if event == "DELETED" {
            objects.current.remove(&key);
        } else {
            objects.current.insert(key.clone(), object.clone());
        }
        objects.log.push(Event { version, key, kind: event, object });
        self.shared.version.send_replace(version);
    }
}

fn kind_of(kind: &str) -> &'static Kind {
    KINDS.iter().find(|k| k.kind == kind).unwrap_or_else(|| panic!("unknown kind {kind}"))
}

fn key(kind: &'static Kind, object: &Value) -> Key {
    let meta = &object["metadata"];
    (
        kind.kind,
        meta["namespace"].as_str().unwrap_or_default().to_string(),
        meta["name"].as_str().unwrap().to_string(),
    )
}

/// What a request asks for: a kind, maybe one namespace, maybe a label selector.
struct Request {
    kind: &'static Kind,
    namespace: Option<String>,
    /// `labelSelector` as `name=value` pairs (all must match).
    selector: Vec<(String, String)>,
}

impl Request {
    fn parse(uri: &Uri, params: &HashMap<String, String>) -> Option<Request> {
        let path = uri.path();
        KINDS.iter().find_map(|kind| {
            let rest = path.strip_prefix(kind.prefix)?.strip_prefix('/')?;
            let namespace = match rest.strip_suffix(kind.plural)? {
                "" => None,
                scoped => Some(scoped.strip_prefix("namespaces/")?.strip_suffix('/')?.to_string()),
            };
            let selector = params.get("labelSelector").map_or_else(Vec::new, |s| {
                s.split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            });
            Some(Request { kind, namespace, selector })
        })
    }

    fn matches(&self, key: &Key, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        key.0 == self.kind.kind
            && self.namespace.as_ref().is_none_or(|ns| *ns == key.1)
            && self.selector.iter().all(|(k, v)| labels[k].as_str() == Some(v))
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(request) = Request::parse(&uri, &params) else {
        return (StatusCode::NOT_FOUND, format!("no route for {uri}")).into_response();
    };
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let since: u64 = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let timeout = params.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(290);
        return watch(shared, request, since, Duration::from_secs(timeout));
    }
    let objects = shared.objects.lock().unwrap();
    let items: Vec<&Value> =
        objects.current.iter().filter(|(k, o)| request.matches(k, o)).map(|(_, o)| o).collect();
    let list = json!({
        "apiVersion": request.kind.api_version,
        "kind": format!("{}List", request.kind.kind),
        "metadata": {"resourceVersion": shared.version.borrow().to_string()},
        "items": items,
    });
    axum::Json(list).into_response()
}

/// Streams the events after `since` that `request` matches, waiting for new ones until
/// `timeout`.
fn watch(shared: Arc<Shared>, request: Request, since: u64, timeout: Duration) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let versions = shared.version.subscribe();
    let events = stream::unfold(
        (shared, request, since, versions),
        move |(shared, request, mut cursor, mut versions)| async move {
            loop {
                versions.borrow_and_update();
                let next = {
                    let objects = shared.objects.lock().unwrap();
                    objects.log.iter().find(|e| e.version > cursor && request.matches(&e.key, &e.object)).map(
                        |e| {
                            cursor = e.version;
                            let line = json!({"type": e.kind, "object": e.object}).to_string() + "\n";
                            Ok::<_, std::convert::Infallible>(line)
                        },
                    )
                };
                if next.is_some() {
                    return next.map(|line| (line, (shared, request, cursor, versions)));
                }
                match tokio::time::timeout_at(deadline, versions.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
            }
        },
    );
    Response::builder().header("content-type", "application/json").body(Body::from_stream(events)).unwrap()
}
