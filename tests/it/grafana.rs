//! Grafana compatibility: every expression of the dashboards in
//! `../shared/workloads/dashboards/*.queries.txt`, with variables substituted the way Grafana
//! does, parses and evaluates without error on node_exporter-shaped data, as instant and as
//! range queries; the variable queries (`label_values`, `query_result`) work too.

use strata_bench::client::RemoteWriter;
use strata_bench::dashboards::substitute;
use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
use strata_suite::start_strata;

#[test]
fn dashboard_queries_parse_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let strata = start_strata(tmp.path().join("data"), &[]).unwrap();
    let w = RemoteWriter::new(strata.write_url()).unwrap();
    let mut fleet = Fleet::new(FleetConfig::steady(3, 300, 5));
    let now = strata_bench::now_ms();
    for r in 0..80 {
        for body in encode_requests(fleet.scrape(now - (80 - r) * 15_000), 2000) {
            assert_eq!(w.send(body).status, 204);
        }
    }
    let dir = strata_suite::shared_dir().join("workloads/dashboards");
    let lines = strata_bench::dashboards::load(&dir).unwrap();
    assert!(!lines.is_empty(), "no dashboards in {}", dir.display());
    let http = reqwest::blocking::Client::new();
    let ask_with = |post: bool, path: &str, params: &[(&str, String)]| -> serde_json::Value {
        let qs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let url = format!("{}{path}", strata.base_url);
        let req = if post {
            // Grafana sends queries as POST forms
            http.post(url).header("content-type", "application/x-www-form-urlencoded").body(qs)
        } else {
            http.get(format!("{url}?{qs}"))
        };
        req.send().and_then(|r| r.json()).unwrap_or_default()
    };
    let ask = |path: &str, params: &[(&str, String)]| ask_with(true, path, params);
    let (end, start) = (now / 1000, now / 1000 - 1800);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (f, line) in &lines {
        {
            for ri in ["1m0s", "4m30s"] {
                let q = substitute(line, ri);
                let results = if let Some(inner) = q.strip_prefix("label_values(") {
                    // label_values(selector, label): the series and label-values endpoints
                    let inner = inner.strip_suffix(')').unwrap_or(inner);
                    match inner.rsplit_once(',') {
                        Some((sel, label)) => {
                            let m = [("match[]", sel.trim().to_owned())];
                            let r = ask("/api/v1/series", &m);
                            let v = ask_with(false, &format!("/api/v1/label/{}/values", label.trim()), &m);
                            vec![r, v]
                        }
                        // label_values(label): every value of the label
                        None => vec![ask_with(false, &format!("/api/v1/label/{}/values", inner.trim()), &[])],
                    }
                } else if let Some(inner) = q.strip_prefix("query_result(") {
                    vec![ask(
                        "/api/v1/query",
                        &[
                            ("query", inner.strip_suffix(')').unwrap_or(inner).to_owned()),
                            ("time", end.to_string()),
                        ],
                    )]
                } else {
                    vec![
                        ask("/api/v1/query", &[("query", q.clone()), ("time", end.to_string())]),
                        ask(
                            "/api/v1/query_range",
                            &[
                                ("query", q.clone()),
                                ("start", start.to_string()),
                                ("end", end.to_string()),
                                ("step", "60".into()),
                            ],
                        ),
                    ]
                };
                checked += 1;
                for r in results {
                    if r["status"] != "success" {
                        failures.push(format!("{f}: {q}: {}", r["error"]));
                    }
                }
            }
        }
    }
    println!("grafana: {checked} substituted expressions checked, {} failures", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
