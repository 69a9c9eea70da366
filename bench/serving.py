"""Serving benchmark (run on demand, not a test): modelramp vs MLflow vs KServe vs raw batched forward.

Same models (a small MLP and a ResNet-18-size CNN, random weights), same machine, same load
generator (wrk, one thread, keep-alive connections) at several concurrencies, side by side in one
run: one row per request in JSON (modelramp serving TorchScript and the AOTInductor package,
MLflow, KServe), and modelramp with 64 rows per request as binary tensors (tritonclient's default)
for each format: TorchScript, ExportedProgram and AOTInductor (`modelramp compile`, also with
`--processes 2`), and the same 64-row requests to the Python floor (`bare_http_server.py`, 1 and 2
processes). Each modelramp point's baseline is the raw forward of the same file (`model(x)` in a
loop, no HTTP) at the mean batch modelramp formed at that concurrency (read from its
`modelramp_batch_size` histogram); for two processes, two such loops side by side. Prints
throughput, p50 and p99 for each, and the ratios the issue sets as goals (>= 3x MLflow, >= 1.5x
KServe, >= 70% of raw batched forward, lower p99).

    PYTHONSAFEPATH=1 .venv/bin/python bench/serving.py [--seconds 5] [--concurrency 1,8,32]

KServe lives in its own venv (~/.cache/modelramp/bench-kserve; its pins conflict with ours) and
borrows torch from ours through a .pth file. MLflow runs `mlflow models serve --env-manager local`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelramp.serving.aoti import direct_forward

CACHE = Path(os.environ.get("MODELRAMP_CACHE", Path.home() / ".cache" / "modelramp"))
KSERVE_VENV = CACHE / "bench-kserve"
HERE_VENV = Path(sys.prefix)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.layers(x)
        return output


class Block(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.skip = (
            nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
            if stride != 1 or inputs != outputs
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ResNet18(nn.Module):
    """ResNet-18's layout (11.7 M parameters), written out here: torchvision isn't a dependency."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        self.stages = nn.Sequential(*(nn.Sequential(Block(i, o, s), Block(o, o, 1)) for i, o, s in widths))
        self.head = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)
        output: torch.Tensor = self.head(features)
        return output


# The multi-row point: what a batch client (tritonclient's default binary tensors) sends.
MULTI_ROWS = 64
FORMATS = ("torchscript", "exported-program", "aoti")
MULTI_ROW_SERVERS = (*((model_format, 1) for model_format in FORMATS), ("aoti", 2))


@dataclass
class Case:
    name: str
    model: nn.Module
    row_shape: tuple[int, ...]
    # The 64-row binary points: for the MLP (the goal). A CNN at 64 images per request
    # takes seconds per request on 2 cores, past wrk's timeout at any concurrency.
    multi_row: bool = True


@dataclass
class Result:
    server: str
    case: str
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    rows_per_forward: float | None = None  # modelramp's mean batch; the raw loop's batch
    rows_per_request: int = 1
    format: str | None = None  # modelramp's and the raw loop's model format
    processes: int = 1  # a server's processes; the raw loops run side by side


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- load generator: wrk (C, one thread, keep-alive), the same for every server -----------------

WRK_SCRIPT = """
local file = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local header_length = os.getenv("BENCH_HEADER_LENGTH")
if header_length then wrk.headers["Inference-Header-Content-Length"] = header_length end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Load:
    """One server's request: where to send which body."""

    port: int
    path: str
    body: bytes
    header_length: int | None = None  # binary tensors: the JSON header's length


