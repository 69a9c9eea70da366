"""`ModelDeployment.spec`: what model to serve, how to serve it, and how to roll a new one out.

Changing `model` or `serving` (except `serving.replicas`) makes a new revision and starts a
rollout; `strategy`, `trafficRouting` and `analysis` say how that rollout proceeds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from modelramp.operator.api.abtest import ABTestStrategy
from modelramp.operator.api.analysis import AnalysisDefaults, AnalysisSpec, BackgroundAnalysis, Monitor
from modelramp.operator.api.base import ApiModel, CelRule, ListMapKey
from modelramp.operator.api.types import (
    LABEL_KEY_PATTERN,
    AnnotationMap,
    DnsLabel,
    Duration,
    HttpUrl,
    IntOrPercent,
    LabelMap,
    ModelFormat,
    ModelUri,
    ObjectName,
    Quantity,
)

MAX_STEPS = 64


# --- model ---------------------------------------------------------------------------------------


class SecretReference(ApiModel):
    """A Secret in the ModelDeployment's namespace."""

    name: ObjectName = Field(description="Name of the Secret.")


class RegistryWriteBack(ApiModel):
    """What the operator records in the MLflow registry when a rollout of this model completes."""

    alias: DnsLabel | None = Field(
        default=None, description="Alias to point at the version that became stable, e.g. `production`."
    )
    tags: dict[str, Annotated[str, StringConstraints(max_length=5000)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Tags to set on the version that became stable.",
    )


class ModelRegistry(ApiModel):
    """The MLflow tracking server that resolves `models:/` and `runs:/` URIs."""

    tracking_uri: HttpUrl = Field(description="MLflow tracking server URL, e.g. http://mlflow:5000.")
    secret_ref: SecretReference | None = Field(
        default=None,
        description=(
            "Secret whose keys (e.g. MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME, "
            "MLFLOW_TRACKING_PASSWORD, AWS_ACCESS_KEY_ID) are passed to the model loader as env vars."
        ),
    )
    write_back: RegistryWriteBack | None = Field(
        default=None, description="Record rollout results (alias, tags) in the registry."
    )


class ModelSource(ApiModel):
    """The model to serve."""

    cel_rules = (
        CelRule(
            # The uri pattern admits '@' in a models:/ URI only as name@alias.
            "!has(self.followAlias) || !self.followAlias || "
            "(self.uri.startsWith('models:/') && self.uri.contains('@'))",
            "followAlias needs a registry alias URI such as models:/name@alias",
            field_path=".followAlias",
        ),
        CelRule(
            "!has(self.registry) || !has(self.registry.writeBack) || self.uri.startsWith('models:/')",
            "registry.writeBack needs a registry URI (models:/name/version or models:/name@alias)",
            field_path=".registry.writeBack",
        ),
    )

    uri: ModelUri = Field(
        description=(
            "Where the model is: `models:/name/version` or `models:/name@alias` (MLflow registry), "
            "`runs:/run-id/path`, `s3://bucket/key`, `gs://bucket/key`, `https://host/path`, "
            "`pvc://claim/path` or `file:///path`."
        )
    )
    format: ModelFormat = Field(
        description=(
            "How the model is stored: `aoti` (an AOTInductor package from `modelramp compile` or "
            "torch._inductor.aoti_compile_and_package; the fastest), `exported-program` "
            "(torch.export.save, .pt2), `torchscript` (torch.jit.save; deprecated by torch) or "
            "`mlflow` (an MLflow pytorch model)."
        )
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$",
        max_length=128,
        description="Name the model is served under (/v2/models/<name>); defaults to the resource name.",
    )
    follow_alias: bool = Field(
        default=False,
        description=(
            "With a `models:/name@alias` URI: re-resolve the alias periodically and start a rollout "
            "when it points to a new version."
        ),
    )
    registry: ModelRegistry | None = Field(
        default=None,
        description="MLflow registry access; defaults to the operator's configured tracking server.",
    )


# --- serving -------------------------------------------------------------------------------------


class ResourceRequirements(ApiModel):
    """Compute resources of one model server pod, as in a Pod's container."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=16,
        description="Minimum resources, e.g. {cpu: 500m, memory: 2Gi}.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=16,
        description="Maximum resources; GPUs go here, e.g. {nvidia.com/gpu: 1}.",
    )


class KeySelector(ApiModel):
    """A key of a Secret or ConfigMap in the ModelDeployment's namespace."""

    name: ObjectName = Field(description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, max_length=253, description="The key to read.")
    optional: bool | None = Field(default=None, description="Start the pod even when the key is missing.")


class FieldReference(ApiModel):
    """A field of the pod, as in the downward API."""

    field_path: str = Field(min_length=1, max_length=253, description="e.g. metadata.name, status.podIP.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    cel_rules = (
        CelRule(
            "(has(self.secretKeyRef) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) "
            "+ (has(self.fieldRef) ? 1 : 0) == 1",
            "valueFrom sets exactly one of secretKeyRef, configMapKeyRef or fieldRef",
        ),
    )

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="A key of a ConfigMap.")
    field_ref: FieldReference | None = Field(default=None, description="A field of the pod.")


