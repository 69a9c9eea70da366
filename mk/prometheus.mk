# Prometheus for the analysis and e2e tests, built from its Go module with Kubernetes service
# discovery (hack/install-tools.sh; Debian's 2.42 has none); each test starts its own server on a
# free port with a temporary config and data dir (tests/support/prometheus.py).
.PHONY: prometheus test-prometheus

prometheus: ## build Prometheus and promtool (once per version) into $(MODELRAMP_CACHE)/bin
	hack/install-tools.sh prometheus promtool >/dev/null

test-deps: prometheus

test-prometheus: venv prometheus ## analysis against a real Prometheus (about 25 s)
	$(VENV)/bin/pytest -m prometheus tests/prometheus $(PYTEST_ARGS)
