# The pure rollout engine (operator/rollout) and the traffic routers (operator/routers).
.PHONY: test-rollout test-rollout-thorough
ROLLOUT_TESTS := tests/unit/test_rollout_*.py tests/unit/test_routers.py

test-rollout: venv ## rollout engine and routers: scenario, table, property and builder tests (no cluster)
	$(VENV)/bin/pytest -q $(ROLLOUT_TESTS)

test-rollout-thorough: venv ## the rollout property tests with 10x the random examples (minutes)
	MODELRAMP_PROPERTY_EXAMPLES=400 $(VENV)/bin/pytest -q tests/unit/test_rollout_properties.py
