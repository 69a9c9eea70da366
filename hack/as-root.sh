# Sourced (`. hack/as-root.sh "$@"`) by the scripts that need root: bridges, iptables, containerd,
# buildah's storage and the kubelet. Re-runs the calling script under passwordless sudo (a CI
# runner's user has it), keeping the cache folder; otherwise stops and says why.
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then exec sudo -n MODELRAMP_CACHE="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}" "$0" "$@"; fi
  echo "$(basename "$0"): needs root (or passwordless sudo)" >&2
  exit 1
fi
