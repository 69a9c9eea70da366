#!/usr/bin/env bash
# The demo behind `make demo`: the local cluster, then a ModelDeployment rolled out step by step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
eval "$("$root/hack/cluster.sh" env)"
export KUBECONFIG="$root/.cache/kubeconfig"
kubectl() { "$K8S_BIN/kubectl" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "A real control plane (kube-apiserver $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')) with kwok nodes"
kubectl get nodes -L nvidia.com/gpu.present
say "API resources: Gateway API and modelramp"
kubectl api-resources --api-group=gateway.networking.k8s.io
kubectl api-resources --api-group=modelramp.dev
export KUBECTL="$K8S_BIN/kubectl"
"$root/.venv/bin/python" "$root/hack/demo.py"
