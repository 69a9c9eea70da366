# Statistical quality of the analysis verdicts (operator/analysis): a benchmark, not a test.
.PHONY: bench-analysis
bench-analysis: venv ## false rollbacks and power of the canary judge on simulated counts, old vs new (minutes)
	$(PY) bench/analysis_quality.py $(BENCH_ARGS)

.PHONY: bench-shadow bench-shadow-serving
bench-shadow: venv ## a shadow step's paired judge vs a canary step's unpaired one, same canary traffic (minutes)
	$(PY) bench/shadow_quality.py $(BENCH_ARGS)
bench-shadow-serving: venv ## stable's client latency with the shadow tee off and on (healthy, down, silent canary)
	$(PY) bench/shadow_serving.py $(BENCH_ARGS)
