#!/usr/bin/env python3
"""What moving one large shard costs, on the local cluster (deploy/local/cluster.sh).

Starts a 3-node cluster with one shard (RF 3), fills the shard with about GIB GiB of
random-valued samples (chunks that do not compress) through an ingestor, measures the
write latency on that shard at a fixed rate (steady), then adds a fourth storage node,
lets the placement controller balance, and decommissions a founder holding a replica of
the shard so that the replica moves while the same fixed-rate load runs. Reports the
shard's size, how long the moves took and how many snapshot bytes each node sent and
received, every storage node's peak RSS growth over the moves (VmHWM reset before them,
minus VmRSS then), and write p50/p99 during the moves vs steady.

    python3 scripts/move-bench.py [--gib 2] [--dir /tmp/strata-move] [--keep]

Needs release binaries (cargo build --release -p strata -p strata-bench; or STRATA_BIN and
STRATA_BENCH naming them); ports: storage
gRPC 7301-7304, HTTP 9301-9304, ingestors 8381-8382, queriers 9391-9392.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "target"))
ENV = dict(
    os.environ,
    STRATA_BIN=os.environ.get("STRATA_BIN", os.path.join(TARGET, "release", "strata")),
    SHARDS="1",
    GRPC_PORT_BASE="7300",
    HTTP_PORT_BASE="9300",
    INGEST_PORTS="8381 8382",
    QUERY_PORTS="9391 9392",
)
BENCH = os.environ.get("STRATA_BENCH", os.path.join(TARGET, "release", "strata-bench"))
CLUSTER = os.path.join(HERE, "deploy", "local", "cluster.sh")
SERIES = 20_000
# random values: ~8.3 bytes per sample in chunks, what the shard's size is made of
BYTES_PER_SAMPLE = 8.3


def sh(*args, **kw):
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, env=ENV, check=True, text=True, **kw)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    pat = rf"^{name}(?:_total)?(?:{{[^}}]*}})? (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pat, text, re.M))


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def pids(d):
    out = {}
    for f in os.listdir(os.path.join(d, "run")):
        if f.startswith("storage-"):
            out[f[: -len(".pid")]] = int(open(os.path.join(d, "run", f)).read())
    return out


def load(url, first_host, hosts, hours, rate, random_values=True):
    """strata-bench load; returns its summary line."""
    args = [BENCH, "load", "--url", url, "--hosts", str(hosts), "--hours", f"{hours:.4f}",
            "--first-host", str(first_host), "--churn", "0"]
    if rate:
        args += ["--rate", str(rate), "--concurrency", "1", "--batch", "500"]
    if random_values:
        args.append("--random-values")
    r = sh(*args, capture_output=True)
    return r.stdout.strip()


def latencies(summary):
    m = re.search(r"p50 ([\d.]+) ms p99 ([\d.]+) ms", summary)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--dir", default="/tmp/strata-move")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    ap.add_argument("--fill-only", action="store_true", help="stop after filling (the cluster keeps running)")
    ap.add_argument("--measure-only", action="store_true", help="measure on the filled cluster in --dir")
    a = ap.parse_args()
    d = a.dir
    ingest = "http://127.0.0.1:8381/api/v1/write"
    querier = "http://127.0.0.1:9391"
    fill_secs = None
    if not a.measure_only:
        subprocess.run(["bash", CLUSTER, "down", d], env=ENV, capture_output=True)
        subprocess.run(["rm", "-rf", d])
        sh("bash", CLUSTER, "up", d)
    try:
        if not a.measure_only:
            hours = a.gib * (1 << 30) / BYTES_PER_SAMPLE / SERIES / 240
            t = time.time()
            print(load(ingest, 0, SERIES // 1000, hours, 0), flush=True)
            fill_secs = time.time() - t
            time.sleep(10)
        sizes = {n: du(os.path.join(d, n)) for n in ("storage-1", "storage-2", "storage-3")}
        print(f"filled in {fill_secs} s; data dirs {sizes}", flush=True)
        if a.fill_only:
            a.keep = True
            return
        # steady: 60 s at 1,000 samples/s on series of their own
        # the latency loads write series of their own (hosts numbered from the clock: a
        # series written before cannot take older samples)
        base = int(time.time()) * 100
        steady = load(ingest, base, 2, 0.125, 1000, False)
        print("steady:", steady, flush=True)
        sh("bash", CLUSTER, "add", d)
        ps = pids(d)
        before_rss = {n: status_kb(p, "VmRSS") for n, p in ps.items()}
        for p in ps.values():
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        port = {n: 9300 + int(n.split("-")[1]) for n in ps}
        sent0 = {n: metric(port[n], "strata_snapshot_sent_bytes") for n in ps}
        recv0 = {n: metric(port[n], "strata_snapshot_received_bytes") for n in ps}
        # peaks and snapshot bytes as last seen (a decommissioned node is stopped at the end)
        seen = {n: {} for n in ps}

        def watch():
            while moving.is_set():
                for n, p in ps.items():
                    try:
                        rss = status_kb(p, "VmRSS")
                        seen[n]["hwm_kb"] = status_kb(p, "VmHWM")
                        seen[n]["sent"] = metric(port[n], "strata_snapshot_sent_bytes") - sent0[n]
                        seen[n]["received"] = metric(port[n], "strata_snapshot_received_bytes") - recv0[n]
                        # the largest RSS while a snapshot streams in or out of the node
                        if metric(port[n], "strata_snapshots_in_flight") > 0:
                            seen[n]["transfer_rss_kb"] = max(seen[n].get("transfer_rss_kb", 0), rss)
                    except (OSError, ValueError) as e:
                        seen[n].setdefault("errors", str(e))
                time.sleep(0.5)

        # the moves run while a fixed-rate load writes to the shard
        during = {}
        moving = threading.Event()
        moving.set()

        def writer():
            k = 0
            while moving.is_set():
                during.setdefault("runs", []).append(load(ingest, base + 10 * (k + 1), 2, 0.125, 1000, False))
                k += 1

        w = threading.Thread(target=writer)
        w.start()
        watcher = threading.Thread(target=watch)
        watcher.start()
        t0 = time.time()
        # the controller balances onto storage-4 by itself; wait until nothing moves
        def settle():
            while True:
                s = get_json(f"{querier}/api/v1/cluster/status")["data"]
                if not s["moves"]:
                    return s
                time.sleep(1)

        time.sleep(5)
        s = settle()
        balanced_secs = time.time() - t0
        names = {n["id"]: n["name"] for n in s["nodes"]}
        shard = next(x for x in s["shards"] if x["id"] == 0)
        victim = next(names[v] for v in shard["voters"] if names[v] in ("storage-1", "storage-2", "storage-3"))
        t1 = time.time()
        sh("bash", CLUSTER, "decommission", d, victim.split("-")[1])
        decom_secs = time.time() - t1
        moving.clear()
        w.join()
        watcher.join()
        report = {"shard_bytes_per_replica": sizes, "fill_secs": fill_secs,
                  "balance_onto_storage_4_secs": balanced_secs,
                  "decommissioned": victim, "decommission_secs": decom_secs, "nodes": {}}
        for n in ps:
            report["nodes"][n] = {
                "rss_before_mib": before_rss[n] / 1024,
                "peak_rss_growth_mib": (seen[n].get("hwm_kb", 0) - before_rss[n]) / 1024,
                "rss_growth_while_streaming_mib": (seen[n]["transfer_rss_kb"] - before_rss[n]) / 1024
                if "transfer_rss_kb" in seen[n]
                else None,
                "errors": seen[n].get("errors"),
                "snapshot_sent_bytes": seen[n].get("sent"),
                "snapshot_received_bytes": seen[n].get("received"),
            }
        report["steady_write_p50_p99_ms"] = latencies(steady)
        report["during_moves_write_p50_p99_ms"] = [latencies(x) for x in during.get("runs", [])]
        print(json.dumps(report, indent=2), flush=True)
    finally:
        if not a.keep:
            subprocess.run(["bash", CLUSTER, "down", d], env=ENV)


if __name__ == "__main__":
    sys.exit(main())
