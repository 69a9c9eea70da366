"""Client traffic for the e2e tests, split between stable and canary by the published weight.

kwok pods run no containers, so the gateway's data plane is stood in for here: the load generator
reads `status.canaryWeight` of the ModelDeployment (what the operator published to the router)
and sends that share of its requests to the canary's model server, the rest to stable's. Loops are
bounded in count and time and stop by themselves; every address is loopback.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from support.models import FEATURES


@dataclass
class WeightedTraffic:
    """Sends OIP v2 requests at `rate` per second until stopped, `max_seconds` or `max_requests`."""

    stable_url: str
    canary_url: str
    weight: Callable[[], int]
    model_name: str = "model"
    rate: float = 40.0
    max_seconds: float = 600.0
    max_requests: int = 100_000
    sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="weighted-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        rng = np.random.default_rng(11)
        deadline = time.monotonic() + self.max_seconds
        canary_sent = total = 0
        weight, weight_read_at = 0, 0.0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline and total < self.max_requests:
                if time.monotonic() - weight_read_at > 0.5:
                    weight, weight_read_at = self.weight(), time.monotonic()
                # Smooth deterministic split: the canary's share never drifts from the weight.
                to_canary = canary_sent * 100 < weight * (total + 1)
                url = self.canary_url if to_canary else self.stable_url
                rows = rng.standard_normal((1, FEATURES)).astype(np.float32)
                body = {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, FEATURES],
                            "datatype": "FP32",
                            "data": rows.ravel().tolist(),
                        }
                    ]
                }
                try:
                    code = client.post(f"{url}/v2/models/{self.model_name}/infer", json=body).status_code
                except httpx.HTTPError:
                    code = 0
                self.sent["canary" if to_canary else "stable", code] += 1
                canary_sent += to_canary
                total += 1
                self._stop.wait(1 / self.rate)
