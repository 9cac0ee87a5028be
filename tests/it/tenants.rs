//! Tenants (`--auth.multitenancy-enabled`): two tenants writing the same series names each
//! read only their own data through every read API — query, range query, series, labels,
//! label values, metadata, the gRPC query API — on `strata standalone` and through an
//! ingestor and a querier of the local cluster; a series claiming another tenant's label is
//! stored as its writer's; `X-Scope-OrgID: a|b` reads both, told apart by `__tenant_id__`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_suite::{LocalCluster, start_strata};

/// A remote-write body: series `up{job, instance}` = `v` at `t`, each name's metadata with
/// `help`; the extra labels are added to the first series.
fn body(job: &str, v: f64, t: i64, help: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let series = |instance: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![
            pb::Label { name: "__name__".into(), value: "up".into() },
            pb::Label { name: "instance".into(), value: instance.into() },
            pb::Label { name: "job".into(), value: job.into() },
        ];
        labels.extend(extra.iter().map(|(n, v)| pb::Label { name: (*n).into(), value: (*v).into() }));
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        pb::TimeSeries { labels, samples: vec![pb::Sample { value: v, timestamp: t }], ..Default::default() }
    };
    let metadata = vec![pb::MetricMetadata {
        r#type: 3,
        metric_family_name: "up".into(),
        help: help.into(),
        unit: String::new(),
    }];
    let req = pb::WriteRequest { timeseries: vec![series("one", extra), series("two", &[])], metadata };
    snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&req)).unwrap()
}

/// POSTs a remote write as `tenant` (None: no header); the status and the body.
fn write(base: &str, tenant: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    if let Some(t) = tenant {
        r = r.header("X-Scope-OrgID", t);
    }
    let r = r.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// GETs a JSON API path as `tenant`; its `data`.
fn get(base: &str, tenant: &str, path: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .header("X-Scope-OrgID", tenant)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], "success", "{path} as {tenant}: {v}");
    v["data"].clone()
}

