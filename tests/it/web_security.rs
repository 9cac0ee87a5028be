//! TLS and authentication on every listener (docs/security.md): Prometheus's web
//! configuration file read as Prometheus reads it (`promtool check web-config` agrees on
//! good and bad files), a real Prometheus 2.42 remote-writing over HTTPS with basic auth
//! into `strata standalone` and into an ingestor of the local cluster, and a table with one
//! row per listener of every role refusing the unauthenticated, the wrong password and the
//! wrong client certificate; the lifecycle endpoints behind their flag.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_suite::{
    LocalCluster, PROMETHEUS_SELF, Peer, PeerSpec, PortLease, System, lease_ports, peer_bin, strata_bin,
};

const USER: &str = "alice";
const PASSWORD: &str = "correct-horse";

/// `strata certs` into `dir`: a CA and a certificate for localhost/127.0.0.1 that serves
/// and authenticates clients.
fn certs(dir: &Path) -> PathBuf {
    let ok = Command::new(strata_bin().unwrap())
        .args(["certs", "--out", dir.to_str().unwrap(), "--hosts", "localhost,127.0.0.1"])
        .status()
        .unwrap();
    assert!(ok.success());
    dir.to_path_buf()
}

/// A web configuration in `dir/web.yml`: TLS with `certs`' server certificate, alice's
/// bcrypt hash, one response header, and `extra_tls` lines under `tls_server_config`.
fn web_config(dir: &Path, certs: &Path, extra_tls: &str) -> PathBuf {
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    let text = format!(
        "tls_server_config:\n  cert_file: {c}/member.pem\n  key_file: {c}/member-key.pem\n{extra_tls}\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  {USER}: {hash}\n",
        c = certs.display()
    );
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An HTTPS client trusting `ca` (the CA file), presenting `identity` (a directory holding
/// member.pem and member-key.pem) when given.
fn client(ca: &Path, identity: Option<&Path>) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca.join("ca.pem")).unwrap()).unwrap();
    let mut b =
        reqwest::blocking::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(10)).no_proxy();
    if let Some(dir) = identity {
        let mut pem = std::fs::read(dir.join("member.pem")).unwrap();
        pem.extend(std::fs::read(dir.join("member-key.pem")).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// What a listener answered: an HTTP status, or a failed connection / handshake.
fn answer(r: reqwest::Result<reqwest::blocking::Response>) -> String {
    match r {
        Ok(r) => r.status().as_u16().to_string(),
        Err(_) => "refused".into(),
    }
}

/// `strata standalone` with `flags`, on a leased port; killed when dropped.
struct Standalone {
    child: Child,
    port: u16,
    _lease: PortLease,
}

impl Standalone {
    fn start(dir: &Path, flags: &[&str]) -> Standalone {
        std::fs::create_dir_all(dir).unwrap();
        let lease = lease_ports(1).unwrap().remove(0);
        let port = lease.port;
        let child = Command::new(strata_bin().unwrap())
            .args(["standalone", "--data-dir", dir.join("data").to_str().unwrap()])
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("strata.log")).unwrap())
            .spawn()
            .unwrap();
        let s = Standalone { child, port, _lease: lease };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "standalone did not listen; see {}", dir.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks one HTTP listener at `base` (https://127.0.0.1:port) behind TLS and basic auth:
/// plain HTTP, no credentials and a wrong password are refused, the right password works;
/// returns the row of the table.
fn row(name: &str, base: &str, path: &str, ca: &Path, identity: Option<&Path>) -> [String; 5] {
    let c = client(ca, identity);
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let url = format!("{base}{path}");
    let ok = c.get(&url).basic_auth(USER, Some(PASSWORD)).send();
    if let Ok(r) = &ok {
        assert_eq!(r.headers().get("x-frame-options").map(|v| v.to_str().unwrap()), Some("deny"), "{name}");
    }
    [
        name.to_owned(),
        answer(plain.get(url.replace("https://", "http://")).basic_auth(USER, Some(PASSWORD)).send()),
        answer(c.get(&url).send()),
        answer(c.get(&url).basic_auth(USER, Some("wrong")).send()),
        answer(ok),
    ]
}

/// Prints the table and checks every row: plain HTTP refused (a TLS listener answers an
/// HTTP request with a failed connection or 400), 401 without or with wrong credentials,
/// 200 with the right ones.
fn check_table(rows: &[[String; 5]]) {
    eprintln!("{:<28} {:>8} {:>8} {:>8} {:>8}", "listener", "http", "no auth", "wrong pw", "right");
    for r in rows {
        eprintln!("{:<28} {:>8} {:>8} {:>8} {:>8}", r[0], r[1], r[2], r[3], r[4]);
    }
    for r in rows {
        assert!(r[1] == "refused" || r[1] == "400", "{}: plain HTTP answered {}", r[0], r[1]);
        assert_eq!((r[2].as_str(), r[3].as_str(), r[4].as_str()), ("401", "401", "200"), "{}", r[0]);
    }
}

/// Waits until `f` holds; fails with `what` after `within`.
fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The `data` of a JSON API answer, read with credentials.
fn data(c: &reqwest::blocking::Client, url: &str) -> serde_json::Value {
    let v: serde_json::Value = c.get(url).basic_auth(USER, Some(PASSWORD)).send().unwrap().json().unwrap();
    v["data"].clone()
}

#[test]
fn promtool_and_strata_agree_on_web_config_files() {
    let Ok(promtool) = peer_bin("PROMTOOL_BIN", &["promtool"]) else {
        panic!("promtool not installed: run scripts/setup.sh with SETUP_PEERS=1");
    };
    let tmp = tempfile::tempdir().unwrap();
    let c = certs(&tmp.path().join("certs"));
    let tls = format!(
        "tls_server_config:\n  cert_file: {0}/member.pem\n  key_file: {0}/member-key.pem\n",
        c.display()
    );
    let hash = bcrypt::hash("x", 4).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("tls", tls.clone()),
        (
            "tls relative paths",
            "tls_server_config:\n  cert_file: certs/member.pem\n  key_file: certs/member-key.pem\n".into(),
        ),
        ("empty tls", "tls_server_config: {}\n".into()),
        ("unknown key", "foo: 1\n".into()),
        ("unknown tls key", format!("{tls}  cert: x\n")),
        ("missing key_file", format!("tls_server_config:\n  cert_file: {}/member.pem\n", c.display())),
        ("missing cert_file", "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n".into()),
        (
            "no such cert",
            "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.pem\n".into(),
        ),
        ("not PEM", "tls_server_config:\n  cert_file: /etc/hostname\n  key_file: /etc/hostname\n".into()),
        (
            "key of another cert",
            format!(
                "tls_server_config:\n  cert_file: {0}/member.pem\n  key_file: {0}/ca-key.pem\n",
                c.display()
            ),
        ),
        ("bad client auth", format!("{tls}  client_auth_type: Sometimes\n")),
        ("CA without policy", format!("{tls}  client_ca_file: {}/ca.pem\n", c.display())),
        (
            "missing CA",
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: /nope.pem\n"),
        ),
        (
            "verified clients",
            format!(
                "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}/ca.pem\n",
                c.display()
            ),
        ),
        ("any client cert", format!("{tls}  client_auth_type: RequireAnyClientCert\n")),
        ("bad version", format!("{tls}  min_version: TLS99\n")),
        ("versions", format!("{tls}  min_version: TLS13\n  max_version: TLS13\n")),
        ("cipher", format!("{tls}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n")),
        ("bad cipher", format!("{tls}  cipher_suites: [TLS_FOO]\n")),
        ("curves", format!("{tls}  curve_preferences: [X25519, CurveP256]\n")),
        ("bad curve", format!("{tls}  curve_preferences: [Curve25519]\n")),
        ("user", format!("basic_auth_users:\n  alice: {hash}\n")),
        ("short hash", "basic_auth_users:\n  alice: plaintext\n".into()),
        ("header", "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n".into()),
        ("bad header", "http_server_config:\n  headers:\n    X-Powered-By: strata\n".into()),
        ("bad header value", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into()),
        ("no http2", "http_server_config:\n  http2: false\n".into()),
        ("not a map", "- a\n".into()),
        ("bad yaml", "tls_server_config: [\n".into()),
    ];
    let mut disagree = Vec::new();
    for (name, text) in &cases {
        let path = tmp.path().join("web.yml");
        std::fs::write(&path, text).unwrap();
        let run = |bin: &Path, args: &[&str]| {
            let out = Command::new(bin).args(args).arg(&path).output().unwrap();
            let text =
                String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
            (out.status.success(), text.trim().to_owned())
        };
        let (p_ok, p_text) = run(&promtool, &["check", "web-config"]);
        let (s_ok, s_text) = run(&strata_bin().unwrap(), &["check", "web-config"]);
        // the same verdict; the same reason except for YAML syntax errors (different parsers)
        let same_reason = name.contains("yaml") || name.contains("not a map") || p_text == s_text;
        if p_ok != s_ok || !same_reason {
            disagree.push(format!("{name}:\n  promtool: {p_text}\n  strata:   {s_text}"));
        }
    }
    assert!(disagree.is_empty(), "promtool and strata disagree:\n{}", disagree.join("\n"));
}

#[test]
fn every_listener_of_every_role_refuses_the_unauthenticated() {
    let tmp = tempfile::tempdir().unwrap();
    let web_certs = certs(&tmp.path().join("web-certs"));
    let strangers = certs(&tmp.path().join("strangers"));
    let web = web_config(tmp.path(), &web_certs, "");
    let web_flag = format!("--web.config.file={}", web.display());

    let standalone_dir = tmp.path().join("standalone");
    std::fs::create_dir_all(&standalone_dir).unwrap();
    let standalone = Standalone::start(&standalone_dir, &[&web_flag]);

    let curl = format!("--cacert {}/ca.pem -u {USER}:{PASSWORD}", web_certs.display());
    let cluster = LocalCluster::up_with(
        tmp.path().join("cluster"),
        2,
        &[("WEB_FLAGS", web_flag.as_str()), ("WEB_SCHEME", "https"), ("CURL_FLAGS", &curl)],
    );
    let https = |port: u16| format!("https://127.0.0.1:{port}");

    // Prometheus 2.42 scrapes itself and remote-writes to both over HTTPS with basic auth
    let prom_dir = tmp.path().join("prom");
    let target = |port: u16| {
        format!(
            "  - url: https://127.0.0.1:{port}/api/v1/write\n    basic_auth: {{username: {USER}, password: '{PASSWORD}'}}\n    \
             tls_config: {{ca_file: {}/ca.pem}}\n    queue_config: {{batch_send_deadline: 1s}}\n",
            web_certs.display()
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      \
         - targets: ['{PROMETHEUS_SELF}']\nremote_write:\n{}{}",
        target(standalone.port),
        target(cluster.ingest(0))
    );
    let mut spec =
        PeerSpec::new(System::Prometheus, peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(), prom_dir);
    spec.prometheus_config = Some(config);
    let prom = Peer::start(spec).unwrap();

    let c = client(&web_certs, None);
    let up = "/api/v1/series?match[]=up%7Bjob%3D%22prometheus%22%7D";
    for (name, base) in [("standalone", https(standalone.port)), ("querier", https(cluster.query(0)))] {
        wait_for(&format!("Prometheus's samples through {name}"), Duration::from_secs(90), || {
            data(&c, &format!("{base}{up}")).as_array().is_some_and(|a| a.len() == 1)
        });
    }
    drop(prom);

    let (ca, labels) = (web_certs.as_path(), "/api/v1/labels");
    let mut rows = vec![
        row("standalone API", &https(standalone.port), labels, ca, None),
        row("standalone /metrics", &https(standalone.port), "/metrics", ca, None),
        row("standalone /-/ready", &https(standalone.port), "/-/ready", ca, None),
    ];
    for n in 1..=3 {
        rows.push(row(&format!("storage-{n} HTTP"), &https(cluster.http(n)), labels, ca, None));
    }
    for i in 0..2 {
        rows.push(row(&format!("ingestor-{} HTTP", i + 1), &https(cluster.ingest(i)), "/-/ready", ca, None));
        rows.push(row(&format!("querier-{} HTTP", i + 1), &https(cluster.query(i)), labels, ca, None));
    }
    // the gRPC query API shares the querier's port: the same check, as a gRPC client sees it
    let grpc = |auth: Option<&str>| -> String {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use strata_proto::query::query_service_client::QueryServiceClient;
            let pem = std::fs::read(web_certs.join("ca.pem")).unwrap();
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem))
                .domain_name("localhost");
            let ch = tonic::transport::Channel::from_shared(https(cluster.query(0)))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let auth = auth.map(|a| format!("Basic {a}"));
            let mut c = QueryServiceClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
                if let Some(a) = &auth {
                    r.metadata_mut().insert("authorization", a.parse().unwrap());
                }
                Ok(r)
            });
            let q = strata_proto::query::LabelNamesRequest::default();
            // a streaming call: the refusal comes with the stream's first message
            let first = match c.label_names(q).await {
                Ok(r) => r.into_inner().message().await.map(|_| ()),
                Err(s) => Err(s),
            };
            match first {
                Ok(()) => "200".into(),
                Err(s) if s.code() == tonic::Code::Unauthenticated => "401".into(),
                Err(s) => format!("{:?}", s.code()),
            }
        })
    };
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    rows.push([
        "querier-1 gRPC query API".into(),
        "refused".into(),
        grpc(None),
        grpc(Some(&b64(&format!("{USER}:wrong")))),
        grpc(Some(&b64(&format!("{USER}:{PASSWORD}")))),
    ]);
    check_table(&rows);

    // the storage nodes' cluster port: mutual TLS with the cluster CA, nothing else (an
    // HTTP/2 connection is made, or refused, with each client certificate)
    let cluster_ca = cluster.dir.join("certs");
    let connect = |port: u16, identity: Option<&Path>| -> String {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let pem = std::fs::read(cluster_ca.join("ca.pem")).unwrap();
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem))
                .domain_name("localhost");
            if let Some(dir) = identity {
                let (cert, key) = (
                    std::fs::read(dir.join("member.pem")).unwrap(),
                    std::fs::read(dir.join("member-key.pem")).unwrap(),
                );
                tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            let ch = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
                .unwrap()
                .tls_config(tls)
                .unwrap();
            // a harmless call: the cluster map (with TLS 1.3 a refused client certificate
            // shows on the first exchange, not in the handshake)
            let call = async {
                let mut c =
                    strata_proto::cluster::storage_client::StorageClient::new(ch.connect().await.ok()?);
                c.get_cluster_map(strata_proto::cluster::ClusterMapRequest::default()).await.ok()
            };
            match tokio::time::timeout(Duration::from_secs(10), call).await {
                Ok(Some(_)) => "served".into(),
                _ => "refused".into(),
            }
        })
    };
    for (n, port) in cluster.grpc.iter().enumerate() {
        // a certificate of another CA: the server's is checked against the cluster CA
        let (none, stranger, member) =
            (connect(*port, None), connect(*port, Some(&strangers)), connect(*port, Some(&cluster_ca)));
        eprintln!("storage-{} gRPC: no cert {none}, foreign cert {stranger}, member cert {member}", n + 1);
        assert_eq!(
            (none.as_str(), stranger.as_str(), member.as_str()),
            ("refused", "refused", "served"),
            "storage-{} gRPC",
            n + 1
        );
    }
}

