#!/usr/bin/env bash
# The user's path through a rollout, against whatever cluster .cache/kubeconfig points at (kind in
# CI, the local cluster here): apply a sample ModelDeployment, wait until it is Healthy, point it
# at a new model and wait until that model is promoted to stable. KUBECTL names the kubectl to use.
#   hack/e2e-rollout.sh SAMPLE.yaml [NEW_MODEL_URI]
# Without NEW_MODEL_URI the sample names the next model in its annotation
# modelramp.dev/e2e-next-model-uri, so the sample's author decides which model the e2e rolls to.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sample=${1:?usage: hack/e2e-rollout.sh SAMPLE.yaml [NEW_MODEL_URI]}
new_uri=${2:-}
timeout=${E2E_TIMEOUT:-10m}
kubectl=${KUBECTL:-kubectl}
k() { "$kubectl" --kubeconfig "$root/.cache/kubeconfig" "$@"; }

report() {
  k get modeldeployments -A -o wide || true
  k get -f "$sample" -o yaml || true
  k get events -A --sort-by=.lastTimestamp | tail -n 40 || true
}
trap 'report' ERR

k apply -f "$sample"
md=$(k get -f "$sample" -o name | grep -m1 '^modeldeployment')
if [ -z "$new_uri" ]; then
  new_uri=$(k get "$md" -o jsonpath='{.metadata.annotations.modelramp\.dev/e2e-next-model-uri}')
  [ -n "$new_uri" ] || { echo "$sample has no modelramp.dev/e2e-next-model-uri annotation" >&2; exit 2; }
fi
echo "waiting for $md to be Healthy"
k wait --for=jsonpath='{.status.phase}'=Healthy "$md" --timeout="$timeout"

echo "rolling $md to $new_uri"
k patch "$md" --type=merge -p "{\"spec\":{\"model\":{\"uri\":\"$new_uri\"}}}"
k wait --for=jsonpath='{.status.stableModel.uri}'="$new_uri" "$md" --timeout="$timeout"
k wait --for=jsonpath='{.status.phase}'=Healthy "$md" --timeout="$timeout"
echo "$md promoted to $new_uri"
