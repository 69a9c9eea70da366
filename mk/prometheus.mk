# Prometheus for the analysis and e2e tests: Debian's binary; each test starts its own server on a
# free 127.0.0.1 port with a temporary config and data dir (tests/support/prometheus.py).
.PHONY: prometheus test-prometheus

prometheus: ## install Debian's prometheus if it is missing (needs root or sudo)
	hack/install-debs.sh prometheus

test-deps: prometheus

test-prometheus: venv prometheus ## analysis against a real Prometheus (about 25 s)
	$(VENV)/bin/pytest -m prometheus tests/prometheus $(PYTEST_ARGS)