def wrk(load: Load, work: Path, concurrency: int, seconds: int) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors) from one wrk run; non-2xx answers count as errors."""
    script, body = work / "post.lua", work / "body.json"
    script.write_text(WRK_SCRIPT)
    body.write_bytes(load.body)
    command = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(script),
        f"http://127.0.0.1:{load.port}{load.path}",
    ]  # fmt: skip
    env = os.environ | {"BENCH_BODY": str(body)}
    if load.header_length is not None:
        env["BENCH_HEADER_LENGTH"] = str(load.header_length)
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, errors, p50_us, p99_us = (int(field) for field in line.split()[1:])
    return requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors


def measure(server: str, case: str, load: Load, *, work: Path, concurrency: int, seconds: int) -> Result:
    wrk(load, work, concurrency, 1)  # warm-up: connections, allocator, TorchScript profiling runs
    throughput, p50, p99, errors = wrk(load, work, concurrency, seconds)
    return Result(server, case, concurrency, throughput, p50, p99, errors)


def http_body(body: Mapping[str, object]) -> bytes:
    return json.dumps(body).encode()


def binary_body(rows: np.ndarray) -> tuple[bytes, int]:
    """An OIP request with the rows as binary tensor data and binary output, as tritonclient sends."""
    raw = rows.astype(np.float32).tobytes()
    header = http_body(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    return header + raw, len(header)


def forwards(port: int) -> tuple[float, float]:
    """(forwards, rows) so far, from modelramp's own `modelramp_batch_size` histogram."""
    # Generous: a saturated server answers /metrics after the forwards queued before it.
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = b"".join(iter(lambda: connection.recv(65536), b"")).decode()
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("modelramp_batch_size_count{", "modelramp_batch_size_sum{"))
    }
    return values["modelramp_batch_size_count"], values["modelramp_batch_size_sum"]


# ---- the servers --------------------------------------------------------------------------


