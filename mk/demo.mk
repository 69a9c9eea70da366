# `make demo`: the README's first command.
.PHONY: demo
demo: venv cluster-up prometheus ## bring the local cluster up and walk through a model rollout
	hack/demo.sh
