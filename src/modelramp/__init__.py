"""modelramp: ships machine-learning models to Kubernetes safely."""
