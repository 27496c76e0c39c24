# The verbs people type. Everything a target needs is installed by the target itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS_VENV := .venv/tools
CARGO_LAMBDA := $(TOOLS_VENV)/bin/cargo-lambda
TOOLS_PATH := PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH"
SCHEMATHESIS_VENV := .venv/schemathesis
SCHEMATHESIS := $(SCHEMATHESIS_VENV)/bin/schemathesis
CHECKOV_VENV := .venv/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
PEERS_VENV := .venv/peers
# A stamp: the venv's python is a symlink, which `touch` would follow.
PEERS_STAMP := $(PEERS_VENV)/installed
# arm64 (Graviton) is the production default; `make build ARCH=x86-64` for x86 functions.
ARCH ?= arm64
# The local stack runs the functions on this machine, so they are built for its architecture.
LOCAL_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/' -e 's/x86_64/x86-64/')
# Offline machines carry a Terraform provider mirror; elsewhere `terraform init` downloads it.
TF_MIRROR := $(wildcard /opt/tf-plugins)
TF_INIT_ARGS := $(if $(TF_MIRROR),-plugin-dir=$(TF_MIRROR))

.PHONY: help local build build-local build-suite test lint release-check unit infra-check localstack-test integration schemathesis peers-venv bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(CARGO_LAMBDA): tools/requirements.txt
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

# The integration suite's property-based API run (tests/it/schema.rs) installs it through this.
schemathesis: $(SCHEMATHESIS)
$(SCHEMATHESIS): tests/schemathesis/requirements.lock
	rm -rf $(SCHEMATHESIS_VENV)
	python3 -m venv $(SCHEMATHESIS_VENV)
	$(SCHEMATHESIS_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $<
	@touch $@

local: build-local ## The whole stack on LocalStack with the demo backend, until Ctrl-C
	scripts/local

# Next to each zip in $(1), `<zip>.architecture`: "<architecture> <sha256>", built for $(2). Terraform
# refuses to deploy a zip whose marker names the other architecture (infra/functions.tf).
mark_architecture = @for f in store forwarder; do z=$(1)/$$f/bootstrap.zip; echo "$(subst x86-64,x86_64,$(2)) $$(sha256sum $$z | cut -d' ' -f1)" >$$z.architecture; done

build: $(CARGO_LAMBDA) ## Build target/lambda/{store,forwarder}/bootstrap.zip for AWS Lambda ($(ARCH))
	$(TOOLS_PATH) cargo lambda build --release --$(ARCH) --output-format zip --bin store --bin forwarder
	$(call mark_architecture,target/lambda,$(ARCH))
	@ls -l target/lambda/store/bootstrap.zip target/lambda/forwarder/bootstrap.zip

# With the forwarder's test-only fault-injection hook (inactive unless FAULT_PANIC_MARKER is set).
build-local: $(CARGO_LAMBDA) ## Build the functions for this machine into target/lambda-local/
	$(TOOLS_PATH) cargo lambda build --release --$(LOCAL_ARCH) --output-format zip --lambda-dir target/lambda-local --bin store --bin forwarder --features forwarder/fault-injection
	$(call mark_architecture,target/lambda-local,$(LOCAL_ARCH))

# What the integration suite deploys and runs, into the same places: the functions (with the hook)
# and sfctl, built as `make unit` builds the workspace (dev profile, this machine, the same
# features), so that after it only the forwarder compiles again. The suite checks behaviour, not
# speed: unoptimized, with debug assertions.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
build-suite:
	cargo build --workspace --locked --bins --tests --features forwarder/fault-injection
	@for f in store forwarder; do mkdir -p target/lambda-local/$$f && scripts/zip-bootstrap $(TARGET_DIR)/debug/$$f target/lambda-local/$$f/bootstrap.zip; done
	$(call mark_architecture,target/lambda-local,$(LOCAL_ARCH))

# One after another, each stage's time printed: where CI's time goes.
TEST_STAGES := lint release-check unit infra-check localstack-test integration
test: ## Every test: lints, release features, unit, Terraform, the LocalStack executor, integration
	@set -e; for stage in $(TEST_STAGES); do \
	  started=$$(date +%s); $(MAKE) --no-print-directory $$stage; \
	  echo "make test: $$stage passed in $$(( $$(date +%s) - started )) s"; \
	done

# --all-targets leaves out the integration suite's `test = false` target: it is named on its own.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	cargo clippy --workspace --test integration --all-features --locked -- -D warnings

# What `make build` ships resolves no test-only feature (the forwarder's fault-injection hook).
release-check:
	scripts/check-release-features

# The integration suite's target is `test = false` (tests/Cargo.toml): not run here, but its
# package is in the feature resolution, so that `make integration` reuses this build.
unit:
	cargo test --workspace --locked

# checkov for infra/ (make infra-check), from a hashed lock.
$(CHECKOV): tools/checkov/requirements.lock
	rm -rf $(CHECKOV_VENV)
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $<
	@touch $@

infra-check: $(CHECKOV)
	terraform fmt -check -recursive infra
	TF_DATA_DIR=$(CURDIR)/.local/validate terraform -chdir=infra init -backend=false -input=false $(TF_INIT_ARGS) >/dev/null
	TF_DATA_DIR=$(CURDIR)/.local/validate terraform -chdir=infra validate
	TF_DATA_DIR=$(CURDIR)/.local/validate terraform -chdir=infra test
	$(CHECKOV) -d infra --framework terraform --quiet --compact --skip-download

localstack-test:
	localstack/bin/test

integration: ## The integration suite against the local stack (brings it up, or reuses a running LocalStack)
	cargo test --workspace --locked --test integration

# The Python peers of the forwarder (bench/benches/peers.rs): Powertools, awslambdaric, aiohttp.
peers-venv: $(PEERS_STAMP)
$(PEERS_STAMP): bench/peers/requirements.lock
	rm -rf $(PEERS_VENV)
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $<
	@touch $@

# The order matters: the cost table (cost) prices the Python peers' invoke times that peers writes.
BENCHES := batch batch_sizes store init peers cost invoke idle throttle pipeline
bench: $(PEERS_STAMP) ## Benchmarks (not part of `make test`): the forwarder's batches, store hot path, cold init, the Python peers, the cost per million orders, and on the local stack the invoke path, idle -> delivered, throttling, the pipeline
	@n=$$(ls bench/benches/*.rs | wc -l); [ $$n -eq $(words $(BENCHES)) ] || { echo "make bench: BENCHES names $(words $(BENCHES)) of the $$n benches in bench/benches" >&2; exit 1; }
	cargo build --release --bins --locked
	set -e; for b in $(BENCHES); do cargo bench -p storeforward-bench --locked --bench $$b; done

clean: ## Remove build output and the tools venvs
	cargo clean
	rm -rf $(TOOLS_VENV) $(SCHEMATHESIS_VENV) $(CHECKOV_VENV) $(PEERS_VENV)
