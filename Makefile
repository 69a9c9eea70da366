# The README's two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# Our folder `operator/` would shadow the stdlib module if the current directory were on sys.path.
export PYTHONSAFEPATH := 1
export MODELRAMP_CACHE ?= $(HOME)/.cache/modelramp
export KUBECONFIG := $(CURDIR)/.cache/kubeconfig
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help venv
help:
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

venv: $(VENV)/.synced ## create .venv from uv.lock
$(VENV)/.synced: pyproject.toml uv.lock hack/venv.sh
	hack/venv.sh
	touch $@

include $(sort $(wildcard mk/*.mk))
