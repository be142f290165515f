# The entry point for every task. `make help` lists the targets.

GO        ?= go
BIN       := $(CURDIR)/.bin
TOOLS_MOD := $(CURDIR)/tools/go.mod
BENCHTIME ?= 1s
BENCHCOUNT ?= 1
FUZZTIME  ?= 30s
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=main

.PHONY: help build run test test-deps test-short lint bench fuzz eval loadtest clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build ./anomaly_exporter and ./anomalytool.
	$(GO) build -ldflags '$(LDFLAGS)' -o anomaly_exporter ./cmd/anomaly_exporter
	$(GO) build -ldflags '$(LDFLAGS)' -o anomalytool ./cmd/anomalytool

run: build ## Build and start the exporter on its embedded default config (:9700).
	./anomaly_exporter

test: test-deps ## Run every test: unit, fuzz seed corpora, golden files, end to end with a real Prometheus.
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

test-deps: ## Install the real components the end-to-end tests start, when missing (apt-get).
	./scripts/test-deps.sh

test-short: ## Unit tests only (skips the end-to-end tests that start real binaries).
	$(GO) test -short ./...

$(BIN)/staticcheck: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) honnef.co/go/tools/cmd/staticcheck

$(BIN)/benchstat: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) golang.org/x/perf/cmd/benchstat

lint: $(BIN)/staticcheck ## gofmt, go vet and staticcheck (pinned in tools/go.mod).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

bench: ## Go benchmarks (BENCHTIME, BENCHCOUNT); compare runs with .bin/benchstat.
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./... | tee bench.txt

fuzz: ## Run every fuzz target for FUZZTIME each.
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

eval: build ## Score the detector on the NAB subset in ../shared/nab (when present).
	@if [ -d ../shared/nab ]; then ./anomalytool eval --data ../shared/nab/data --windows ../shared/nab/labels/combined_windows.json; \
	else echo "../shared/nab not found: nothing to evaluate"; fi

loadtest: ## Load test on 127.0.0.1: SERIES, DURATION, PROTOCOL (1|2), CONCURRENCY, TARGET (exporter|prometheus|both), RATE.
	SERIES=$(SERIES) DURATION=$(DURATION) PROTOCOL=$(PROTOCOL) CONCURRENCY=$(CONCURRENCY) TARGET=$(TARGET) RATE=$(RATE) GO=$(GO) \
	  ./scripts/loadtest.sh

clean: ## Remove build outputs.
	rm -rf anomaly_exporter anomalytool $(BIN) bench.txt
