# The entry point for every task. `make help` lists the targets.

GO        ?= go
BIN       := $(CURDIR)/.bin
TOOLS_MOD := $(CURDIR)/tools/go.mod
BENCHTIME ?= 1s
BENCHCOUNT ?= 1
FUZZTIME  ?= 30s
SOAK_DURATION ?= 30m
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=main

.PHONY: help build run test test-deps test-short lint bench fuzz eval loadtest pgo pgo-check soak clean prometheus3

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build ./anomaly_exporter and ./anomalytool.
	$(GO) build -ldflags '$(LDFLAGS)' -o anomaly_exporter ./cmd/anomaly_exporter
	$(GO) build -ldflags '$(LDFLAGS)' -o anomalytool ./cmd/anomalytool

run: build ## Build and start the exporter on its embedded default config (:9700).
	./anomaly_exporter

test: test-deps mixin-check kubernetes-check pgo-check $(BIN)/prometheus3 ## Run every test: unit, fuzz seed corpora, golden files, end to end with a real Prometheus (2.42 and 3).
	$(GO) vet ./...
	PROMETHEUS3=$(BIN)/prometheus3 $(GO) test -count=1 -timeout 15m ./...
	# The packages that depend on how labels.Labels is laid out, in Prometheus's other builds of it.
	set -e; for tags in slicelabels dedupelabels; do \
	  $(GO) test -count=1 -short -tags $$tags ./detector/... ./remotewrite/... ./backfill/... ./cmd/anomaly_exporter/; \
	done

test-deps: ## Install the real components the end-to-end tests start, when missing (apt-get).
	./scripts/test-deps.sh

test-short: ## Unit tests only (skips the end-to-end tests that start real binaries).
	$(GO) test -short ./...

# Prometheus 3, for the remote-write 2.0 end-to-end test (Debian's 2.42 speaks only 1.0), built
# from source in a module of its own (tools/prometheus3: over 230 modules, kept out of the
# product's go.mod and tools/go.mod). The first build takes a few minutes, mostly downloads.
# remove_all_sd leaves out the cloud service discoveries. The version printed by --version and
# prometheus_build_info is derived from the module version (v0.315.0 is Prometheus 3.15.0).
PROMETHEUS3_MOD := $(CURDIR)/tools/prometheus3
prometheus3: $(BIN)/prometheus3 ## Build .bin/prometheus3 (Prometheus 3, remote write 2.0) for the end-to-end tests.

$(BIN)/prometheus3: $(PROMETHEUS3_MOD)/go.mod $(PROMETHEUS3_MOD)/go.sum
	set -e; cd $(PROMETHEUS3_MOD); \
	  v=$$($(GO) list -m -f '{{.Version}}' github.com/prometheus/prometheus); \
	  minor=$${v#v0.}; minor=$${minor%%.*}; patch=$${v##*.}; \
	  $(GO) build -tags remove_all_sd -o $@ \
	    -ldflags "-X github.com/prometheus/common/version.Version=3.$$((minor - 300)).$$patch -X github.com/prometheus/common/version.Revision=$$v" \
	    github.com/prometheus/prometheus/cmd/prometheus

$(BIN)/staticcheck: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) honnef.co/go/tools/cmd/staticcheck

$(BIN)/benchstat: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) golang.org/x/perf/cmd/benchstat

MIXIN_TOOLS := $(BIN)/jsonnetfmt $(BIN)/jsonnet-lint $(BIN)/mixtool $(BIN)/dashboard-linter
MIXIN_SRC    = $(shell find mixin -name '*.libsonnet' -o -name '*.jsonnet')

$(BIN)/jsonnet $(BIN)/jsonnetfmt $(BIN)/jsonnet-lint: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) github.com/google/go-jsonnet/cmd/$(notdir $@)

$(BIN)/mixtool: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) github.com/monitoring-mixins/mixtool/cmd/mixtool

$(BIN)/dashboard-linter: $(TOOLS_MOD)
	GOBIN=$(BIN) $(GO) install -modfile=$(TOOLS_MOD) github.com/grafana/dashboard-linter

# mixin-generate renders the mixin into $(1)/rules and $(1)/dashboards, which must exist.
mixin-generate = $(BIN)/mixtool generate all -J mixin -y -a $(1)/rules/alerts.yaml -r $(1)/rules/rules.yaml -d $(1)/dashboards mixin/mixin.libsonnet

