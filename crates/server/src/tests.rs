//! Handler tests over what `strata standalone` runs — a one-node storage node (shard groups,
//! their Raft logs, apply) — on the in-memory engine with an injected clock: one per
//! bad-input case, each followed by a check that the node still serves and that the valid
//! part of the request was stored.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use prost::Message;
use strata_proto::prometheus as pb;
use strata_raft::RaftConfig;
use strata_storage::{NodeBackend, StandaloneWriter, StorageConfig, StorageNode};
use strata_tsdb::{Clock, DbConfig, ManualClock, MemEngine, SystemClock};
use tower::ServiceExt;

use super::*;

const T: i64 = 1_700_000_000_000;

/// The state of a standalone node over the in-memory engine whose database, rate limit and
/// queries run on `clock`, once every shard group has elected itself.
async fn state_at(cfg: ServerConfig, clock: Arc<dyn Clock>) -> AppState {
    let mut node = StorageConfig::standalone(std::env::temp_dir(), 4);
    node.db = DbConfig { maintenance_tick: Duration::from_secs(3600), ..DbConfig::default() };
    // a quick self-election: the tests start hundreds of groups
    node.raft = RaftConfig { election_ms: (80, 100), heartbeat_ms: 20, ..node.raft };
    node.min_free_bytes = 0;
    node.clock = clock.clone();
    let node = StorageNode::start_over(node, Arc::new(MemEngine::new()), None).await.unwrap();
    let writer = StandaloneWriter(node.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !strata_api::Writer::ready(&writer) {
        assert!(tokio::time::Instant::now() < deadline, "the node's groups elected no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    AppState::with(Arc::new(NodeBackend::new(node)), Arc::new(writer), ServerConfig { clock, ..cfg })
}

/// [`state_at`]'s routes on the system clock.
async fn app(cfg: ServerConfig) -> Router {
    router(state_at(cfg, Arc::new(SystemClock)).await)
}

fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: labels.iter().map(|(n, v)| pb::Label { name: (*n).into(), value: (*v).into() }).collect(),
        samples: samples.iter().map(|&(t, v)| pb::Sample { timestamp: t, value: v }).collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

fn body(series: Vec<pb::TimeSeries>) -> Vec<u8> {
    let raw = pb::WriteRequest { timeseries: series, metadata: vec![] }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let b = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&b).into_owned())
}

async fn write(app: &Router, bytes: Vec<u8>) -> (StatusCode, String) {
    let req = Request::post("/api/v1/write")
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(Body::from(bytes))
        .unwrap();
    send(app, req).await
}

async fn get(app: &Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let uri: String = uri
        .chars()
        .map(|c| match c {
            '{' | '}' | '"' | ' ' | '|' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let (s, b) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, serde_json::from_str(&b).unwrap_or(serde_json::Value::Null))
}

/// The node still answers, and `name` has `n` series.
async fn serves_with(app: &Router, name: &str, n: usize) {
    let (s, v) = get(app, &format!("/api/v1/series?match[]={name}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), n, "{v}");
}

#[tokio::test]
async fn good_write_then_series_and_labels() {
    let app = app(ServerConfig::default()).await;
    let (s, _) = write(
        &app,
        body(vec![
            ts(&[("job", "n"), ("__name__", "up"), ("instance", "a")], &[(T, 1.0)]),
            ts(&[("__name__", "up"), ("instance", "b"), ("job", "n")], &[(T, 0.0)]),
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = get(&app, "/api/v1/series?match[]=up{instance=\"a\"}").await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"], serde_json::json!([{"__name__": "up", "instance": "a", "job": "n"}]));
    let (_, v) = get(&app, "/api/v1/labels").await;
    assert_eq!(v["data"], serde_json::json!(["__name__", "instance", "job"]));
    let (_, v) = get(&app, "/api/v1/label/instance/values?match[]=up").await;
    assert_eq!(v["data"], serde_json::json!(["a", "b"]));
    let (_, v) = get(&app, "/api/v1/label/instance/values?start=1&end=2").await;
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = get(&app, "/api/v1/series?match[]=up&limit=1").await;
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    let (s, b) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("strata_ingested_samples_total 2"), "{b}");
    assert!(b.contains("strata_head_series 2"), "{b}");
}

#[tokio::test]
async fn api_parameter_errors() {
    let app = app(ServerConfig::default()).await;
    for uri in [
        "/api/v1/series",
        "/api/v1/series?match[]=up{",
        "/api/v1/series?match[]={job=~\".*\"}",
        "/api/v1/series?match[]=up&start=abc",
        "/api/v1/series?match[]=up&start=10&end=5",
        "/api/v1/labels?limit=x",
    ] {
        let (s, v) = get(&app, uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(v["errorType"], "bad_data", "{uri}");
    }
    let req = Request::post("/api/v1/series")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("match%5B%5D=up"))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn undecodable_bodies_are_400() {
    let app = app(ServerConfig::default()).await;
    let (s, msg) = write(&app, b"not snappy at all".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}");
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff, 0xff, 0xff, 0x07]).unwrap();
    let (s, msg) = write(&app, garbage).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(msg.contains("invalid protobuf"), "{msg}");
    serves_with(&app, "up", 0).await;
}

#[tokio::test]
async fn bad_series_are_400_and_the_rest_is_stored() {
    let app = app(ServerConfig::default()).await;
    let good = ts(&[("__name__", "up"), ("i", "good")], &[(T, 1.0)]);
    let cases: Vec<(pb::TimeSeries, &str)> = vec![
        (ts(&[("i", "x")], &[(T, 1.0)]), "invalid metric name"),
        (ts(&[("__name__", ""), ("i", "x")], &[(T, 1.0)]), "invalid metric name"),
        (ts(&[("__name__", "up"), ("i", "x"), ("i", "y")], &[(T, 1.0)]), "duplicated label i"),
        (ts(&[("__name__", "up"), ("", "x")], &[(T, 1.0)]), "empty label name"),
    ];
    for (bad, want) in cases {
        let (s, msg) = write(&app, body(vec![bad, good.clone()])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(msg.contains(want), "{msg} lacks {want}");
        serves_with(&app, "up", 1).await;
    }
    // unsorted labels are fixed, not rejected
    let (s, _) = write(&app, body(vec![ts(&[("z", "1"), ("__name__", "up")], &[(T, 1.0)])])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    serves_with(&app, "up", 2).await;
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let app = app(ServerConfig::default()).await;
    // hand-made request: one series whose label value is not UTF-8
    let mut label = vec![0x0a, 8];
    label.extend_from_slice(b"__name__");
    label.extend_from_slice(&[0x12, 2, 0xff, 0xfe]);
    let mut series = vec![0x0a, label.len() as u8];
    series.extend_from_slice(&label);
    let mut req = vec![0x0a, series.len() as u8];
    req.extend_from_slice(&series);
    let (s, msg) = write(&app, snap::raw::Encoder::new().compress_vec(&req).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(msg.contains("UTF-8"), "{msg}");
}

#[tokio::test]
async fn order_duplicate_and_bounds_are_400_with_the_rest_stored() {
    let app = app(ServerConfig::default()).await;
    let s1 = |t: i64, v: f64| ts(&[("__name__", "m"), ("i", "1")], &[(t, v)]);
    assert_eq!(write(&app, body(vec![s1(T, 1.0)])).await.0, StatusCode::NO_CONTENT);
    // identical resend: accepted silently, as Prometheus does
    assert_eq!(write(&app, body(vec![s1(T, 1.0)])).await.0, StatusCode::NO_CONTENT);
    let other = ts(&[("__name__", "m"), ("i", "2")], &[(T, 5.0)]);
    for (bad, want) in [
        (s1(T - 1000, 1.0), "out of order sample"),
        (s1(T, 2.0), "duplicate sample for timestamp"),
        (s1(T - 2 * 3_600_000, 2.0), "out of bounds"),
    ] {
        let (s, msg) = write(&app, body(vec![bad, other.clone()])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(msg.starts_with(want), "{msg}");
        serves_with(&app, "m", 2).await;
    }
}

#[tokio::test]
async fn limits_and_protocols() {
    let app = app(ServerConfig { max_write_body_bytes: 1024, ..ServerConfig::default() }).await;
    let big: Vec<_> =
        (0..200).map(|i| ts(&[("__name__", "up"), ("i", &format!("{i:0>40}"))], &[(T, 1.0)])).collect();
    let (s, _) = write(&app, body(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
        .body(Body::from(body(vec![])))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req =
        Request::post("/api/v1/write").header("content-encoding", "gzip").body(Body::from(vec![1])).unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    serves_with(&app, "up", 0).await;
    assert_eq!(send(&app, Request::get("/-/ready").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn grafana_save_and_test_and_queries() {
    let app = app(ServerConfig::default()).await;
    let req = Request::post("/api/v1/query")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("query=1%2B1&time=4"))
        .unwrap();
    let (s, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
    );
    let series: Vec<_> = (0..3)
        .map(|i| ts(&[("__name__", "c"), ("i", &i.to_string())], &[(T, 1.0), (T + 15_000, 4.0)]))
        .collect();
    assert_eq!(write(&app, body(series)).await.0, StatusCode::NO_CONTENT);
    let t = (T + 15_000) / 1000;
    let (s, v) = get(&app, &format!("/api/v1/query?query=sum(c)&time={t}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][0]["value"], serde_json::json!([t, "12"]));
    let (_, v) =
        get(&app, &format!("/api/v1/query_range?query=c{{i=\"1\"}}&start={}&end={t}&step=15s", T / 1000))
            .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(v["data"]["result"][0]["values"], serde_json::json!([[T / 1000, "1"], [t, "4"]]));
    let (s, v) = get(&app, "/api/v1/query?query=sum(").await;
    assert_eq!((s, v["errorType"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_data")));
    let (s, _) = get(&app, "/api/v1/query_range?query=up&start=0&end=100000&step=1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = get(&app, "/api/v1/parse_query?query=sum(rate(x[5m]))").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["type"], "aggregation", "{v}");
    let (_, v) = get(&app, "/api/v1/format_query?query=sum(rate(x[5m]))").await;
    assert_eq!(v["data"], "sum(rate(x[5m]))");
    let (s, v) = get(&app, "/api/v1/status/buildinfo").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["data"].get("features").is_none());
}

#[tokio::test]
async fn bad_queries_get_prometheus_errors_and_the_server_keeps_serving() {
    let mut cfg = ServerConfig::default();
    cfg.engine.max_samples = 5;
    let app = app(cfg).await;
    let series: Vec<_> =
        (0..10).map(|i| ts(&[("__name__", "m"), ("i", &i.to_string())], &[(T, 1.0)])).collect();
    assert_eq!(write(&app, body(series)).await.0, StatusCode::NO_CONTENT);
    let t = T / 1000;
    for (q, status, kind) in [
        ("/api/v1/query?query=sum(", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query?query=rate(m)", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query?query=m&time=yesterday", StatusCode::BAD_REQUEST, "bad_data"),
        (&*format!("/api/v1/query?query=m&time={t}"), StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        ("/api/v1/query_range?query=1&start=0&end=1e9&step=1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=1&start=10&end=0&step=1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=1&start=0&end=10&step=-1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=m[5m]&start=0&end=10&step=1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query?query=1&timeout=abc", StatusCode::BAD_REQUEST, "bad_data"),
    ] {
        let (s, v) = get(&app, q).await;
        assert_eq!((s, v["errorType"].as_str()), (status, Some(kind)), "{q}: {v}");
        let (s, v) = get(&app, &format!("/api/v1/query?query=count(m{{i=\"1\"}})&time={t}")).await;
        assert_eq!(s, StatusCode::OK, "after {q}: {v}");
    }
    // a query that runs out of time is a 503 timeout
    let mut cfg = ServerConfig::default();
    cfg.engine.timeout = Duration::ZERO;
    let (s, v) = get(&self::app(cfg).await, "/api/v1/query?query=1").await;
    assert_eq!((s, v["errorType"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("timeout")), "{v}");
}

#[tokio::test]
async fn metadata_from_remote_write() {
    let app = app(ServerConfig::default()).await;
    let raw = pb::WriteRequest {
        timeseries: vec![ts(&[("__name__", "up")], &[(T, 1.0)])],
        metadata: vec![pb::MetricMetadata {
            r#type: 2,
            metric_family_name: "up".into(),
            help: "Is up.".into(),
            unit: String::new(),
        }],
    }
    .encode_to_vec();
    assert_eq!(
        write(&app, snap::raw::Encoder::new().compress_vec(&raw).unwrap()).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = get(&app, "/api/v1/metadata").await;
    assert_eq!(v["data"], serde_json::json!({"up": [{"type": "gauge", "help": "Is up.", "unit": ""}]}));
    let (_, v) = get(&app, "/api/v1/metadata?metric=down").await;
    assert_eq!(v["data"], serde_json::json!({}));
}

#[tokio::test]
async fn native_histograms_are_stored_and_queried() {
    use pb::histogram::{Count, ZeroCount};
    let app = app(ServerConfig::default()).await;
    let h = |t: i64, n: u64| pb::Histogram {
        count: Some(Count::CountInt(n * 3)),
        sum: n as f64 * 4.5,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: Some(ZeroCount::ZeroCountInt(0)),
        positive_spans: vec![pb::BucketSpan { offset: 0, length: 2 }],
        // buckets (0.5,1] and (1,2] with n and 2n observations
        positive_deltas: vec![n as i64, n as i64],
        timestamp: t,
        ..pb::Histogram::default()
    };
    let mut good = ts(&[("__name__", "rpc_seconds"), ("job", "a")], &[]);
    good.histograms = (0..5).map(|i| h(T + i * 15_000, (i + 1) as u64)).collect();
    let mut bad = ts(&[("__name__", "rpc_seconds"), ("job", "b")], &[]);
    bad.histograms =
        vec![pb::Histogram { positive_spans: vec![pb::BucketSpan { offset: 0, length: 2 }], ..h(T, 1) }];
    bad.histograms[0].positive_deltas = vec![1];
    let (s, msg) = write(&app, body(vec![good, bad])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}");
    assert!(msg.contains("different number of buckets"), "{msg}");
    let at = (T + 60_000) / 1000;
    let (s, v) = get(&app, &format!("/api/v1/query?query=histogram_count(rpc_seconds)&time={at}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"], serde_json::json!([{"metric": {"job": "a"}, "value": [at, "15"]}]));
    let (_, v) = get(&app, &format!("/api/v1/query?query=rpc_seconds&time={at}")).await;
    assert_eq!(
        v["data"]["result"][0]["histogram"][1],
        serde_json::json!({"count": "15", "sum": "22.5", "buckets": [[0, "0.5", "1", "5"], [0, "1", "2", "10"]]})
    );
    let q = format!("/api/v1/query?query=histogram_quantile(0.5, rate(rpc_seconds[1m]))&time={at}");
    let (_, v) = get(&app, &q).await;
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");
}

/// POSTs a form to `path` (queries of any length, `+` kept).
async fn post_form(app: &Router, path: &str, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (s, b) = send(app, req).await;
    (s, serde_json::from_str(&b).unwrap_or(serde_json::Value::Null))
}

const RESOLUTION: &str = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";

#[tokio::test]
async fn hostile_queries_get_clear_errors_before_they_allocate() {
    let app = app(ServerConfig::default()).await;
    let series: Vec<_> =
        (0..3).map(|i| ts(&[("__name__", "m"), ("i", &i.to_string())], &[(T, 1.0)])).collect();
    assert_eq!(write(&app, body(series)).await.0, StatusCode::NO_CONTENT);
    let t = (T / 1000).to_string();
    let deep = |open: &str, close: &str, n: usize| format!("{}m{}", open.repeat(n), close.repeat(n));
    let max = strata_promql::EngineConfig::default().max_nesting;
    /// (path, form, status, start of the error)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/api/v1/query",
            vec![("query", "max_over_time(m[100y:1ms])".into())],
            StatusCode::BAD_REQUEST,
            RESOLUTION,
        ),
        ("/api/v1/query", vec![("query", "m[1d:1s]".into())], StatusCode::BAD_REQUEST, RESOLUTION),
        (
            "/api/v1/query_range",
            vec![
                ("query", "m".into()),
                ("start", "-9e15".into()),
                ("end", "9e15".into()),
                ("step", "0.5".into()),
            ],
            StatusCode::BAD_REQUEST,
            RESOLUTION,
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "m".into()),
                ("start", "-1e300".into()),
                ("end", "9e15".into()),
                ("step", "1".into()),
            ],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"start\": cannot parse \"-1e300\" to a valid timestamp",
        ),
        (
            "/api/v1/query_range",
            vec![("query", "m".into()), ("start", "0".into()), ("end", "1".into()), ("step", "1e300".into())],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"step\": cannot parse \"1e300\" to a valid duration",
        ),
        (
            "/api/v1/query",
            vec![("query", deep("(", ")", 300_000))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/query",
            vec![("query", deep("abs(", ")", 150_000))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/query",
            vec![("query", format!("{}m", "- ".repeat(100_000)))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/query",
            vec![("query", format!("1{}", "+1".repeat(100_000)))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/query",
            vec![("query", format!("m{}", "[1m:1m]".repeat(10_000)))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/format_query",
            vec![("query", deep("(", ")", 300_000))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/parse_query",
            vec![("query", deep("abs(", ")", 150_000))],
            StatusCode::BAD_REQUEST,
            "invalid parameter \"query\": query nesting too deep",
        ),
        (
            "/api/v1/query",
            vec![("query", r#"m{i=~"(\\w{1,1000}){1,100}"}"#.into()), ("time", t.clone())],
            StatusCode::BAD_REQUEST,
            "illegal regex",
        ),
        (
            "/api/v1/series",
            vec![("match[]", r#"m{i=~"(\\w{1,1000}){1,100}"}"#.into())],
            StatusCode::BAD_REQUEST,
            "illegal regex",
        ),
    ];
    for (path, form, status, msg) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = std::time::Instant::now();
        let (s, v) = post_form(&app, path, &form).await;
        let what = format!("{path} {:.60}", form[0].1);
        assert_eq!(s, status, "{what}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(msg)), "{what}: {v}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what} took {:?}", started.elapsed());
        // the node still answers a normal query
        let (s, v) = post_form(&app, "/api/v1/query", &[("query", "count(m)"), ("time", &t)]).await;
        assert_eq!(
            (s, &v["data"]["result"][0]["value"][1]),
            (StatusCode::OK, &serde_json::json!("3")),
            "after {what}"
        );
    }
    // a body over the request limit is refused, not read as an empty query
    let (s, v) = post_form(&app, "/api/v1/query", &[("query", &deep("(", ")", 900_000))]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.starts_with("cannot read the request body")), "{v}");
    // at the nesting limit the query is parsed, evaluated and formatted
    for path in ["/api/v1/query", "/api/v1/format_query", "/api/v1/parse_query"] {
        let (s, v) = post_form(&app, path, &[("query", &deep("(", ")", max)), ("time", &t)]).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        let (s, v) = post_form(&app, path, &[("query", &deep("abs(", ")", max)), ("time", &t)]).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    let (s, b) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains(&format!("strata_limit{{name=\"query_max_nesting\"}} {max}")), "{b}");
    assert!(b.contains("strata_limit{name=\"query_max_points_per_series\"} 11000"), "{b}");
}

#[tokio::test]
async fn samples_bytes_and_responses_are_capped() {
    let series: Vec<_> = (0..50)
        .map(|i| {
            ts(
                &[("__name__", "m"), ("i", &i.to_string())],
                &(0..20).map(|k| (T + k * 15_000, 1.0)).collect::<Vec<_>>(),
            )
        })
        .collect();
    let t = ((T + 300_000) / 1000).to_string();
    let q = |app: Router, query: &'static str| {
        let t = t.clone();
        async move { post_form(&app, "/api/v1/query", &[("query", query), ("time", &t)]).await }
    };
    // samples are counted as they are loaded: 50 series × 20 samples over a limit of 500
    let mut cfg = ServerConfig::default();
    cfg.engine.max_samples = 500;
    let a = app(cfg).await;
    assert_eq!(write(&a, body(series.clone())).await.0, StatusCode::NO_CONTENT);
    let (s, v) = q(a.clone(), "count_over_time(m[10m])").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"], "query processing would load too many samples into memory in query execution");
    assert_eq!(q(a, "count_over_time(m{i=\"1\"}[10m])").await.0, StatusCode::OK);
    // the byte budget
    let mut cfg = ServerConfig::default();
    cfg.engine.max_bytes = 10_000;
    let a = app(cfg).await;
    assert_eq!(write(&a, body(series.clone())).await.0, StatusCode::NO_CONTENT);
    let (s, v) = q(a.clone(), "count_over_time(m[10m])").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("query processing would hold more than 10000 bytes"),
        "{v}"
    );
    assert_eq!(q(a, "count_over_time(m{i=\"1\"}[10m])").await.0, StatusCode::OK);
    // the response size
    let a = app(ServerConfig { max_response_bytes: 2_000, ..ServerConfig::default() }).await;
    assert_eq!(write(&a, body(series)).await.0, StatusCode::NO_CONTENT);
    let (s, v) = q(a.clone(), "m").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"], "the response would be larger than 2000 bytes (--query.max-response-bytes)");
    let (s, v) = q(a.clone(), "m{i=\"1\"}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // lookups honor limit, with Prometheus's warning
    let (_, v) = get(&a, "/api/v1/label/i/values?limit=3").await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    let (_, v) = post_form(&a, "/api/v1/labels", &[("limit", "1")]).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["warnings"][0], "results truncated due to limit");
}

#[tokio::test]
async fn lookups_wait_for_a_query_slot() {
    let mut cfg = ServerConfig::default();
    cfg.engine.timeout = Duration::from_millis(200);
    cfg.query_max_concurrency = 1;
    let st = state_at(cfg, Arc::new(SystemClock)).await;
    let app = router(st.clone());
    // the only query slot is taken: a lookup waits for it
    let permit = st.queries.clone().acquire_owned().await.unwrap();
    let lookup = tokio::spawn({
        let app = app.clone();
        async move { get(&app, "/api/v1/labels").await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!lookup.is_finished(), "a lookup ran past the concurrency limit");
    drop(permit);
    let (s, v) = lookup.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// [`state_at`]'s routes on `clock`.
async fn app_at(cfg: ServerConfig, clock: Arc<ManualClock>) -> Router {
    router(state_at(cfg, clock).await)
}

#[tokio::test]
async fn samples_too_far_in_the_future_are_refused_and_move_no_bound() {
    let app = app_at(ServerConfig::default(), ManualClock::at(T)).await;
    let ten_years = 10 * 365 * 86_400_000;
    let future: Vec<(i64, f64)> = (0..64).map(|i| (T + ten_years + i, 1.0)).collect();
    let good = ts(&[("__name__", "g")], &[(T, 1.0), (T + 9 * 60_000, 2.0)]);
    let (s, msg) = write(&app, body(vec![ts(&[("__name__", "f")], &future), good])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        msg.starts_with(&format!(
            "received a sample whose timestamp is too far in the future, timestamp: {} series: '{{__name__=\"f\"}}' \
             (err-mimir-too-far-in-future)",
            T + ten_years
        )),
        "{msg}"
    );
    assert!(msg.contains("(and 63 more rejected samples)"), "{msg}");
    serves_with(&app, "g", 1).await;
    // the bad samples moved nothing: a normal write of every series still succeeds
    for name in ["f", "g", "h"] {
        let (s, msg) = write(&app, body(vec![ts(&[("__name__", name)], &[(T + 10 * 60_000, 1.0)])])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{name}: {msg}");
    }
    let (_, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(
        m.contains(r#"strata_discarded_samples_total{tenant="anonymous",reason="too_far_in_future"} 64"#),
        "{m}"
    );
}

#[tokio::test]
async fn samples_older_than_the_shard_accepts_are_400_per_sample() {
    let app = app_at(ServerConfig::default(), ManualClock::at(T)).await;
    assert_eq!(
        write(&app, body(vec![ts(&[("__name__", "m")], &[(T, 1.0)])])).await.0,
        StatusCode::NO_CONTENT
    );
    let old = ts(&[("__name__", "m")], &[(T - 2 * 3_600_000, 1.0), (T + 1000, 2.0)]);
    let (s, msg) = write(&app, body(vec![old])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        msg,
        format!("out of bounds for series {{__name__=\"m\"}} at timestamp {}\n", T - 2 * 3_600_000)
    );
    let (_, v) = get(&app, "/api/v1/query?query=m&time=1700000001").await;
    assert_eq!(v["data"]["result"][0]["value"][1], "2", "{v}");
}

#[tokio::test]
async fn label_limits_refuse_the_series_and_store_the_rest() {
    let app = app(ServerConfig::default()).await;
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("l{i:02}"), "v".to_owned())).collect();
    let mut many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    many.push(("__name__", "many"));
    let (long_name, long_value) = ("n".repeat(1025), "v".repeat(2049));
    for (labels, want) in [
        (
            many,
            "received a series whose number of labels exceeds the limit (actual: 41, limit: 30) series: \
             '{l00=\"v\"",
        ),
        (
            vec![("__name__", "m"), (long_name.as_str(), "v")],
            "received a series whose label name length exceeds the limit, label: 'nnnn",
        ),
        (
            vec![("__name__", "m"), ("v", long_value.as_str())],
            "received a series whose label value length of 2049 exceeds the limit of 2048, label: 'v', value: 'vvv",
        ),
    ] {
        let (s, msg) =
            write(&app, body(vec![ts(&labels, &[(T, 1.0)]), ts(&[("__name__", "ok")], &[(T, 1.0)])])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(msg.starts_with(want), "{msg}");
        assert!(msg.contains("err-mimir-") && msg.len() < 1200, "{msg}");
        serves_with(&app, "ok", 1).await;
    }
    let (_, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    for reason in ["max_label_names_per_series", "label_name_too_long", "label_value_too_long"] {
        assert!(
            m.contains(&format!(
                "strata_discarded_samples_total{{tenant=\"anonymous\",reason=\"{reason}\"}} 1"
            )),
            "{m}"
        );
    }
    assert!(m.contains(r#"strata_limit{name="ingest_max_label_names_per_series"} 30"#), "{m}");
    assert!(m.contains(r#"strata_limit{name="write_min_bytes_per_sample"} 4"#), "{m}");
}

#[tokio::test]
async fn requests_over_the_series_or_metadata_limit_are_400_before_decoding() {
    let cfg =
        IngestLimits { max_series_per_request: 3, max_metadata_per_request: 2, ..IngestLimits::default() };
    let app = app(ServerConfig { ingest: cfg, ..ServerConfig::default() }).await;
    let series =
        |n: usize| (0..n).map(|i| ts(&[("__name__", "m"), ("i", &i.to_string())], &[(T, 1.0)])).collect();
    let (s, msg) = write(&app, body(series(4))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        msg,
        "the request has 4 series, more than the limit of 3 (configure --ingest.max-series-per-request)\n"
    );
    let meta = |n: usize| {
        let m = pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "m".into(),
            help: "h".into(),
            unit: String::new(),
        };
        let raw = pb::WriteRequest { timeseries: vec![], metadata: vec![m; n] }.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    };
    let (s, msg) = write(&app, meta(3)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(msg.contains("3 metadata entries, more than the limit of 2"), "{msg}");
    assert_eq!(write(&app, meta(2)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(write(&app, body(series(3))).await.0, StatusCode::NO_CONTENT);
    serves_with(&app, "m", 3).await;
}

#[tokio::test]
async fn bodies_of_empty_samples_are_400_before_decoding() {
    // a sample without fields is 2 bytes on the wire and 16 in a record: a million of them
    // in one series would cost ~8x the body; refused by count, nothing stored
    let app = app(ServerConfig::default()).await;
    let empty = pb::Sample { value: 0.0, timestamp: 0 };
    let mut one = ts(&[("__name__", "e")], &[]);
    one.samples = vec![empty; 1_000_000];
    let (s, msg) = write(&app, body(vec![one])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}");
    assert!(
        msg.starts_with("1000000 samples in 2000019 decoded bytes: fewer than 4 bytes per sample"),
        "{msg}"
    );
    // samples with timestamps near the start of 1970 are what fits in under 4 bytes; real
    // ones pass, also when their value is 0 (left out on the wire)
    let real: Vec<(i64, f64)> = (0..1000).map(|i| (T + i, 0.0)).collect();
    assert_eq!(write(&app, body(vec![ts(&[("__name__", "z")], &real)])).await.0, StatusCode::NO_CONTENT);
    serves_with(&app, "z", 1).await;
}

#[tokio::test]
async fn a_flood_of_empty_series_lists_ten_errors_and_counts_the_rest() {
    let app = app(ServerConfig::default()).await;
    let raw = [0x0a, 0x00].repeat(50_000);
    let (s, msg) = write(&app, snap::raw::Encoder::new().compress_vec(&raw).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(msg.lines().count(), 11, "{msg}");
    assert!(msg.ends_with("... and 49990 more errors\n"), "{msg}");
}

#[tokio::test]
async fn the_ingestion_rate_limit_answers_429_with_retry_after() {
    let clock = ManualClock::at(T);
    let cfg = IngestLimits { rate_limit: 10.0, burst: 20, ..IngestLimits::default() };
    let app = app_at(ServerConfig { ingest: cfg, ..ServerConfig::default() }, clock.clone()).await;
    let samples =
        |from: i64, n: i64| ts(&[("__name__", "m")], &(from..from + n).map(|t| (t, 1.0)).collect::<Vec<_>>());
    assert_eq!(write(&app, body(vec![samples(T, 15)])).await.0, StatusCode::NO_CONTENT);
    let req = Request::post("/api/v1/write")
        .header("content-encoding", "snappy")
        .body(Body::from(body(vec![samples(T + 15, 10)])));
    let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    let b = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert!(String::from_utf8_lossy(&b).contains("(err-mimir-tenant-max-ingestion-rate)"));
    clock.set(T + 500);
    assert_eq!(write(&app, body(vec![samples(T + 15, 10)])).await.0, StatusCode::NO_CONTENT);
    let (_, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(
        m.contains(r#"strata_discarded_samples_total{tenant="anonymous",reason="rate_limited"} 10"#),
        "{m}"
    );
    assert!(m.contains(r#"strata_limit{name="ingest_rate_limit"} 10"#), "{m}");
}

#[tokio::test]
async fn the_active_series_limit_refuses_new_series_only() {
    // 4 shards: each holds 2 of the 8 series, 1 of the 4 of one metric
    let cfg =
        IngestLimits { max_active_series: 8, max_active_series_per_metric: 4, ..IngestLimits::default() };
    let app = app(ServerConfig { ingest: cfg, ..ServerConfig::default() }).await;
    let s = |m: &str, i: u32, t: i64| ts(&[("__name__", m), ("i", &i.to_string())], &[(t, 1.0)]);
    let (code, msg) = write(&app, body((0..40).map(|i| s("m", i, T)).collect())).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        msg.starts_with("per-metric series limit of 4 exceeded (err-mimir-max-series-per-metric)"),
        "{msg}"
    );
    serves_with(&app, "m", 4).await;
    let (code, msg) = write(&app, body((0..40).map(|i| s("n", i, T)).collect())).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{msg}");
    let (code, msg) = write(&app, body((0..40).map(|i| s("o", i, T)).collect())).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(msg.starts_with("per-user series limit of 8 exceeded (err-mimir-max-series-per-user)"), "{msg}");
    // the held series take new samples
    let (code, _) =
        write(&app, body((0..40).flat_map(|i| [s("m", i, T + 1000), s("n", i, T + 1000)]).collect())).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    serves_with(&app, "m", 4).await;
    serves_with(&app, "n", 4).await;
    let (_, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(
        m.contains(r#"strata_discarded_samples_total{tenant="anonymous",reason="per_metric_series_limit"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"strata_discarded_samples_total{tenant="anonymous",reason="per_user_series_limit"}"#),
        "{m}"
    );
}

/// Sample values, timestamps and label values in query results byte for byte as Prometheus
/// 2.42 wrote them for the same data (`jsonutil.MarshalFloat`: an exponent below 1e-6 and
/// from 1e21; `marshalTimestamp`: `.500`; Go's HTML-safe strings; a scalar's value without
/// an exponent).
#[tokio::test]
async fn values_and_times_as_prometheus_writes_them() {
    // what Prometheus 2.42 answered (I2's -0 of series g made 0: see below)
    const I1: &str = r##"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"v","c":"a"},"value":[1700000030,"1e-07"]},{"metric":{"__name__":"v","c":"b"},"value":[1700000030,"1.5e-07"]},{"metric":{"__name__":"v","c":"c"},"value":[1700000030,"1.2345678901234569e+23"]},{"metric":{"__name__":"v","c":"d"},"value":[1700000030,"1e+21"]},{"metric":{"__name__":"v","c":"e"},"value":[1700000030,"999000000000000000000"]},{"metric":{"__name__":"v","c":"f"},"value":[1700000030,"0.000001"]}]}}"##;
    const I2: &str = r##"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"v","c":"g"},"value":[1700000030,"0"]},{"metric":{"__name__":"v","c":"h"},"value":[1700000030,"NaN"]},{"metric":{"__name__":"v","c":"i"},"value":[1700000030,"+Inf"]},{"metric":{"__name__":"v","c":"j"},"value":[1700000030,"-Inf"]},{"metric":{"__name__":"v","c":"k"},"value":[1700000030,"-1e-07"]},{"metric":{"__name__":"v","c":"l"},"value":[1700000030,"5e-324"]},{"metric":{"__name__":"v","c":"m"},"value":[1700000030,"1.7976931348623157e+308"]},{"metric":{"__name__":"v","c":"n"},"value":[1700000030,"0.1"]},{"metric":{"__name__":"v","c":"o"},"value":[1700000030,"9.999999e-07"]}]}}"##;
    const R1: &str = r##"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"v","c":"a"},"values":[[1700000000,"1e-07"],[1700000060,"2e-07"]]},{"metric":{"__name__":"v","c":"b"},"values":[[1700000000,"1.5e-07"],[1700000060,"3e+22"]]},{"metric":{"__name__":"v","c":"c"},"values":[[1700000000,"1.2345678901234569e+23"],[1700000060,"1.2345678901234569e+23"]]}]}}"##;
    const R2: &str = r##"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"v","c":"a"},"values":[[1700000000.500,"1e-07"],[1700000030.250,"1e-07"],[1700000060,"2e-07"]]},{"metric":{"__name__":"v","c":"b"},"values":[[1700000000.500,"1.5e-07"],[1700000030.250,"1.5e-07"],[1700000060,"3e+22"]]}]}}"##;
    const W: &str = r##"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"w","c":"\u003c\u0026\u003e\n\"\\ \u2028  é"},"value":[1700000000.500,"1"]}]}}"##;
    let app = app(ServerConfig::default()).await;
    let vals: [(&str, f64); 15] = [
        ("a", 1e-7),
        ("b", 1.5e-7),
        ("c", 123456789012345678901234.0),
        ("d", 1e21),
        ("e", 9.99e20),
        ("f", 0.000001),
        // -0 is written as 0: a protobuf double field equal to 0 is left out (prost and
        // Prometheus's Go encoder alike); `vector(-0)` below shows the API's `-0`
        ("g", -0.0),
        ("h", f64::NAN),
        ("i", f64::INFINITY),
        ("j", f64::NEG_INFINITY),
        ("k", -1e-7),
        ("l", 5e-324),
        ("m", f64::MAX),
        ("n", 0.1),
        ("o", 9.999999e-7),
    ];
    let later: &[(&str, f64)] = &[("a", 2e-7), ("b", 3e22)];
    let series = vals
        .iter()
        .map(|&(c, x)| {
            let mut s = vec![(T, x)];
            match later.iter().find(|l| l.0 == c) {
                Some(&(_, y)) => s.push((T + 60_000, y)),
                None => s.push((T + 60_000, x)),
            }
            ts(&[("__name__", "v"), ("c", c)], &s)
        })
        .chain([ts(&[("__name__", "w"), ("c", "<&>\n\"\\ \u{2028} \u{7f} é")], &[(T, 1.0)])])
        .collect();
    assert_eq!(write(&app, body(series)).await.0, StatusCode::NO_CONTENT);
    let raw = |uri: &str| {
        let uri = uri.replace('{', "%7B").replace('}', "%7D").replace('"', "%22").replace('|', "%7C");
        let app = app.clone();
        async move { send(&app, Request::get(uri).body(Body::empty()).unwrap()).await.1 }
    };
    let cases = [
        ("/api/v1/query?query=v{c=~\"[a-f]\"}&time=1700000030", I1),
        ("/api/v1/query?query=v{c=~\"[g-o]\"}&time=1700000030", I2),
        ("/api/v1/query_range?query=v{c=~\"a|b|c\"}&start=1700000000&end=1700000060&step=60", R1),
        ("/api/v1/query_range?query=v{c=~\"a|b\"}&start=1700000000.5&end=1700000060&step=29.75", R2),
        ("/api/v1/query?query=w&time=1700000000.5", W),
        // a scalar's value in full (promql.Scalar.MarshalJSON), its time as a Go float
        (
            "/api/v1/query?query=1e-7&time=1700000030",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000030,"0.0000001"]}}"#,
        ),
        (
            "/api/v1/query?query=scalar(v{c=\"b\"})&time=1700000060",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000060,"30000000000000000000000"]}}"#,
        ),
        (
            "/api/v1/query?query=1e21&time=1700000030.5",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000030.5,"1000000000000000000000"]}}"#,
        ),
        (
            "/api/v1/query?query=-0&time=1.05",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.05,"-0"]}}"#,
        ),
        (
            "/api/v1/query?query=time()&time=1700000000.123",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"1700000000.123"]}}"#,
        ),
        (
            "/api/v1/query?query=\"abc\"&time=1700000030.005",
            r#"{"status":"success","data":{"resultType":"string","result":[1700000030.005,"abc"]}}"#,
        ),
        (
            "/api/v1/query?query=vector(-0)&time=1700000030",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000030,"-0"]}]}}"#,
        ),
        (
            "/api/v1/query?query=vector(1e-7)&time=0.001",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0.001,"1e-07"]}]}}"#,
        ),
        (
            "/api/v1/query?query=vector(1)&time=1700000030.5",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000030.500,"1"]}]}}"#,
        ),
        (
            "/api/v1/query?query=vector(1)&time=-1.5",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[-1.500,"1"]}]}}"#,
        ),
        (
            "/api/v1/query?query=vector(1)&time=-0.05",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[-0.050,"1"]}]}}"#,
        ),
        (
            "/api/v1/query?query=1&time=-0.05",
            r#"{"status":"success","data":{"resultType":"scalar","result":[-0.05,"1"]}}"#,
        ),
        (
            "/api/v1/query_range?query=1e-7&start=1700000000.5&end=1700000001&step=0.25",
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000.500,"1e-07"],[1700000000.750,"1e-07"],[1700000001,"1e-07"]]}]}}"#,
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(raw(uri).await, want, "{uri}");
    }
}

