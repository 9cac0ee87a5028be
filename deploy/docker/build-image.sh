#!/usr/bin/env bash
# Builds the Strata container image on this machine without pulling anything: a release
# build of the binary, then an image FROM scratch holding it and exactly the shared
# libraries it links (found with ldd), running as uid 65532.
#   deploy/docker/build-image.sh [TAG]      (default strata:local)
# STRATA_BIN=path uses an existing binary instead of building one.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tag=${1:-strata:local}
cd "$here"
if [ -n "${STRATA_BIN:-}" ]; then
  bin=$STRATA_BIN
else
  bash scripts/setup.sh >&2
  source scripts/env.sh >/dev/null
  cargo build --release --locked -p strata >&2
  bin="${CARGO_TARGET_DIR:-$here/target}/release/strata"
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/data" "$ctx/tmp"
cp "$bin" "$ctx/rootfs/usr/local/bin/strata"
strip "$ctx/rootfs/usr/local/bin/strata" 2>/dev/null || true
# every library the binary loads, and the dynamic loader, at the paths it expects
ldd "$bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nstrata:x:65532:65532:strata:/data:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nstrata:x:65532:\n' >"$ctx/rootfs/etc/group"
printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
cp deploy/docker/Dockerfile.scratch "$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
