{{/* Names and labels shared by every template. */}}

{{- define "modelramp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelramp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelramp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelramp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modelramp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelramp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelramp
{{- end }}

{{- define "modelramp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelramp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelramp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "modelramp.servingImage" -}}
{{- printf "%s:%s" .Values.servingImage.repository (default .Chart.AppVersion .Values.servingImage.tag) }}
{{- end }}

{{/*
The rules the operator needs on the objects it manages, wherever ModelDeployments live. Cluster-wide
mode puts them in a ClusterRole; namespaced mode in a Role per watched namespace. Only the verbs its
requests use (operator/kube.py and kopf): merge patches and server-side apply (`patch`; an apply that
creates is checked for `create` too), `delete`, core/v1 Events by POST, list/watch only where
operator/handlers.py watches, and `get` where the controller reads one object (the routers' objects, Secrets).
*/}}
{{- define "modelramp.workloadRules" -}}
- apiGroups: ["modelramp.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["modelramp.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* An A/B test's `<name>-assignment` (watched, deleted when the test ends) and a shadow step's
`<name>-shadow` ConfigMap, mounted by the model servers. */}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- /* The traffic routers' objects (each router's RBAC in operator/routers/*.py): the user's
HTTPRoute and VirtualService read and patched, the DestinationRule and InferencePools only read, the canary Ingress
server-side applied beside the user's Ingress (garbage-collected with its owner: no delete). */}}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "patch"]
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["get"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "patch"]
- apiGroups: ["networking.istio.io"]
  resources: ["destinationrules"]
  verbs: ["get"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "create", "patch"]
{{- include "modelramp.secretRules" . }}
{{- end }}

{{/*
The Secret named by a ModelDeployment's `spec.model.registry.secretRef` (MLflow registry
credentials), read from the ModelDeployment's own namespace: `get` only, never list or watch, so the
operator can read a Secret it is told the name of but not discover the others.
*/}}
{{- define "modelramp.secretRules" -}}
{{- if .Values.rbac.readSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: ["get"]
{{- else if .Values.rbac.secretNames }}
{{- fail "rbac.secretNames: set, but rbac.readSecrets is false, so no Secret may be read; unset one of them" }}
{{- end }}
{{- end }}

{{/* What kopf itself reads cluster-wide: CRDs (to find the resources it serves) and namespaces. */}}
{{- define "modelramp.kopfClusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "modelramp.peeringVerbs" -}}
verbs: ["get", "list", "watch", "patch"]
{{- end }}
