# The local cluster's real node (hack/node.sh, brought up by cluster-up) and the images it runs,
# built from the Dockerfile with buildah (hack/images.sh).
.PHONY: images test-realnode e2e-real
NODE_CONTAINERD = $(MODELRAMP_CACHE)/node/containerd/containerd.sock
# The chart-install and e2e-rollout variables that point them at the images built here.
LOCAL_IMAGES := OPERATOR_REPOSITORY=localhost/modelramp-operator SERVING_REPOSITORY=localhost/modelramp-serving \
  IMAGE_TAG=dev CHART_VALUES=hack/cluster/real-node-values.yaml

images: cluster-up ## build localhost/modelramp-{operator,serving}:dev (buildah, Dockerfile) into node-real-1's containerd
	hack/images.sh $(NODE_CONTAINERD) pause base operator serving

test-realnode: venv cluster-up ## real containers on node-real-1: kubelet, kube-proxy's Service split, network isolation
	$(VENV)/bin/pytest -m realnode $(PYTEST_ARGS)

e2e-real: venv images prometheus ## node-real-1: the chart's operator, the kind workflow's rollout, then a good model promoted and a 5xx one rolled back on Prometheus data
	$(MAKE) chart-install $(LOCAL_IMAGES)
	$(MAKE) e2e-rollout $(LOCAL_IMAGES) KUBECTL=$(OPERATOR_KUBECTL)
	$(OPERATOR_KUBECTL) delete --ignore-not-found -f $(E2E_SAMPLE)
	$(VENV)/bin/pytest -s -m dataplane $(PYTEST_ARGS)