class EnvVar(ApiModel):
    """An environment variable of the model server container."""

    cel_rules = (CelRule("!has(self.value) || !has(self.valueFrom)", "set value or valueFrom, not both"),)

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Value read from a Secret, ConfigMap or the pod."
    )


class Toleration(ApiModel):
    """Lets the pods schedule onto nodes with a matching taint (e.g. GPU nodes)."""

    cel_rules = (
        CelRule(
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value)",
            "a toleration with operator Exists has no value",
            field_path=".value",
        ),
        CelRule(
            "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
            "a toleration without a key must use operator Exists",
            field_path=".operator",
        ),
    )

    key: str | None = Field(default=None, max_length=317, description="Taint key; empty matches every key.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="How key and value match.")
    value: str | None = Field(default=None, max_length=63, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="NoExecute only: how long the pod stays bound after the taint appears.",
    )


class Batching(ApiModel):
    """Server-side dynamic batching: requests arriving together run as one forward pass."""

    max_batch_size: int = Field(default=32, ge=1, le=4096, description="Largest batch of requests.")
    max_latency_ms: int = Field(
        default=5,
        ge=0,
        le=10000,
        description=(
            "Longest a request waits for others to join its batch, in milliseconds. A lone request "
            "with no one else queued does not wait."
        ),
    )


class PodMetadataOverrides(ApiModel):
    """Extra labels and annotations for the model server pods."""

    cel_rules = (
        CelRule(
            f"!has(self.labels) || self.labels.all(k, k.size() <= 317 && k.matches('{LABEL_KEY_PATTERN}'))",
            "label keys must be qualified names (optional DNS prefix, '/', name of at most 63 characters)",
            field_path=".labels",
        ),
    )

    labels: LabelMap = Field(default_factory=dict, description="Labels added to the pods.")
    annotations: AnnotationMap = Field(default_factory=dict, description="Annotations added to the pods.")


class PodTemplateOverrides(ApiModel):
    """Changes merged into the generated pod template, for what the fields above don't cover."""

    metadata: PodMetadataOverrides | None = Field(
        default=None, description="Extra pod labels and annotations."
    )
    spec: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A partial PodSpec merged over the generated one (strategic merge; containers by name, "
            "the server container is `server`), e.g. serviceAccountName, affinity, volumes."
        ),
    )


