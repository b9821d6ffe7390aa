# taskgate: `make run` starts the quickstart, `make test` runs the tests.
# Every tool a target needs is installed by the target itself.

SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(TOOLS)/golangci-lint
# Benchmarks are short by default (2-core machines); raise for steadier figures.
BENCHTIME ?= 2s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start examples/quickstart (SQLite under ./.taskgate, local node)
	$(GO) run ./examples/quickstart

.PHONY: gpu-python
gpu-python: ## Run examples/gpu-python's PyTorch benchmark once on this machine's GPU (INPUTS='{"size":8192}')
	$(GO) run ./examples/gpu-python -once '$(or $(INPUTS),{})'

.PHONY: gpu-python-server
gpu-python-server: ## Start examples/gpu-python's GPU inference server (static binary), send it one request (INPUTS='{"size":4096}'), show a GPU task waiting for it
	CGO_ENABLED=0 $(GO) build -o $(TOOLS)/gpu-python ./examples/gpu-python
	$(TOOLS)/gpu-python -server-once '$(or $(INPUTS),{"size":4096})'

.PHONY: test
test: ## Vet and run every test (PostgreSQL ones need TASKGATE_TEST_POSTGRES_URL)
	$(GO) vet ./...
	$(GO) test -count=1 ./...

.PHONY: test/race
test/race: ## Run the tests under the race detector (short mode)
	$(GO) test -count=1 -race -short ./...

$(GOLANGCI_LINT):
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# Redocly CLI at the version internal/tools/redocly/package-lock.json pins.
REDOCLY_DIR := $(CURDIR)/.tools/redocly
REDOCLY := $(REDOCLY_DIR)/node_modules/.bin/redocly

$(REDOCLY): internal/tools/redocly/package.json internal/tools/redocly/package-lock.json
	mkdir -p $(REDOCLY_DIR)
	cp internal/tools/redocly/package.json internal/tools/redocly/package-lock.json $(REDOCLY_DIR)/
	cd $(REDOCLY_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: lint
lint: $(GOLANGCI_LINT) $(REDOCLY) ## Run golangci-lint and Redocly's recommended OpenAPI rules (tools at pinned versions)
	$(GOLANGCI_LINT) run ./...
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint --format=summary openapi/*.yaml

.PHONY: bench
bench: ## Run the benchmarks with their bare baselines in the same run
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem \
		./framework/... ./middleware/... ./tasks/... ./environments/... ./internal/telemetry/ | tee bench.out

.PHONY: bench-scale
bench-scale: ## Benchmarks at scale, by hand (minutes, GBs): drain of 10k/100k/1M queued runs, leader heap per waiting run, restart on 1M runs, GET /runs per filter at 100k and 1M (SQLite; PostgreSQL with TASKGATE_TEST_POSTGRES_URL)
	TASKGATE_BENCH_SCALE=1 TASKGATE_METRICS_ADDR= $(GO) test -run '^$$' -bench 'Scale' -benchtime 1x -timeout 3h ./tasks/dispatch/ | tee bench-scale.out
	TASKGATE_BENCH_SCALE=1 TASKGATE_METRICS_ADDR= $(GO) test -run '^$$' -bench 'BenchmarkListScale' -benchtime $${LIST_REQUESTS:-1000}x -timeout 60m \
		./environments/ | tee -a bench-scale.out
	TASKGATE_BENCH_SCALE=1 $(GO) test -run '^$$' -bench 'BenchmarkCallbacks' -benchtime 1x -timeout 60m ./tasks/callback/ | tee -a bench-scale.out

.PHONY: bench-peer
bench-peer: ## River beside taskgate in one run: insert vs submit, backlog work vs drain, SQLite and PostgreSQL (slow, not in CI; PEER_COUNT=3)
	set -o pipefail; cd internal/peerbench && $(GO) test -run '^$$' -bench . -benchtime 1x -count $${PEER_COUNT:-3} -timeout 60m . | tee ../../bench-peer.out

.PHONY: bench-wrk
bench-wrk: ## POST /run-task under wrk beside bare chi (installs Debian's wrk if missing)
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(GO) run ./internal/benchwrk -d $${WRK_DURATION:-5s} -c $${WRK_CONNS:-64}

.PHONY: generate
generate: ## Rewrite the committed OpenAPI documents in openapi/
	$(GO) run ./openapi/cmd/gen -dir openapi

.PHONY: clients
clients: ## Generate a Go (oapi-codegen) and a TypeScript (openapi-typescript) client from openapi/ and run echo through each against the quickstart
	cd internal/genclients && $(GO) tool oapi-codegen -config oapi-codegen.yaml ../../openapi/openapi-3.0.yaml
	cd internal/genclients/ts && npm ci --no-audit --no-fund --loglevel=error && npm run -s generate && npm run -s build
	cd internal/genclients && $(GO) vet ./... && $(GO) test -count=1 ./...

.PHONY: e2e
e2e: ## Browser tests of /docs, signing in at /auth/login and the console in headless Chromium (installs Debian's chromium if missing); screenshots in artifacts/ (TASKGATE_E2E_ARTIFACTS)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	TASKGATE_E2E_ARTIFACTS=$${TASKGATE_E2E_ARTIFACTS:-$(CURDIR)/artifacts} TASKGATE_E2E_CHROMIUM=$$(command -v chromium) $(GO) test -count=1 -tags e2e -v ./internal/e2e/

.PHONY: soak
soak: ## Soak the quickstart: SOAK_DURATION (10m) of mixed load, SIGKILL every SOAK_RESTART_EVERY (2m)
	$(GO) test -count=1 -tags soak -timeout $${SOAK_TIMEOUT:-30m} -v -run '^TestSoak$$' ./internal/soak/

.PHONY: flyte-client
flyte-client: ## Run the Flyte tutorial's Python client against examples/custom-webhook (installs Debian's python3-httpx if missing)
	./examples/custom-webhook/testdata/flyte-client.sh

.PHONY: fal-client
fal-client: ## Run fal's own JS client (@fal-ai/client, npm ci) against examples/fal-queue; needs node and npm
	./internal/falclient/run.sh

.PHONY: fuzz
fuzz: ## Run each fuzzer for FUZZTIME (default 10s)
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-10s} $$spec || exit 1; \
		done; \
	done
