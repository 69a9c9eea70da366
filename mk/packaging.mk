# The Helm chart and what is rendered from it (the kustomize base, the monitoring manifests), and
# the install-and-roll steps the kind workflow and the local cluster share.
.PHONY: manifests chart-lint chart-install e2e-rollout
RELEASE_NAMESPACE ?= modelramp-system
IMAGE_REGISTRY ?= ghcr.io/modelramp
IMAGE_TAG ?= 0.1.0
OPERATOR_REPOSITORY ?= $(IMAGE_REGISTRY)/operator
SERVING_REPOSITORY ?= $(IMAGE_REGISTRY)/serving
# Extra values for the install, e.g. where the operator's pod may run (hack/cluster/real-node-values.yaml).
CHART_VALUES ?=
E2E_SAMPLE ?= manifests/e2e/scorer.yaml
E2E_VOLUME ?= manifests/e2e/volume.yaml
E2E_MODELS_JOB ?= manifests/e2e/models-job.yaml
E2E_NEW_MODEL_URI ?=

manifests: tools ## re-render manifests/base and manifests/monitoring from charts/modelramp
	hack/render-manifests.sh

chart-lint: tools ## helm lint the chart for the Kubernetes version we test against
	"$$(hack/install-tools.sh helm)" lint charts/modelramp --strict --kube-version 1.34

chart-install: tools ## helm install/upgrade the chart into the cluster of .cache/kubeconfig and wait for the operator
	"$$(hack/install-tools.sh helm)" upgrade --install modelramp charts/modelramp \
	  --namespace $(RELEASE_NAMESPACE) --create-namespace --wait --timeout 5m \
	  --set image.repository=$(OPERATOR_REPOSITORY) --set image.tag=$(IMAGE_TAG) \
	  --set servingImage.repository=$(SERVING_REPOSITORY) --set servingImage.tag=$(IMAGE_TAG) \
	  $(if $(CHART_VALUES),--values $(CHART_VALUES))

e2e-rollout: ## fill the models volume (E2E_VOLUME, E2E_MODELS_JOB), apply E2E_SAMPLE, roll it to its next model, wait for the promotion
	E2E_VOLUME=$(E2E_VOLUME) E2E_MODELS_JOB=$(E2E_MODELS_JOB) SERVING_IMAGE=$(SERVING_REPOSITORY):$(IMAGE_TAG) \
	  hack/e2e-rollout.sh "$(E2E_SAMPLE)" "$(E2E_NEW_MODEL_URI)"
