#!/usr/bin/env bash
# The local test cluster: a real kube-apiserver, kube-controller-manager, kube-scheduler and etcd,
# with kwok faking the nodes, started by kwokctl from binaries built by hack/build-bins.sh, and one
# real node (node-real-1: kubelet, kube-proxy, containerd; hack/node.sh) for the default cluster.
#   hack/cluster.sh up     idempotent; writes .cache/kubeconfig
# MODELRAMP_CLUSTER names the cluster (default modelramp); MODELRAMP_KUBECONFIG moves its kubeconfig
# (default .cache/kubeconfig), so a second cluster never overwrites the first one's.
# MODELRAMP_KWOK_NODES adds that many more fake CPU nodes (node-extra-<i>), each with room for
# MODELRAMP_KWOK_MAX_PODS pods (default 110, the kubelet's): the three of hack/cluster/nodes.yaml
# hold 330 pods, too few for a cluster that runs hundreds of ModelDeployments (bench/).
#   hack/cluster.sh down   stops and deletes the cluster
#   hack/cluster.sh env    prints the binary folders (NAME=DIR), building them if needed
#   hack/cluster.sh audit  prints the API server's audit log (JSON lines; only for a cluster created
#                          with KWOK_KUBE_AUDIT_POLICY set to an audit policy file)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${MODELRAMP_CLUSTER:-modelramp}
gateway_api_version=v1.4.0
# Istio's API module (istio.io/api) carries the CRDs istioctl installs; its networking.istio.io ones
# (VirtualService, DestinationRule, ...) are what the Istio router reads and writes.
istio_api_version=v1.28.0
# The Gateway API Inference Extension's module carries its v1 InferencePool CRD (the gatewayAPI
# router's `inferencePools` backends).
inference_extension_version=v1.6.2
# Cluster state lives beside the checkout so two clones never share (or delete) one cluster.
export KWOK_WORKDIR="$root/.cache/kwok"
kubeconfig=${MODELRAMP_KUBECONFIG:-$root/.cache/kubeconfig}
# One real node per machine: it joins the default cluster, never the extra ones tests create.
if [ "$name" = modelramp ]; then real_node=${MODELRAMP_REAL_NODE:-1}; else real_node=${MODELRAMP_REAL_NODE:-0}; fi

bins() {
  local line
  while IFS= read -r line; do
    case "$line" in
      k8s=*) K8S_BIN=${line#k8s=} ;;
      etcd=*) ETCD_BIN=${line#etcd=} ;;
      kwok=*) KWOK_BIN=${line#kwok=} ;;
    esac
  done < <("$root/hack/build-bins.sh")
}

kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$kubeconfig" "$@"; }

extra_nodes() {
  local i pods=${MODELRAMP_KWOK_MAX_PODS:-110}
  for i in $(seq 1 "${MODELRAMP_KWOK_NODES:-0}"); do
    cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: node-extra-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, kubernetes.io/hostname: node-extra-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "$pods"}
  capacity: {cpu: "64", memory: 256Gi, pods: "$pods"}
NODE
  done
}

