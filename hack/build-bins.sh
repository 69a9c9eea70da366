#!/usr/bin/env bash
# Builds the test cluster's binaries from the pinned Go modules under hack/{k8s,etcd,kwok} into a
# cache outside git, one folder per module version, and prints `NAME=DIR` lines for each.
# A folder that already holds every binary is reused: only the first run on a machine builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

module_version() { grep -oP "^\s*(require\s+)?$2 \Kv[0-9][0-9A-Za-z.+-]*" "$here/$1/go.mod" | head -1; }

# build NAME MODULE_DIR KEY_MODULE LDFLAGS BINARY=PACKAGE...
build() {
  local name=$1 dir=$2 key=$3 ldflags=$4; shift 4
  local version out pair missing=0
  version=$(module_version "$dir" "$key")
  out="$cache/$name-$version"
  for pair in "$@"; do [ -x "$out/${pair%%=*}" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    echo "building $name $version into $out (first run on this machine only)" >&2
    mkdir -p "$out"
    for pair in "$@"; do
      [ -x "$out/${pair%%=*}" ] && continue
      (cd "$here/$dir" && go build -trimpath -tags notest -ldflags "$ldflags" -o "$out/${pair%%=*}.tmp" "${pair#*=}")
      mv "$out/${pair%%=*}.tmp" "$out/${pair%%=*}"
    done
  fi
  echo "$name=$out"
}

k8s_version=$(module_version k8s k8s.io/kubernetes)
IFS=. read -r k8s_major k8s_minor _ <<<"${k8s_version#v}"
k8s_ld="-s -w"
# Without these the binaries report v0.0.0-master and kwokctl cannot choose flags for their version.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ld+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  k8s_ld+=" -X $pkg.gitTreeState=clean"
done

build k8s k8s k8s.io/kubernetes "$k8s_ld" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  kubelet=k8s.io/kubernetes/cmd/kubelet \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w" etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3
build kwok kwok sigs.k8s.io/kwok "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok kwokctl=sigs.k8s.io/kwok/cmd/kwokctl
