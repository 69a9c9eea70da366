#!/usr/bin/env bash
# The local cluster's one real node, node-real-1, beside the kwok fakes: containerd and runc from
# Debian, kubelet and kube-proxy built from the control plane's k8s.io/kubernetes
# (hack/build-bins.sh), the bridge/host-local/loopback/portmap CNI plugins. Labelled and tainted
# modelramp.dev/node=real, so only pods that tolerate the taint run there.
#   hack/node.sh up KUBECONFIG PKI_DIR K8S_BIN   idempotent: a running, Ready node costs one API call
#   hack/node.sh down KUBECONFIG K8S_BIN         stops the node and its pods, removes its network
#                                                (only when it serves that cluster)
#   hack/node.sh ctr ARGS...                     containerd's ctr in the node's k8s.io namespace
# cgroup v1 with the cgroupfs driver and no systemd. Processes run detached, pid files and logs in
# $MODELRAMP_CACHE/node; one real node per machine, as kube-proxy owns the host's KUBE-* chains.
# Networking stays on this machine: the pods live on the bridge modelramp0 (10.244.0.0/24, the
# node's address 10.244.0.1), Services on the cluster's 10.96.0.0/16 (kube-proxy, iptables). ip_forward is on for
# the bridge (the CNI bridge plugin needs it) and the mangle MODELRAMP-ISOLATE chain drops every forwarded
# packet that enters or leaves it through another interface; nothing is masqueraded off the machine.
# Cluster DNS is CoreDNS (hack/install-tools.sh) on the node address, answering cluster.local
# from the API server and nothing else: pods find Services by name, as in every real cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/as-root.sh
. "$root/hack/as-root.sh" "$@"
cache="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}"
state="$cache/node"
node="node-real-1"
bridge=modelramp0
pod_cidr=10.244.0.0/24
node_ip=10.244.0.1
sock="$state/containerd/containerd.sock"
debs=(containerd runc containernetworking-plugins iptables conntrack socat)