#[test]
fn client_certificates_and_reloads_as_prometheus_does() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = certs(&tmp.path().join("ours"));
    let strangers = certs(&tmp.path().join("strangers"));
    let verified = format!(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}/ca.pem\n",
        ours.display()
    );
    let web = web_config(tmp.path(), &ours, &verified);
    let s = Standalone::start(tmp.path(), &[&format!("--web.config.file={}", web.display())]);
    let url = format!("https://127.0.0.1:{}/api/v1/labels", s.port);
    let get = |identity: Option<&Path>, password: &str| {
        answer(client(&ours, identity).get(&url).basic_auth(USER, Some(password)).send())
    };
    wait_for("the node to be ready", Duration::from_secs(60), || get(Some(&ours), PASSWORD) == "200");
    assert_eq!(get(None, PASSWORD), "refused", "no client certificate");
    assert_eq!(get(Some(&strangers), PASSWORD), "refused", "a certificate of another CA");
    assert_eq!(get(Some(&ours), "wrong"), "401");
    assert_eq!(get(Some(&ours), PASSWORD), "200");

    // the file is re-read when it changes: a new user works, the old one no longer
    let bob = bcrypt::hash("bob's", 6).unwrap();
    let text = std::fs::read_to_string(&web).unwrap();
    let text = text.split("basic_auth_users:").next().unwrap().to_owned()
        + &format!("basic_auth_users:\n  bob: {bob}\n");
    std::fs::write(&web, text).unwrap();
    let c = client(&ours, Some(&ours));
    wait_for("the new user", Duration::from_secs(10), || {
        c.get(&url).basic_auth("bob", Some("bob's")).send().is_ok_and(|r| r.status() == 200)
    });
    assert_eq!(get(Some(&ours), PASSWORD), "401", "alice was removed");
    // a file broken afterwards refuses everything (500), as Prometheus, until it is fixed
    std::fs::write(&web, "basic_auth_users: [\n").unwrap();
    wait_for("the broken file", Duration::from_secs(10), || {
        c.get(&url).basic_auth("bob", Some("bob's")).send().is_ok_and(|r| r.status() == 500)
    });
}

