"""`modelramp serve`: flags and `MODELRAMP_*` variables -> `ServeConfig` -> uvicorn.

On SIGTERM the server turns unready at once (so a load balancer stops sending), lets in-flight
requests finish (up to `--graceful-shutdown-s`), then stops the batcher. With `--processes N` a
supervisor runs N such servers on one port (`processes`).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

from modelramp.serving.config import ServeConfig
from modelramp.serving.errors import ModelLoadError
from modelramp.serving.processes import (
    ASSIGNMENT_ENV,
    ProcessAssignment,
    listen_beside_siblings,
    stop_with_supervisor,
    supervise,
)
from modelramp.serving.siblings import Siblings

if TYPE_CHECKING:
    from modelramp.serving.app import ServingApp

ENV_PREFIX = "MODELRAMP_"
_FLAGS: dict[str, str] = {
    "model_uri": "model URI: path, file://, https://, models:/ or runs:/ (MLflow)",
    "format": "aoti | exported-program | torchscript | mlflow",
    "model_name": "name in the OIP v2 paths and metric labels (default: model)",
    "model_version": "version label (default: 1)",
    "device": "auto | cpu | cuda (default: auto)",
    "compile": "none | aoti: compile an exported program with AOTInductor at load, cached (default: none)",
    "compile_cache": "where load-time compiles are kept (default: $MODELRAMP_CACHE/aoti)",
    "host": "listen address (default: 0.0.0.0)",
    "port": "listen port (default: 8080; 0 picks a free one)",
    "max_batch_size": "most rows in one forward (default: 32)",
    "max_latency_ms": "longest a batch waits for requests already arriving (default: 5)",
    "prediction_buckets": "comma-separated bounds of modelramp_prediction (default: 0,0.1,..,1)",
    "max_body_bytes": "larger request bodies get 413 (default: 16 MiB)",
    "body_timeout_s": "a body not fully received in this time gets 408 (default: 30)",
    "input_reference": "JSON of per-feature reference buckets: export modelramp_input histograms",
    "input_shape": "per-row input shape, e.g. 3,224,224 (required for torchscript)",
    "input_datatype": "input datatype, e.g. FP32 (default: from the model, else FP32)",
    "input_name": "OIP v2 input tensor name (default: input-0)",
    "output_name": "OIP v2 output tensor name (default: output-0)",
    "allow_nan": "accept NaN and infinite inputs (true/false, default: false)",
    "processes": "server processes sharing the port, each with its own copy of the model; metrics and"
    " statistics are summed over them (default: 1)",
    "torch_threads": "torch intra-op threads per process (default: usable CPUs / processes; 1 for a model"
    " run on the event loop)",
    "shadow_config": "JSON file naming a canary to copy requests to (a shadow step's), re-read every second",
    "graceful_shutdown_s": "longest wait for in-flight requests after SIGTERM (default: 30)",
    "assignment_file": "A/B test assignment table (JSON; re-read when it changes): assign users, forward",
    "forward_timeout_s": "longest wait for another A/B variant's answer to a forwarded request (default: 30)",
    "log_level": "critical | error | warning | info | debug (default: info)",
}


def parse_config(argv: list[str], environ: dict[str, str]) -> ServeConfig:
    """Flags win over `MODELRAMP_<FIELD>` variables, which win over the defaults."""
    parser = argparse.ArgumentParser(
        prog="modelramp serve",
        description=(
            "Serve a PyTorch model over HTTP. Every flag can also be set as MODELRAMP_<FLAG>,"
            " e.g. MODELRAMP_MODEL_URI."
        ),
    )
    for field, help_ in _FLAGS.items():
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field, help=help_)
    values = {
        field: environ[ENV_PREFIX + field.upper()]
        for field in _FLAGS
        if ENV_PREFIX + field.upper() in environ
    }
    values.update(
        {field: value for field, value in vars(parser.parse_args(argv)).items() if value is not None}
    )
    return ServeConfig.model_validate(values)


class _DrainingServer(uvicorn.Server):
    """Turns the model unready as soon as a stop signal arrives, before uvicorn drains."""

    def __init__(self, config: uvicorn.Config, app: ServingApp) -> None:
        super().__init__(config)
        self.serving = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.serving.state.draining = True
        super().handle_exit(sig, frame)


def main(argv: list[str]) -> int:
    assigned = os.environ.get(ASSIGNMENT_ENV)
    if assigned is not None:
        assignment = ProcessAssignment.model_validate_json(assigned)
        if not stop_with_supervisor(assignment):
            return 1
        _log_at(assignment.config, f"process {assignment.index} ")
        siblings = Siblings(assignment.directory, assignment.index, assignment.config.processes)
        config = assignment.config
        try:
            listener = listen_beside_siblings(config.host, config.port)
        except OSError as error:
            print(f"modelramp serve: cannot listen on {config.host}:{config.port}: {error}", file=sys.stderr)
            return 1
        return serve(config, sockets=[listener], siblings=siblings)
    try:
        config = parse_config(argv, dict(os.environ))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'config'}: {item['msg']}" for item in error.errors()
        )
        print(f"modelramp serve: invalid configuration: {problems}", file=sys.stderr)
        return 2
    _log_at(config)
    if config.processes > 1:
        return supervise(config)
    return serve(config)


def _log_at(config: ServeConfig, prefix: str = "") -> None:
    logging.basicConfig(
        level=config.log_level.upper(), format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"
    )


def serve(
    config: ServeConfig, *, sockets: list[socket.socket] | None = None, siblings: Siblings | None = None
) -> int:
    """Serves until stopped (on `sockets` when given, as one of several processes with `siblings`)."""
    # Here, not at the top: a `--processes` supervisor never serves, and torch in it would cost
    # the pod one more copy of torch's memory.
    from modelramp.serving.app import create_app  # noqa: PLC0415

    try:
        serving = create_app(
            config,
            on_load_failure=lambda _error: setattr(server, "should_exit", True),
            siblings=siblings,
        )
    except ModelLoadError as error:
        print(f"modelramp serve: {error}", file=sys.stderr)
        return 2
    server = _DrainingServer(
        uvicorn.Config(
            serving.build(),
            host=config.host,
            port=config.port,
            loop="uvloop",
            http="httptools",
            log_level=config.log_level,
            access_log=False,
            timeout_graceful_shutdown=int(config.graceful_shutdown_s),
        ),
        serving,
    )
    server.run(sockets=sockets)
    if serving.load_error is not None:
        print(f"modelramp serve: {serving.load_error}", file=sys.stderr)
        return 1
    return 0
