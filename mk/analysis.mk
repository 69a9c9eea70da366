# Statistical quality of the analysis verdicts (operator/analysis): a benchmark, not a test.
.PHONY: bench-analysis
bench-analysis: venv ## false rollbacks and power of the canary judge on simulated counts, old vs new (minutes)
	$(PY) bench/analysis_quality.py $(BENCH_ARGS)
