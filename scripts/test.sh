#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the build and the tests need
# (clang/libclang for RocksDB; Prometheus, VictoriaMetrics and node_exporter as peers), validates the Helm
# chart, checks formatting and lints, builds once, and runs every test with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP_PEERS=1 bash scripts/setup.sh
source scripts/env.sh
echo "target dir: $CARGO_TARGET_DIR; rustc wrapper: ${RUSTC_WRAPPER:-none}" >&2

# the Helm chart: helm lint + strict schema validation of the rendered manifests
bash deploy/helm/validate.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# One build of every target (the strata binary included) with one feature set;
# nextest then reuses it.
cargo build --workspace --all-targets --locked
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --locked --no-fail-fast "$@"