fn enc(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// The (job, instance, tenant label) of every series of a query or series answer.
fn series_of(v: &Value) -> Vec<(String, String, String)> {
    let items = v.get("result").unwrap_or(v).as_array().cloned().unwrap_or_default();
    let mut out: Vec<_> = items
        .iter()
        .map(|s| {
            let m = s.get("metric").unwrap_or(s);
            let f = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            (f("job"), f("instance"), f("__tenant_id__"))
        })
        .collect();
    out.sort();
    out
}

/// Two tenants write through `write_base`; every read API of `read_base` shows each only
/// its own data.
/// (Metadata is checked when `metadata`: a querier serves none yet.)
fn check_isolation(write_base: &str, read_base: &str, metadata: bool) {
    let t = strata_bench::now_ms();
    // team-a's first series claims to be team-b's: it is stored as team-a's all the same
    let (code, text) =
        write(write_base, Some("team-a"), body("a-job", 1.0, t, "a's help", &[("__tenant_id__", "team-b")]));
    assert_eq!(code, 204, "{text}");
    let (code, text) = write(write_base, Some("team-b"), body("b-job", 2.0, t, "b's help", &[]));
    assert_eq!(code, 204, "{text}");
    let (code, text) = write(write_base, None, body("x", 3.0, t, "", &[]));
    assert_eq!((code, text.trim()), (401, "no org id"));
    let (code, text) = write(write_base, Some("team-a|team-b"), body("x", 3.0, t, "", &[]));
    assert_eq!((code, text.trim()), (400, "multiple org IDs present"));
    let (code, _) = write(write_base, Some("../etc"), body("x", 3.0, t, "", &[]));
    assert_eq!(code, 401);

    let time = format!("{}", t as f64 / 1000.0);
    for (tenant, job, other, other_tenant) in
        [("team-a", "a-job", "b-job", "team-b"), ("team-b", "b-job", "a-job", "team-a")]
    {
        let mine = vec![
            (job.to_owned(), "one".to_owned(), String::new()),
            (job.to_owned(), "two".to_owned(), String::new()),
        ];
        for q in ["up", r#"{__name__=~".+"}"#, r#"up{__tenant_id__=~".*"}"#, "up or on() vector(0) > 1"] {
            let v = get(read_base, tenant, &format!("/api/v1/query?query={}&time={time}", enc(q)));
            assert_eq!(series_of(&v), mine, "{q} as {tenant}");
        }
        let v = get(
            read_base,
            tenant,
            &format!(
                "/api/v1/query?query={}&time={time}",
                enc(&format!("up{{__tenant_id__=\"{other_tenant}\"}}"))
            ),
        );
        assert!(series_of(&v).is_empty(), "another tenant's label selects nothing for {tenant}");
        let v = get(read_base, tenant, &format!("/api/v1/query?query={}&time={time}", enc("count(up)")));
        assert_eq!(v["result"][0]["value"][1], "2", "count(up) as {tenant}");
        let v = get(
            read_base,
            tenant,
            &format!("/api/v1/query_range?query=up&start={}&end={time}&step=15", t as f64 / 1000.0 - 60.0),
        );
        assert_eq!(series_of(&v), mine, "query_range as {tenant}");
        let v = get(read_base, tenant, &format!("/api/v1/series?match[]={}", enc(r#"{__name__=~".+"}"#)));
        assert_eq!(series_of(&v), mine, "series as {tenant}");
        let names = get(read_base, tenant, "/api/v1/labels");
        assert_eq!(names, serde_json::json!(["__name__", "instance", "job"]), "labels as {tenant}");
        let jobs = get(read_base, tenant, "/api/v1/label/job/values");
        assert_eq!(jobs, serde_json::json!([job]), "job values as {tenant}");
        assert!(!jobs.to_string().contains(other));
        let tenants = get(read_base, tenant, "/api/v1/label/__tenant_id__/values");
        assert_eq!(tenants, serde_json::json!([]), "__tenant_id__ values as {tenant}");
        let help = if tenant == "team-a" { "a's help" } else { "b's help" };
        if metadata {
            let md = get(read_base, tenant, "/api/v1/metadata");
            assert_eq!(md["up"][0]["help"], help, "metadata as {tenant}: {md}");
            assert_eq!(md["up"].as_array().map(Vec::len), Some(1), "metadata as {tenant}: {md}");
        }

        // the gRPC query API: the same restriction
        let rt = tokio::runtime::Runtime::new().unwrap();
        let got = rt.block_on(async {
            use strata_proto::query::query_service_client::QueryServiceClient;
            let ch = tonic::transport::Channel::from_shared(read_base.to_owned())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let tenant = tenant.to_owned();
            let mut c = QueryServiceClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
                Ok(r)
            });
            let req = strata_proto::query::LabelValuesRequest { name: "job".into(), ..Default::default() };
            let mut s = c.label_values(req).await.unwrap().into_inner();
            let mut values = Vec::new();
            while let Some(m) = s.message().await.unwrap() {
                values.extend(m.values);
            }
            values
        });
        assert_eq!(got, vec![job.to_owned()], "gRPC label values as {tenant}");
    }
    // federation: both, told apart by __tenant_id__
    let v = get(read_base, "team-a|team-b", &format!("/api/v1/query?query=up&time={time}"));
    let tenants: Vec<String> = series_of(&v).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(tenants, ["team-a", "team-a", "team-b", "team-b"]);
    let v = get(
        read_base,
        "team-a|team-b",
        &format!("/api/v1/query?query={}&time={time}", enc("sum by (__tenant_id__) (up)")),
    );
    assert_eq!(v["result"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(
        get(read_base, "team-a|team-b", "/api/v1/label/__tenant_id__/values"),
        serde_json::json!(["team-a", "team-b"])
    );

    // `anonymous` is the series without a tenant label (what was written before tenants)
    let (code, text) = write(write_base, Some("anonymous"), body("anon-job", 4.0, t, "anon help", &[]));
    assert_eq!(code, 204, "{text}");
    let v = get(read_base, "anonymous", &format!("/api/v1/query?query=up&time={time}"));
    let anon = vec![
        ("anon-job".to_owned(), "one".to_owned(), String::new()),
        ("anon-job".to_owned(), "two".to_owned(), String::new()),
    ];
    assert_eq!(series_of(&v), anon);
    assert_eq!(get(read_base, "anonymous", "/api/v1/label/job/values"), serde_json::json!(["anon-job"]));
    assert_eq!(
        get(read_base, "anonymous", "/api/v1/labels"),
        serde_json::json!(["__name__", "instance", "job"])
    );
    let v = get(read_base, "anonymous|team-b", &format!("/api/v1/query?query=up&time={time}"));
    let tenants: Vec<String> = series_of(&v).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(tenants, ["anonymous", "anonymous", "team-b", "team-b"]);
}

#[test]
fn tenants_read_only_their_own_data_on_standalone() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_strata(tmp.path().join("s"), &["--auth.multitenancy-enabled"]).unwrap();
    check_isolation(&s.base_url, &s.base_url, true);
}

#[test]
fn tenants_read_only_their_own_data_through_a_querier() {
    let tmp = tempfile::tempdir().unwrap();
    let c = LocalCluster::up_with(
        tmp.path().join("c"),
        4,
        &[
            ("WEB_FLAGS", "--auth.multitenancy-enabled"),
            ("INGESTOR_FLAGS", "--ingest.max-active-series-per-metric 400 --ingest.max-active-series 1000"),
        ],
    );
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    check_isolation(&url(c.ingest(0)), &url(c.query(0)), false);
    // series limits hold across ingestors: the shard leaders enforce them (each shard its
    // share), whichever ingestor a write came through
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let count = |tenant: &str, metric: &str| -> String {
        let q = format!("/api/v1/query?query=count({metric})&time={}", t as f64 / 1000.0 + 1.0);
        get(&url(c.query(0)), tenant, &q)["result"][0]["value"][1].as_str().unwrap_or("0").to_owned()
    };
    for tenant in ["team-c", "team-d"] {
        for k in 0..4 {
            let (code, text) = write(&url(c.ingest(k % 2)), Some(tenant), many(k * 500, 500, t));
            assert!(
                code == 204 || (code == 400 && text.contains("err-mimir-max-series-per-metric")),
                "{code} {text}"
            );
        }
        assert_eq!(count(tenant, "explode"), "400", "{tenant} holds its per-metric limit");
    }
    // the per-tenant limit: 400 explode + 600 more of other names
    let other = |first: usize, n: usize| {
        let body = many(first, n, t);
        let mut req: pb::WriteRequest =
            prost::Message::decode(snap::raw::Decoder::new().decompress_vec(&body).unwrap().as_slice())
                .unwrap();
        for (i, s) in req.timeseries.iter_mut().enumerate() {
            s.labels[0].value = format!("other_{}", i % 4);
        }
        snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&req)).unwrap()
    };
    let (code, text) = write(&url(c.ingest(1)), Some("team-c"), other(0, 1000));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("per-user series limit of 1000 exceeded"), "{text}");
    let total: usize = (0..4).map(|i| count("team-c", &format!("other_{i}")).parse::<usize>().unwrap()).sum();
    assert_eq!(total, 600, "team-c holds its 1000 series");
}

