# Serving runtime targets (issue 5). PY, PYTHONSAFEPATH and MODELRAMP_CACHE come from the Makefile.
.PHONY: test-serving test-serving-gpu test-serving-compile lint-serving bench-serving

test-serving: ## serving tests: real models served over loopback HTTP (GPU test skips without CUDA)
	$(PY) -m pytest tests/serving -q

test-serving-gpu: ## only the CUDA path of the server (run on a GPU machine)
	$(PY) -m pytest tests/serving -q -m gpu

test-serving-compile: ## only the AOTInductor tests (one real compile of a tiny MLP with g++)
	$(PY) -m pytest tests/serving -q -m compile

lint-serving: ## ruff and mypy --strict for the serving package, its tests and its benchmark
	$(VENV)/bin/ruff check serving tests/serving bench/serving.py
	$(VENV)/bin/ruff format --check serving tests/serving bench/serving.py
	$(VENV)/bin/mypy serving

bench-serving: venv ## modelramp serve vs mlflow models serve vs KServe vs raw forward (minutes; not a test)
	hack/install-debs.sh wrk
	$(PY) bench/serving.py
