# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target operator -t modelramp-operator .
#   docker build --target serving  -t modelramp-serving  .
# Both install exactly what the tests install: `uv sync --frozen` from uv.lock (as hack/venv.sh
# does), without the dev group. Python is uv's relocatable build, so the same /opt tree runs on the
# slim Debian base and on the CUDA (Ubuntu) base. Tags are pinned; pin digests when releasing.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
ARG UV_VERSION=0.13.8

# ---- build: the locked environment, built once ---------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/opt/modelramp
RUN pip install --no-cache-dir "uv==${UV_VERSION}" && uv python install 3.11.7
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --managed-python --python 3.11.7
COPY src/ src/
COPY operator/ operator/
COPY serving/ serving/
RUN uv sync --frozen --no-dev --no-editable --managed-python --python 3.11.7

# ---- operator: slim Python, non-root --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/modelramp /opt/modelramp
ENV PATH=/opt/modelramp/bin:$PATH PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
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
    PYTHONSAFEPATH=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp HOME=/tmp MPLCONFIGDIR=/tmp \
    MODELRAMP_HOST=0.0.0.0 MODELRAMP_PORT=8080
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2).status != 200)"]
ENTRYPOINT ["modelramp", "serve"]