#[test]
fn lifecycle_endpoints_answer_as_prometheus_does() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = reqwest::blocking::Client::new();
    let off = Standalone::start(&tmp.path().join("off"), &[]);
    let base = format!("http://127.0.0.1:{}", off.port);
    for path in ["/-/reload", "/-/quit"] {
        let r = plain.post(format!("{base}{path}")).send().unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.text().unwrap(), "Lifecycle API is not enabled.");
        let r = plain.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.text().unwrap(), "Only POST or PUT requests allowed");
    }
    // basic auth without TLS, probes left open by their flag: the lifecycle endpoints are not
    let dir = tmp.path().join("on");
    std::fs::create_dir_all(&dir).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  {USER}: {}\n", bcrypt::hash(PASSWORD, 4).unwrap()))
        .unwrap();
    let web = format!("--web.config.file={}", web.display());
    let mut on = Standalone::start(&dir, &["--web.enable-lifecycle", "--web.unauthenticated-probes", &web]);
    let base = format!("http://127.0.0.1:{}", on.port);
    wait_for("the node to be ready", Duration::from_secs(60), || {
        plain.get(format!("{base}/-/ready")).send().is_ok_and(|r| r.status() == 200)
    });
    for (path, open) in
        [("/metrics", true), ("/-/ready", true), ("/-/healthy", true), ("/api/v1/labels", false)]
    {
        let r = plain.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(r.status(), if open { 200 } else { 401 }, "{path}");
    }
    let metrics = plain.get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("strata_http_unauthorized_requests_total{reason=\"no_credentials\"} 1"),
        "the refusal is counted"
    );
    assert_eq!(plain.post(format!("{base}/-/reload")).send().unwrap().status(), 401);
    let post = |path: &str| plain.post(format!("{base}{path}")).basic_auth(USER, Some(PASSWORD));
    assert_eq!(post("/-/reload").send().unwrap().status(), 200);
    let r = plain.put(format!("{base}/-/quit")).basic_auth(USER, Some(PASSWORD)).send().unwrap();
    assert_eq!(r.text().unwrap(), "Requesting termination... Goodbye!");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = on.child.try_wait().unwrap() {
            assert!(status.success(), "strata exited with {status} after /-/quit");
            break;
        }
        assert!(Instant::now() < deadline, "strata still runs 30 s after /-/quit");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `strata probe` (the health check of the images) speaks HTTPS, verifying the server
