# The ModelDeployment CRD, generated from the pydantic models in operator/api (see operator/crdgen.py).
.PHONY: crds check-generated
CRD_FILES := crds/modelramp.dev_modeldeployments.yaml charts/modelramp/crds/modelramp.dev_modeldeployments.yaml

crds: venv tools ## regenerate the CRD, the chart's copy and the kustomize manifests that embed it
	$(VENV)/bin/modelramp crds --write $(CRD_FILES)
	hack/render-manifests.sh

check-generated: venv ## fail when a generated file (the CRDs) is stale
	$(VENV)/bin/modelramp crds --check $(CRD_FILES)
lint: check-generated
