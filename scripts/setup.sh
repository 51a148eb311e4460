#!/usr/bin/env bash
# Installs whatever the build and the tests need and is not there yet.
# Idempotent: every step checks first, so a second run does no network I/O
# and works offline (e.g. inside `unshare -n`).
#
# Tools are cached in .tools/ (git-ignored). Versions are pinned here and must
# match Cargo.lock (wasm-bindgen) and worker's own expectations (worker-build).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
# `make test-fuzz` / `make fuzz`; the fuzz crate pins libfuzzer-sys itself.
CARGO_FUZZ_VERSION=0.13.2
# Must equal the wasm-bindgen version in Cargo.lock; checked below.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
TOOLS_DIR=${LT_TOOLS_DIR:-$PWD/.tools}
APT_PACKAGES=(ffmpeg chromium)

log() { printf '[setup] %s\n' "$*" >&2; }

have_version() { # binary, expected version string
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF "$2"
}

# --- Rust target ----------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# --- cargo-installed tools ------------------------------------------------
install_crate() { # crate version binary [extra cargo install flags]
  local crate=$1 version=$2 bin=$3 found
  shift 3
  if have_version "$TOOLS_DIR/bin/$bin" "$version"; then return; fi
  mkdir -p "$TOOLS_DIR/bin"
  # Reuse a matching binary already on PATH instead of rebuilding it.
  if found=$(command -v "$bin") && have_version "$found" "$version"; then
    log "using $found for $bin $version"
    ln -sf "$found" "$TOOLS_DIR/bin/$bin"
    return
  fi
  log "cargo install $crate $version (several minutes, once)"
  # wasm-bindgen-cli does not install with --locked (see README, Build).
  cargo install --quiet --root "$TOOLS_DIR" "$@" "$crate" --version "=$version"
}
install_crate worker-build "$WORKER_BUILD_VERSION" worker-build
install_crate wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
install_crate cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz --locked

# --- fuzz crate dependencies (fuzz/ is a workspace of its own) -------------
# Fetched now so that building the fuzz target never needs the network.
if ! cargo fetch --quiet --offline --manifest-path fuzz/Cargo.toml 2>/dev/null; then
  log "cargo fetch (fuzz crate)"
  cargo fetch --quiet --manifest-path fuzz/Cargo.toml
fi

# --- Debian packages (ffmpeg for the local origin, chromium for browser tests)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- npm packages -----------------------------------------------------------
# --ignore-scripts: webtorrent's ip-set and bittorrent-tracker's node-datachannel
# run install scripts that cannot work here and are not needed (see README).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
log "ready"
