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

# Fuzzing with cargo-fuzz (libFuzzer) on stable Rust: coverage-guided, without
# a sanitizer (those need nightly); Rust's own checks (bounds, overflow, debug
# assertions) and the target's assertions are what crash. fuzz/ is a workspace
# of its own; its dependencies are fetched by setup, so this never goes online.
# New inputs go to the git-ignored fuzz/corpus-grown/; the committed seeds in
# fuzz/corpus/ are only read. A crash is saved under fuzz/artifacts/ (ignored);
# replay it with `$(FUZZ) $(FUZZ_TARGET) fuzz/artifacts/$(FUZZ_TARGET)/crash-...`.
FUZZ_TARGET := annotate_playlist
FUZZ := CARGO_NET_OFFLINE=true $(TOOLS)/bin/cargo-fuzz run --sanitizer none
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 30
FUZZ_OPTIONS := -timeout=2 -rss_limit_mb=1024 -max_len=65536 -dict=fuzz/$(FUZZ_TARGET).dict -print_final_stats=1
FUZZ_CORPORA := fuzz/corpus-grown/$(FUZZ_TARGET) fuzz/corpus/$(FUZZ_TARGET)

.PHONY: help setup worker assets dev test test-native test-integration test-fuzz fuzz bench bench-annotate load tracker-load cost clean

help:
	@echo "make dev    - set up what is missing, run the local demo (worker + live origin)"
	@echo "make test   - set up what is missing, run every test"
	@echo "make fuzz   - fuzz the playlist annotator for FUZZ_SECONDS (default 300; make test runs it for $(FUZZ_TEST_SECONDS) s)"
	@echo "make bench  - playlist latency, piece length, P2P share and load measurements (prints tables)"
	@echo "make load   - load test only: many viewers polling a live playlist (LOAD_ARGS=--help for options)"
	@echo "make tracker-load - the built-in tracker under hundreds of simulated viewers' WebSockets (TRACKER_LOAD_ARGS=--help)"
	@echo "make cost   - worker operations per viewer-minute, uncached vs micro-cached playlist (COST_ARGS=--help)"

setup:
	@scripts/setup.sh

# The wasm worker; wrangler's [build] command runs this too.
worker: build/index.js

build/index.js: $(RUST_SOURCES)
	$(TOOLS)/bin/worker-build --release
	@touch $@

# Third-party browser bundles are copied from node_modules, never committed.
VENDOR_BUNDLES := public/_lt/vendor/hls.min.js public/_lt/vendor/webtorrent.min.js public/_lt/vendor/bencode.js
assets: $(VENDOR_BUNDLES)

public/_lt/vendor/hls.min.js: node_modules/hls.js/dist/hls.min.js
	@mkdir -p $(@D)
	cp $< $@

public/_lt/vendor/webtorrent.min.js: node_modules/webtorrent/dist/webtorrent.min.js
	@mkdir -p $(@D)
	cp $< $@

# bencode ships no browser bundle: esbuild builds one (an ES module whose
# default export is the package); the mesh exchange reads a segment's
# .torrent with it (mesh-segment.js).
public/_lt/vendor/bencode.js: node_modules/bencode/index.js
	@mkdir -p $(@D)
	$(ESBUILD_BIN) $< --bundle --format=esm --platform=browser --minify --log-level=warning --outfile=$@

dev: setup worker assets
	node scripts/dev.mjs

test: setup worker assets
	$(MAKE) --no-print-directory test-native
	$(MAKE) --no-print-directory test-integration
	$(MAKE) --no-print-directory test-fuzz

test-native:
	cargo test --quiet

test-integration:
	$(LOOPBACK_ONLY) node --test --test-concurrency=1 tests/

# A bounded run: builds the fuzz target (1-1.5 min from clean, seconds after),
# then fuzzes for FUZZ_TEST_SECONDS; fails on a crash, a failed property or an
# input slower than 2 s, and prints that input (also in fuzz/artifacts/).
test-fuzz:
	@mkdir -p fuzz/corpus-grown/$(FUZZ_TARGET)
	$(FUZZ) $(FUZZ_TARGET) $(FUZZ_CORPORA) -- -max_total_time=$(FUZZ_TEST_SECONDS) $(FUZZ_OPTIONS)

fuzz: setup
	@mkdir -p fuzz/corpus-grown/$(FUZZ_TARGET)
	$(FUZZ) $(FUZZ_TARGET) $(FUZZ_CORPORA) -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTIONS)

bench: setup worker assets
	$(LOOPBACK_ONLY) node bench/playlist-latency.mjs
	$(LOOPBACK_ONLY) node bench/hashing.mjs
	$(LOOPBACK_ONLY) node bench/piece-length.mjs
	$(LOOPBACK_ONLY) node bench/p2p-share.mjs
	$(LOOPBACK_ONLY) node bench/memory.mjs
	$(MAKE) --no-print-directory bench-annotate
	$(LOOPBACK_ONLY) node bench/load.mjs
	$(LOOPBACK_ONLY) node bench/tracker-load.mjs $(TRACKER_LOAD_BENCH_ARGS)

# Concurrent playlist requests while live segments appear: latency, 5xx (the
# exit status), upstream fetches per new segment. Options: LOAD_ARGS="..." or
# the environment (see bench/load.mjs).
load: setup worker assets
	$(LOOPBACK_ONLY) node bench/load.mjs $(LOAD_ARGS)

# Simulated viewers (one WebSocket each, the `ws` package) signalling on the
# live feed's segment swarms through the worker's built-in tracker: messages/s,
# relay and announce-reply latency, errors (the exit status), workerd memory
# and CPU. Options: TRACKER_LOAD_ARGS="..." (see bench/tracker-load.mjs), e.g.
# '--viewers 100,300,600 --tracker builtin,npm --json out.json'; the stream
# mesh client (one stream swarm per viewer): '--mode mesh --answer-share 1
# --churn 0.1' (docs/scale.md).
# `make bench` runs three sizes against both trackers, the built-in one with
# and without permessage-deflate (9 runs, about 15 minutes).
TRACKER_LOAD_BENCH_ARGS ?= --viewers 100,300,600 --tracker builtin,npm --deflate on,off
tracker-load: setup worker assets
	$(LOOPBACK_ONLY) node bench/tracker-load.mjs $(TRACKER_LOAD_ARGS)

# Viewers replayed against the live feed; the worker's own counts of
# requests, upstream fetches, KV and Cache API operations per viewer-minute,
# with the playlist micro-cache off (PLAYLIST_CACHE_MS=0) and on.
# docs/scale.md turns them into money (scripts/scale-model.mjs).
cost: setup worker assets
	$(LOOPBACK_ONLY) node bench/cost.mjs $(COST_ARGS)

# Parse + annotate + strip time against playlist size, realistic and
# adversarial shapes; linear time reads as a flat ns/byte column.
bench-annotate:
	cargo run --quiet --release --example annotate_scaling

clean:
	rm -rf build target/wasm32-unknown-unknown public/_lt/vendor
