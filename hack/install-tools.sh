#!/usr/bin/env bash
# Builds the tools the tests run (helm, actionlint, Prometheus from the Go module proxy; argocd-lua,
# our Argo CD Lua runner, from hack/argocd-lua against Argo CD's modules; Traefik through the
# wrapper module hack/traefik; CoreDNS, the real node's cluster DNS) into a version-keyed cache
# outside git, so a second run is free and a version bump (or a changed runner or wrapper) rebuilds.
#   hack/install-tools.sh [TOOL...]          build what is missing, print each binary's path
#   hack/install-tools.sh --check TOOL...    build nothing; print paths, exit 1 naming what is missing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
declare -A module=(
  [helm]=helm.sh/helm/v3/cmd/helm
  [actionlint]=github.com/rhysd/actionlint/cmd/actionlint
  [argocd-lua]=local:argocd-lua
  [prometheus]=github.com/prometheus/prometheus/cmd/prometheus
  [promtool]=github.com/prometheus/prometheus/cmd/promtool
  [traefik]=local:traefik:github.com/traefik/traefik/v3/cmd/traefik
  [coredns]=github.com/coredns/coredns
)
# argocd-lua: the Argo CD version it links, and a digest of its sources (so an edit rebuilds).
argocd_version=$(grep -oP '^\s*(require\s+)?github.com/argoproj/argo-cd/v3 \Kv[0-9.]+' "$here/argocd-lua/go.mod")
argocd_sources=$(cat "$here"/argocd-lua/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)
# Traefik: the version its wrapper module requires, and a digest of the wrapper (its replaces).
traefik_version=$(grep -oP '^\s*(require\s+)?github.com/traefik/traefik/v3 \Kv[0-9.]+' "$here/traefik/go.mod")
traefik_sources=$(cat "$here"/traefik/{go.mod,go.sum} | sha256sum | cut -c1-12)
declare -A version=(
  [helm]=v3.21.4
  [actionlint]=v1.7.12
  [argocd-lua]="$argocd_version-$argocd_sources"
  # Prometheus 3.16.0 (its Go module's versions are v0.<major><minor>.<patch>).
  [prometheus]=v0.316.0
  # promtool (`promtool test rules` for the chart's alerts) from the same module and version.
  [promtool]=v0.316.0
  [traefik]="$traefik_version-$traefik_sources"
  # The real node's cluster DNS (hack/node.sh), as kind and every real cluster run it.
  [coredns]=v1.14.7
)
# Prometheus with only the service discovery the tests use (static, file and http are built in;
# Kubernetes pods for the real node): the other 25 mechanisms' cloud SDKs would triple the build.
declare -A tags=(
  [prometheus]="remove_all_sd,enable_kubernetes_sd"
  [promtool]="remove_all_sd,enable_kubernetes_sd"
)
# The make target that builds each tool, for --check's hint (the rest: `make tools`).
declare -A make_target=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [traefik]=traefik
)
cache="${MODELRAMP_CACHE:-$HOME/.cache/modelramp}"

binary() { echo "$cache/bin/tools-$1-${version[$1]}/$1"; }

# helm reports v0.0.0 and assumes Kubernetes 1.20 (.Capabilities.KubeVersion) unless its Makefile's
# -X flags are given; derive the Kubernetes minor from the client-go it was built with, as upstream does.
ldflags() {
  case "$1" in
    helm)
      local gomod client_go major minor
      gomod=$(GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@${version[helm]}" |
        sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
      client_go=$(grep -oP '^\s*k8s.io/client-go v\K[0-9.]+' "$gomod")
      IFS=. read -r major minor _ <<<"$client_go"
      major=$((major + 1))
      local ld="-s -w -X helm.sh/helm/v3/internal/version.version=${version[helm]}"
      ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ld+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
      done
      echo "$ld"
      ;;
    actionlint) echo "-s -w -X github.com/rhysd/actionlint.version=${version[actionlint]}" ;;
    prometheus | promtool)
      local v=${version[$1]#v0.}
      echo "-s -w -X github.com/prometheus/common/version.Version=$((10#${v%%.*} / 100)).$((10#${v%%.*} % 100)).${v#*.}"
      ;;
    traefik) echo "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version" ;;
    *) echo "-s -w" ;;
  esac
}

build() {
  local tool=$1 out
  out=$(dirname "$(binary "$tool")")
  echo "building $tool ${version[$tool]} into $out (first time only)" >&2
  mkdir -p "$out"
  # A scratch GOBIN, then a rename, so an interrupted build never leaves a half-written binary.
  local scratch
  scratch=$(mktemp -d "$out/.build.XXXXXX")
  if [[ ${module[$tool]} == local:* ]]; then
    # local:DIR builds DIR's main package; local:DIR:PACKAGE a package DIR's module requires.
    local spec=${module[$tool]#local:} package=.
    [[ $spec == *:* ]] && package=${spec#*:}
    (cd "$here/${spec%%:*}" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
      go build -trimpath -tags "${tags[$tool]:-}" -ldflags "$(ldflags "$tool")" -o "$scratch/$tool" "$package")
  else
    GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$scratch" \
      go install -trimpath -tags "${tags[$tool]:-}" -ldflags "$(ldflags "$tool")" "${module[$tool]}@${version[$tool]}"
  fi
  mv "$scratch/$tool" "$(binary "$tool")"
  rmdir "$scratch"
}

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=("${!module[@]}")
status=0
for tool in "${tools[@]}"; do
  if [ -z "${module[$tool]:-}" ]; then
    echo "install-tools: unknown tool '$tool' (known: ${!module[*]})" >&2
    exit 2
  fi
  if [ ! -x "$(binary "$tool")" ]; then
    if [ "$check" = 1 ]; then
      echo "install-tools: $tool ${version[$tool]} is not built; run 'make ${make_target[$tool]:-tools}'" >&2
      status=1
      continue
    fi
    build "$tool"
  fi
  binary "$tool"
done
exit "$status"
