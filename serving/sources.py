"""Where model files come from: local/PVC paths, `file://`, `https://`, and MLflow `models:/` / `runs:/`.

Loaders only ever see a local path. Downloads go under `$TMPDIR` (an `emptyDir` in the pod), so the
image works with a read-only root filesystem.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from modelramp.serving.errors import ModelLoadError

_MLFLOW_SCHEMES = ("models:", "runs:", "mlflow-artifacts:")


def local_model_path(uri: str, *, timeout_s: float = 300.0) -> Path:
    """A local path holding the model file (or directory) that `uri` names."""
    if uri.startswith(_MLFLOW_SCHEMES):
        return _download_mlflow_artifact(uri)
    parsed = urlparse(uri)
    if parsed.scheme in ("https", "http"):
        return _download_https(uri, timeout_s)
    if parsed.scheme == "file":
        return _existing(Path(unquote(parsed.path)), uri)
    if parsed.scheme in ("", "pvc"):
        # `pvc://claim/path` is how KServe spells a mounted claim; the operator mounts it at the path.
        return _existing(Path(uri.removeprefix("pvc:/")), uri)
    raise ModelLoadError(f"model-uri: unsupported scheme {parsed.scheme!r} in {uri!r}")


def _existing(path: Path, uri: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"model-uri: {uri!r} does not exist (looked at {path})")
    return path


def _download_https(uri: str, timeout_s: float) -> Path:
    target_dir = Path(tempfile.gettempdir()) / "modelramp-models"
    target_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(uri).path).name or "model"
    target = target_dir / f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{name}"
    if target.exists():
        return target
    # A partial file of its own: processes of one server (`--processes`) download at the same time,
    # and with one shared name a later open truncated what an earlier one was writing.
    handle, partial_name = tempfile.mkstemp(dir=target_dir, prefix=f"{target.name}.", suffix=".partial")
    partial = Path(partial_name)
    try:
        with (
            os.fdopen(handle, "wb") as sink,
            httpx.stream("GET", uri, follow_redirects=True, timeout=timeout_s) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                sink.write(chunk)
    except httpx.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"model-uri: downloading {uri!r} failed: {error}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)  # atomic: a reader sees no file or a whole one
    return target


def _download_mlflow_artifact(uri: str) -> Path:
    # Imported here: mlflow is heavy and only needed for registry or run URIs.
    import mlflow.artifacts  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except MlflowException as error:
        raise ModelLoadError(f"model-uri: MLflow could not resolve {uri!r}: {error.message}") from error
