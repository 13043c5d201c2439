GO ?= go
FUZZTIME ?= 15s
PKGS := ./...

.PHONY: all build test lint cross release release-check image fuzz bench bench-quick bench-gate bench-mux bench-docker screenshots clean

all: lint test

# The build's stamp (see internal/buildinfo), from git unless given, e.g.
# `make release VERSION=v1.2.3`: the tag (v1.2.3, or v1.2.3-4-gabc1234 after
# it), else a Go pseudo-version of the commit (v0.0.0-20260102150405-abcdef012345).
# Without git (a source archive) they stay empty and sluice says
# "devel (commit unknown)".
GIT := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo git)
VERSION ?= $(if $(GIT),$(shell git describe --tags --match 'v[0-9]*' 2>/dev/null || TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=v0.0.0-%cd-%H | cut -c1-34))
REVISION ?= $(if $(GIT),$(shell git rev-parse HEAD))
MODIFIED ?= $(if $(GIT),$(shell test -z "$$(git status --porcelain)" && echo false || echo true))
SOURCE_DATE_EPOCH ?= $(if $(GIT),$(shell git log -1 --format=%ct))
BUILDINFO := github.com/sluicehq/sluice/internal/buildinfo
LDFLAGS := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION) -X $(BUILDINFO).modified=$(MODIFIED)

RELEASE_TARGETS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
DIST ?= dist

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sluice ./cmd/sluice
	$(GO) build -o bin/sluice-bench ./cmd/sluice-bench

# -p 1: one package at a time, so the harness's end-to-end gate tests do not
# time tunnels while another package's -race tests load both cores.
test:
	$(GO) test -race -count=1 -p 1 -timeout 30m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Every release target builds (with the release's flags, so `make release`
# finds them compiled) and vets; the Linux fast paths have portable
# fallbacks beside them, chosen by build tag.
cross:
	@set -e; for t in $(RELEASE_TARGETS); do \
		echo "cross: build $$t"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -trimpath -o /dev/null ./cmd/sluice; \
	done; \
	for t in windows/amd64 darwin/arm64; do \
		echo "cross: vet $$t"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet -trimpath $(PKGS); \
	done

# Archives for every target and SHA256SUMS in $(DIST); the same commit gives
# the same bytes.
release:
	@if [ "$(MODIFIED)" = true ]; then echo "release: the tree has uncommitted changes: the binaries will say modified (commit first for a release others can reproduce)"; fi
	$(GO) run ./scripts/release -go $(GO) -out $(DIST) -version "$(VERSION)" -ldflags "$(LDFLAGS)" -epoch "$(SOURCE_DATE_EPOCH)" -targets "$(RELEASE_TARGETS)"

# The edge image from the pinned multi-stage Dockerfile (needs a registry
# that serves its golang base image), stamped like `make build`.
image:
	docker build --build-arg SLUICE_VERSION=$(VERSION) --build-arg SLUICE_REVISION=$(REVISION) --build-arg SLUICE_MODIFIED=$(MODIFIED) -t sluice:$(VERSION) -t sluice:local .

# Builds the release twice, the second time from a fresh clone elsewhere with
# an empty build cache, and compares the checksums.
release-check:
	bash scripts/release-check.sh "$(RELEASE_TARGETS)"

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
