#!/usr/bin/env bash
# Builds (installing build prerequisites if missing) and starts `strata standalone`.
# Extra arguments go to the binary, e.g. --data-dir /var/lib/strata --http-addr 127.0.0.1:9090.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked -p strata
exec "$CARGO_TARGET_DIR/release/strata" standalone "$@"