/// A remote-write body of `n` series `explode{i}` (from `first`), one sample each at `t`.
fn many(first: usize, n: usize, t: i64) -> Vec<u8> {
    let timeseries = (first..first + n)
        .map(|i| pb::TimeSeries {
            labels: vec![
                pb::Label { name: "__name__".into(), value: "explode".into() },
                pb::Label { name: "i".into(), value: i.to_string() },
            ],
            samples: vec![pb::Sample { value: 1.0, timestamp: t }],
            ..Default::default()
        })
        .collect();
    let req = pb::WriteRequest { timeseries, metadata: Vec::new() };
    snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&req)).unwrap()
}

/// Percentile `q` (0-1) of `v` in milliseconds.
fn pct(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
}

#[test]
fn each_tenant_has_its_own_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("runtime.yml");
    std::fs::write(
        &runtime,
        "overrides:\n  team-a:\n    ingestion_rate: 100\n    ingestion_burst_size: 100\n    \
         max_global_series_per_user: 10000\n    max_fetched_series_per_query: 5\n    max_total_query_length: 1h\n",
    )
    .unwrap();
    let flag = format!("--runtime-config.file={}", runtime.display());
    let s = start_strata(tmp.path().join("s"), &["--auth.multitenancy-enabled", &flag]).unwrap();
    let base = s.base_url.as_str();
    let t = strata_bench::now_ms();

    // the rate: team-a over its 100 samples/s gets 429, team-b in the same second does not
    assert_eq!(write(base, Some("team-a"), many(0, 80, t)).0, 204);
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "team-a")
        .body(many(80, 80, t))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(write(base, Some("team-b"), many(0, 160, t)).0, 204, "team-b has no rate limit");

    // the limits in force, by tenant
    let limits = get(base, "team-a", "/api/v1/status/limits");
    assert_eq!(limits["limits"]["ingestion_rate"], 100.0);
    assert_eq!(limits["limits"]["max_total_query_length"], "1h");
    assert_eq!(get(base, "team-b", "/api/v1/status/limits")["limits"]["ingestion_rate"], 0.0);

    // query limits: series per query, length of a range
    let time = t as f64 / 1000.0;
    let q = |tenant: &str, path: &str| {
        let r = reqwest::blocking::Client::new()
            .get(format!("{base}{path}"))
            .header("X-Scope-OrgID", tenant)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (code, text) = q("team-a", &format!("/api/v1/query?query=explode&time={time}"));
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("err-mimir-max-series-per-query"), "{text}");
    assert_eq!(q("team-b", &format!("/api/v1/query?query=explode&time={time}")).0, 200);
    let (code, text) = q(
        "team-a",
        &format!("/api/v1/query_range?query=vector(1)&start={}&end={time}&step=60", time - 7200.0),
    );
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("err-mimir-max-total-query-length"), "{text}");
    assert_eq!(
        q(
            "team-b",
            &format!("/api/v1/query_range?query=vector(1)&start={}&end={time}&step=60", time - 7200.0)
        )
        .0,
        200
    );

    // a cardinality explosion in team-a: 100k new series, cut at its 10,000; team-b's writes
    // and queries go on (their latency before and during, for the record)
    std::fs::write(&runtime, "overrides:\n  team-a:\n    max_global_series_per_user: 10000\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let b_round = |k: usize| -> (Duration, Duration) {
        let start = std::time::Instant::now();
        assert_eq!(write(base, Some("team-b"), many(1000 + k, 1, t)).0, 204);
        let w = start.elapsed();
        let start = std::time::Instant::now();
        assert_eq!(q("team-b", &format!("/api/v1/query?query=count(explode)&time={time}")).0, 200);
        (w, start.elapsed())
    };
    let (mut wb, mut qb): (Vec<_>, Vec<_>) = (0..40).map(b_round).unzip();
    let exploding = std::thread::spawn({
        let base = base.to_owned();
        move || {
            let mut refused = 0;
            for k in 0..50 {
                let (code, text) = write(&base, Some("team-a"), many(100_000 + k * 2000, 2000, t));
                if code == 400 {
                    assert!(text.contains("per-user series limit of 10000 exceeded"), "{text}");
                    refused += 1;
                } else {
                    assert_eq!(code, 204, "{text}");
                }
            }
            refused
        }
    });
    let (mut wd, mut qd): (Vec<_>, Vec<_>) = (40..80).map(b_round).unzip();
    let refused = exploding.join().unwrap();
    assert!(refused >= 44, "the requests past 10,000 series are refused ({refused} of 50)");
    let count = get(
        base,
        "team-a",
        &format!("/api/v1/query?query=count(%7B__name__%3D%22explode%22%7D)&time={time}"),
    );
    assert_eq!(count["result"][0]["value"][1], "10000", "team-a holds exactly its limit");
    let m = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
    assert!(m.contains(r#"strata_discarded_samples_total{tenant="team-a",reason="rate_limited"} 80"#), "{m}");
    assert!(
        m.contains(r#"strata_discarded_samples_total{tenant="team-a",reason="per_user_series_limit"}"#),
        "{m}"
    );
    assert!(!m.contains(r#"tenant="team-b""#), "team-b lost nothing");
    assert!(
        m.contains(r#"strata_tenant_limit{tenant="team-a",name="max_global_series_per_user"} 10000"#),
        "{m}"
    );
    eprintln!(
        "team-b while team-a explodes: write p50 {:.1} → {:.1} ms, p99 {:.1} → {:.1} ms; query p50 {:.1} → {:.1} ms, p99 {:.1} → {:.1} ms",
        pct(&mut wb, 0.5),
        pct(&mut wd, 0.5),
        pct(&mut wb, 0.99),
        pct(&mut wd, 0.99),
        pct(&mut qb, 0.5),
        pct(&mut qd, 0.5),
        pct(&mut qb, 0.99),
        pct(&mut qd, 0.99)
    );
}

#[test]
fn prometheus_writes_as_the_tenant_of_its_user() {
    use strata_suite::{PROMETHEUS_SELF, Peer, PeerSpec, System, peer_bin};
    let tmp = tempfile::tempdir().unwrap();
    // the tenant of an authenticated request is its user (Debian's Prometheus 2.42 does not
    // send remote_write `headers`, so no X-Scope-OrgID: the user names the tenant)
    let web = tmp.path().join("web.yml");
    let hash = bcrypt::hash("secret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  team-a: {hash}\n  team-b: {hash}\n")).unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    let s = start_strata(
        tmp.path().join("s"),
        &["--auth.multitenancy-enabled", "--web.unauthenticated-probes", &web_flag],
    )
    .unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      \
         - targets: ['{PROMETHEUS_SELF}']\nremote_write:\n  - url: {}\n    basic_auth: {{username: team-a, password: secret}}\n    \
         queue_config: {{batch_send_deadline: 1s}}\n",
        s.write_url()
    );
    let mut spec = PeerSpec::new(
        System::Prometheus,
        peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
        tmp.path().join("p"),
    );
    spec.prometheus_config = Some(config);
    let prom = Peer::start(spec).unwrap();
    let read = |user: &str, path: &str| -> Value {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}{path}", s.base_url))
            .basic_auth(user, Some("secret"));
        let v: Value = r.send().unwrap().json().unwrap();
        assert_eq!(v["status"], "success", "{path} as {user}: {v}");
        v["data"].clone()
    };
    let up = "/api/v1/series?match[]=up%7Bjob%3D%22prometheus%22%7D";
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while read("team-a", up).as_array().is_none_or(Vec::is_empty) {
        assert!(std::time::Instant::now() < deadline, "Prometheus's samples never arrived as team-a");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(prom);
    // only team-a sees them; team-b, authenticated, sees nothing
    assert_eq!(read("team-b", up), serde_json::json!([]));
    assert_eq!(read("team-b", "/api/v1/label/__name__/values"), serde_json::json!([]));
    let names = read("team-a", "/api/v1/label/__name__/values");
    assert!(names.as_array().is_some_and(|a| a.len() > 100), "team-a sees Prometheus's metrics");
}
