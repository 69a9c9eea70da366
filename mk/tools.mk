# Developer tools the packaging tests run, built from the Go module proxy into $(MODELRAMP_CACHE)/bin
# (see hack/install-tools.sh); shellcheck comes from Debian (actionlint runs it on `run:` steps).
.PHONY: tools
tools: ## build helm, actionlint and the Argo CD Lua runner (once) and install Debian's shellcheck if it is missing
	hack/install-tools.sh helm actionlint argocd-lua >/dev/null
	hack/install-debs.sh shellcheck

# The chart, kustomize and workflow tests are unit tests but need these tools (and kubectl).
test-deps: tools
unit: tools cluster-bins