log() { echo "node: $*" >&2; }
running() { [ -s "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: runs COMMAND detached (own session), logging to $state/logs/NAME.log.
start() {
  local name=$1; shift
  running "$name" && return 0
  mkdir -p "$state/logs"
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}

stop() {
  local name=$1 pid
  running "$name" || { rm -f "$state/$name.pid"; return 0; }
  pid=$(cat "$state/$name.pid")
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$state/$name.pid"
}

ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

network() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then ip link add "$bridge" type bridge; fi
  ip addr replace "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  # The isolation goes in before forwarding is switched on.
  # In mangle's FORWARD, which runs before filter's: kube-proxy prepends its own rules to filter's.
  iptables -t mangle -N MODELRAMP-ISOLATE 2>/dev/null || true
  iptables -t mangle -F MODELRAMP-ISOLATE
  iptables -t mangle -A MODELRAMP-ISOLATE -i "$bridge" -o "$bridge" -j RETURN
  iptables -t mangle -A MODELRAMP-ISOLATE -i "$bridge" -j DROP
  iptables -t mangle -A MODELRAMP-ISOLATE -o "$bridge" -j DROP
  iptables -t mangle -C FORWARD -j MODELRAMP-ISOLATE 2>/dev/null || iptables -t mangle -I FORWARD 1 -j MODELRAMP-ISOLATE
  # kube-proxy's Service rules must see pod-to-pod packets crossing the bridge.
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
}

containerd_config() {
  mkdir -p "$state/containerd" "$state/cni/net.d"
  cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/modelramp-pause:dev"
  # Lowering an oom_score_adj needs CAP_SYS_RESOURCE, which a sandboxed build machine's root may
  # lack (runc then fails with "can't get final child's PID"): keep scores at or above our own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
  # No ipMasq: pod traffic is never rewritten to leave the machine. portmap only maps hostPorts
  # a pod asks for (ours ask for none).
  cat >"$state/cni/net.d/10-modelramp.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelramp",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$state/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# sign NAME CN ORG PKI_DIR EXTENSIONS: a key and a certificate signed by the cluster's CA, kept
# while the CA still verifies it.
sign() {
  local name=$1 cn=$2 org=$3 pki=$4 extensions=$5 dir="$state/pki"
  mkdir -p "$dir"
  if [ ! -s "$dir/$name.crt" ] || ! openssl verify -CAfile "$pki/ca.crt" "$dir/$name.crt" >/dev/null 2>&1; then
    openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "/O=$org/CN=$cn" \
      -out "$dir/$name.csr" 2>/dev/null
    printf '%s\n' "$extensions" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 365 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  fi
}

# cert NAME CN ORG PKI_DIR SERVER: a client certificate signed by the cluster's CA, and a kubeconfig using it.
cert() {
  local name=$1 cn=$2 org=$3 pki=$4 server=$5 dir="$state/pki"
  sign "$name" "$cn" "$org" "$pki" "extendedKeyUsage=clientAuth"
  cat >"$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}}]
users: [{name: $name, user: {client-certificate: "$dir/$name.crt", client-key: "$dir/$name.key"}}]
contexts: [{name: local, context: {cluster: local, user: $name}}]
current-context: local
EOF
}

kubelet_config() {
  cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$1/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$state/pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$state/pki/kubelet-serving.key"
registerNode: true
# Only pods that ask for the real node land on it; the cluster tests' pods stay on the kwok fakes.
registerWithTaints: [{key: modelramp.dev/node, value: real, effect: NoSchedule}]
# A shared build machine's disk is often fuller than the defaults allow; evict only when nearly out.
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
clusterDNS: [$node_ip]
clusterDomain: cluster.local
EOF
  # Only the cluster's names: no upstream, so a pod's lookup of anything else fails here, on the
  # machine, instead of leaving it.
  cat >"$state/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
  bind $node_ip
  errors
  kubernetes cluster.local in-addr.arpa {
    kubeconfig "$kubeconfig"
  }
}
.:53 {
  bind $node_ip
  errors
}
EOF
  cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$state/kube-proxy.kubeconfig"}
hostnameOverride: $node
mode: iptables
clusterCIDR: $pod_cidr
# NodePorts only on the bridge address, never on the machine's own interfaces or loopback.
nodePortAddresses: ["$node_ip/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0}
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
EOF
}

ready() {
  "$K8S_BIN/kubectl" --kubeconfig "$kubeconfig" get node "$node" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

claim() {
  # One real node per machine: the checkout whose cluster it joined owns it.
  if [ -s "$state/owner" ] && [ "$(cat "$state/owner")" != "$kubeconfig" ] && running kubelet; then
    log "node-real-1 already serves the cluster of $(cat "$state/owner"); run 'make cluster-down' there first"
    exit 1
  fi
  echo "$kubeconfig" >"$state/owner"
}

up() {
  kubeconfig=$1 pki=$2 K8S_BIN=$3
  mkdir -p "$state"
  if [ "$(cat "$state/owner" 2>/dev/null)" = "$kubeconfig" ] && running containerd && running kubelet &&
    running kube-proxy && running apiserver-relay && running coredns && ready; then
    return 0
  fi
  claim
  "$root/hack/install-debs.sh" "${debs[@]}"
  local server port coredns
  coredns=$("$root/hack/install-tools.sh" coredns)
  server=$("$K8S_BIN/kubectl" --kubeconfig "$kubeconfig" config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
  port=${server##*:}
  network
  containerd_config
  start containerd containerd --config "$state/containerd/config.toml"
  for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
  # pause for every pod sandbox; the Debian base for the node's own tests (tests/cluster/test_real_node.py).
  "$root/hack/install-debs.sh" buildah debootstrap
  "$root/hack/images.sh" "$sock" pause base
  cert kubelet "system:node:$node" system:nodes "$pki" "$server"
  cert kube-proxy system:kube-proxy system:node-proxier "$pki" "$server"
  # The kubelet's serving certificate, for the address the API server dials when it proxies
  # kubectl logs, exec and port-forward (hack/cluster/kwokctl.yaml: it checks it against the CA).
  sign kubelet-serving "system:node:$node" system:nodes "$pki" \
    "$(printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth' "$node_ip" "$node")"
  kubelet_config "$pki"
  # Something was not right (or this is another cluster, with another CA and port): the node's
  # processes start afresh; containerd and the pods it runs stay.
  stop kube-proxy
  stop kubelet
  stop apiserver-relay
  stop coredns
  # Pods reach the API server through the kubernetes Service, whose endpoint is the node address
  # (the API server's --advertise-address): relay it to the API server on loopback.
  start apiserver-relay socat "TCP-LISTEN:$port,bind=$node_ip,fork,reuseaddr" "TCP:127.0.0.1:$port"
  start kubelet "$K8S_BIN/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$state/kubelet" --hostname-override "$node" --node-ip "$node_ip" \
    --node-labels "modelramp.dev/node=real,type=real"
  start kube-proxy "$K8S_BIN/kube-proxy" --config "$state/kube-proxy.yaml"
  start coredns "$coredns" -conf "$state/Corefile"
  for _ in $(seq 1 120); do ready && break; sleep 0.5; done
  ready || { log "$node did not become Ready; see $state/logs"; tail -n 20 "$state/logs/kubelet.log" >&2; exit 1; }
  log "$node Ready"
}

down() {
  kubeconfig=$1 K8S_BIN=$2
  [ -d "$state" ] || return 0
  if [ -s "$state/owner" ] && [ "$(cat "$state/owner")" != "$kubeconfig" ]; then return 0; fi
  stop kube-proxy
  if [ -x "$K8S_BIN/kube-proxy" ]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  stop kubelet
  stop apiserver-relay
  stop coredns
  if running containerd; then
    local id
    for id in $(ctr_ tasks list -q 2>/dev/null); do ctr_ tasks kill -s KILL "$id" 2>/dev/null || true; done
    sleep 1
    for id in $(ctr_ tasks list -q 2>/dev/null); do ctr_ tasks delete -f "$id" 2>/dev/null || true; done
    for id in $(ctr_ containers list -q 2>/dev/null); do ctr_ containers delete "$id" 2>/dev/null || true; done
  fi
  stop containerd
  # Volumes and network namespaces the kubelet and the CNI left mounted.
  # (grep finds nothing once they are gone: not a failure under pipefail.)
  { grep -o " $state/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  ip netns list 2>/dev/null | awk '/^cni-/{print $1}' | while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$state/cni/ipam" "$state/kubelet/pods"
  ip link delete "$bridge" 2>/dev/null || true
  iptables -t mangle -D FORWARD -j MODELRAMP-ISOLATE 2>/dev/null || true
  iptables -t mangle -F MODELRAMP-ISOLATE 2>/dev/null || true
  iptables -t mangle -X MODELRAMP-ISOLATE 2>/dev/null || true
  rm -f "$state/owner"
}

case "${1:-}" in
  up) up "${2:?KUBECONFIG}" "${3:?PKI_DIR}" "${4:?K8S_BIN}" ;;
  down) down "${2:?KUBECONFIG}" "${3:?K8S_BIN}" ;;
  ctr) shift; ctr_ "$@" ;;
  *) echo "usage: $0 up KUBECONFIG PKI_DIR K8S_BIN | down KUBECONFIG K8S_BIN | ctr ARGS..." >&2; exit 2 ;;
esac
