"""The floor for any Python HTTP server on this machine: a reference point for bench/serving.py, not
a server anyone should run.

It answers an OIP binary-tensor request (one FP32 input, binary output) with the least work
Python can do: uvloop, httptools, one orjson parse, `np.frombuffer`, the AOTInductor runner, one
write. No validation, no batching, no metrics, no limits, no error handling. What modelramp serves
above this is the price of those; what this serves below the raw forward is the price of Python
HTTP itself. `--processes N` runs N of them on one port (SO_REUSEPORT), each with one torch thread.

    python bench/bare_http_server.py PACKAGE --port 8000 [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import subprocess
import sys
from typing import Any, cast

import httptools
import numpy as np
import orjson
import torch
import uvloop

from modelramp.serving.aoti import direct_forward

HEADER_LENGTH = b"inference-header-content-length"


class BareOip(asyncio.Protocol):
    def __init__(self, forward: Any) -> None:
        self.forward = forward
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.header_length = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == HEADER_LENGTH:
            self.header_length = int(value)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        if self.parser.get_method() != b"POST":  # the bench's readiness probe
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            return
        body, self.body = b"".join(self.body), []
        header = orjson.loads(body[: self.header_length])
        shape = header["inputs"][0]["shape"]
        rows = np.frombuffer(body, dtype=np.float32, offset=self.header_length).reshape(shape)
        with torch.inference_mode():
            output = self.forward(torch.from_numpy(rows)).numpy()
        raw = output.tobytes()
        reply = orjson.dumps(
            {
                "model_name": "model",
                "outputs": [
                    {
                        "name": "output-0",
                        "datatype": "FP32",
                        "shape": list(output.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
            }
        )
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            b"inference-header-content-length: %d\r\ncontent-length: %d\r\n\r\n"
        ) % (len(reply), len(reply) + len(raw))
        self.transport.write(head + reply + raw)


async def serve(package: str, port: int) -> None:
    torch.set_num_threads(1)
    forward = direct_forward(torch._inductor.aoti_load_package(package, run_single_threaded=True))
    server = await asyncio.get_running_loop().create_server(
        lambda: BareOip(forward), "127.0.0.1", port, reuse_port=True
    )
    gc.collect()
    gc.freeze()
    print("listening", flush=True)  # what the first process waits for from the others
    await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    others = [
        subprocess.Popen(
            [sys.executable, __file__, args.package, "--port", str(args.port)], stdout=subprocess.PIPE
        )
        for _ in range(args.processes - 1)
    ]
    for other in others:  # all of them listening before the first answers the readiness probe
        assert other.stdout is not None
        other.stdout.readline()

    def stop(_signal: int, _frame: object) -> None:
        for other in others:
            other.terminate()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    uvloop.run(serve(args.package, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
