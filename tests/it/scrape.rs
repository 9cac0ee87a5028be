//! `strata standalone --scrape-config`: scraping as Prometheus does, checked against a
//! real Prometheus 2.42 and node_exporter, and against targets that misbehave.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strata_bench::exposition::{ExpositionServer, Reply};
use strata_suite::{
    LocalCluster, Peer, PeerSpec, System, api_data, api_data_at, peer_bin, start_strata, strata_bin,
    wait_port,
};

type Series = BTreeMap<String, String>;

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn labels(v: &Value) -> Series {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Raw samples of a range-vector query at `time`: series → [(ts, value)].
fn raw(peer: &Peer, query: &str, time: f64) -> BTreeMap<Series, Vec<(f64, f64)>> {
    raw_at(&peer.base_url, query, time)
}

fn raw_at(base: &str, query: &str, time: f64) -> BTreeMap<Series, Vec<(f64, f64)>> {
    let data = api_data_at(base, &format!("/api/v1/query?query={}&time={time}", enc(query))).unwrap();
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let pts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().parse::<f64>().unwrap()))
                .collect();
            (labels(&s["metric"]), pts)
        })
        .collect()
}

/// Prometheus 2.42's series as Prometheus 3 (and Strata) scrape them: `le` and
/// `quantile` values in Prometheus's float formatting (docs: VERSIONS.md, difference 13).
fn as_prometheus_3<V>(m: BTreeMap<Series, V>) -> BTreeMap<Series, V> {
    m.into_iter()
        .map(|(mut l, v)| {
            for name in ["le", "quantile"] {
                if let Some(f) = l.get(name).and_then(|x| x.replace("+Inf", "inf").parse::<f64>().ok()) {
                    l.insert(name.to_string(), strata_textparse::format_openmetrics_float(f));
                }
            }
            (l, v)
        })
        .collect()
}

/// An instant query's result: series → value.
fn instant(peer: &Peer, query: &str) -> BTreeMap<Series, f64> {
    let data = api_data(peer, &format!("/api/v1/query?query={}", enc(query))).unwrap();
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (labels(&s["metric"]), s["value"][1].as_str().unwrap().parse::<f64>().unwrap()))
        .collect()
}

fn start_with_config(dir: &std::path::Path, config: &str) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("scrape.yml");
    std::fs::write(&file, config).unwrap();
    start_strata(dir.join("data"), &["--scrape-config", file.to_str().unwrap(), "--web.enable-lifecycle"])
        .unwrap()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Active targets by the value of label `key`.
fn targets_by(peer: &Peer, key: &str) -> BTreeMap<String, Value> {
    targets_at(&peer.base_url, key)
}

fn targets_at(base: &str, key: &str) -> BTreeMap<String, Value> {
    let data = api_data_at(base, "/api/v1/targets").unwrap();
    data["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["labels"][key].as_str().unwrap_or("").to_string(), t.clone()))
        .collect()
}

/// The same configuration — with relabeling of every kind Prometheus 2.42 knows — given
/// to Prometheus and to Strata, both scraping one node_exporter for over two minutes:
/// the same series, the same `up`, and counters that agree at every scrape instant
/// within what one scrape interval can change; constant series agree exactly.
#[test]
fn node_exporter_scraped_like_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let node_exporter = strata_suite::NodeExporter::start(tmp.path()).unwrap();
    let ne_port = node_exporter.port;
    let config = format!(
        r#"global:
  scrape_interval: 5s
  scrape_timeout: 4s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{ne_port}']
        labels: {{team: Infra}}
    relabel_configs:
      - {{source_labels: [__address__], regex: 'nomatch.*', action: drop}}
      - {{source_labels: [__address__], regex: '127\..*', action: keep}}
      - {{source_labels: [team], target_label: team_lc, action: lowercase}}
      - {{source_labels: [team], target_label: team_uc, action: uppercase}}
      - {{source_labels: [__address__], modulus: 4, target_label: shard, action: hashmod}}
      - {{source_labels: [__address__], regex: '.*:(\d+)', target_label: port, replacement: 'p$1'}}
      - {{source_labels: [team_lc], target_label: team_lc, action: keepequal}}
      - {{source_labels: [team], target_label: team_uc, action: dropequal}}
      - {{regex: 'team_(lc|uc)', replacement: 'copy_$1', action: labelmap}}
      - {{regex: 'copy_uc', action: labeldrop}}
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'go_gc_.*|go_memstats_.*', action: drop}}
      - {{source_labels: [__name__], regex: 'node_.*|go_.*|process_.*|promhttp_.*', action: keep}}
      - {{regex: '(device)', replacement: 'fs_$1', action: labelmap}}
      - {{source_labels: [mode], regex: '(user|system|nice)', target_label: mode_class, replacement: busy}}
      - {{source_labels: [mode], target_label: mode_upper, action: uppercase}}
      - {{regex: 'mode_upper', action: labeldrop}}