/// against `--ca-file`: what compose's TLS overlay runs in every container.
#[test]
fn the_health_probe_speaks_https() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = certs(&tmp.path().join("ours"));
    let strangers = certs(&tmp.path().join("strangers"));
    let web = web_config(tmp.path(), &ours, "");
    let s = Standalone::start(
        tmp.path(),
        &[&format!("--web.config.file={}", web.display()), "--web.unauthenticated-probes"],
    );
    let probe = |url: &str, ca: &Path| {
        Command::new(strata_bin().unwrap())
            .args(["probe", "--ca-file", ca.join("ca.pem").to_str().unwrap(), url])
            .output()
            .unwrap()
    };
    let ready = format!("https://localhost:{}/-/ready", s.port);
    wait_for("the probe to pass", Duration::from_secs(60), || probe(&ready, &ours).status.success());
    let out = probe(&ready, &strangers);
    assert!(!out.status.success(), "a server the CA did not sign");
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"), "{out:?}");
    assert!(!probe(&format!("http://localhost:{}/-/ready", s.port), &ours).status.success(), "plain HTTP");
    // authentication still guards everything but the probes
    assert!(!probe(&format!("https://localhost:{}/api/v1/labels", s.port), &ours).status.success());
}

/// Ingestors sharing scrape targets (`--scrape-peers`) still see each other when their
/// listeners serve TLS and demand basic auth (no open probes): each target is scraped by
/// one of them, not by both.
#[test]
fn ingestors_share_targets_behind_tls_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let web_certs = certs(&tmp.path().join("web-certs"));
    let web = web_config(tmp.path(), &web_certs, "");
    let web_flag = format!("--web.config.file={}", web.display());
    let mut scrape = String::from(
        "global: {scrape_interval: 5s}\nscrape_configs:\n  - job_name: t\n    static_configs:\n",
    );
    for port in 11..21 {
        scrape.push_str(&format!("      - {{targets: ['127.0.0.1:{port}']}}\n"));
    }
    let file = tmp.path().join("scrape.yml");
    std::fs::write(&file, scrape).unwrap();
    let curl = format!("--cacert {}/ca.pem -u {USER}:{PASSWORD}", web_certs.display());
    let cluster = LocalCluster::up_with(
        tmp.path().join("cluster"),
        2,
        &[
            ("SCRAPE_CONFIG", file.to_str().unwrap()),
            ("WEB_FLAGS", web_flag.as_str()),
            ("WEB_SCHEME", "https"),
            ("CURL_FLAGS", &curl),
        ],
    );
    let c = client(&web_certs, None);
    let targets = |i: usize| -> std::collections::BTreeSet<String> {
        let url = format!("https://127.0.0.1:{}/api/v1/targets", cluster.ingest(i));
        let v = data(&c, &url);
        v["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["scrapeUrl"].as_str().unwrap().to_owned())
            .collect()
    };
    let shared = || {
        let (a, b) = (targets(0), targets(1));
        !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.len() + b.len() == 10
    };
    wait_for("the ingestors to share the targets", Duration::from_secs(30), shared);
    // and they keep sharing them: each sees the other alive at every check
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        assert!(shared(), "{:?} / {:?}", targets(0), targets(1));
    }
}
