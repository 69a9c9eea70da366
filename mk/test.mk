# `make test` is the README's test command and what .ci/run calls. Other parts add what their tests
# need as prerequisites of `test-deps` (e.g. `test-deps: prometheus`) in their own .mk file.
.PHONY: test test-deps unit lint
PYTEST_ARGS ?=
# The cluster suites mostly wait (pauses, analysis intervals, scrapes): several workers overlap the
# waits. Tests marked `serial` (the API-server kill, verdicts on real servers' latency) run after
# them, alone. A module keeps to one worker (tests/conftest.py), and an `xdist_group` keeps
# together tests of several modules that count one shared thing (node-gpu-1's GPUs).
TEST_WORKERS ?= 4

test: test-deps lint ## everything CI runs: lint, generated-file checks, unit, cluster, serving and e2e tests
	status=0; \
	$(VENV)/bin/pytest -m "not dataplane and not serial" -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS) || status=$$?; \
	$(VENV)/bin/pytest -m "serial and not dataplane" $(PYTEST_ARGS) || status=$$?; \
	exit $$status

test-deps: venv cluster-up

unit: venv ## the fast tests only (no cluster, no Prometheus, no servers)
	$(VENV)/bin/pytest -m "not cluster and not e2e and not prometheus and not mlflow" $(PYTEST_ARGS)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
