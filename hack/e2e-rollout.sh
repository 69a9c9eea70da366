#!/usr/bin/env bash
# The user's path through a rollout, against whatever cluster .cache/kubeconfig points at (kind in
# CI, the local cluster here): a models volume (E2E_VOLUME) filled by a Job running the serving
# image under test (E2E_MODELS_JOB, SERVING_IMAGE), then a sample ModelDeployment that must become
# Healthy, be pointed at a new model and promote it. KUBECTL names the kubectl to use.
#   E2E_VOLUME=... E2E_MODELS_JOB=... SERVING_IMAGE=... hack/e2e-rollout.sh SAMPLE.yaml [NEW_MODEL_URI]
# Without NEW_MODEL_URI the sample names the next model in its annotation
# modelramp.dev/e2e-next-model-uri, so the sample's author decides which model the e2e rolls to.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sample=${1:?usage: hack/e2e-rollout.sh SAMPLE.yaml [NEW_MODEL_URI]}
new_uri=${2:-}
volume=${E2E_VOLUME:?E2E_VOLUME names the models volume manifest}
models_job=${E2E_MODELS_JOB:?E2E_MODELS_JOB names the Job that writes the models}
serving_image=${SERVING_IMAGE:?SERVING_IMAGE names the serving image under test}
timeout=${E2E_TIMEOUT:-10m}
kubectl=${KUBECTL:-kubectl}
k() { "$kubectl" --kubeconfig "$root/.cache/kubeconfig" "$@"; }

report() {
  k get modeldeployments -A -o wide || true
  k get -f "$sample" -o yaml || true
  k get events -A --sort-by=.lastTimestamp | tail -n 40 || true
}
trap 'report' ERR

k apply -f "$volume"
k delete --ignore-not-found --wait -f "$models_job"
k set image --local -f "$models_job" -o yaml "*=$serving_image" | k apply -f -
k wait --for=condition=Complete -f "$models_job" --timeout="$timeout"
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
