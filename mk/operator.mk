# The operator (operator/main.py): run it against the local cluster, benchmark it.
.PHONY: operator-run operator-crd operator-test operator-bench
# The kubectl built with the cluster (recursive `=`: only looked up by the targets that use it).
OPERATOR_KUBECTL = $(shell hack/cluster.sh env | sed -n 's/^K8S_BIN=//p')/kubectl

operator-crd: venv cluster-up ## install the ModelDeployment CRD into the local cluster
	$(OPERATOR_KUBECTL) apply --server-side --force-conflicts -f crds/modelramp.dev_modeldeployments.yaml

operator-run: operator-crd ## run the operator in the foreground against the local cluster
	$(VENV)/bin/modelramp operator --liveness=http://127.0.0.1:8081/healthz $(OPERATOR_ARGS)

operator-test: venv cluster-up ## the operator's unit and cluster tests
	$(VENV)/bin/pytest tests/unit/test_operator_glue.py tests/cluster/test_operator*.py $(PYTEST_ARGS)

operator-bench: venv cluster-bins ## 500 ModelDeployments on one operator, on a cluster of its own: latency, memory, idle API writes (~20 min)
	$(PY) bench/operator_latency.py