"#
    );
    let mut spec = PeerSpec::new(
        System::Prometheus,
        peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
        tmp.path().join("prom"),
    );
    spec.prometheus_config = Some(config.clone());
    let prom = Peer::start(spec).unwrap();
    let strata = start_with_config(&tmp.path().join("strata"), &config);
    let started = now_s();
    std::thread::sleep(Duration::from_secs(135));
    let t = now_s() - 6.0;
    let window = format!("{}s", (t - started).floor() as i64);

    // the same targets, the same labels
    let p_targets = api_data(&prom, "/api/v1/targets?state=active").unwrap();
    let s_targets = api_data(&strata, "/api/v1/targets?state=active").unwrap();
    assert_eq!(p_targets["activeTargets"][0]["labels"], s_targets["activeTargets"][0]["labels"]);
    assert_eq!(s_targets["activeTargets"][0]["health"], "up", "{s_targets}");
    let target_labels = labels(&s_targets["activeTargets"][0]["labels"]);
    assert_eq!(target_labels.get("team_lc").map(String::as_str), Some("infra"));
    assert_eq!(target_labels.get("copy_lc").map(String::as_str), Some("infra"));
    assert!(!target_labels.contains_key("copy_uc"));

    // up: one series, always 1, in both
    let up_q = format!("up{{job=\"node\"}}[{window}]");
    let (p_up, s_up) = (raw(&prom, &up_q, t), raw(&strata, &up_q, t));
    assert_eq!(p_up.keys().collect::<Vec<_>>(), s_up.keys().collect::<Vec<_>>());
    for (_, pts) in p_up.iter().chain(s_up.iter()) {
        assert!(pts.len() >= 20, "at least 20 scrapes in {window}: {}", pts.len());
        assert!(pts.iter().all(|(_, v)| *v == 1.0));
    }

    // the same series
    let q = format!("{{job=\"node\"}}[{window}]");
    let (p, s) = (as_prometheus_3(raw(&prom, &q, t)), raw(&strata, &q, t));
    let p_names: BTreeSet<&Series> = p.keys().collect();
    let s_names: BTreeSet<&Series> = s.keys().collect();
    let only_p: Vec<_> = p_names.difference(&s_names).take(5).collect();
    let only_s: Vec<_> = s_names.difference(&p_names).take(5).collect();
    assert!(
        only_p.is_empty() && only_s.is_empty(),
        "only in Prometheus: {only_p:?}\nonly in Strata: {only_s:?}"
    );
    assert!(p.len() > 200, "node_exporter exposes hundreds of series: {}", p.len());
    assert!(s.keys().any(|l| l.contains_key("fs_device")) && s.keys().any(|l| l.contains_key("mode_class")));
    assert!(!s.keys().any(|l| l["__name__"].starts_with("go_gc_") || l.contains_key("mode_upper")));

    // the same metadata for what both keep
    let meta = api_data(&prom, "/api/v1/metadata").unwrap();
    let s_meta = api_data(&strata, "/api/v1/metadata").unwrap();
    for name in ["node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_uname_info", "go_goroutines"] {
        assert_eq!(meta[name], s_meta[name], "metadata of {name}");
        assert!(!s_meta[name][0]["help"].as_str().unwrap().is_empty(), "{name}: {s_meta}");
    }

    // values at the same instants
    let is_counter = |name: &str| meta[name][0]["type"] == "counter";
    let (mut counters, mut constants, mut growing) = (0, 0, 0);
    for (series, s_pts) in &s {
        let p_pts = &p[series];
        let name = &series["__name__"];
        let p_vals: Vec<f64> = p_pts.iter().map(|(_, v)| *v).collect();
        if p_vals.iter().all(|v| *v == p_vals[0]) && s_pts.iter().all(|(_, v)| *v == s_pts[0].1) {
            assert_eq!(p_vals[0], s_pts[0].1, "constant {series:?}");
            constants += 1;
        }
        if !is_counter(name) {
            continue;
        }
        counters += 1;
        if p_vals.last() > p_vals.first() {
            growing += 1;
        }
        for (ts, v) in s_pts {
            // Prometheus's samples around this instant: one interval either side, widened
            // by one sample for scrapes that read the counter a few ms apart
            let before = p_pts.iter().rposition(|(pt, _)| pt <= ts).map_or(0, |i| i.saturating_sub(1));
            let after = p_pts
                .iter()
                .position(|(pt, _)| pt >= ts)
                .map_or(p_pts.len() - 1, |i| (i + 1).min(p_pts.len() - 1));
            let (lo, hi) = (p_pts[before].1, p_pts[after].1);
            if *ts < p_pts[0].0 + 5.0 || *ts > p_pts[p_pts.len() - 1].0 - 5.0 {
                continue; // no Prometheus scrape on one side
            }
            assert!(lo <= *v && *v <= hi, "{series:?} at {ts}: Strata {v}, Prometheus between {lo} and {hi}");
        }
    }
    assert!(
        counters > 100 && growing > 10 && constants > 50,
        "{counters} counters, {growing} growing, {constants} constant"
    );
    drop(strata);
    drop(prom);
    drop(node_exporter);
}

