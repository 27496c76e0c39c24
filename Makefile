# The verbs people type. Everything a target needs is installed by the target itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS_VENV := .venv/tools
CARGO_LAMBDA := $(TOOLS_VENV)/bin/cargo-lambda
TOOLS_PATH := PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH"
# arm64 (Graviton) is the production default; `make build ARCH=x86_64` for x86 functions.
ARCH ?= arm64

.PHONY: help build test lint unit bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(CARGO_LAMBDA): tools/requirements.txt
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

build: $(CARGO_LAMBDA) ## Build target/lambda/{store,forwarder}/bootstrap.zip for AWS Lambda ($(ARCH))
	$(TOOLS_PATH) cargo lambda build --release --$(ARCH) --output-format zip --bin store --bin forwarder
	@ls -l target/lambda/store/bootstrap.zip target/lambda/forwarder/bootstrap.zip

test: lint unit ## Every test: formatting, lints, unit and component tests

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit:
	cargo test --workspace --locked

bench: ## Benchmarks (not part of `make test`): batch concurrency, cold init
	cargo build --release --bins --locked
	cargo bench -p storeforward-bench --bench batch
	cargo bench -p storeforward-bench --bench init

clean: ## Remove build output and the tools venv
	cargo clean
	rm -rf $(TOOLS_VENV)
