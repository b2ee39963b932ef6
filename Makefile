# mu — see README.md. The two main commands: `make demo` and `make test`.
GO       ?= go
# scripts/deps.sh installs Go here when the machine has none.
export PATH := /usr/local/go/bin:$(PATH)
BUILD    := build
# Packages whose tests need an RDMA device; their test binaries are built on
# the host and run on Soft-RoCE (natively, or inside the throwaway VM).
# PKG:PATTERN runs only the tests matching PATTERN on the device (the rest of
# that package is host-only and timing-sensitive under emulation).
RDMA_PKGS := ./cgo/verbs ./rdma/discover:RealDevice ./rdma/verbs ./rdma/conformance ./cmd/mu:Processes
SOFTROCE := scripts/softroce

.PHONY: all build deps test test-tidy test-host test-race test-fuzz test-alerts test-rdma rdma-tests rdma-run demo bench-verbs vet clean jepsen

all: build

deps:
	scripts/deps.sh

build: deps
	$(GO) build ./...

vet:
	$(GO) vet ./...

# Everything: host tests (unit, simulator, in-process fabric), then the
# verbs integration tests on real Soft-RoCE.
test: deps
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	$(MAKE) test-tidy
	$(MAKE) test-alerts
	$(MAKE) test-host
	$(MAKE) test-race
	$(MAKE) test-fuzz
	$(MAKE) test-rdma

# go.mod and go.sum of every module must be what `go mod tidy` makes.
test-tidy:
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff
	cd examples/embed && $(GO) mod tidy -diff

# The alerting rules and the dashboard: promtool checks the rules and runs
# their unit tests; the metrics package's tests check that every metric the
# rules, the dashboard and docs/metrics.md name is one the code exports, and
# that promtool accepts every dashboard query.
test-alerts:
	promtool check rules deploy/prometheus/mu-alerts.yml
	cd deploy/prometheus && promtool test rules mu-alerts_test.yml
	@# The example scrapes over mutual TLS: check it beside real credentials.
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && mkdir -p $$d/example $$d/prometheus && \
	  cp deploy/example/prometheus.yml $$d/example/ && cp deploy/prometheus/mu-alerts.yml $$d/prometheus/ && \
	  $(GO) run ./cmd/mu certs init --dir $$d/example/mu >/dev/null && \
	  $(GO) run ./cmd/mu certs issue --dir $$d/example/mu --client ops >/dev/null && \
	  promtool check config $$d/example/prometheus.yml
	MU_REQUIRE_PROMTOOL=1 $(GO) test -count=1 -run 'Deploy|Dashboard|MetricsDoc' ./metrics

# MU_REQUIRE_TMUX: the terminal test of `mu status --watch` fails, rather
# than skips, without tmux (deps installs it).
test-host:
	MU_REQUIRE_TMUX=1 $(GO) test -count=1 -timeout 20m ./...
	cd examples/embed && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

# The host packages again under the race detector. With the full seed
# counts consensus alone runs well past 15 minutes on 2 cores, so under
# -race its long seeded simulator tests (the 2000-seed swarm, the 200-seed
# regressions) run a twentieth of their seeds (consensus/harness_test.go,
# seeds): the simulator steps every replica on one goroutine, and the full
# counts ran without -race in test-host. Packages that need an RDMA device
# skip here, as in test-host.
test-race:
	$(GO) test -race -count=1 -timeout 30m ./...

# Native fuzz targets for every decoder of untrusted input, each run for
# FUZZTIME (7 targets: 70 s in all by default; the first run also builds
# instrumented test binaries). New coverage is minimized for at most 1 s, or
# minimization would eat the run. Crashers land in PKG/testdata/fuzz/.
FUZZTIME ?= 10s
FUZZ_TARGETS := ./config:FuzzParse ./endpoint:FuzzReadFrame ./endpoint:FuzzDecodeAnswer \
	./rdma/bootstrap:FuzzBootstrapFrame ./rdma/bootstrap:FuzzDecodeHello ./wal:FuzzDecodeRecord ./consensus:FuzzDecodeSlot
test-fuzz:
	@set -e; for e in $(FUZZ_TARGETS); do p=$${e%%:*}; f=$${e#*:}; \
	  echo "fuzz: $$f in $$p for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s $$p; done

# Build each RDMA package's test binary on the host, then run them all where
# rxe exists (here, or in the VM) with MU_REQUIRE_RDMA=1, so a missing device
# fails instead of skipping.
rdma-tests:
	@mkdir -p $(BUILD)/rdmatest
	@rm -f $(BUILD)/rdmatest/*.test $(BUILD)/rdmatest/*.run
	@set -e; for e in $(RDMA_PKGS); do p=$${e%%:*}; \
	  if [ -d $$p ]; then n=$$(echo $$p | tr / _ | sed 's/^\._//'); \
	    $(GO) test -c -o $(BUILD)/rdmatest/$$n.test $$p; \
	    case $$e in *:*) echo "$${e#*:}" > $(BUILD)/rdmatest/$$n.run;; esac; fi; done
	@# examples/embed is its own module: built from its directory.
	cd examples/embed && $(GO) test -c -o ../../$(BUILD)/rdmatest/examples_embed.test .
	@echo ThreeProcesses > $(BUILD)/rdmatest/examples_embed.run

test-rdma: rdma-tests
	$(SOFTROCE)/run -- scripts/run-rdma-tests.sh $(BUILD)/rdmatest

# Run CMD on Soft-RoCE: natively when this kernel has rxe, else in the VM.
rdma-run:
	$(SOFTROCE)/run -- $(CMD)

demo: deps
	$(GO) build -o $(BUILD)/mu ./cmd/mu
	scripts/demo.sh

# A seeded fault schedule on NODES Soft-RoCE VMs, one kernel each, with
# clients submitting orders; fails on a lost acknowledged order, diverging
# logs or a non-linearizable history (docs/jepsen.md). SEED=0 draws one
# from the clock (printed). The report goes to JEPSEN_OUT.{txt,png,svg,json}.
SEED ?= 0
DURATION ?= 2m
NODES ?= 3
JEPSEN_TIMINGS ?= --read-interval 50ms --permission-timeout 3s
JEPSEN_OUT ?= $(BUILD)/jepsen/report
JEPSEN_FLAGS ?=
jepsen: deps
	$(GO) build -o $(BUILD)/mu ./cmd/mu
	$(GO) build -o $(BUILD)/mu-jepsen ./cmd/mu-jepsen
	$(SOFTROCE)/cluster --nodes $(NODES) -- $(BUILD)/mu-jepsen run --seed $(SEED) \
	  --duration $(DURATION) $(JEPSEN_TIMINGS) --out $(JEPSEN_OUT) $(JEPSEN_FLAGS)

bench-verbs: deps
	cd bench && $(GO) build -o ../$(BUILD)/mu-bench-verbs ./verbs
	$(SOFTROCE)/run -- $(BUILD)/mu-bench-verbs

clean:
	rm -rf $(BUILD)