/// Targets that time out, send garbage, 10 MB lines, HTML, JSON, no content type or
/// a 500 are down with a clear lastError and `up` 0; the good target beside them keeps
/// its one-second rhythm.
#[test]
fn bad_targets_are_down_and_do_not_disturb_others() {
    let huge = {
        let mut b = b"big{l=\"".to_vec();
        b.extend(std::iter::repeat_n(b'x', 10 << 20));
        b.extend_from_slice(b"\"} 1\n");
        b
    };
    let server = ExpositionServer::start(Arc::new(move |path: &str| {
        let mut r = Reply::text("good_metric 1\n");
        match path {
            "/slow" => r.delay = Duration::from_secs(3),
            "/garbage" => r.body = b"this is { not an exposition\n\x00\x01".to_vec(),
            "/huge" => r.body = huge.clone(),
            "/html" => (r.content_type, r.body) = ("text/html".into(), b"<html>hi</html>".to_vec()),
            "/json" => (r.content_type, r.body) = ("application/json".into(), b"{}".to_vec()),
            "/none" => r.content_type = String::new(),
            "/500" => r.status = 500,
            _ => {}
        }
        r
    }))
    .unwrap();
    let cases = ["good", "slow", "garbage", "huge", "html", "json", "none", "500"];
    let mut config = String::from(
        "global: {scrape_interval: 1s, scrape_timeout: 800ms}\nscrape_configs:\n  - job_name: bad\n    static_configs:\n",
    );
    for c in cases {
        config.push_str(&format!(
            "      - {{targets: ['{}'], labels: {{case: {c}, __metrics_path__: /{c}}}}}\n",
            server.addr
        ));
    }
    // nothing listens on port 1 (tcpmux), and no port handed out to a test is that low
    let closed = 1;
    config.push_str(&format!("      - {{targets: ['127.0.0.1:{closed}'], labels: {{case: refused}}}}\n"));
    let tmp = tempfile::tempdir().unwrap();
    let strata = start_with_config(tmp.path(), &config);
    wait_for("every target scraped twice", Duration::from_secs(30), || {
        targets_by(&strata, "case").values().all(|t| t["health"] != "unknown")
            && instant(&strata, "count_over_time(good_metric[1m])").values().any(|n| *n >= 2.0)
    });
    std::thread::sleep(Duration::from_secs(5));
    let targets = targets_by(&strata, "case");
    let expect = [
        ("slow", "context deadline exceeded"),
        ("garbage", "line 1"),
        ("huge", "line 1"),
        ("html", "unsupported Content-Type \"text/html\""),
        ("json", "unsupported Content-Type \"application/json\""),
        ("none", "unsupported Content-Type \"\""),
        ("500", "server returned HTTP status 500"),
    ];
    for (case, err) in expect {
        let t = &targets[case];
        assert_eq!(t["health"], "down", "{case}: {t}");
        assert!(t["lastError"].as_str().unwrap().contains(err), "{case}: {t}");
    }
    // Prometheus's words for a refused connection
    assert_eq!(
        targets["refused"]["lastError"],
        format!(
            "Get \"http://127.0.0.1:{closed}/metrics\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )
    );
    assert_eq!(targets["good"]["health"], "up");
    assert_eq!(targets["good"]["lastError"], "");
    // a loopback target's globalUrl names this machine, as Prometheus's does
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let port = server.addr.rsplit_once(':').unwrap().1;
    assert_eq!(targets["good"]["globalUrl"], format!("http://{}:{port}/good", host.trim()));
    let up: BTreeMap<String, f64> =
        instant(&strata, "up").into_iter().map(|(l, v)| (l["case"].clone(), v)).collect();
    for c in cases.iter().chain(&["refused"]) {
        assert_eq!(up[*c], if *c == "good" { 1.0 } else { 0.0 }, "up of {c}");
    }
    // the good target: a sample every second, no gap beside the slow one
    let pts = raw(&strata, "good_metric[8s]", now_s() - 1.0);
    let pts = pts.values().next().unwrap();
    assert!(pts.len() >= 6, "{pts:?}");
    assert!(pts.windows(2).all(|w| w[1].0 - w[0].0 < 1.5), "{pts:?}");
    assert!(instant(&strata, "big").is_empty());
}

/// A series that vanishes from a target, and a target removed from file_sd, get
/// staleness markers: instant queries stop returning them at once, not after the 5m
/// lookback.
#[test]
fn vanished_series_and_removed_targets_go_stale() {
    let scrapes = Arc::new(AtomicU64::new(0));
    let n = scrapes.clone();
    let server = ExpositionServer::start(Arc::new(move |path: &str| {
        if path == "/vanish" && n.fetch_add(1, Ordering::Relaxed) >= 3 {
            return Reply::text("stays 1\n");
        }
        Reply::text("stays 1\ngoes 1\n")
    }))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("targets.json");
    let group = |case: &str, path: &str| {
        format!(
            r#"{{"targets": ["{}"], "labels": {{"case": "{case}", "__metrics_path__": "{path}"}}}}"#,
            server.addr
        )
    };
    std::fs::write(&sd, format!("[{}, {}]", group("vanish", "/vanish"), group("removed", "/removed")))
        .unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: sd\n    file_sd_configs: [{{files: ['{}']}}]\n",
        sd.display()
    );
    let strata = start_with_config(tmp.path(), &config);
    wait_for("the series of the vanishing target to go stale", Duration::from_secs(30), || {
        scrapes.load(Ordering::Relaxed) >= 5
    });
    std::thread::sleep(Duration::from_secs(1));
    let goes: BTreeSet<String> = instant(&strata, "goes").keys().map(|l| l["case"].clone()).collect();
    assert_eq!(goes, BTreeSet::from(["removed".to_string()]), "goes{{case=vanish}} is stale");
    assert!(!raw(&strata, "goes{case=\"vanish\"}[1m]", now_s()).is_empty(), "it was there before");
    assert_eq!(instant(&strata, "stays").len(), 2);

    std::fs::write(&sd, format!("[{}]", group("vanish", "/vanish"))).unwrap();
    wait_for("the removed target to leave the targets API", Duration::from_secs(10), || {
        !targets_by(&strata, "case").contains_key("removed")
    });
    // end-of-run staleness comes two intervals after the last scrape
    wait_for("the removed target's series to go stale", Duration::from_secs(10), || {
        instant(&strata, "up{case=\"removed\"}").is_empty()
            && instant(&strata, "stays{case=\"removed\"}").is_empty()
    });
    assert_eq!(instant(&strata, "up{case=\"vanish\"}").len(), 1);
    assert!(!raw(&strata, "up{case=\"removed\"}[1m]", now_s()).is_empty());
}

