"""The metric-provider registry: one entry per spec.analysis provider field, chosen from the spec
or the operator's default, built once per settings."""

from __future__ import annotations

from modelramp.operator.analysis.prometheus import PrometheusMetricProvider
from modelramp.operator.analysis.providers import PROVIDERS, ProviderCache
from modelramp.operator.api.analysis import PROVIDER_FIELDS, AnalysisDefaults


def test_every_provider_field_of_the_api_has_exactly_one_entry() -> None:
    assert set(PROVIDERS) == set(PROVIDER_FIELDS)
    assert set(PROVIDER_FIELDS) <= set(AnalysisDefaults.model_fields)


def test_the_spec_names_the_provider_else_the_operator_default_else_none() -> None:
    spec = AnalysisDefaults.model_validate(
        {"prometheus": {"address": "http://spec:9090", "timeoutSeconds": 3}}
    )
    cache = ProviderCache("http://operator-default:9090")
    chosen = cache.provider_for(spec)
    assert isinstance(chosen, PrometheusMetricProvider)
    assert (chosen.address, chosen.timeout_seconds) == ("http://spec:9090", 3)
    default = cache.provider_for(AnalysisDefaults())
    assert isinstance(default, PrometheusMetricProvider)
    assert default.address == "http://operator-default:9090"
    assert cache.provider_for(None) is default
    assert ProviderCache(None).provider_for(AnalysisDefaults()) is None


def test_a_provider_is_built_once_per_settings() -> None:
    cache = ProviderCache(None)
    first = AnalysisDefaults.model_validate({"prometheus": {"address": "http://a:9090"}})
    again = AnalysisDefaults.model_validate({"prometheus": {"address": "http://a:9090"}, "interval": "5m"})
    other = AnalysisDefaults.model_validate(
        {"prometheus": {"address": "http://a:9090", "timeoutSeconds": 30}}
    )
    assert cache.provider_for(first) is cache.provider_for(again)
    assert cache.provider_for(first) is not cache.provider_for(other)
