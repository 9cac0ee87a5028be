//! The binary's command line, config file and shutdown.

use std::process::Command;
use std::time::Duration;

use strata_bench::client::RemoteWriter;
use strata_bench::fleet::{Fleet, FleetConfig, encode};
use strata_suite::{api_data, start_strata, strata_bin};

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
}

#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = start_strata(dir.clone(), &[]).unwrap();
    let mut fleet =
        Fleet::new(FleetConfig { hosts: 2, series_per_host: 50, churn: 0.0, ..FleetConfig::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ack = RemoteWriter::new(s.write_url()).unwrap().send(encode(fleet.scrape(now)));
    assert_eq!(ack.status, 204, "{}", ack.message);
    s.stop(Duration::from_secs(30)).unwrap();
    let s = start_strata(dir, &[]).unwrap();
    let names = api_data(&s, "/api/v1/label/instance/values").unwrap();
    assert_eq!(names, serde_json::json!(["host-0:9100", "host-1:9100"]));
}
