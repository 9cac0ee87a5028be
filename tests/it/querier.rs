//! Queriers on the local cluster of `deploy/local/cluster.sh` (3 storage nodes RF=3, 2
//! ingestors, 2 queriers): every query of the differential set gets the same answer as
//! from `strata standalone` holding the same data — through both queriers, over HTTP and
//! over the gRPC query API, with aggregation pushdown and without it (a third querier) —
//! and still does with one storage node killed. With two killed, queries fail with a clear
//! `unavailable` error, or answer with warnings when a partial response is asked for. A
//! querier's sample limit counts samples across every shard.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_proto::query::query_service_client::QueryServiceClient;
use strata_proto::query::{QueryRangeRequest, QueryRequest, QueryResponse};
use strata_suite::compare::{diff, get, metadata_requests, queries};
use strata_suite::{LocalCluster, metric_value, start_strata, strata_bin, wait_port, wait_ready};

const ROUNDS: i64 = 240; // 1 h at 15 s

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `strata querier` over the cluster's storage nodes, with extra flags, and the port the
/// OS gave it.
fn querier(cluster: &LocalCluster, extra: &[&str]) -> (Killed, u16) {
    let q = Killed(
        Command::new(strata_bin().expect("strata"))
            .args(["querier", "--http-addr", "127.0.0.1:0", "--storage", &cluster.storage_addrs()])
            .args(cluster.tls_args())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("querier"),
    );
    let port = wait_port(q.0.id(), Duration::from_secs(60)).expect("querier port");
    (q, port)
}

/// A gRPC query answer in the JSON API's `data` shape (for [`diff`]).
fn grpc_data(msgs: &[QueryResponse]) -> Value {
    let kind = msgs.first().map(|m| m.result_type.clone()).unwrap_or_default();
    let secs = |t: i64| json!(t as f64 / 1000.0);
    // a scalar's value in full, a vector's and a matrix's as the API writes them (1e-07)
    if kind == "scalar" {
        let s = msgs[0].scalar.unwrap_or_default();
        return json!({"resultType": "scalar", "result": [secs(s.timestamp_ms), strata_promql::format_float(s.value)]});
    }
    let result: Vec<Value> = msgs
        .iter()
        .flat_map(|m| &m.series)
        .map(|s| {
            let metric: serde_json::Map<String, Value> =
                s.labels.iter().map(|l| (l.name.clone(), json!(l.value))).collect();
            let pts: Vec<Value> = s
                .samples
                .iter()
                .map(|p| json!([secs(p.timestamp_ms), strata_promql::format_value(p.value)]))
                .collect();
            if kind == "vector" {
                json!({"metric": metric, "value": pts.first().cloned().unwrap_or(Value::Null)})
            } else {
                json!({"metric": metric, "values": pts})
            }
        })
        .collect();
    json!({"resultType": kind, "result": result})
}

