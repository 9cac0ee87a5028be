#!/usr/bin/env bash
# The benchmark suite in one command: installs what is missing (clang for RocksDB, Debian's
# prometheus and victoria-metrics, matplotlib for the plots), builds release binaries, runs
# `strata-bench run` against Strata standalone, Prometheus 2.42 and VictoriaMetrics 1.79 one
# at a time on fresh data directories, and writes docs/benchmarks/results.json and PNG plots.
# Extra arguments go to `strata-bench run` (e.g. --hosts 10 --hours 1 for a quick run);
# BENCH_OUT=dir writes the results and plots there instead of docs/benchmarks.
# Interrupting it (Ctrl-C) stops every server it started.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
SETUP_PEERS=1 bash scripts/setup.sh
source scripts/env.sh
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet --break-system-packages matplotlib 2>/dev/null \
    || python3 -m pip install --quiet matplotlib
cargo build --release -p strata -p strata-bench
shared="${STRATA_SHARED:-$here/../shared}"
out="${BENCH_OUT:-$here/docs/benchmarks}"
mkdir -p "$out"
"${CARGO_TARGET_DIR:-$here/target}/release/strata-bench" run \
    --dashboards "$shared/workloads/dashboards" --rules "$shared/workloads/rules" \
    --out "$out/results.json" "$@"
python3 scripts/plot-benchmarks.py "$out/results.json" "$out"
echo "results: $out/results.json, plots: $out/*.png"
