# A/B tests (docs/abtest.md): benchmarks, not tests.
.PHONY: bench-ab bench-ab-forwarding
bench-ab: venv ## false winners and power of the A/B judge on simulated counts, beside the naive rule (minutes)
	$(PY) bench/ab_quality.py $(BENCH_ARGS)

bench-ab-forwarding: venv ## what a forwarded A/B request costs, on loopback
	$(PY) bench/ab_forwarding.py $(BENCH_ARGS)