/// A regex Go refuses is a 400 bad_data with Go's reason, as Prometheus 2.42 answers; one
/// only Go accepts (`\Q…\E`) is a query.
#[tokio::test]
async fn go_regex_syntax_in_matchers() {
    let app = app(ServerConfig::default()).await;
    let series = vec![
        ts(&[("__name__", "r"), ("v", "a.b")], &[(T, 1.0)]),
        ts(&[("__name__", "r"), ("v", "axb")], &[(T, 2.0)]),
    ];
    assert_eq!(write(&app, body(series)).await.0, StatusCode::NO_CONTENT);
    let t = T / 1000;
    let enc = |q: &str| q.replace('\\', "%5C").replace('`', "%60").replace('<', "%3C").replace('>', "%3E");
    let (s, v) = get(&app, &format!("/api/v1/query?query={}&time={t}", enc(r"r{v=~`\Qa.b\E`}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["result"],
        serde_json::json!([{"metric": {"__name__": "r", "v": "a.b"}, "value": [t, "1"]}])
    );
    for (re, reason) in
        [(r"\C", r"invalid escape sequence: `\C`"), ("(?<n>a)", "invalid or unsupported Perl syntax: `(?<`")]
    {
        let q = enc(&format!("r{{v=~`{re}`}}"));
        let (s, v) = get(&app, &format!("/api/v1/query?query={q}&time={t}")).await;
        assert_eq!((s, v["errorType"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_data")), "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(&format!("error parsing regexp: {reason}")), "{msg}");
    }
}

/// The messages of a gRPC call of the query API made through the router (each a
/// length-prefixed protobuf message, as the wire carries them).
async fn grpc<Req: Message, Resp: Message + Default>(app: &Router, method: &str, req: Req) -> Vec<Resp> {
    let msg = req.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend((msg.len() as u32).to_be_bytes());
    framed.extend(msg);
    let r = Request::post(format!("/strata.query.v1.QueryService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(framed))
        .unwrap();
    let resp = app.clone().oneshot(r).await.unwrap();
    let mut b = &to_bytes(resp.into_body(), usize::MAX).await.unwrap()[..];
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize;
        out.push(Resp::decode(&b[5..5 + len]).unwrap());
        b = &b[5 + len..];
    }
    out
}

/// What clients parse, for a fixed data set at a fixed time: the HTTP API's JSON and the
/// gRPC query API's messages. A change here is a change of the API: review it as one.
#[tokio::test]
async fn api_responses_for_a_fixed_data_set() {
    use strata_proto::query as q;
    // "now" is the injected clock's: a query without a time is evaluated at T + 400 s
    let app = app_at(ServerConfig::default(), ManualClock::at(T + 400_000)).await;
    let series = |labels: &[(&str, &str)], f: fn(i64) -> f64| {
        ts(labels, &(0..=20).map(|i| (T + i * 15_000, f(i))).collect::<Vec<_>>())
    };
    let (s, msg) = write(
        &app,
        body(vec![
            series(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "200")], |i| {
                (i * 10) as f64
            }),
            series(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "500")], |i| i as f64),
            series(&[("__name__", "up"), ("job", "api")], |_| 1.0),
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{msg}");
    let t = (T + 300_000) / 1000;
    let mut out = String::new();
    for uri in [
        format!("/api/v1/query?query=sum by (code) (rate(http_requests_total[1m]))&time={t}"),
        format!("/api/v1/query?query=up&time={t}"),
        format!("/api/v1/query?query=scalar(sum(up))&time={t}"),
        "/api/v1/query?query=up".into(),
        format!(
            "/api/v1/query_range?query=http_requests_total{{code=\"500\"}}&start={}&end={t}&step=60",
            t - 120
        ),
        "/api/v1/series?match[]=http_requests_total".into(),
        "/api/v1/labels".into(),
        "/api/v1/label/code/values".into(),
        format!("/api/v1/query?query=rate(up[1m]&time={t}"),
    ] {
        let (s, v) = get(&app, &uri).await;
        out += &format!("GET {uri}\n{}\n{}\n\n", s.as_u16(), serde_json::to_string_pretty(&v).unwrap());
    }
    let instant: Vec<q::QueryResponse> = grpc(
        &app,
        "Query",
        q::QueryRequest {
            query: "sum by (code) (rate(http_requests_total[1m]))".into(),
            time: t.to_string(),
            ..Default::default()
        },
    )
    .await;
    let range: Vec<q::QueryResponse> = grpc(
        &app,
        "QueryRange",
        q::QueryRangeRequest {
            query: "up".into(),
            start: (t - 60).to_string(),
            end: t.to_string(),
            step: "30".into(),
            ..Default::default()
        },
    )
    .await;
    let found: Vec<q::SeriesResponse> =
        grpc(&app, "Series", q::SeriesRequest { r#match: vec!["up".into()], ..Default::default() }).await;
    let names: Vec<q::LabelsResponse> = grpc(&app, "LabelNames", q::LabelNamesRequest::default()).await;
    out += &format!(
        "gRPC Query\n{instant:#?}\ngRPC QueryRange\n{range:#?}\ngRPC Series\n{found:#?}\ngRPC LabelNames\n{names:#?}\n"
    );
    insta::assert_snapshot!(out);
}
