#!/usr/bin/env bash
# Builds the images the real node runs with buildah (no daemon) and loads them into the node's
# containerd (hack/node.sh). No registry can be reached, so nothing is pulled:
#   pause       localhost/modelramp-pause:dev, the pod sandbox (hack/pause, from scratch)
#   base        localhost/modelramp-base:bookworm, Debian bookworm by debootstrap from Debian's
#               archive, with Debian's python3.11: the Dockerfile's PYTHON_IMAGE and CUDA_IMAGE here
#   operator    localhost/modelramp-operator:dev  } the Dockerfile's targets, built with the base
#   serving     localhost/modelramp-serving:dev   } above and the base image's Python
#   hack/images.sh SOCK IMAGE...
# Each image is keyed by the hash of its inputs; an image containerd holds under the same key is
# neither rebuilt nor reloaded, so an unchanged tree builds nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/as-root.sh
. "$root/hack/as-root.sh" "$@"
cache="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}"
sock=${1:?usage: hack/images.sh CONTAINERD_SOCK IMAGE...}
shift
keys="$cache/node/images"
# buildah stages each exported image (7 GB for ours) under TMPDIR: one folder per run, always removed.
TMPDIR=$(mktemp -d "$cache/images-tmp.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
suite=bookworm
mirror=${MODELRAMP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
buildah_() { buildah --root "$cache/containers/storage" --runroot "$cache/containers/run" "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }
log() { echo "images: $*" >&2; }

declare -A ref=(
  [pause]=localhost/modelramp-pause:dev
  [base]=localhost/modelramp-base:$suite
  [operator]=localhost/modelramp-operator:dev
  [serving]=localhost/modelramp-serving:dev
)

# Content hash of the files (tracked or not, unless ignored) under the given paths; a symlink
# counts by its target's name, as COPY copies it.
files_hash() {
  (cd "$root" && git ls-files -co --exclude-standard -z -- "$@" | python3 -c '
import hashlib, os, sys
digest = hashlib.sha256()
for name in sorted(n for n in sys.stdin.read().split("\0") if n):
    data = os.readlink(name).encode() if os.path.islink(name) else open(name, "rb").read()
    digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
print(digest.hexdigest()[:16])')
}

key() {
  case "$1" in
    pause) files_hash hack/pause hack/images.sh ;;
    base) echo "$suite $mirror $(sed -n '/^build_base()/,/^}/p' "$root/hack/images.sh")" | sha256sum | cut -c1-16 ;;
    operator | serving) echo "$(key base) $(files_hash Dockerfile pyproject.toml uv.lock src operator serving)" |
      sha256sum | cut -c1-16 ;;
  esac
}

build_pause() {
  local work c
  work=$(mktemp -d)
  (cd "$root/hack/pause" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/pause" .)
  c=$(buildah_ from scratch)
  buildah_ copy "$c" "$work/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah_ commit -q "$c" "${ref[pause]}" >/dev/null
  buildah_ rm "$c" >/dev/null
  rm -rf "$work"
}

build_base() {
  local work c
  work=$(mktemp -d "$cache/debootstrap.XXXXXX")
  # minbase plus what the Dockerfile's build stage runs: python3.11 and pip (for uv).
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$work/rootfs.tar" .
  c=$(buildah_ from scratch)
  buildah_ add "$c" "$work/rootfs.tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
  buildah_ commit -q "$c" "${ref[base]}" >/dev/null
  buildah_ rm "$c" >/dev/null
  rm -rf "$work"
}

# The Dockerfile unchanged; only its ARGs differ from a Docker host's. uv's wheel cache is shared
# with the host's (hack/venv.sh fills it), so the locked wheels are not downloaded again. The
# host's CA bundle stands in for the base's during the build, and uv's system config tells it to
# use that bundle, so a TLS-inspecting proxy the host trusts is trusted by pip and uv too (none
# of these mounts ends up in the image).
build_target() {
  local target=$1 uv_cache="${UV_CACHE_DIR:-$HOME/.cache/uv}" uv_config="$cache/node/build/uv.toml"
  mkdir -p "$uv_cache" "$(dirname "$uv_config")"
  echo "system-certs = true" >"$uv_config"
  buildah_ bud --quiet --layers --network host --target "$target" --tag "${ref[$target]}" \
    --build-arg PYTHON_IMAGE="${ref[base]}" --build-arg CUDA_IMAGE="${ref[base]}" \
    --build-arg UV_PYTHON_PREFERENCE=only-system --build-arg UV_PYTHON=python3.11 \
    --volume "$uv_cache:/root/.cache/uv" --volume "$uv_config:/etc/uv/uv.toml:ro" \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --file "$root/Dockerfile" "$root" >/dev/null
}

loaded() { [ "$(cat "$keys/$1" 2>/dev/null)" = "$(key "$1")" ] && ctr_ images ls -q "name==${ref[$1]}" | grep -q .; }

for image in "$@"; do
  [ -n "${ref[$image]:-}" ] || { log "unknown image '$image' (known: ${!ref[*]})"; exit 2; }
  loaded "$image" && continue
  started=$SECONDS
  log "building ${ref[$image]}"
  case "$image" in
    pause) build_pause ;;
    base) build_base ;;
    operator | serving) build_target "$image" ;;
  esac
  archive="$TMPDIR/$image.tar"
  buildah_ push --quiet --disable-compression "${ref[$image]}" "oci-archive:$archive:${ref[$image]}"
  # The Python environment makes each image about 7 GB: once exported, buildah's copy and its
  # build-stage layers go, so the disk holds one copy besides containerd's (the key file, not
  # buildah's cache, is what skips an unchanged build).
  case "$image" in operator | serving) buildah_ rmi "${ref[$image]}" >/dev/null && buildah_ rmi --prune >/dev/null ;; esac
  ctr_ images import "$archive" >/dev/null
  rm -f "$archive"
  mkdir -p "$keys"
  key "$image" >"$keys/$image"
  log "${ref[$image]} loaded in $((SECONDS - started)) s"
done
