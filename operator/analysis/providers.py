"""The one place that maps spec.analysis's provider field to a metric provider: one entry per field.

To add a provider: one file implementing `provider.MetricProvider` with a `from_settings`
constructor, its settings model as a field of `AnalysisDefaults` (named in `PROVIDER_FIELDS`),
and one entry in `PROVIDERS`. The controller and the engine hold only the interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelramp.operator.analysis.prometheus import PrometheusMetricProvider
from modelramp.operator.analysis.provider import MetricProvider
from modelramp.operator.api.analysis import AnalysisDefaults, PrometheusProvider, configured_provider

# spec.analysis field -> how its settings make a provider.
PROVIDERS: dict[str, Callable[[Any], MetricProvider]] = {
    "prometheus": PrometheusMetricProvider.from_settings,
}


class ProviderCache:
    """Providers by their settings, so the connection pool of each is reused across reconciles."""

    def __init__(self, default_prometheus: str | None) -> None:
        # The operator's own default (--prometheus-url) for ModelDeployments that name none.
        self._default = PrometheusProvider(address=default_prometheus) if default_prometheus else None
        self._built: dict[tuple[str, str], MetricProvider] = {}

    def provider_for(self, defaults: AnalysisDefaults | None) -> MetricProvider | None:
        chosen = configured_provider(defaults)
        if chosen is None and self._default is not None:
            chosen = ("prometheus", self._default)
        if chosen is None:
            return None
        field, settings = chosen
        key = (field, settings.model_dump_json())
        if key not in self._built:
            self._built[key] = PROVIDERS[field](settings)
        return self._built[key]
