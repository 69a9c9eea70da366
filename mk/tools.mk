# Developer tools the packaging tests run, built from the Go module proxy into $(MODELRAMP_CACHE)/bin
# (see hack/install-tools.sh); shellcheck comes from Debian (actionlint runs it on `run:` steps).
.PHONY: tools
tools: ## build helm, actionlint and the Argo CD Lua runner (once); shellcheck must come from apt (tests/unit/test_workflows.py needs it)
	hack/install-tools.sh helm actionlint argocd-lua >/dev/null
	@command -v shellcheck >/dev/null || echo "warning: shellcheck is missing (apt-get install shellcheck)" >&2

# The chart, kustomize and workflow tests are unit tests but need these tools (and kubectl).
test-deps: tools
unit: tools cluster-bins
