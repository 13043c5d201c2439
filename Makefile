GO ?= go
FUZZTIME ?= 15s
PKGS := ./...

.PHONY: all build test lint fuzz bench bench-quick bench-gate bench-mux bench-docker screenshots clean

all: lint test

build:
	$(GO) build -o bin/sluice ./cmd/sluice
	$(GO) build -o bin/sluice-bench ./cmd/sluice-bench

# -p 1: one package at a time, so the harness's end-to-end gate tests do not
# time tunnels while another package's -race tests load both cores.
test:
	$(GO) test -race -count=1 -p 1 -timeout 30m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

bench:
	SLUICE_BENCH_VIA="make bench" $(GO) run ./cmd/sluice-bench run -preset full -out bench/results.json -report

bench-quick:
	SLUICE_BENCH_VIA="make bench-quick" $(GO) run ./cmd/sluice-bench run -preset quick -out bench/out/quick.json

bench-gate:
	SLUICE_BENCH_VIA="make bench-gate" $(GO) run ./cmd/sluice-bench gate -baseline bench/baseline.json -out bench/out/gate.json

bench-docker:
	bash scripts/bench-docker.sh

bench-mux:
	bash scripts/bench-mux.sh

# The inspector's and the console's screenshots, taken by their browser
# tests in Debian's chromium, into docs/img.
screenshots:
	SLUICE_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run 'TestInspectorInChromium|TestConsoleInChromium' ./agent/inspect/ ./cmd/sluice/

clean:
	rm -rf bin dist
