# The ModelDeployment CRD, generated from the pydantic models in operator/api (see operator/crdgen.py).
.PHONY: crds check-generated
CRD_FILES := crds/modelramp.dev_modeldeployments.yaml charts/modelramp/crds/modelramp.dev_modeldeployments.yaml

crds: venv ## regenerate the CRD (and the chart's copy) from operator/api
	$(VENV)/bin/modelramp crds --write $(CRD_FILES)

check-generated: venv ## fail when a generated file (the CRDs) is stale
	$(VENV)/bin/modelramp crds --check $(CRD_FILES)
lint: check-generated
