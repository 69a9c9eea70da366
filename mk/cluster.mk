# The local Kubernetes cluster (see hack/cluster.sh).
.PHONY: cluster-up cluster-down cluster-bins
cluster-bins: ## build (once) the Kubernetes, etcd and kwok binaries into $(MODELRAMP_CACHE)/bin
	hack/build-bins.sh
cluster-up: ## start the local cluster (idempotent); kubeconfig in .cache/kubeconfig
	hack/cluster.sh up
cluster-down: ## stop and delete the local cluster
	hack/cluster.sh down