.PHONY: mixin mixin-check
mixin: $(BIN)/mixtool ## Render the mixin (mixin/) into rules/, dashboards/ and the Kubernetes PrometheusRule.
	rm -f rules/*.yaml dashboards/*.json
	mkdir -p rules dashboards
	$(call mixin-generate,.)
	$(MAKE) kubernetes

mixin-check: test-deps $(MIXIN_TOOLS) ## Check the mixin: formatted, linted, rendered files current, rules tested.
	$(BIN)/jsonnetfmt --test $(MIXIN_SRC)
	@for f in $(MIXIN_SRC); do $(BIN)/jsonnet-lint -J mixin $$f || exit 1; done
	$(BIN)/mixtool lint -J mixin mixin/mixin.libsonnet
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; mkdir -p $$tmp/rules $$tmp/dashboards; \
	  $(call mixin-generate,$$tmp) && \
	  diff -ru rules $$tmp/rules && diff -ru dashboards $$tmp/dashboards \
	  || { echo "rules/ or dashboards/ differ from the mixin: run make mixin"; exit 1; }
	@for f in dashboards/*.json; do \
	  out=$$($(BIN)/dashboard-linter lint --strict -c mixin/.lint $$f 2>&1) || { echo "$$out" | grep -v '^Checks that'; exit 1; }; \
	done; echo "dashboard-linter: $$(ls dashboards/*.json | wc -l) dashboards clean"
	promtool check rules rules/*.yaml
	promtool test rules mixin/tests/*.yaml
	amtool check-config mixin/alertmanager.yml

.PHONY: kubernetes kubernetes-check
kubernetes: ## Render deploy/kubernetes/prometheusrule.yaml from the mixin's rules/ (make mixin runs it).
	./scripts/prometheusrule.sh rules/*.yaml > deploy/kubernetes/prometheusrule.yaml

kubernetes-check: ## Check that deploy/kubernetes/prometheusrule.yaml is current with rules/.
	@./scripts/prometheusrule.sh rules/*.yaml | diff -u deploy/kubernetes/prometheusrule.yaml - \
	  || { echo "deploy/kubernetes/prometheusrule.yaml differs from rules/: run make kubernetes"; exit 1; }

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

loadtest: ## Load test on 127.0.0.1: SERIES, DURATION, PROTOCOL (1|2), CONCURRENCY, TARGET (exporter|prometheus|both), RATE, HISTORY, HISTORY_STEP, SCRAPE_EVERY, PROFILE (write a CPU profile there), EXPORTER (a binary to measure).
	SERIES=$(SERIES) DURATION=$(DURATION) PROTOCOL=$(PROTOCOL) CONCURRENCY=$(CONCURRENCY) TARGET=$(TARGET) RATE=$(RATE) GO=$(GO) \
	  HISTORY=$(HISTORY) HISTORY_STEP=$(HISTORY_STEP) SCRAPE_EVERY=$(SCRAPE_EVERY) PROFILE=$(PROFILE) EXPORTER=$(EXPORTER) ./scripts/loadtest.sh

# The profile the Go toolchain optimises the exporter with (profile-guided optimisation: it
# inlines and lays out the hot path as the profile says; go build picks default.pgo up from the
# main package's directory). It is a measurement, not derived from the source: regenerate it
# after changing the hot path. One load run per protocol, with /scores scraped, merged.
PGO_FILE = cmd/anomaly_exporter/default.pgo
pgo: ## Record the exporter's CPU profile under load (RW 1.0 and 2.0, /scores scraped) into cmd/anomaly_exporter/default.pgo.
	rm -f $(PGO_FILE).v1 $(PGO_FILE).v2
	SERIES=100000 DURATION=20s PROTOCOL=1 SCRAPE_EVERY=15s PROFILE=$(CURDIR)/$(PGO_FILE).v1 GO=$(GO) ./scripts/loadtest.sh
	SERIES=100000 DURATION=20s PROTOCOL=2 SCRAPE_EVERY=15s PROFILE=$(CURDIR)/$(PGO_FILE).v2 GO=$(GO) ./scripts/loadtest.sh
	$(GO) tool pprof -proto $(PGO_FILE).v1 $(PGO_FILE).v2 > $(PGO_FILE)
	rm -f $(PGO_FILE).v1 $(PGO_FILE).v2

pgo-check: ## Check that the hot functions cmd/anomaly_exporter/default.pgo names are still declared (else: make pgo).
	GO=$(GO) ./scripts/pgo-check.sh

soak: ## Soak test on 127.0.0.1: SOAK_DURATION of steady series, churn and hostile requests; prints RSS and goroutines over time.
	SOAK_DURATION=$(SOAK_DURATION) SERIES=$(SERIES) CHURN=$(CHURN) HOSTILE_INTERVAL=$(HOSTILE_INTERVAL) SAMPLE_EVERY=$(SAMPLE_EVERY) \
	  WARMUP=$(WARMUP) GO=$(GO) ./scripts/soak.sh

clean: ## Remove build outputs.
	rm -rf anomaly_exporter anomalytool $(BIN) bench.txt