healthy() { [ -s "$kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1; }

# kwokctl runs each component once: one that lost a race against a slow API server at start-up
# (the controller-manager, on a busy machine) stays down. `kwokctl start` restarts only those.
components_running() {
  local pid
  for pid in "$KWOK_WORKDIR/clusters/$name/pids/"*.pid; do kill -0 "$(cat "$pid")" 2>/dev/null || return 1; done
}

# Where the Go module proxy's copy of a module (path@version) is unpacked.
module_dir() {
  (cd "$root/hack/kwok" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$1") |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

gateway_api_crds() {
  echo "$(module_dir "sigs.k8s.io/gateway-api@$gateway_api_version")/config/crd/standard"
}

# The networking.istio.io CRDs of istio.io/api, without the rest of Istio's (one YAML stream).
istio_crds() {
  local dir
  dir=$(module_dir "istio.io/api@$istio_api_version")
  awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } /\n  group: networking\.istio\.io\n/' \
    "$dir/kubernetes/customresourcedefinitions.gen.yaml"
}

# The inference.networking.k8s.io/v1 InferencePool CRD (the module also has x-k8s.io alpha ones).
inference_pool_crd() {
  local dir
  dir=$(module_dir "sigs.k8s.io/gateway-api-inference-extension@$inference_extension_version")
  echo "$dir/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml"
}

up() {
  bins
  mkdir -p "$root/.cache" "$(dirname "$kubeconfig")"
  if healthy && components_running; then
    echo "cluster $name already up"
  elif "$KWOK_BIN/kwokctl" get clusters 2>/dev/null | grep -qx "$name"; then
    "$KWOK_BIN/kwokctl" start cluster --name "$name"
  else
    "$KWOK_BIN/kwokctl" create cluster --name "$name" \
      --config "$root/hack/cluster/kwokctl.yaml" \
      --kubeconfig "$kubeconfig.kwokctl" \
      --kube-apiserver-binary "$K8S_BIN/kube-apiserver" \
      --kube-controller-manager-binary "$K8S_BIN/kube-controller-manager" \
      --kube-scheduler-binary "$K8S_BIN/kube-scheduler" \
      --etcd-binary "$ETCD_BIN/etcd" \
      --kwok-controller-binary "$KWOK_BIN/kwok" \
      --wait 120s
  fi
  components_running || "$KWOK_BIN/kwokctl" start cluster --name "$name"
  "$KWOK_BIN/kwokctl" get kubeconfig --name "$name" >"$kubeconfig.tmp"
  mv "$kubeconfig.tmp" "$kubeconfig"
  kubectl apply --server-side -f "$root/hack/cluster/nodes.yaml" >/dev/null
  if [ "${MODELRAMP_KWOK_NODES:-0}" -gt 0 ]; then extra_nodes | kubectl apply --server-side -f - >/dev/null; fi
  if [ "$real_node" = 1 ]; then
    "$root/hack/node.sh" up "$kubeconfig" "$KWOK_WORKDIR/clusters/$name/pki" "$K8S_BIN"
  fi
  kubectl apply --server-side -f "$(gateway_api_crds)" >/dev/null
  istio_crds | kubectl apply --server-side -f - >/dev/null
  kubectl apply --server-side -f "$(inference_pool_crd)" >/dev/null
  kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
  # Pods need the default ServiceAccount, which the controller-manager creates asynchronously.
  for _ in $(seq 1 60); do kubectl get serviceaccount default >/dev/null 2>&1 && break; sleep 0.5; done
  echo "cluster $name up; KUBECONFIG=$kubeconfig"
}

down() {
  bins
  "$root/hack/node.sh" down "$kubeconfig" "$K8S_BIN"
  "$KWOK_BIN/kwokctl" delete cluster --name "$name" 2>/dev/null || true
  rm -f "$kubeconfig" "$kubeconfig.kwokctl"
}

env_() {
  bins
  printf 'K8S_BIN=%s\nETCD_BIN=%s\nKWOK_BIN=%s\n' "$K8S_BIN" "$ETCD_BIN" "$KWOK_BIN"
}

audit() {
  bins
  "$KWOK_BIN/kwokctl" logs audit --name "$name"
}

case "${1:-}" in
  # One `up` at a time per cluster (each pytest-xdist worker runs one as its session starts). flock
  # holds the lock and runs this script again without the lock's descriptor (-o): the daemons an
  # `up` starts must not inherit it, or they would hold the lock for as long as they run.
  up)
    if [ -z "${MODELRAMP_CLUSTER_LOCKED:-}" ]; then
      mkdir -p "$(dirname "$kubeconfig")"
      MODELRAMP_CLUSTER_LOCKED=1 exec flock -o "$kubeconfig.lock" "$0" up
    fi
    up
    ;;
  down) down ;;
  env) env_ ;;
  audit) audit ;;
  *) echo "usage: $0 up|down|env|audit" >&2; exit 2 ;;
esac
