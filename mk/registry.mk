# The MLflow registry suite: a real `mlflow server` (basic auth, sqlite) on loopback, ~1 minute.
.PHONY: test-registry
test-registry: venv ## registry tests against a real MLflow tracking server
	$(VENV)/bin/pytest tests/unit/test_registry_*.py tests/registry $(PYTEST_ARGS)
