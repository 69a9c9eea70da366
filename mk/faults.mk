# Fault-injection cluster tests (marker `faults`, also part of `make test`): each names the fault it
# injects and the invariant it checks (docs/install.md, "Faults it is tested against").
.PHONY: test-faults
test-faults: venv cluster-up prometheus ## only the fault tests: SIGKILLs, killed leader, API server restart, flapping Prometheus, registry down (minutes)
	$(VENV)/bin/pytest -m faults $(PYTEST_ARGS)