def wait_ready(process: subprocess.Popen[bytes], port: int, path: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if connection.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on {port} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def spawn(
    command: list[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server process with its output in `log`; `env` adds to ours (PYTHONSAFEPATH always set)."""
    environ = os.environ | {"PYTHONSAFEPATH": "1"} | dict(env or {})
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=environ, cwd=cwd)


def start_modelramp(
    path: Path, model_format: str, case: Case, port: int, log: Path, *, processes: int = 1
) -> subprocess.Popen[bytes]:
    # TorchScript records no input shape; the other two formats carry it.
    shape = ["--input-shape", ",".join(map(str, case.row_shape))] if model_format == "torchscript" else []
    command = [
        str(HERE_VENV / "bin" / "modelramp"), "serve", "--model-uri", str(path), "--format", model_format,
        *shape, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        # No access log; the start-up line says how many torch threads it chose.
        "--log-level", "info", "--max-body-bytes", str(64 << 20), "--processes", str(processes),
    ]  # fmt: skip
    return spawn(command, log)


def start_bare(package: Path, processes: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(HERE_VENV / "bin" / "python"), str(Path(__file__).with_name("bare_http_server.py")), str(package),
        "--port", str(port), "--processes", str(processes),
    ]  # fmt: skip
    return spawn(command, log)


def torch_threads_of(log: Path) -> str:
    """The torch thread count modelramp chose (its start-up log line), to give the peers the same."""
    match = re.search(r"(\d+) torch threads", log.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"no torch thread count in {log}")
    return match.group(1)


def start_mlflow(model_dir: Path, port: int, log: Path, threads: str) -> subprocess.Popen[bytes]:
    command = [
        str(HERE_VENV / "bin" / "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # MLflow starts `uvicorn` by name: our venv's bin must be on PATH.
    path = f"{HERE_VENV / 'bin'}:{os.environ.get('PATH', '')}"
    return spawn(command, log, {"OMP_NUM_THREADS": threads, "PATH": path})


KSERVE_SERVER = """
import sys, torch, kserve

class TorchModel(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.module = torch.jit.load(path).eval()
        self.ready = True

    def predict(self, payload, headers=None):
        x = torch.tensor(payload["instances"], dtype=torch.float32)
        with torch.inference_mode():
            return {"predictions": self.module(x).tolist()}

kserve.ModelServer(http_port=int(sys.argv[2]), enable_grpc=False).start([TorchModel("model", sys.argv[1])])
"""


def ensure_kserve() -> Path | None:
    python = KSERVE_VENV / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv") or str(CACHE / "uv-0.13.8" / "bin" / "uv")
        subprocess.run([uv, "venv", "-q", "--python", "python3.11", str(KSERVE_VENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "kserve"], check=True)
    site = next((KSERVE_VENV / "lib").glob("python3*/site-packages"))
    ours = next((HERE_VENV / "lib").glob("python3*/site-packages"))
    (site / "zz-modelramp-torch.pth").write_text(f"{ours}\n")  # appended last: kserve's own pins win
    return python


def start_kserve(
    python: Path, path: Path, port: int, log: Path, *, work: Path, threads: str
) -> subprocess.Popen[bytes]:
    script = work / "kserve_server.py"
    script.write_text(KSERVE_SERVER)
    return spawn([str(python), str(script), str(path), str(port)], log, {"OMP_NUM_THREADS": threads}, work)


def load_raw(path: Path, model_format: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model in `path` as modelramp loads it, minus the server."""
    if model_format == "torchscript":
        module: Callable[[torch.Tensor], torch.Tensor] = torch.jit.load(str(path)).eval()  # type: ignore[no-untyped-call]
        return module
    if model_format == "exported-program":
        program: Callable[[torch.Tensor], torch.Tensor] = torch.export.load(str(path)).module()
        return program
    # The runner called as modelramp calls it (`direct_forward`: without the package's tree specs).
    compiled: Callable[[torch.Tensor], torch.Tensor] = direct_forward(
        torch._inductor.aoti_load_package(str(path), run_single_threaded=True)
    )
    return compiled


def raw_batched(
    path: Path,
    model_format: str,
    case: Case,
    batch: int,
    *,
    concurrency: int,
    seconds: float,
    processes: int = 1,
) -> Result:
    """The limit: the served file's `model(x)` on `batch` rows in a loop, no HTTP, no JSON.

    `batch` is the mean batch modelramp formed at `concurrency`, so the ratio compares the server
    with the model doing the same work it did. Runs with one torch thread and with one per CPU and
    keeps the faster, so the limit is the best this machine gives, not torch's default. For a
    server of several processes, as many loops run side by side, one thread each, and their rows
    add up: the same CPUs doing the same work.
    """
    if processes > 1:
        loop = RawLoop(path, model_format, case.row_shape, batch, time.time() + 30, seconds)
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            loops = pool.map(_raw_process, [loop] * processes)
        how = f"{processes} processes x 1 thread"
        return _raw_result(
            case,
            loops,
            concurrency=concurrency,
            model_format=model_format,
            how=how,
            batch=batch,
            seconds=seconds,
        )
    model = load_raw(path, model_format)
    default_threads = torch.get_num_threads()
    best: Result | None = None
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        times = _timed_loop(model, case.row_shape, batch, time.perf_counter() + seconds / 2)
        how = f"{threads} thread{'s' if threads > 1 else ''}"
        result = _raw_result(
            case,
            [times],
            concurrency=concurrency,
            model_format=model_format,
            how=how,
            batch=batch,
            seconds=seconds / 2,
        )
        if best is None or result.throughput > best.throughput:
            best = result
    torch.set_num_threads(default_threads)
    assert best is not None
    return best


def _timed_loop(
    model: Callable[[torch.Tensor], torch.Tensor], row_shape: tuple[int, ...], batch: int, until: float
) -> list[float]:
    """Seconds of each forward, until `until` (`time.perf_counter`)."""
    x = torch.randn(batch, *row_shape)
    times = []
    with torch.inference_mode():
        for _ in range(3):  # TorchScript's profiling runs
            model(x)
        while (before := time.perf_counter()) < until:
            model(x)
            times.append(time.perf_counter() - before)
    return times


def _raw_result(
    case: Case,
    loops: list[list[float]],
    *,
    concurrency: int,
    model_format: str,
    how: str,
    batch: int,
    seconds: float,
) -> Result:
    """One raw point from the forward times of each loop (run side by side for `seconds`)."""
    ordered = np.sort(np.concatenate(loops)) * 1000
    rows_per_s = sum(len(times) * batch / seconds for times in loops)
    p50, p99 = float(np.percentile(ordered, 50)), float(np.percentile(ordered, 99))
    name = f"raw {model_format} model(x), {how}"
    return Result(
        name,
        case.name,
        concurrency,
        rows_per_s,
        p50,
        p99,
        0,
        batch,
        format=model_format,
        processes=len(loops),
    )


@dataclass(frozen=True)
class RawLoop:
    """One of the raw loops run side by side, in a process of its own."""

    path: Path
    model_format: str
    row_shape: tuple[int, ...]
    batch: int
    start_at: float  # time.time(): every process has loaded its model by then
    seconds: float


def _raw_process(loop: RawLoop) -> list[float]:
    torch.set_num_threads(1)
    model = load_raw(loop.path, loop.model_format)
    _timed_loop(model, loop.row_shape, loop.batch, time.perf_counter() + 0.2)  # warm-up
    time.sleep(max(0.0, loop.start_at - time.time()))
    return _timed_loop(model, loop.row_shape, loop.batch, time.perf_counter() + loop.seconds)


def compile_package(program_path: Path, work: Path) -> Path:
    """`modelramp compile`, as a user runs it (its cache in the bench's folder: a real compile)."""
    package = program_path.with_name(f"{program_path.stem}-aoti.pt2")
    command = [str(HERE_VENV / "bin" / "modelramp"), "compile", str(program_path), "-o", str(package)]
    started = time.perf_counter()
    subprocess.run(
        [*command, "--cache", str(work / "aoti-cache")],
        check=True,
        capture_output=True,
        env=os.environ | {"PYTHONSAFEPATH": "1"},
    )
    print(f"  modelramp compile {program_path.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return package


@dataclass
class Server:
    name: str
    start: Callable[[int, Path], subprocess.Popen[bytes]]
    ready_path: str
    path: str
    body: bytes
    header_length: int | None = None
    rows_per_request: int = 1
    format: str | None = None  # modelramp's
    fixed_batch: int | None = None  # rows per forward of a server without modelramp's metrics
    processes: int = 1

    def describe(self, result: Result) -> None:
        """What this server's set-up tells about one of its measurements."""
        if self.fixed_batch is not None:
            result.rows_per_forward = self.fixed_batch
        result.rows_per_request = self.rows_per_request
        result.format = self.format
        result.processes = self.processes


def run_case(case: Case, args: argparse.Namespace, work: Path, kserve_python: Path | None) -> list[Result]:
    import mlflow.pytorch  # noqa: PLC0415 - only the bench needs it at import time

    torch.manual_seed(0)
    model = case.model.eval()
    files = {
        "torchscript": work / f"{case.name}.pt",
        "exported-program": work / f"{case.name}.pt2",
    }
    torch.jit.save(torch.jit.script(model), str(files["torchscript"]))
    example = torch.zeros((2, *case.row_shape))
    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(model, (example,), dynamic_shapes={"x": batch})
    torch.export.save(program, str(files["exported-program"]))
    files["aoti"] = compile_package(files["exported-program"], work)
    mlflow_dir = work / f"{case.name}-mlflow"
    mlflow_example = np.zeros((1, *case.row_shape), dtype=np.float32)
    mlflow.pytorch.save_model(
        model, str(mlflow_dir), input_example=mlflow_example, pip_requirements=["torch"]
    )

    row = np.random.default_rng(0).normal(size=case.row_shape).round(4).tolist()
    # Peers start after modelramp and get the torch thread count it chose (same CPU budget).
    modelramp_log = work / f"{case.name}-modelramp.log"
    oip = {"inputs": [{"name": "input-0", "shape": [1, *case.row_shape], "datatype": "FP32", "data": [row]}]}
    many = np.random.default_rng(1).normal(size=(MULTI_ROWS, *case.row_shape))
    binary, header_length = binary_body(many)

    def ours(model_format: str, processes: int = 1) -> Callable[[int, Path], subprocess.Popen[bytes]]:
        return lambda port, log: start_modelramp(
            files[model_format], model_format, case, port, log, processes=processes
        )

    def bare(processes: int) -> Callable[[int, Path], subprocess.Popen[bytes]]:
        return lambda port, log: start_bare(files["aoti"], processes, port, log)

    infer = "/v2/models/model/infer"
    servers = [
        Server(
            "modelramp", ours("torchscript"), "/v2/health/ready", infer, http_body(oip), format="torchscript"
        ),
        Server("modelramp aoti", ours("aoti"), "/v2/health/ready", infer, http_body(oip), format="aoti"),
        *(
            Server(
                f"modelramp binary x{MULTI_ROWS} {model_format}{', 2 processes' if processes > 1 else ''}",
                ours(model_format, processes),
                "/v2/health/ready",
                infer,
                binary,
                header_length,
                MULTI_ROWS,
                model_format,
                processes=processes,
            )
            # Two processes for the fastest format: what one pod with two CPUs can serve.
            for model_format, processes in (MULTI_ROW_SERVERS if case.multi_row else ())
        ),
        *(
            Server(
                f"bare python http x{MULTI_ROWS} aoti, {processes} process{'es' if processes > 1 else ''}",
                bare(processes),
                "/",
                infer,
                binary,
                header_length,
                MULTI_ROWS,
                "aoti",
                fixed_batch=MULTI_ROWS,
                processes=processes,
            )
            for processes in ((1, 2) if case.multi_row else ())
        ),
        Server(
            "mlflow serve",
            lambda port, log: start_mlflow(mlflow_dir, port, log, torch_threads_of(modelramp_log)),
            "/ping",
            "/invocations",
            http_body({"inputs": [row]}),
        ),
    ]
    if kserve_python is not None:
        servers.append(
            Server(
                "kserve",
                lambda port, log: start_kserve(
                    kserve_python,
                    files["torchscript"],
                    port,
                    log,
                    work=work,
                    threads=torch_threads_of(modelramp_log),
                ),
                "/v1/models/model",
                "/v1/models/model:predict",
                http_body({"instances": [row]}),
            )
        )
    results: list[Result] = []
    for server in servers:
        port = free_port()
        name = "modelramp" if server.name == "modelramp" else server.name.replace(" ", "-")
        log = work / f"{case.name}-{name}.log"
        process = server.start(port, log)
        try:
            wait_ready(process, port, server.ready_path)
            for concurrency in args.concurrency:
                before = forwards(port) if server.format and not server.fixed_batch else None
                load = Load(port, server.path, server.body, server.header_length)
                result = measure(
                    server.name, case.name, load, work=work, concurrency=concurrency, seconds=args.seconds
                )
                if before is not None:
                    # Over the warm-up and the measurement, both at this concurrency.
                    after = forwards(port)
                    result.rows_per_forward = (after[1] - before[1]) / max(after[0] - before[0], 1)
                server.describe(result)
                results.append(result)
                print(
                    f"  {case.name} {server.name} c={concurrency}: {result.throughput:.0f} req/s",
                    file=sys.stderr,
                )
        except (RuntimeError, OSError) as error:  # OSError: a socket timeout on a saturated server
            print(f"  {server.name} failed: {error}; see {log}", file=sys.stderr)
        finally:
            stop(process)
    # After the servers stopped, so the raw loop has the machine to itself.
    batches = {
        (result.format, result.concurrency, max(1, round(result.rows_per_forward or 1)), result.processes)
        for result in results
        if result.format is not None
    }
    for model_format, concurrency, rows, processes in sorted(batches):
        results.append(
            raw_batched(
                files[model_format],
                model_format,
                case,
                rows,
                concurrency=concurrency,
                seconds=args.seconds,
                processes=processes,
            )
        )
    return results


def _ratio(ours: Result, other: Result | None) -> str:
    return f"{ours.throughput / other.throughput:.2f}x" if other and other.throughput else "n/a"


def _p99(ours: Result, other: Result | None) -> str:
    return f"{ours.p99_ms / other.p99_ms:.2f}" if other and other.p99_ms else "n/a"


def report(results: list[Result]) -> str:
    lines = [
        "| model | server | concurrency | rows/forward | req/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        raw_loop = r.server.startswith("raw")
        label = f"(for c={r.concurrency})" if raw_loop else str(r.concurrency)
        rows = "" if r.rows_per_forward is None else f"{r.rows_per_forward:.1f}"
        requests = "" if raw_loop else f"{r.throughput:.0f}"
        lines.append(
            f"| {r.case} | {r.server} | {label} | {rows} | {requests} | {_rows_per_s(r):.0f}"
            f" | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} |"
        )
    lines += [
        "",
        "| model | server | concurrency | vs MLflow (goal >= 3x) | vs KServe (goal >= 1.5x)"
        " | vs raw, same file and batch (goal >= 0.7)"
        " | p99 vs MLflow / KServe |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.case, r.server, r.concurrency): r for r in results}
    raws = {
        (r.case, r.format, r.concurrency, round(r.rows_per_forward or 1), r.processes): r
        for r in results
        if r.server.startswith("raw")
    }
    for r in results:
        if r.format is None or r.server.startswith("raw"):
            continue
        one_row = r.rows_per_request == 1
        mlflow_r = by_key.get((r.case, "mlflow serve", r.concurrency)) if one_row else None
        kserve_r = by_key.get((r.case, "kserve", r.concurrency)) if one_row else None
        raw = raws.get((r.case, r.format, r.concurrency, max(1, round(r.rows_per_forward or 1)), r.processes))
        vs_raw = f"{_rows_per_s(r) / raw.throughput:.2f}" if raw else "n/a"
        lines.append(
            f"| {r.case} | {r.server} | {r.concurrency} | {_ratio(r, mlflow_r)} | {_ratio(r, kserve_r)}"
            f" | {vs_raw} | {_p99(r, mlflow_r)} / {_p99(r, kserve_r)} |"
        )
    return "\n".join(lines)


def _rows_per_s(r: Result) -> float:
    """The raw loop's throughput is already in rows/s; a server's is requests/s x rows per request."""
    return r.throughput if r.server.startswith("raw") else r.throughput * r.rows_per_request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="measurement time per point")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client concurrencies")
    parser.add_argument(
        "--image-size", type=int, default=64, help="CNN input height/width (224 for ImageNet)"
    )
    parser.add_argument("--models", default="mlp,resnet18", help="which of mlp,resnet18")
    parser.add_argument("--no-kserve", action="store_true", help="skip KServe (no venv to build)")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        print("bench/serving.py needs wrk on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    cases = {
        "mlp": Case("mlp", MLP(), (32,)),
        "resnet18": Case("resnet18", ResNet18(), (3, args.image_size, args.image_size), multi_row=False),
    }
    kserve_python = None if args.no_kserve else ensure_kserve()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="modelramp-bench-") as tmp:
        for name in args.models.split(","):
            results += run_case(cases[name], args, Path(tmp), kserve_python)
    print(
        f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end,"
        f" torch {torch.__version__}, {args.seconds}s per point, one row per request (JSON) except"
        f" 'modelramp binary x{MULTI_ROWS} <format>' ({MULTI_ROWS} rows, binary tensors both ways), wrk -t1\n"
    )
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
