"""What several server processes (`--processes`) counted, summed into one scrape and one statistics
document.

Prometheus scrapes a pod's port once and whichever process accepts the connection answers, so each
answers for all: its own registry plus its siblings' snapshots (`processes`). Reporting one process
alone would make the pod's counters jump back and forth between processes, which a rate reads as a
counter reset each time. Counters and histograms add up; a `_created` series takes the earliest
time; a gauge the largest value. Right for every gauge the server has: `modelramp_model_info` (1),
`modelramp_input_reference` (the same reference counts in each process; a sum would double them)
and `modelramp_shadow_active` (any process copying). A gauge that should add up (an in-flight
count) would need its own rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from modelramp.serving.metrics import InferenceStatistics

# (sample name, sorted label pairs)
_SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def snapshot(registry: CollectorRegistry, statistics: InferenceStatistics) -> bytes:
    """One process's metrics and statistics, as its siblings read them."""
    families = [
        {
            "name": family.name,
            "documentation": family.documentation,
            "type": family.type,
            "unit": family.unit,
            "samples": [[sample.name, sample.labels, sample.value] for sample in family.samples],
        }
        for family in registry.collect()
    ]
    return orjson.dumps({"families": families, "statistics": dataclasses.asdict(statistics)})


def merged_exposition(snapshots: Sequence[bytes]) -> bytes:
    """The Prometheus text exposition of every process's metrics together."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged([orjson.loads(raw)["families"] for raw in snapshots]))
    return generate_latest(registry)


def merged_statistics(snapshots: Sequence[bytes]) -> InferenceStatistics:
    """Every process's inference statistics added up; the last inference is the latest one's."""
    total = InferenceStatistics()
    for raw in snapshots:
        one = InferenceStatistics(**orjson.loads(raw)["statistics"])
        for field in dataclasses.fields(total):
            mine, theirs = getattr(total, field.name), getattr(one, field.name)
            combined = max(mine, theirs) if field.name == "last_inference_ms" else mine + theirs
            setattr(total, field.name, combined)
    return total


class _Merged(Collector):
    def __init__(self, processes: list[list[dict[str, Any]]]) -> None:
        self._processes = processes

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[_SampleKey, float]] = {}
        for process in self._processes:
            for exported in process:
                name = exported["name"]
                if name not in families:
                    families[name] = Metric(
                        name, exported["documentation"], exported["type"], exported["unit"]
                    )
                    values[name] = {}
                _combine(values[name], exported["type"], exported["samples"])
        for name, family in families.items():
            for (sample, labels), value in values[name].items():
                family.add_sample(sample, dict(labels), value)
            yield family


def _combine(into: dict[_SampleKey, float], kind: str, samples: Iterable[list[Any]]) -> None:
    for sample, labels, value in samples:
        key = (sample, tuple(sorted(labels.items())))
        if key not in into:
            into[key] = value
        elif sample.endswith("_created"):
            into[key] = min(into[key], value)
        elif kind == "gauge":
            into[key] = max(into[key], value)
        else:
            into[key] += value
