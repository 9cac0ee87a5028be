//! A real Prometheus 2.42 scrapes itself and remote-writes into `strata standalone`.

use std::time::{Duration, Instant};

use strata_suite::{PROMETHEUS_SELF, Peer, PeerSpec, System, api_data, peer_bin, start_strata};

#[test]
fn prometheus_remote_writes_into_strata() {
    let tmp = tempfile::tempdir().unwrap();
    let strata = start_strata(tmp.path().join("strata"), &[]).unwrap();
    // Prometheus scrapes itself: PROMETHEUS_SELF becomes its address once it listens
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      \
         - targets: ['{PROMETHEUS_SELF}']\nremote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 1s\n",
        strata.write_url()
    );
    let mut spec = PeerSpec::new(
        System::Prometheus,
        peer_bin("PROMETHEUS_BIN", &["prometheus"]).unwrap(),
        tmp.path().join("prom"),
    );
    spec.prometheus_config = Some(config);
    let prom = Peer::start(spec).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let up = api_data(&strata, "/api/v1/series?match[]=up%7Bjob%3D%22prometheus%22%7D").unwrap();
        let build = api_data(&strata, "/api/v1/series?match[]=prometheus_build_info").unwrap();
        if up.as_array().is_some_and(|a| a.len() == 1) && build.as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(up[0]["instance"], prom.base_url.trim_start_matches("http://"));
            let names = api_data(&strata, "/api/v1/label/__name__/values").unwrap();
            assert!(names.as_array().unwrap().len() > 100, "Prometheus exposes hundreds of metrics");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus's series never arrived; log: {}",
            prom.log_path.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(prom);
}
