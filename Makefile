# live-torrent: `make dev` runs the local demo, `make test` runs every test.
# Both install whatever is missing first (scripts/setup.sh) and work offline
# once it is installed.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS := $(CURDIR)/.tools
# worker-build would download these from GitHub; we bring our own.
export WASM_BINDGEN_BIN := $(TOOLS)/bin/wasm-bindgen
export WASM_OPT_BIN := $(CURDIR)/node_modules/.bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/node_modules/.bin/esbuild
export CLOUDFLARE_CF_FETCH_ENABLED := false
export WRANGLER_SEND_METRICS := false

RUST_SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock
# Runs a command with loopback as the only network: nothing can leave the machine.
LOOPBACK_ONLY := unshare -n sh -c 'ip link set lo up && exec "$$0" "$$@"'

.PHONY: help setup worker assets dev test test-native test-integration bench clean

help:
	@echo "make dev    - set up what is missing, run the local demo (worker + live origin)"
	@echo "make test   - set up what is missing, run every test"
	@echo "make bench  - playlist latency, piece length and P2P share measurements (prints tables)"

setup:
	@scripts/setup.sh

# The wasm worker; wrangler's [build] command runs this too.
worker: build/index.js

build/index.js: $(RUST_SOURCES)
	$(TOOLS)/bin/worker-build --release
	@touch $@

# Third-party browser bundles are copied from node_modules, never committed.
VENDOR_BUNDLES := public/_lt/vendor/hls.min.js public/_lt/vendor/webtorrent.min.js
assets: $(VENDOR_BUNDLES)

public/_lt/vendor/hls.min.js: node_modules/hls.js/dist/hls.min.js
	@mkdir -p $(@D)
	cp $< $@

public/_lt/vendor/webtorrent.min.js: node_modules/webtorrent/dist/webtorrent.min.js
	@mkdir -p $(@D)
	cp $< $@

dev: setup worker assets
	node scripts/dev.mjs

test: setup worker assets
	$(MAKE) --no-print-directory test-native
	$(MAKE) --no-print-directory test-integration

test-native:
	cargo test --quiet

test-integration:
	$(LOOPBACK_ONLY) node --test --test-concurrency=1 tests/

bench: setup worker assets
	$(LOOPBACK_ONLY) node bench/playlist-latency.mjs
	$(LOOPBACK_ONLY) node bench/piece-length.mjs
	$(LOOPBACK_ONLY) node bench/p2p-share.mjs

clean:
	rm -rf build target/wasm32-unknown-unknown public/_lt/vendor