/// A bad file is refused with its line and reason and the running configuration keeps
/// scraping; a good one is picked up by `POST /-/reload` and by SIGHUP.
#[test]
fn reload_keeps_the_old_config_on_errors() {
    let server = ExpositionServer::start(Arc::new(|_: &str| Reply::text("m 1\n"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let job = |name: &str| {
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: {name}\n    static_configs: [{{targets: ['{}']}}]\n",
            server.addr
        )
    };
    let strata = start_with_config(tmp.path(), &job("first"));
    let file = tmp.path().join("scrape.yml");
    let jobs = || -> BTreeSet<String> { targets_by(&strata, "job").into_keys().collect() };
    wait_for("the first job", Duration::from_secs(10), || jobs().contains("first"));
    let http = reqwest::blocking::Client::new();
    std::fs::write(&file, format!("{}    scrape_intervall: 5s\n", job("second"))).unwrap();
    let r = http.post(format!("{}/-/reload", strata.base_url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.text().unwrap();
    assert!(text.contains(":5:") && text.contains("unknown field `scrape_intervall`"), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jobs(), BTreeSet::from(["first".to_string()]));
    assert!(instant(&strata, "count_over_time(m{job=\"first\"}[2s])").values().all(|n| *n >= 1.0));

    std::fs::write(&file, job("second")).unwrap();
    let r = http.post(format!("{}/-/reload", strata.base_url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    wait_for("the second job", Duration::from_secs(10), || jobs() == BTreeSet::from(["second".to_string()]));

    std::fs::write(&file, job("third")).unwrap();
    let pid = strata.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for("the third job after SIGHUP", Duration::from_secs(10), || {
        jobs() == BTreeSet::from(["third".to_string()])
    });
}

/// https targets: trusted through `tls_config.ca_file`, or with
/// `insecure_skip_verify`; without either the self-signed certificate fails the scrape —
/// the same on a node that finds no CA certificates on its system (a FROM scratch image).
#[test]
fn https_targets_with_tls_config() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let openssl = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .current_dir(d)
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    // a CA, and a server certificate for 127.0.0.1 it signs
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
    ]);
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ]);
    // s_server -HTTP sends the file as the whole response, headers included
    std::fs::write(
        d.join("metrics"),
        "HTTP/1.0 200 ok\r\nContent-Type: text/plain; version=0.0.4\r\n\r\ntls_metric 1\n",
    )
    .unwrap();
    let mut server = std::process::Command::new("openssl")
        .current_dir(d)
        .args([
            "s_server",
            "-HTTP",
            "-quiet",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            "cert.pem",
            "-key",
            "key.pem",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port = wait_port(server.id(), Duration::from_secs(30)).unwrap();
    let job = |name: &str, tls: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {tls}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
    };
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n{}{}{}",
        job("ca", &format!("{{ca_file: {}}}", d.join("ca.pem").display())),
        job("insecure", "{insecure_skip_verify: true}"),
        job("untrusted", "{}")
    );
    let file = d.join("scrape.yml");
    std::fs::write(&file, &config).unwrap();
    // as on this machine, and as in a FROM scratch container: no system CA certificates
    let no_roots = [("SSL_CERT_FILE", "/nonexistent/ca.pem"), ("SSL_CERT_DIR", "/nonexistent")];
    for (name, env) in [("system roots", &[][..]), ("no system roots", &no_roots[..])] {
        let mut spec = PeerSpec::new(System::Strata, strata_bin().unwrap(), d.join(name));
        spec.extra_args = vec!["--scrape-config".into(), file.display().to_string()];
        spec.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let strata = Peer::start(spec).unwrap();
        wait_for("all three https jobs scraped", Duration::from_secs(20), || {
            targets_by(&strata, "job").values().all(|t| t["health"] != "unknown")
                && instant(&strata, "up").len() == 3
        });
        let targets = targets_by(&strata, "job");
        assert_eq!(targets["ca"]["health"], "up", "{name}: {}", targets["ca"]);
        assert_eq!(targets["insecure"]["health"], "up", "{name}: {}", targets["insecure"]);
        assert_eq!(targets["untrusted"]["health"], "down", "{name}");
        assert!(
            targets["untrusted"]["lastError"].as_str().unwrap().contains("certificate"),
            "{name}: {}",
            targets["untrusted"]
        );
        let tls: BTreeSet<String> = instant(&strata, "tls_metric").keys().map(|l| l["job"].clone()).collect();
        assert_eq!(tls, BTreeSet::from(["ca".to_string(), "insecure".to_string()]), "{name}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Two ingestors of the local cluster (`--scrape-peers`) share twenty targets; when one is
/// killed the other takes its targets over, and when it comes back they are shared again —
/// at most one scrape lost per target (consecutive samples at most two intervals apart) and
/// at most one double scrape per target around each move.
#[test]
fn ingestors_share_targets_and_take_over() {
    let server = ExpositionServer::start(Arc::new(|_: &str| Reply::text("shared 1\n"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "global: {scrape_interval: 5s}\nscrape_configs:\n  - job_name: shared\n    static_configs:\n",
    );
    for i in 0..20 {
        cfg.push_str(&format!(
            "      - {{targets: ['{}'], labels: {{id: 't{i}', __param_id: '{i}'}}}}\n",
            server.addr
        ));
    }
    let file = tmp.path().join("scrape.yml");
    std::fs::write(&file, cfg).unwrap();
    let cluster =
        LocalCluster::up_with(tmp.path().join("cluster"), 8, &[("SCRAPE_CONFIG", file.to_str().unwrap())]);
    let ingestor = |i: usize| format!("http://127.0.0.1:{}", cluster.ingest(i));
    let ids = |i: usize| -> BTreeSet<String> {
        reqwest::blocking::get(format!("{}/api/v1/targets", ingestor(i)))
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .map(|v| {
                v["data"]["activeTargets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["labels"]["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let shared = || {
        let (a, b) = (ids(0), ids(1));
        !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.len() + b.len() == 20
    };
    let started = now_s();
    wait_for("the ingestors to share the targets", Duration::from_secs(30), shared);
    std::thread::sleep(Duration::from_secs(11));
    cluster.script(&["kill-ingestor", "2"]);
    wait_for("ingestor 1 to take every target", Duration::from_secs(15), || ids(0).len() == 20);
    std::thread::sleep(Duration::from_secs(11));
    cluster.script(&["start-ingestor", "2"]);
    wait_for("the targets to be shared again", Duration::from_secs(30), shared);
    std::thread::sleep(Duration::from_secs(11));
    let end = now_s();
    let window = format!("{}s", (end - started).ceil() as i64);
    let querier = format!("http://127.0.0.1:{}", cluster.query(0));
    let up = raw_at(&querier, &format!("up{{job=\"shared\"}}[{window}]"), end);
    assert_eq!(up.len(), 20, "every target has up");
    let mut lost = 0;
    for (series, pts) in &up {
        let gaps: Vec<f64> = pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let doubles = gaps.iter().filter(|g| **g < 2.5).count();
        let longest = gaps.iter().cloned().fold(0.0, f64::max);
        assert!(longest <= 10.5, "{}: more than one scrape lost: gaps {gaps:?}", series["id"]);
        assert!(doubles <= 2, "{}: scraped twice too often: gaps {gaps:?}", series["id"]);
        assert!(pts.iter().all(|(_, v)| *v == 1.0));
        lost += gaps.iter().filter(|g| **g > 7.5).count();
    }
    eprintln!("scrapes lost across both moves: {lost} of {} targets", up.len());
}