class ServingSpec(ApiModel):
    """How the model is served: the model server pods."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Model server image; defaults to the server image the operator was installed with.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="When the kubelet pulls the image."
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=10000,
        description=(
            "Desired model server pods at full traffic. Changing it resizes without a rollout; the "
            "scale subresource (kubectl scale, HPA) sets it."
        ),
    )
    port: int = Field(default=8080, ge=1, le=65535, description="Port the model server listens on.")
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU, memory and GPU (nvidia.com/gpu) of each pod."
    )
    env: Annotated[list[EnvVar], ListMapKey("name")] = Field(
        default_factory=list,
        max_length=64,
        description="Environment variables of the model server container.",
    )
    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, max_length=32, description="Node labels the pods must run on."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Taints the pods tolerate."
    )
    batching: Batching | None = Field(
        default=None, description="Dynamic batching; unset serves one request at a time."
    )
    pod_template: PodTemplateOverrides | None = Field(
        default=None, description="Overrides merged into the generated pod template."
    )


# --- strategy ------------------------------------------------------------------------------------


class Pause(ApiModel):
    """Hold the rollout at its current weight."""

    duration: Duration | None = Field(
        default=None,
        description="How long to wait, e.g. 30s, 10m; unset waits for a manual promote.",
    )


class ShadowStep(ApiModel):
    """Mirror live traffic to the canary and judge it on the same requests as stable; every client
    is answered by stable, the canary's answers are compared and discarded (docs/analysis.md,
    "Shadow step")."""

    cel_rules = (
        CelRule(
            "!has(self.analysis) || !has(self.analysis.metrics) || "
            "self.analysis.metrics.all(m, !has(m.builtin) || m.builtin != 'input-drift')",
            "a shadow step compares the canary with stable on the same requests: of the builtins only "
            "error-rate, latency-p95 and prediction-drift apply",
            field_path=".analysis.metrics",
        ),
    )

    percent: int = Field(
        default=100,
        ge=1,
        le=100,
        description=(
            "Percentage of stable's requests copied to the canary. The canary runs the pods that share "
            "of the traffic needs, beside a stable at full size."
        ),
    )
    duration: Duration | None = Field(
        default=None,
        description=(
            "The longest the step mirrors, e.g. 10m. The step ends as soon as its analysis decides; "
            "still undecided when the duration is over, it ends Inconclusive and the rollout pauses."
        ),
    )
    analysis: AnalysisSpec | None = Field(
        default=None,
        description=(
            "Metrics judged on the mirrored requests, paired with stable's answers to the same "
            "requests; unset means spec.analysis.metrics."
        ),
    )


class CanaryStep(ApiModel):
    """One step of a canary rollout: exactly one action."""

    cel_rules = (
        CelRule(
            "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) "
            "+ (has(self.shadow) ? 1 : 0) == 1",
            "a step sets exactly one of setWeight, pause, analysis or shadow",
        ),
    )

    set_weight: int | None = Field(
        default=None, ge=0, le=100, description="Send this percentage (0-100) of traffic to the canary."
    )
    pause: Pause | None = Field(
        default=None, description="Wait, for a duration or (with no duration) until a manual promote."
    )
    analysis: AnalysisSpec | None = Field(
        default=None,
        description="Measure the canary at the current weight; the step ends when the analysis does.",
    )
    shadow: ShadowStep | None = Field(
        default=None,
        description=(
            "Copy stable's requests to the canary, answer from stable, and judge the canary on the "
            "same requests (paired); a failed shadow rolls back, a passed one moves on."
        ),
    )


class CanaryStrategy(ApiModel):
    """Shift traffic to the new model step by step, checking it on the way."""

    cel_rules = (
        CelRule(
            "!has(self.analysis) || !has(self.analysis.startingStep) || "
            "self.analysis.startingStep < size(self.steps)",
            "analysis.startingStep must be the index of a step",
            field_path=".analysis.startingStep",
        ),
    )

    steps: list[CanaryStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description=(
            "The steps, in order; each is exactly one of setWeight, pause, analysis or shadow. After "
            "the last step the canary is promoted to stable."
        ),
    )
    analysis: BackgroundAnalysis | None = Field(
        default=None, description="An analysis that runs in the background through the steps."
    )
    max_surge: IntOrPercent = Field(
        default="25%",
        description=(
            "How many pods above spec.serving.replicas the stable and canary may have together, as a "
            "count or a percentage of replicas (rounded up). The canary is sized by its weight."
        ),
    )
    dynamic_stable_scale: bool = Field(
        default=False,
        description=(
            "Scale stable down as the canary takes traffic, so the rollout needs no extra capacity "
            "(GPUs) at its peak; rolling back then waits for stable to scale up again."
        ),
    )


class BlueGreenStrategy(ApiModel):
    """Run the new model beside the old one, then switch all traffic at once."""

    cel_rules = (
        CelRule(
            "!has(self.autoPromotionSeconds) || !has(self.autoPromotionEnabled) || self.autoPromotionEnabled",
            "autoPromotionSeconds needs autoPromotionEnabled",
            field_path=".autoPromotionSeconds",
        ),
    )

    auto_promotion_enabled: bool = Field(
        default=True,
        description="Switch traffic once the preview is ready and its analysis passed; false waits.",
    )
    auto_promotion_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Wait this long after the preview is ready before switching.",
    )
    pre_promotion_analysis: AnalysisSpec | None = Field(
        default=None, description="Analysis of the preview before the switch; failure aborts the rollout."
    )
    post_promotion_analysis: AnalysisSpec | None = Field(
        default=None, description="Analysis after the switch; failure switches traffic back."
    )
    scale_down_delay_seconds: int = Field(
        default=30,
        ge=0,
        le=86400,
        description="Keep the old pods this long after the switch, for a fast rollback.",
    )
    preview_replicas: int | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="Pods of the preview before the switch; defaults to replicas.",
    )


class Strategy(ApiModel):
    """How a new revision is rolled out: exactly one of canary, blueGreen or abTest."""

    cel_rules = (
        CelRule(
            "(has(self.canary) ? 1 : 0) + (has(self.blueGreen) ? 1 : 0) + (has(self.abTest) ? 1 : 0) == 1",
            "exactly one of canary, blueGreen or abTest must be set",
        ),
    )

    canary: CanaryStrategy | None = Field(default=None, description="Progressive traffic shifting in steps.")
    blue_green: BlueGreenStrategy | None = Field(default=None, description="A preview, then one switch.")
    ab_test: ABTestStrategy | None = Field(
        default=None,
        description="Sticky groups of users on two or more variants, then the winner is promoted.",
    )


# --- traffic routing -----------------------------------------------------------------------------


class ReplicaRatioRouting(ApiModel):
    """No mesh: one Service selects both tracks, so traffic follows the ratio of ready pods."""


# An HTTP header name (an RFC 9110 token) and a cookie name (an RFC 6265 token).
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=256)]
CookieName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=256)]


class HeaderMatch(ApiModel):
    """Requests carrying this header with exactly this value."""

    name: HeaderName = Field(description="Header name, e.g. x-canary.")
    value: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description="The exact value, e.g. always."
    )


class InferencePools(ApiModel):
    """Two InferencePools (Gateway API Inference Extension, inference.networking.k8s.io/v1) of the
    user's, each with its endpoint picker, one selecting each track's pods."""

    cel_rules = (CelRule("self.stable != self.canary", "the stable and canary pools must differ"),)

    stable: ObjectName = Field(
        description=(
            "The pool of the stable pods: its selector.matchLabels hold modelramp.dev/name: <name> and "
            "modelramp.dev/track: stable, its targetPorts the serving port."
        )
    )
    canary: ObjectName = Field(
        description="The pool of the canary pods (modelramp.dev/track: canary), in the same namespace."
    )


class GatewayApiRouting(ApiModel):
    """Gateway API: the operator sets the weights of the stable and canary backendRefs of an HTTPRoute."""

    http_route: ObjectName = Field(description="Name of the HTTPRoute.")
    inference_pools: InferencePools | None = Field(
        default=None,
        description=(
            "Route to these InferencePools (backendRef kind InferencePool) instead of the Services "
            "<name>-stable and <name>-canary; they must be in the ModelDeployment's namespace."
        ),
    )
    namespace: DnsLabel | None = Field(
        default=None, description="Namespace of the HTTPRoute; defaults to the ModelDeployment's."
    )
    canary_header: HeaderMatch | None = Field(
        default=None,
        description=(
            "While a rollout runs, requests with this header go to the canary whatever its weight "
            "(a rule of its own beside each rule, its matches plus the header)."
        ),
    )
    mirror_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "While a rollout runs, copy this percentage of every rule's requests to the canary "
            "(a RequestMirror filter); the copies' responses are discarded."
        ),
    )


class IstioDestinationRule(ApiModel):
    """A DestinationRule whose subsets tell the tracks apart (instead of the per-track Services)."""

    name: ObjectName = Field(description="Name of the DestinationRule (in the VirtualService's namespace).")
    stable_subset: DnsLabel = Field(
        default="stable", description="Subset selecting the stable pods (label modelramp.dev/track: stable)."
    )
    canary_subset: DnsLabel = Field(
        default="canary", description="Subset selecting the canary pods (label modelramp.dev/track: canary)."
    )


class IstioRouting(ApiModel):
    """Istio: the operator sets the weights of the stable and canary destinations of a VirtualService."""

    virtual_service: ObjectName = Field(description="Name of the VirtualService.")
    routes: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Names of the HTTP routes to manage; defaults to all routes.",
    )
    destination_rule: IstioDestinationRule | None = Field(
        default=None,
        description=(
            "Route to this DestinationRule's subsets; unset routes to <name>-stable and <name>-canary."
        ),
    )
    canary_header: HeaderMatch | None = Field(
        default=None,
        description=(
            "While a rollout runs, requests with this header go to the canary whatever its weight "
            "(a route of its own before each managed route)."
        ),
    )
    mirror_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "While a rollout runs, copy this percentage of the managed routes' requests to the canary "
            "(mirror with mirrorPercentage); the copies' responses are discarded."
        ),
    )


class NginxRouting(ApiModel):
    """ingress-nginx: the operator manages a canary Ingress beside the stable one."""

    ingress: ObjectName = Field(
        description="Name of the stable Ingress; the operator owns <ingress>-canary beside it."
    )
    canary_header: HeaderMatch | None = Field(
        default=None,
        description="While a rollout runs, requests with this header go to the canary (canary-by-header).",
    )
    canary_cookie: CookieName | None = Field(
        default=None,
        description=(
            "While a rollout runs, requests whose cookie of this name is `always` go to the canary, "
            "`never` to stable (canary-by-cookie)."
        ),
    )


class TrafficRouting(ApiModel):
    """How traffic is split between stable and canary: exactly one router."""

    cel_rules = (
        CelRule(
            "(has(self.replicaRatio) ? 1 : 0) + (has(self.gatewayAPI) ? 1 : 0) "
            "+ (has(self.istio) ? 1 : 0) + (has(self.nginx) ? 1 : 0) == 1",
            "exactly one of replicaRatio, gatewayAPI, istio or nginx must be set",
        ),
    )

    replica_ratio: ReplicaRatioRouting | None = Field(
        default=None, description="Split by pod counts, no mesh needed (the default)."
    )
    gateway_api: GatewayApiRouting | None = Field(
        default=None, alias="gatewayAPI", description="Split by a Gateway API HTTPRoute."
    )
    istio: IstioRouting | None = Field(default=None, description="Split by an Istio VirtualService.")
    nginx: NginxRouting | None = Field(default=None, description="Split by an ingress-nginx canary Ingress.")


# --- rollback window -----------------------------------------------------------------------------


class RollbackWindow(ApiModel):
    """Fast rollback, like Argo Rollouts' rollbackWindow: going back to a recent stable revision
    skips the rollout."""

    revisions: int = Field(
        ge=1,
        le=10,
        description=(
            "How many of the previous stable revisions a rollback may go straight back to: 1 is the "
            "revision stable just before the current one, 2 also the one before that, and so on."
        ),
    )


# --- spec ----------------------------------------------------------------------------------------

_ANALYSIS_DEFAULTS_EXIST = "(has(self.analysis) && has(self.analysis.metrics))"


class ModelDeploymentSpec(ApiModel):
    """The desired state of a ModelDeployment."""

    cel_rules = (
        CelRule(
            f"!has(self.strategy.canary) || {_ANALYSIS_DEFAULTS_EXIST} || "
            "self.strategy.canary.steps.all(s, !has(s.analysis) || has(s.analysis.metrics))",
            "a step analysis without metrics needs spec.analysis.metrics",
            field_path=".strategy.canary.steps",
            reason="FieldValueRequired",
        ),
        CelRule(
            f"!has(self.strategy.canary) || {_ANALYSIS_DEFAULTS_EXIST} || self.strategy.canary.steps.all(s, "
            "!has(s.shadow) || (has(s.shadow.analysis) && has(s.shadow.analysis.metrics)))",
            "a shadow step without metrics needs spec.analysis.metrics",
            field_path=".strategy.canary.steps",
            reason="FieldValueRequired",
        ),
        CelRule(
            f"!has(self.strategy.canary) || !has(self.strategy.canary.analysis) || "
            f"has(self.strategy.canary.analysis.metrics) || {_ANALYSIS_DEFAULTS_EXIST}",
            "a background analysis without metrics needs spec.analysis.metrics",
            field_path=".strategy.canary.analysis",
            reason="FieldValueRequired",
        ),
        CelRule(
            f"!has(self.strategy.blueGreen) || !has(self.strategy.blueGreen.prePromotionAnalysis) || "
            f"has(self.strategy.blueGreen.prePromotionAnalysis.metrics) || {_ANALYSIS_DEFAULTS_EXIST}",
            "a prePromotionAnalysis without metrics needs spec.analysis.metrics",
            field_path=".strategy.blueGreen.prePromotionAnalysis",
            reason="FieldValueRequired",
        ),
        CelRule(
            f"!has(self.strategy.blueGreen) || !has(self.strategy.blueGreen.postPromotionAnalysis) || "
            f"has(self.strategy.blueGreen.postPromotionAnalysis.metrics) || {_ANALYSIS_DEFAULTS_EXIST}",
            "a postPromotionAnalysis without metrics needs spec.analysis.metrics",
            field_path=".strategy.blueGreen.postPromotionAnalysis",
            reason="FieldValueRequired",
        ),
    )

    model: ModelSource = Field(description="The model to serve; changing it starts a rollout.")
    serving: ServingSpec = Field(
        default_factory=ServingSpec,
        description="The model server pods; changing anything but replicas starts a rollout.",
    )
    strategy: Strategy = Field(description="How a new revision is rolled out: canary, blueGreen or abTest.")
    traffic_routing: TrafficRouting = Field(
        default=TrafficRouting(replica_ratio=ReplicaRatioRouting()),
        description="How traffic is split between stable and canary; defaults to replicaRatio.",
    )
    analysis: AnalysisDefaults | None = Field(
        default=None, description="Prometheus, timing, limits and metrics shared by every analysis."
    )
    monitor: Monitor | None = Field(
        default=None,
        description=(
            "Checks of the stable model's live traffic that run all the time, e.g. input-drift "
            "against the model's input reference: they set the Drifted condition and never roll back."
        ),
    )
    rollback_window: RollbackWindow | None = Field(
        default=None,
        description=(
            "Fast rollback, like Argo Rollouts' rollbackWindow.revisions: when the spec goes back to a "
            "revision that was stable within the last `revisions` stable revisions, it becomes stable "
            "at once, without steps or analysis (a FastRollback event says so). Unset: every new "
            "revision rolls out through the strategy."
        ),
    )
    paused: bool = Field(
        default=False, description="Hold the rollout where it is (weights unchanged) until set back to false."
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        le=86400,
        description=(
            "Seconds a rollout may go without progress (pods becoming ready, a step completing) "
            "before it is marked Degraded. Pauses don't count."
        ),
    )
