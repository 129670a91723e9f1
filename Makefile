# The single entry point: install, generate, run, test, lint, bench.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
PROTOS := $(wildcard protos/photonic/v1/*.proto)
CERTS ?= certs
AGENTS ?= laptop

.PHONY: install deps test-deps proto proto-check certs run test test-scaleout test-fast chaos fuzz lint typecheck check bench bench-quick clean

install: $(BIN)/photonic ## virtualenv in the repo with photonic and its dev tools
	@# Byte code, as a wheel install has it: an editable install otherwise compiles photonic
	@# from source at every start when PYTHONDONTWRITEBYTECODE is set (~50 ms per command).
	$(PYTHON) -m compileall -q photonic
	$(BIN)/photonic models fetch

$(BIN)/photonic: pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $@

deps: ## Debian programs the benchmarks need (no-op when present)
	PHOTONIC_BENCH=1 bash scripts/install-system-deps.sh

proto: ## regenerate photonic/v1 from protos/ (committed; CI checks it is fresh)
	PATH=$(BIN):$$PATH $(PYTHON) -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. \
		--mypy_out=. $(PROTOS)
	touch photonic/v1/__init__.py photonic/v1/py.typed

proto-check: ## fail when the committed generated code differs from what protos/ produce
	bash scripts/check-proto-fresh.sh $(PYTHON)

certs: ## development PKI: CA, server certificate, and one agent certificate per $(AGENTS)
	$(BIN)/photonic certs init --dir $(CERTS)
	for a in $(AGENTS); do $(BIN)/photonic certs issue $$a --dir $(CERTS); done

run: install ## server + agent on loopback with the repo's server.yaml and agent.yaml
	bash scripts/run-demo.sh

test-deps: ## Debian programs the tests need: lua5.1, lua-socket, prometheus, chromium, postgresql, rclone (no-op when present)
	PHOTONIC_TESTS=1 bash scripts/install-system-deps.sh

test: install test-deps ## the whole suite, then tests/e2e and tests/chaos again on PostgreSQL + S3, as CI runs them
	$(MAKE) proto-check lint
	bash scripts/run-suite.sh $(BIN)/pytest $(TEST_WORKERS) tests
	$(MAKE) test-scaleout

# Both runs go in TEST_WORKERS processes at once (pytest-xdist), then the tests marked
# `serial` alone (scripts/run-suite.sh): about 11-13 minutes on 2 cores for both (measured
# 2026-12-07, load average about 5 from other work), where one process took about 29.
TEST_WORKERS ?= 4
SCALEOUT_TESTS ?= tests/e2e tests/chaos

test-scaleout: install ## tests/e2e and tests/chaos again, every server on PostgreSQL + S3 (moto)
	PHOTONIC_TEST_BACKEND=scaleout bash scripts/run-suite.sh $(BIN)/pytest $(TEST_WORKERS) \
		$(SCALEOUT_TESTS)

test-fast: ## unit tests only
	$(BIN)/pytest -q tests/unit

chaos: install ## fault injection and hostile input
	$(BIN)/pytest -q -m chaos tests/chaos

FUZZ_EXAMPLES ?= 5000
FUZZ_SEED ?= $(shell date +%s)

fuzz: install ## the SyncBatch fuzzer at length: FUZZ_EXAMPLES sequences, a new FUZZ_SEED each run
	PHOTONIC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PHOTONIC_FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/pytest -q tests/chaos/test_fuzz_syncbatch.py

lint: ## ruff + mypy strict on hand-written code
	$(BIN)/ruff check photonic tests bench
	$(BIN)/mypy photonic

typecheck: lint

check: test

bench: install deps ## benchmarks against rsync and Syncthing (see bench/README.md)
	$(PYTHON) -m bench.run

bench-quick: install deps
	$(PYTHON) -m bench.run --quick

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache var