/// Asks every query of the set of every target, and compares with the reference; returns
/// the differences.
fn compare_http(
    reference: &str,
    targets: &[(&str, String)],
    params: &[(&'static str, Vec<(&str, String)>)],
) -> Vec<String> {
    let mut failures = Vec::new();
    for (path, p) in params {
        let want = get(reference, path, p);
        for (name, base) in targets {
            let got = get(base, path, p);
            if want["status"] != got["status"] || want["errorType"] != got["errorType"] {
                failures.push(format!("{name} {path} {p:?}: {} vs {}", want, got));
                continue;
            }
            if want["status"] == "success"
                && let Some(d) = diff(&want["data"], &got["data"])
            {
                failures.push(format!("{name} {path} {p:?}: {d}"));
            }
        }
    }
    failures
}

#[test]
fn queriers_answer_as_standalone_and_survive_a_node_loss() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::up(tmp.path().join("cluster"), 8);
    let standalone = start_strata(tmp.path().join("standalone"), &[]).expect("standalone");
    // a third querier that moves every selected sample (no pushdown)
    let (plain, port) = querier(&cluster, &["--pushdown", "false"]);
    let q1 = format!("http://127.0.0.1:{}", cluster.query(0));
    let q2 = format!("http://127.0.0.1:{}", cluster.query(1));
    let q3 = format!("http://127.0.0.1:{port}");
    wait_ready(&q3, Duration::from_secs(60));

    // the differential data, to the cluster through both ingestors and to standalone
    let now = strata_bench::now_ms();
    let t0 = (now / 15_000 - ROUNDS - 1) * 15_000 + 1_234;
    let mut fleet = Fleet::new(FleetConfig::steady(3, 150, 11));
    let ingestors: Vec<RemoteWriter> = (0..2)
        .map(|i| {
            RemoteWriter::new(format!("http://127.0.0.1:{}/api/v1/write", cluster.ingest(i))).expect("writer")
        })
        .collect();
    let ws = RemoteWriter::new(standalone.write_url()).expect("writer");
    let mut sent = 0usize;
    for r in 0..ROUNDS {
        for body in encode_requests(fleet.scrape(t0 + r * 15_000), 1000) {
            assert_eq!(ws.send(body.clone()).status, 204);
            let deadline = Instant::now() + Duration::from_secs(30);
            while ingestors[sent % 2].send(body.clone()).status != 204 {
                assert!(Instant::now() < deadline, "no acknowledgement from the cluster");
                std::thread::sleep(Duration::from_millis(100));
            }
            sent += 1;
        }
    }

    let end = t0 + (ROUNDS - 2) * 15_000 + 2_500;
    let start = end - 30 * 60_000;
    let secs = |t: i64| format!("{}.{:03}", t / 1000, t % 1000);
    let qs = queries();
    let mut params: Vec<(&'static str, Vec<(&str, String)>)> = Vec::new();
    for q in &qs {
        params.push(("/api/v1/query", vec![("query", q.clone()), ("time", secs(end))]));
        params.push((
            "/api/v1/query_range",
            vec![("query", q.clone()), ("start", secs(start)), ("end", secs(end)), ("step", "60".into())],
        ));
    }
    params.extend(metadata_requests(&secs(start), &secs(end)));
    let sa = standalone.base_url.clone();
    let all = [("querier-1", q1.clone()), ("querier-2", q2.clone()), ("querier-no-pushdown", q3.clone())];
    let failures = compare_http(&sa, &all, &params);
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        params.len() * 3,
        failures.join("\n")
    );

    // pushdown moves less: partial aggregates instead of every selected sample (measured
    // over the HTTP query set, which both queriers answered once)
    let http = reqwest::blocking::Client::new();
    let metric = |base: &str, name: &str| metric_value(&http, base, name);
    let moved = |base: &str| {
        metric(base, "strata_querier_selected_bytes") + metric(base, "strata_querier_pushdown_bytes")
    };
    let (with, without) = (moved(&q1), moved(&q3));
    let pushdowns = metric(&q1, "strata_querier_pushdowns");
    eprintln!(
        "bytes from storage for the query set: pushdown {with:.0}, none {without:.0}, {pushdowns} pushdowns"
    );
    assert!(pushdowns > 0.0, "querier 1 pushed nothing down");
    assert_eq!(metric(&q3, "strata_querier_pushdowns"), 0.0);
    assert!(with < without, "pushdown moved {with} bytes, the plain plan {without}");

    // the gRPC query API of both queriers answers the same
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    type Answer = Result<Vec<QueryResponse>, tonic::Status>;
    type Asked<'a> = (&'a str, Vec<(&'a str, String)>, Answer);
    let answers: Vec<Asked<'_>> = rt.block_on(async {
        let mut out = Vec::new();
        for (base, q) in [&q1, &q2].into_iter().flat_map(|b| qs.iter().map(move |q| (b, q))) {
            let mut c = QueryServiceClient::connect(base.clone()).await.expect("grpc connect");
            let inst = QueryRequest { query: q.clone(), time: secs(end), ..Default::default() };
            let range = QueryRangeRequest {
                query: q.clone(),
                start: secs(start),
                end: secs(end),
                step: "60".into(),
                ..Default::default()
            };
            let (a, b) = (c.query(inst).await, c.query_range(range).await);
            for (path, p, stream) in [
                ("/api/v1/query", vec![("query", q.clone()), ("time", secs(end))], a),
                (
                    "/api/v1/query_range",
                    vec![
                        ("query", q.clone()),
                        ("start", secs(start)),
                        ("end", secs(end)),
                        ("step", "60".into()),
                    ],
                    b,
                ),
            ] {
                let got = match stream {
                    Ok(s) => {
                        let mut s = s.into_inner();
                        let mut msgs = Vec::new();
                        loop {
                            match s.message().await {
                                Ok(Some(m)) => msgs.push(m),
                                Ok(None) => break Ok(msgs),
                                Err(e) => break Err(e),
                            }
                        }
                    }
                    Err(e) => Err(e),
                };
                out.push((path, p, got));
            }
        }
        out
    });
    let mut grpc_failures = Vec::new();
    for (path, p, got) in answers {
        let want = get(&sa, path, &p);
        match (want["status"].as_str(), got) {
            (Some("success"), Ok(msgs)) => {
                if let Some(d) = diff(&want["data"], &grpc_data(&msgs)) {
                    grpc_failures.push(format!("grpc {path} {p:?}: {d}"));
                }
            }
            (Some("error"), Err(e)) if e.message() == want["error"].as_str().unwrap_or("") => {}
            (_, got) => grpc_failures.push(format!("grpc {path} {p:?}: {want} vs {got:?}")),
        }
    }
    assert!(grpc_failures.is_empty(), "gRPC answers differ:\n{}", grpc_failures.join("\n"));

    // the sample limit holds across the fan-out: 3 × 150 series over 1 h is ~108,000 samples
    let (_small, port) = querier(&cluster, &["--query-max-samples", "20000"]);
    let small = format!("http://127.0.0.1:{port}");
    wait_ready(&small, Duration::from_secs(60));
    let big = get(
        &small,
        "/api/v1/query",
        &[("query", "count_over_time({job=\"node\"}[1h])".into()), ("time", secs(end))],
    );
    assert_eq!(big["errorType"], "execution", "{big}");
    assert!(big["error"].as_str().is_some_and(|e| e.contains("too many samples")), "{big}");
    let fits = get(&small, "/api/v1/query", &[("query", "node_load1".into()), ("time", secs(end))]);
    assert_eq!(fits["status"], "success", "{fits}");

    // a query out of time fails as a timeout (and its shard reads are dropped)
    let late = get(
        &q3,
        "/api/v1/query",
        &[
            ("query", "count_over_time({job=\"node\"}[1h])".into()),
            ("time", secs(end)),
            ("timeout", "1ms".into()),
        ],
    );
    assert_eq!(late["errorType"], "timeout", "{late}");

    // one storage node lost: every answer stays the same through both queriers
    cluster.script(&["kill", "3"]);
    let two = [("querier-1", q1.clone()), ("querier-2", q2.clone())];
    let failures = compare_http(&sa, &two, &params);
    assert!(failures.is_empty(), "with storage 3 down, {} differ:\n{}", failures.len(), failures.join("\n"));

    // two lost: no shard has a quorum; the query fails clearly, or answers partially
    cluster.script(&["kill", "2"]);
    let inst = |extra: Option<(&str, String)>| {
        let mut p = vec![("query", "sum(node_load1)".to_owned()), ("time", secs(end))];
        p.extend(extra);
        get(&q1, "/api/v1/query", &p)
    };
    let failed = inst(None);
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(failed["errorType"], "unavailable", "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("shard")), "{failed}");
    let partial = inst(Some(("partial_response", "true".into())));
    assert_eq!(partial["status"], "success", "{partial}");
    assert!(partial["warnings"].as_array().is_some_and(|w| !w.is_empty()), "{partial}");
    drop(plain);
}
