#!/usr/bin/env bash
# Renders the kustomize base and the monitoring manifests from the Helm chart, so the chart is the
# one source of truth and kustomize users get the same objects (as cert-manager does for its static
# manifests). `make manifests` writes them into manifests/; the tests render into a scratch
# directory and compare.
#   hack/render-manifests.sh [OUT_DIR]   (default: manifests)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/manifests}
helm=$("$root/hack/install-tools.sh" helm)
chart=$root/charts/modelramp
header="# Generated from charts/modelramp by hack/render-manifests.sh (make manifests). Do not edit."
# The same release name and namespace as docs/install.md, so object names match a Helm install.
template=("$helm" template modelramp "$chart" --namespace modelramp-system --kube-version 1.34)

mkdir -p "$out/base" "$out/monitoring"
# `helm show crds` runs files together without a document separator; join them ourselves.
{
  echo "$header"
  find "$chart" -path '*/crds/*.yaml' | LC_ALL=C sort | while read -r crd; do
    echo "---"
    echo "# Source: ${crd#"$root"/}"
    cat "$crd"
  done
} >"$out/base/crds.yaml"
{ echo "$header"; "${template[@]}" --skip-crds; } >"$out/base/operator.yaml"
{
  echo "$header"
  "${template[@]}" --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
    --show-only templates/servicemonitor.yaml --show-only templates/prometheusrule.yaml
} >"$out/monitoring/monitoring.yaml"
cp "$chart/files/modelramp-dashboard.json" "$out/monitoring/modelramp-dashboard.json"
