#!/usr/bin/env python3
"""Instant-query latency of a Prometheus-compatible API, query by query (p50 and p90).

Asks each query of a fixed node_exporter-shaped set REPS times over one keep-alive
connection, at one evaluation time, and prints the median and 90th percentile of the
whole request as the client sees it, then the median over all of them. Used to compare a
cluster's querier with a standalone node on the same data (docs/benchmarks.md): load both
with `strata-bench load --hosts 20 --hours 1`, then pass the time of the last sample.

    python3 scripts/query-latency.py HOST PORT [REPS=200] [TIME=now, unix seconds]
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse

QUERIES = [
    "up",
    "node_load1",
    'sum(rate(node_cpu_seconds_total{mode!="idle"}[3m])) by (instance)',
    'count(node_cpu_seconds_total{mode="system"}) by (instance)',
    "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    "max(node_filesystem_size_bytes) by (instance)",
]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    at = float(sys.argv[4]) if len(sys.argv) > 4 else time.time()
    conn = http.client.HTTPConnection(host, port)
    every = []
    for q in QUERIES:
        took = []
        series = 0
        for _ in range(reps):
            path = "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": at})
            t = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            took.append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                sys.exit(f"{q}: HTTP {r.status}: {body[:200]!r}")
            series = len(json.loads(body)["data"]["result"])
        took.sort()
        every += took
        p90 = took[int(len(took) * 0.9)]
        print(f"{statistics.median(took):7.3f} ms p50 {p90:7.3f} ms p90  {series:4} series  {q}")
    print(f"all: p50 {statistics.median(every):.3f} ms")


if __name__ == "__main__":
    main()
