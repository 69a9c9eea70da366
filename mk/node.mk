# The local cluster's real node (hack/node.sh, brought up by cluster-up), the images it runs, built
# from the Dockerfile with buildah (hack/images.sh), and Traefik, the Gateway API implementation its
# e2e test routes through (built from its Go module by hack/install-tools.sh, through hack/traefik).
.PHONY: images traefik test-realnode e2e-real
NODE_CONTAINERD = $(MODELRAMP_CACHE)/node/containerd/containerd.sock
# The chart-install and e2e-rollout variables that point them at the images built here.
LOCAL_IMAGES := OPERATOR_REPOSITORY=localhost/modelramp-operator SERVING_REPOSITORY=localhost/modelramp-serving \
  IMAGE_TAG=dev CHART_VALUES=hack/cluster/real-node-values.yaml

images: cluster-up ## build localhost/modelramp-{operator,serving}:dev (buildah, Dockerfile) into node-real-1's containerd
	hack/images.sh $(NODE_CONTAINERD) pause base operator serving

traefik: ## build Traefik (once per version) into $(MODELRAMP_CACHE)/bin
	hack/install-tools.sh traefik >/dev/null

# The real node's tests run in `make test`: pods of the Debian base image behind a Service and the
# gateway, Prometheus's pod discovery. Only e2e-real's (marker dataplane) need the images.
test-deps: traefik

test-realnode: venv cluster-up prometheus traefik ## real containers on node-real-1: kube-proxy's and the gateway's splits, pod discovery, isolation
	$(VENV)/bin/pytest -m "realnode and not dataplane" $(PYTEST_ARGS)

# The chart's operator watches every namespace: it is uninstalled at the end, pass or fail, or it
# would act on the ModelDeployments of the cluster tests' own operators.
e2e-real: venv images prometheus traefik ## node-real-1: the chart's operator, the kind workflow's rollout, then rollouts through the Service and the gateway on Prometheus data
	$(MAKE) chart-install $(LOCAL_IMAGES)
	status=0; { $(MAKE) e2e-rollout $(LOCAL_IMAGES) KUBECTL=$(OPERATOR_KUBECTL) && \
	  $(OPERATOR_KUBECTL) delete --ignore-not-found -f $(E2E_SAMPLE) && \
	  $(VENV)/bin/pytest -s -m dataplane $(PYTEST_ARGS); } || status=$$?; \
	"$$(hack/install-tools.sh helm)" uninstall modelramp --namespace $(RELEASE_NAMESPACE) --wait; exit $$status
