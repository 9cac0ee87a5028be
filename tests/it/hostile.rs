//! Hostile clients against the real binary, for the listener and the internal port: a
//! standalone node opens no port but its HTTP API; connections that never finish their
//! headers cannot starve the others; a storage node refuses to run its gRPC port without
//! mutual TLS unless told `--grpc-insecure`, refuses callers without a cluster certificate,
//! and even plaintext refuses Raft messages from nodes that are no members.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_proto::cluster::RaftMessage;
use strata_proto::cluster::raft_client::RaftClient;
use strata_suite::{lease_ports, start_strata, strata_bin, wait_listening, wait_ready};

/// The inodes of the TCP sockets process `pid` listens on (from `/proc`).
fn listening_sockets(pid: u32) -> Vec<String> {
    let mut listening = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                listening.insert((f[9].to_string(), f[1].to_string()));
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds");
    let inodes: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    listening.into_iter().filter(|(inode, _)| inodes.contains(inode)).map(|(_, addr)| addr).collect()
}

#[test]
fn standalone_opens_no_port_but_its_http_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let strata = start_strata(tmp.path().join("data"), &[]).expect("start");
    let pid = strata.pid().expect("pid");
    let port = strata.base_url.rsplit(':').next().expect("port").to_string();
    let sockets = listening_sockets(pid);
    // /proc/net/tcp writes the port in hex after the address
    let http = format!(":{:04X}", port.parse::<u16>().expect("port"));
    assert_eq!(sockets.len(), 1, "listening on {sockets:?}");
    assert!(sockets[0].ends_with(&http), "{sockets:?} is not the HTTP port {port}");
}

