"""Registers the `mlflow` marker for the registry suite (until pyproject lists it)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mlflow: starts a real MLflow tracking server")
