//! The binary's command line, config file and shutdown.

use std::process::Command;
use std::time::Duration;

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode};
use strata_suite::{api_data, bench_bin, pids_mentioning, start_strata, strata_bin};

#[test]
fn bad_config_is_rejected_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("strata.yaml");
    std::fs::write(&cfg, "data_dir: x\nretension_time: 30d\n").unwrap();
    let out =
        Command::new(strata_bin().unwrap()).args(["standalone", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `retension_time`"), "{err}");
    let out =
        Command::new(strata_bin().unwrap()).args(["standalone", "--retention-time", "1x"]).output().unwrap();
    assert!(!out.status.success());
    // an ingestor stamps no sample: the flag only storage nodes apply is refused, not
    // silently ignored
    let out = Command::new(strata_bin().unwrap())
        .args([
            "ingestor",
            "--storage",
            "127.0.0.1:1",
            "--grpc-insecure",
            "--http-addr",
            "127.0.0.1:0",
            "--ingest.max-future=1m",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is applied by storage nodes"), "{err}");
}

#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = start_strata(dir.clone(), &[]).unwrap();
    let mut fleet =
        Fleet::new(FleetConfig { hosts: 2, series_per_host: 50, churn: 0.0, ..FleetConfig::default() });
    let now = strata_bench::now_ms();
    let ack = RemoteWriter::new(s.write_url()).unwrap().send(encode(fleet.scrape(now)));
    assert_eq!(ack.status, 204, "{}", ack.message);
    s.stop(Duration::from_secs(30)).unwrap();
    let s = start_strata(dir, &[]).unwrap();
    let names = api_data(&s, "/api/v1/label/instance/values").unwrap();
    assert_eq!(names, serde_json::json!(["host-0:9100", "host-1:9100"]));
}

#[test]
fn bench_refuses_bad_arguments_with_a_reason() {
    let bench = bench_bin().unwrap();
    for (args, reason) in [
        (vec!["run", "--hosts", "0"], "--hosts"),
        (vec!["run", "--churn", "2"], "--churn"),
        (vec!["run", "--hours", "1", "--fixed-minutes", "90"], "--fixed-minutes"),
        (vec!["run", "--systems", "mysql"], "unknown system"),
        (vec!["load", "--url", "http://127.0.0.1:1/api/v1/write", "--rate=-5"], "--rate"),
    ] {
        let out = Command::new(&bench).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

#[test]
fn interrupted_bench_leaves_no_server_running() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("bench");
    let shared = strata_suite::shared_dir();
    let mut child = Command::new(bench_bin().unwrap())
        .args(["run", "--systems", "strata", "--hosts", "1", "--series-per-host", "50", "--hours", "1"])
        .args(["--fixed-minutes", "50", "--fixed-rate", "20"])
        .arg("--strata-bin")
        .arg(strata_bin().unwrap())
        .arg("--work-dir")
        .arg(&work)
        .arg("--dashboards")
        .arg(shared.join("workloads/dashboards"))
        .arg("--rules")
        .arg(shared.join("workloads/rules"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let needle = work.display().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // wait until the server under test runs (its command line names the work directory)
    while pids_mentioning(&needle).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the server never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let st = child.wait().unwrap();
    assert!(!st.success(), "interrupted run should exit non-zero");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pids_mentioning(&needle), Vec::<u32>::new(), "servers left running after Ctrl-C");
}
