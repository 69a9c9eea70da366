# `make test` is the README's test command and what .ci/run calls. Other parts add what their tests
# need as prerequisites of `test-deps` (e.g. `test-deps: prometheus`) in their own .mk file.
.PHONY: test test-deps unit lint
PYTEST_ARGS ?=

test: test-deps lint ## everything CI runs: lint, generated-file checks, unit, cluster, serving and e2e tests
	$(VENV)/bin/pytest -m "not dataplane" $(PYTEST_ARGS)

test-deps: venv cluster-up

unit: venv ## the fast tests only (no cluster, no Prometheus, no servers)
	$(VENV)/bin/pytest -m "not cluster and not e2e and not prometheus and not mlflow" $(PYTEST_ARGS)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
