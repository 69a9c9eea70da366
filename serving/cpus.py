"""How many CPUs this process can really run on, to size torch's intra-op thread pool.

torch sizes its pool by the machine's cores, ignoring a container's CPU limit (cgroup `cpu.max`).
More OpenMP threads than usable cores is costly: each parallel region ends in a barrier that waits
for a descheduled thread's next time slice, which turned 0.05 ms MLP forwards into 20-40 ms ones
in our benchmark.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota if any."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))
