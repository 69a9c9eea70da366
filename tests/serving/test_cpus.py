"""The CPUs torch may use follow the container's CPU limit, not the machine's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelramp.serving.cpus import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no quota
        ("100000 100000\n", 1),  # one CPU
        ("150000 100000\n", min(AFFINITY, 2)),  # 1.5 CPUs: a second thread still gets half a core
        ("5000 100000\n", 1),  # never below one
        (f"{(AFFINITY + 8) * 100000} 100000\n", AFFINITY),  # a quota above the affinity mask
    ],
)
def test_usable_cpus_is_capped_by_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cpus(path) == expected


def test_without_a_cgroup_file_the_affinity_mask_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "absent") == AFFINITY
