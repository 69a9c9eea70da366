# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target operator -t modelramp-operator .
#   docker build --target serving  -t modelramp-serving  .
# Both install exactly what the tests install: `uv sync --frozen` from uv.lock (as hack/venv.sh
# does), without the dev group. Tags are pinned; pin digests when releasing.
#
# Python: by default uv's relocatable CPython 3.11.7 (UV_PYTHON_PREFERENCE=only-managed), which
# `uv python install` downloads from python-build-standalone's GitHub releases, so the same /opt
# tree runs on the slim Debian base and on the CUDA (Ubuntu) base. Where only package registries
# can be reached, build with UV_PYTHON_PREFERENCE=only-system UV_PYTHON=python3.11: the base
# image's own Python, which CUDA_IMAGE must then carry at the same path (hack/images.sh passes one
# Debian base built by debootstrap as both PYTHON_IMAGE and CUDA_IMAGE).

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
ARG UV_VERSION=0.13.8
ARG UV_PYTHON=3.11.7
ARG UV_PYTHON_PREFERENCE=only-managed

# ---- build: the locked environment, built once ---------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
# uv reads both from the environment, in `uv python install` and `uv sync` alike.
ARG UV_PYTHON
ARG UV_PYTHON_PREFERENCE
# PIP_BREAK_SYSTEM_PACKAGES: a Debian base's pip refuses to install uv outside a venv otherwise.
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/opt/modelramp PIP_BREAK_SYSTEM_PACKAGES=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}" && mkdir -p /opt/python \
    && if [ "$UV_PYTHON_PREFERENCE" != only-system ]; then uv python install "$UV_PYTHON"; fi
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src/ src/
COPY operator/ operator/
COPY serving/ serving/
RUN uv sync --frozen --no-dev --no-editable

# ---- operator: slim Python, non-root --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/modelramp /opt/modelramp
# uid 65532 has no passwd entry: getpass.getuser() (kopf's peering identity, among others) reads
# LOGNAME first and would raise without it.
ENV PATH=/opt/modelramp/bin:$PATH PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    LOGNAME=modelramp
USER 65532:65532
ENTRYPOINT ["modelramp", "operator"]

# ---- serving: CUDA runtime, non-root, read-only root friendly --------------------------------
# torch's CUDA wheels from uv.lock bring their own CUDA user-space libraries; the base image
# supplies the NVIDIA container runtime's environment (driver capabilities, compat checks).
FROM ${CUDA_IMAGE} AS serving
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/modelramp /opt/modelramp
# With readOnlyRootFilesystem, mount an emptyDir at /tmp: model downloads and caches go there.
ENV PATH=/opt/modelramp/bin:$PATH \
    PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LOGNAME=modelramp \
    TMPDIR=/tmp HOME=/tmp MPLCONFIGDIR=/tmp \
    MODELRAMP_HOST=0.0.0.0 MODELRAMP_PORT=8080
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2).status != 200)"]
ENTRYPOINT ["modelramp", "serve"]
