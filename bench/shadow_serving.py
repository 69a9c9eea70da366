"""What a shadow step costs stable: client latency of a real `modelramp serve` with its tee off, and
on toward a healthy canary, a canary that is down, and one that takes requests and never answers.

Not a test: prints stable's p50 and p99 as its clients see them and the CPU stable spent per
request (from /proc, so other load on the machine does not inflate it), each with its ratio to the
tee-off baseline measured in the same run, and the copies compared and dropped. Two servers (stable
and a canary, the same TorchScript MLP as tests/serving) and the client share the machine, so the
healthy-canary figure includes the canary's own CPU; in a cluster the canary has pods of its own.

    make bench-shadow-serving            # about 2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.prometheus import free_port
from support.serving import ServingProcess

BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [[0.1, 0.2, 0.3, 0.4]]}]}


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 64)
        self.out = torch.nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.out(torch.relu(self.hidden(x)))
        return result


class Silent:
    """A canary that accepts connections and requests and never answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port), backlog=512)
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self._server.accept()
            self._held.append(connection)


async def load(url: str, requests: int, concurrency: int) -> np.ndarray:
    """Client-side seconds of each request, `concurrency` in flight at a time."""
    timings: list[float] = []
    queue = iter(range(requests))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                answer = await client.post("/v2/models/model/infer", json=BODY)
                timings.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return np.array(timings)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc): what stable spent, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counters(url: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name in ("modelramp_shadow_requests_total", "modelramp_shadow_dropped_total"):
                key = sample.name.removeprefix("modelramp_shadow_").removesuffix("_total")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    torch.manual_seed(0)
    model = workdir / "mlp.pt"
    torch.jit.save(torch.jit.script(Mlp().eval()), str(model))
    config = workdir / "shadow.json"
    config.write_text("{}")
    silent = Silent()
    flags = ["--model-version", "s1", "--shadow-config", str(config)]
    with (
        ServingProcess(model, workdir, extra_args=["--model-version", "c1"]) as canary,
        ServingProcess(model, workdir, extra_args=flags) as stable,
    ):
        cases = {
            "tee off (baseline)": None,
            "healthy canary, 100 %": canary.url,
            "canary down, 100 %": f"http://127.0.0.1:{free_port()}",
            "canary never answers, 100 %": f"http://127.0.0.1:{silent.port}",
        }
        asyncio.run(load(stable.url, 300, args.concurrency))  # warm up
        baseline: np.ndarray | None = None
        print(f"{args.requests} requests, {args.concurrency} in flight, to stable")
        print(
            f"{'case':30} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>6} {'p99 x':>6} "
            f"{'CPU ms/req':>10} {'x':>5}  copies"
        )
        assert stable._process is not None
        pid = stable._process.pid
        cpu_baseline: float | None = None
        for case, target in cases.items():
            document = {"target": target, "percent": 100, "stableVersion": "s1", "canaryVersion": "c1"}
            config.write_text(json.dumps({**document, "timeoutSeconds": 2}) if target else "{}")
            time.sleep(2.5)  # the tee re-reads its config every second
            before, cpu_before = counters(stable.url), cpu_seconds(pid)
            seconds = asyncio.run(load(stable.url, args.requests, args.concurrency))
            time.sleep(3)
            after, cpu = counters(stable.url), (cpu_seconds(pid) - cpu_before) * 1000 / args.requests
            cpu_baseline = cpu if cpu_baseline is None else cpu_baseline
            p50, p99 = np.percentile(seconds, [50, 99]) * 1000
            if baseline is None:
                baseline = np.array([p50, p99])
            ratio = np.array([p50, p99]) / baseline
            moved = {key: after.get(key, 0) - before.get(key, 0) for key in after}
            print(
                f"{case:30} {p50:8.2f} {p99:8.2f} {ratio[0]:6.2f} {ratio[1]:6.2f} {cpu:10.3f} "
                f"{cpu / cpu_baseline:5.2f}  "
                f"compared {moved.get('requests', 0):.0f}, dropped {moved.get('dropped', 0):.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
