#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from hack/k8s/go.mod
# into a version-keyed cache outside git, so a second run is free.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(grep -oP "^\s*k8s.io/kubernetes \Kv[0-9.]+" "$here/k8s/go.mod")
out="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}/bin/k8s-$version"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
missing=0
for t in "${tools[@]}"; do [ -x "$out/$t" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
IFS=. read -r major minor _ <<<"${version#v}"
ld="-s -w"
# Without these the binaries report v0.0.0-master and kwokctl cannot pick matching flags.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
cd "$here/k8s"
pkgs=()
for t in "${tools[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
echo "building Kubernetes $version into $out (first time only, ~15-25 min on 2 cores)" >&2
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags notest -ldflags "$ld" -o "$out/" "${pkgs[@]}"
echo "$out"