#[test]
fn connections_that_never_finish_their_headers_cannot_starve_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let strata = start_strata(
        tmp.path().join("data"),
        &["--web.max-connections", "32", "--web.header-read-timeout", "2s"],
    )
    .expect("start");
    let addr = strata.base_url.trim_start_matches("http://").to_string();
    // 400 connections that send half a request line and then nothing
    let mut idle: Vec<TcpStream> = (0..400)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&addr).ok()?;
            let _ = s.write_all(b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    assert!(idle.len() >= 100, "only {} connections opened", idle.len());
    // a well-behaved client is served within the header deadline plus a little
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let t = Instant::now();
    let r = http.get(format!("{}/-/healthy", strata.base_url)).send().expect("healthy answered");
    assert!(r.status().is_success());
    assert!(t.elapsed() < Duration::from_secs(15), "healthy took {:?}", t.elapsed());
    let open = strata_suite::metric_value(&http, &strata.base_url, "strata_http_open_connections");
    assert!(open <= 32.0, "{open} connections open, over the cap of 32");
    let cap =
        strata_suite::metric_value(&http, &strata.base_url, "strata_limit{name=\"web_max_connections\"}");
    assert_eq!(cap, 32.0);
    idle.clear();
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `strata storage` node 1 of a one-node cluster on `grpc` (its `--peers` names the port,
/// so it is leased, not the OS's choice), its HTTP API on a port of the OS's choosing, with
/// extra flags.
fn storage(dir: &std::path::Path, grpc: u16, extra: &[String]) -> Command {
    let mut c = Command::new(strata_bin().expect("strata"));
    c.args(["storage", "--node-id", "1", "--bootstrap", "--shards", "2", "--replication-factor", "1"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--peers", &format!("1=127.0.0.1:{grpc}")])
        .args(["--http-addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// The HTTP port of a storage node: the port it listens on that is not its gRPC port.
fn http_port(node: &Killed, grpc: u16) -> u16 {
    let ports = wait_listening(node.0.id(), 2, Duration::from_secs(60)).expect("the node listens");
    ports.into_iter().find(|p| *p != grpc).expect("an HTTP port")
}

/// Sends a Raft message for group 0 from `from` over plaintext gRPC.
fn forged_raft(grpc: u16, from: u64) -> Result<(), tonic::Status> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let ep =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}")).expect("endpoint");
        let ch = ep.connect().await.map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
        let msg = RaftMessage { group: 0, kind: 1, payload: vec![0; 80], from };
        RaftClient::new(ch).call(msg).await.map(|_| ())
    })
}

#[test]
fn storage_nodes_refuse_plaintext_and_strangers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lease = lease_ports(1).expect("port").remove(0);
    let grpc = lease.port;
    // without TLS files and without --grpc-insecure it does not start
    let out = storage(&tmp.path().join("d0"), grpc, &[]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster gRPC needs mutual TLS"), "{err}");

    // with the cluster's certificates: plaintext callers get nowhere
    let certs = tmp.path().join("certs");
    let made = Command::new(strata_bin().expect("strata"))
        .args(["certs", "--out"])
        .arg(&certs)
        .output()
        .expect("certs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls = strata_bench::peers::tls_args(&certs);
    let _node = Killed(storage(&tmp.path().join("d1"), grpc, &tls).spawn().expect("spawn"));
    let http = http_port(&_node, grpc);
    wait_ready(&format!("http://127.0.0.1:{http}"), Duration::from_secs(60));
    let e = forged_raft(grpc, 1).expect_err("a plaintext Raft message is refused");
    assert_ne!(e.code(), tonic::Code::Ok);
    drop(_node);

    // with --grpc-insecure (said loudly), a non-member's Raft message is still refused
    let lease = lease_ports(1).expect("port").remove(0);
    let grpc = lease.port;
    let mut child = storage(&tmp.path().join("d2"), grpc, &["--grpc-insecure".to_string()]);
    let node = Killed(child.stderr(Stdio::null()).spawn().expect("spawn"));
    let http = http_port(&node, grpc);
    wait_ready(&format!("http://127.0.0.1:{http}"), Duration::from_secs(60));
    let e = forged_raft(grpc, 99).expect_err("a non-member's message is refused");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(
        reqwest::blocking::get(format!("http://127.0.0.1:{http}/-/healthy"))
            .is_ok_and(|r| r.status().is_success())
    );
    drop(node);
}

/// A tmpfs of `mb` MiB mounted at a fresh directory, unmounted when dropped.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    /// None (with the reason printed) where mounting is refused.
    fn mount(dir: &std::path::Path, mb: u32) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            println!("SKIPPED: cannot mount a tmpfs here: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(SmallFs(dir.to_path_buf()))
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df").args(["-B1", "--output=avail"]).arg(&self.0).output().expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// How many `job="node"` series have their newest sample exactly at `t` (ms).
fn series_at(base: &str, t: i64) -> usize {
    // the window (t − 1 ms, t] holds exactly the sample at t
    let q = "count(last_over_time({job=\"node\"}[1ms]))";
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", q), ("time", &(t as f64 / 1000.0).to_string())])
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"][0]["value"][1].as_str().map_or(0, |s| s.parse().expect("count"))
}

/// How many distinct label sets `series` has (the generator may repeat one).
fn distinct_series(series: &[strata_proto::prometheus::TimeSeries]) -> usize {
    let sets: std::collections::BTreeSet<Vec<(&str, &str)>> = series
        .iter()
        .map(|s| s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect())
        .collect();
    sets.len()
}

#[test]
fn a_full_disk_stops_acknowledging_keeps_serving_reads_and_resumes_when_freed() {
    use strata_bench::client::RemoteWriter;
    use strata_bench::fleet::{Fleet, FleetConfig, encode_requests};
    const SERIES: usize = 2000;
    let tmp = tempfile::tempdir().expect("tempdir");
    // big enough that, once the filler is gone, RocksDB sees the free space it wants before
    // it clears a no-space error (its write buffer reservation, 64 MiB; checked every 5 s)
    let Some(fs) = SmallFs::mount(&tmp.path().join("data"), 192) else { return };
    // the node's own free-space guard off: the writes run into the real ENOSPC (its log,
    // data.log, is beside the small filesystem)
    let mut strata = start_strata(fs.0.clone(), &["--storage.min-free-bytes", "0"]).expect("start");
    let writer = RemoteWriter::new(strata.write_url()).expect("writer");
    // leave ~6 MiB free
    let filler = fs.0.join("filler");
    let fill = fs.free_bytes().saturating_sub(6 << 20);
    std::fs::write(&filler, vec![1u8; fill as usize]).expect("filler");
    let mut fleet = Fleet::new(FleetConfig::steady(1, SERIES, 3));
    let now = strata_bench::now_ms();
    let start = now - 3 * 3_600_000;
    let mut acked = Vec::new();
    let mut round = 0i64;
    let mut refused = None;
    let mut distinct = 0;
    let mut stored = 0;
    while round < 2000 && refused.is_none() {
        let series = fleet.scrape(start + round * 15_000);
        let t = series[0].samples[0].timestamp;
        distinct = distinct_series(&series);
        let bodies = encode_requests(series, SERIES);
        let ack = writer.send(bodies.into_iter().next().expect("one body"));
        match ack.status {
            204 | 200 => {
                if acked.is_empty() {
                    // the series one request stores (label sets equal once empty values are
                    // dropped are one series), read back before the disk fills
                    stored = series_at(&strata.base_url, t);
                    assert!(stored * 10 >= distinct * 7, "{stored} of {distinct} series stored");
                }
                acked.push(t)
            }
            503 => refused = Some(ack.message),
            s => panic!(
                "round {round}: {s} {}; log: {}",
                ack.message,
                std::fs::read_to_string(&strata.log_path).unwrap_or_default()
            ),
        }
        round += 1;
    }
    let message = refused.unwrap_or_else(|| {
        panic!("the disk never filled: {} writes acknowledged, {} bytes free", acked.len(), fs.free_bytes())
    });
    assert!(message.contains("No space left on device"), "{message}");
    assert!(acked.len() > 5, "only {} writes acknowledged before the disk filled", acked.len());
    // reads keep working, and every acknowledged sample is there
    let log = || -> String {
        let text = std::fs::read_to_string(&strata.log_path).unwrap_or_default();
        text.lines().filter(|l| !l.contains("remote write failed")).collect::<Vec<_>>().join("\n")
    };
    for &t in &acked {
        assert_eq!(
            series_at(&strata.base_url, t),
            stored,
            "acknowledged samples at {t} missing; log:\n{}",
            log()
        );
    }
    // writes stay refused while the disk is full
    let series = fleet.scrape(start + round * 15_000);
    assert_eq!(writer.send(encode_requests(series, SERIES).remove(0)).status, 503);
    round += 1;
    // space freed: writes resume without a restart
    std::fs::remove_file(&filler).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let series = fleet.scrape(start + round * 15_000);
        let t = series[0].samples[0].timestamp;
        round += 1;
        let ack = writer.send(encode_requests(series, SERIES).remove(0));
        if ack.status == 204 || ack.status == 200 {
            acked.push(t);
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {} {}", ack.status, ack.message);
        std::thread::sleep(Duration::from_millis(500));
    }
    // and nothing acknowledged is lost across a crash
    strata.kill9();
    let strata = start_strata(fs.0.clone(), &["--storage.min-free-bytes", "0"]).expect("restart");
    for &t in &acked {
        assert_eq!(
            series_at(&strata.base_url, t),
            distinct,
            "acknowledged samples at {t} missing after restart"
        );
    }
}

/// Hostile writes against the real binary: samples ten years ahead are refused one by one
/// and cannot stop later writes; a body of millions of empty series costs memory in
/// proportion to its size; labels over the limits are refused with Mimir's words; the
/// node stays up and everything acknowledged is there after a restart.
#[test]
fn hostile_writes_are_refused_without_harming_the_node() {
    use strata_bench::client::RemoteWriter;
    use strata_bench::fleet::encode;
    use strata_proto::prometheus::{Label, Sample, TimeSeries};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut strata = start_strata(dir.clone(), &[]).expect("start");
    let writer = RemoteWriter::new(strata.write_url()).expect("writer");
    let now = strata_bench::now_ms();
    let series = |name: &str, i: usize, t: i64| TimeSeries {
        labels: vec![
            Label { name: "__name__".into(), value: name.into() },
            Label { name: "i".into(), value: i.to_string() },
        ],
        samples: vec![Sample { value: 1.0, timestamp: t }],
        ..TimeSeries::default()
    };
    // 64 samples ten years ahead, beside a good series
    let mut batch: Vec<TimeSeries> =
        (0..64).map(|i| series("future", i, now + 10 * 365 * 86_400_000)).collect();
    batch.push(series("good", 0, now - 60_000));
    let ack = writer.send(encode(batch));
    assert_eq!(ack.status, 400, "{}", ack.message);
    assert!(ack.message.contains("err-mimir-too-far-in-future"), "{}", ack.message);
    // later normal writes to every shard still succeed
    let ack = writer.send(encode((0..64).map(|i| series("good", i, now - 30_000)).collect()));
    assert_eq!(ack.status, 204, "{}", ack.message);
    // a label value over 2048 bytes
    let mut long = series("long", 0, now - 30_000);
    long.labels[1].value = "x".repeat(3000);
    let ack = writer.send(encode(vec![long]));
    assert_eq!(ack.status, 400, "{}", ack.message);
    assert!(ack.message.contains("err-mimir-label-value-too-long"), "{}", ack.message);
    // 16 MiB of empty series (8.4 M of them, 0.8 MB compressed)
    let raw: Vec<u8> = [0x0a, 0x00].repeat(8 << 20);
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let pid = strata.pid().expect("pid");
    let ack = writer.send(body);
    assert_eq!(ack.status, 400, "{}", ack.message);
    assert!(ack.message.contains("series"), "{}", ack.message);
    // one series of 8.4 M empty samples (16 MiB): 2 bytes each on the wire, 16 in a record
    let label = [0x0a, 0x0d, 0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 0x01, b'e'];
    let mut inner = label.to_vec();
    inner.extend([0x12, 0x00].repeat(8 << 20));
    let mut raw = vec![0x0a];
    let mut len = inner.len();
    while len >= 0x80 {
        raw.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    raw.push(len as u8);
    raw.extend(inner);
    let ack = writer.send(snap::raw::Encoder::new().compress_vec(&raw).expect("snappy"));
    assert_eq!(ack.status, 400, "{}", ack.message);
    assert!(ack.message.contains("fewer than 4 bytes per sample"), "{}", ack.message);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    println!("peak RSS after the empty-series and empty-samples bodies: {} MiB", peak_kb >> 10);
    assert!(peak_kb < 512 << 10, "peak RSS {} MiB", peak_kb >> 10);
    // up, and everything acknowledged is there, also after a crash
    let count = |p: &strata_suite::Peer| {
        strata_suite::api_data(p, "/api/v1/series?match[]=good")
            .expect("series")
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count(&strata), 64);
    strata.kill9();
    let strata = start_strata(dir, &[]).expect("restart");
    assert_eq!(count(&strata), 64);
    assert_eq!(
        strata_suite::api_data(&strata, "/api/v1/series?match[]=future")
            .expect("series")
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}
