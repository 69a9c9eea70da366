#!/usr/bin/env bash
# Creates .venv from uv.lock. uv keeps every wheel (torch's CUDA build included) in its cache and
# hard-links from there, so after the first download a fresh clone gets its venv in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}"
uv_version=0.13.8
uv="$cache/uv-$uv_version/bin/uv"
if [ ! -x "$uv" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$cache/uv-$uv_version" "uv==$uv_version"
fi
UV_LINK_MODE=hardlink "$uv" sync --frozen --python python3.11
