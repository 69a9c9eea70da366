"""What sticky A/B assignment costs a request (a benchmark, not a test): two `modelramp serve`
processes on loopback following one assignment table (50/50), and a third serving the same model
with no table, measured in the same run, requests interleaved:

- no test: the server without a table (the baseline);
- served here: a user whose variant is the server the request entered at (assignment only);
- forwarded: a user of the other variant (assignment, then one more HTTP hop and back).

In a cluster the hop is pod to Service to pod, usually under a millisecond on the same node
network; loopback shows what the server itself adds. Prints p50, p95 and mean per kind and the
forward's extra time.

    PYTHONSAFEPATH=1 .venv/bin/python bench/ab_forwarding.py [--requests 2000] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch

MODELRAMP = Path(sys.prefix) / "bin" / "modelramp"
ROW = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
SALT = "bench"


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.linear(x)
        return output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(model: Path, port: int, version: str, table: Path | None, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(MODELRAMP), "serve", "--model-uri", f"file://{model}", "--format", "torchscript",
        "--model-name", "model", "--model-version", version, "--input-shape", "4",
        "--host", "127.0.0.1", "--port", str(port), "--max-latency-ms", "0", "--log-level", "warning",
    ]  # fmt: skip
    if table is not None:
        command += ["--assignment-file", str(table)]
    env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready")


def variant_of(user: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(f"{SALT}:{user}".encode()).digest()[:8], "big") % 100
    return "a" if bucket < 50 else "b"


def measure(
    kinds: dict[str, tuple[int, list[str]]], requests: int, concurrency: int
) -> dict[str, np.ndarray]:
    """Per kind, the client-side latency of `requests` requests, kinds interleaved."""
    plan = [(kind, i) for i in range(requests) for kind in kinds]
    times: dict[str, list[float]] = {kind: [] for kind in kinds}

    def one(client: httpx.Client, kind: str, i: int) -> None:
        port, users = kinds[kind]
        started = time.perf_counter()
        answer = client.post(
            f"http://127.0.0.1:{port}/v2/models/model/infer",
            json=ROW,
            headers={"x-user-id": users[i % len(users)]},
        )
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(answer.text)
        times[kind].append(elapsed)

    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=concurrency * 3)) as client:
        for kind, i in plan[: 50 * len(kinds)]:  # warm-up: connections, caches
            one(client, kind, i)
        for values in times.values():
            values.clear()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda item: one(client, *item), plan))
    return {kind: np.array(values) * 1000 for kind, values in times.items()}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--requests", type=int, default=2000)
    cli.add_argument("--concurrency", default="1")
    args = cli.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ab-forwarding-"))
    model = workdir / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny().eval()), str(model))
    ports = {"a": free_port(), "b": free_port(), "plain": free_port()}
    table = workdir / "assignment.json"
    table.write_text(
        json.dumps(
            {
                "test": "bench",
                "header": "x-user-id",
                "salt": SALT,
                "variants": [
                    {
                        "name": name,
                        "weight": 50,
                        "revision": name,
                        "model": "model",
                        "url": f"http://127.0.0.1:{ports[name]}",
                    }
                    for name in ("a", "b")
                ],
            }
        )
    )
    servers = [
        serve(model, ports["a"], "a", table, workdir / "a.log"),
        serve(model, ports["b"], "b", table, workdir / "b.log"),
        serve(model, ports["plain"], "plain", None, workdir / "plain.log"),
    ]
    try:
        for port in ports.values():
            wait_ready(port)
        users = [f"user-{i}" for i in range(1000)]
        of_a = [u for u in users if variant_of(u) == "a"]
        of_b = [u for u in users if variant_of(u) == "b"]
        kinds = {
            "no test": (ports["plain"], users),
            "served here": (ports["a"], of_a),
            "forwarded": (ports["a"], of_b),
        }
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            found = measure(kinds, args.requests, concurrency)
            print(
                f"\nconcurrency {concurrency}, {args.requests} requests per kind (ms, client side, loopback)"
            )
            print("| kind | p50 | p95 | mean |")
            print("|---|---|---|---|")
            for kind, values in found.items():
                p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
                print(f"| {kind} | {p50:.2f} | {p95:.2f} | {values.mean():.2f} |")
            extra = np.percentile(found["forwarded"], 50) - np.percentile(found["served here"], 50)
            own = np.percentile(found["served here"], 50) - np.percentile(found["no test"], 50)
            print(f"forward adds {extra:.2f} ms at p50; assignment itself {own:+.2f} ms")
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
