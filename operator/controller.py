"""One reconcile of one ModelDeployment, and the loop that repeats it when something changes.

A reconcile observes (the ModelDeployment and its owned objects from the watch cache, the
objects its traffic router reads from the API server), takes the analysis measurements that are
due, asks the pure engine (`rollout.reconcile`) what to do, and does it: apply the owned objects,
delete, write status and post its Events, then make the router's writes. It holds only the router interface
(`routers.base.TrafficRouter`): what to read and what to write are the router's. It writes
nothing when nothing changed: a manifest whose hash the live object already carries is not
applied again, the router asks for no write when it already gives the traffic wanted, and status
is patched only when it differs, guarded by the resourceVersion it
was computed from (a user's `modelramp abort` written meanwhile is never lost: the write fails
with a conflict and the reconcile runs again on the new status). Events are posted only with the
status change that caused them, so a restarted operator never repeats one.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import kopf
from pydantic import ValidationError

from modelramp.operator.analysis import ab_queries
from modelramp.operator.analysis.ab_judging import window_due
from modelramp.operator.analysis.context import RolloutContext
from modelramp.operator.analysis.providers import ProviderCache
from modelramp.operator.analysis.scheduling import due_metrics
from modelramp.operator.analysis.telemetry import AnalysisTelemetry
from modelramp.operator.api import (
    ABWindow,
    AnalysisRunStatus,
    EffectiveMetric,
    Measurement,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    to_wire,
)
from modelramp.operator.cache import Json, Key, ObjectCache
from modelramp.operator.config import OperatorConfig
from modelramp.operator.kube import Conflict, Kube, KubeError, NamespaceTerminating, merge_patch
from modelramp.operator.metrics import OperatorMetrics
from modelramp.operator.registry.gate import RegistryGate
from modelramp.operator.registry.writeback import seconds_until_due
from modelramp.operator.rollout import reconcile, shadow
from modelramp.operator.rollout.analyses import analysis_in
from modelramp.operator.rollout.model import (
    EventRecord,
    Observed,
    ObservedDeployment,
    ReconcileInput,
    ReconcileOutput,
    Track,
)
from modelramp.operator.rollout.monitor import monitor_metrics
from modelramp.operator.rollout.objects import REVISION_LABEL, TRACK_LABEL, backends_of
from modelramp.operator.rollout.runs import NO_PROVIDER, effective_metrics
from modelramp.operator.rollout.variants import VARIANT_LABEL
from modelramp.operator.routers.base import ObjectRef, RoutingRead, RoutingWrite
from modelramp.operator.routers.registry import router_for

log = logging.getLogger(__name__)

APPLIED_HASH: Final = "modelramp.dev/applied-hash"
# kopf's finalizer on every ModelDeployment (kopf removes it once the daemon has stopped).
FINALIZER: Final = "modelramp.dev/operator"
RELEASE_POLL_SECONDS: Final = 1.0
CONFLICT_RETRY_SECONDS: Final = 0.2
MAX_BACKOFF_SECONDS: Final = 60.0

Result = Literal["unchanged", "changed", "conflict", "error", "gone"]


class Outcome(NamedTuple):
    result: Result
    requeue_after: float | None


class Controller:
    def __init__(
        self,
        kube: Kube,
        config: OperatorConfig,
        metrics: OperatorMetrics,
        telemetry: AnalysisTelemetry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.config = config
        self.engine_config = config.engine_config()
        self.metrics = metrics
        self.telemetry = telemetry
        self.cache = ObjectCache()
        self._clock = clock
        self._wakers: dict[Key, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(config.workers)
        self._providers = ProviderCache(config.prometheus_url)
        self._terminating: set[str] = set()
        self.registry = RegistryGate(config, self._read_secret)

    # --- watch events (on the event loop) --------------------------------------------------------

    def on_model_deployment(self, event_type: str | None, body: Json) -> None:
        key = Key(body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            self._forget(key)
        else:
            self.cache.put_model_deployment(body)
        self._wake(key)

    def _forget(self, key: Key) -> None:
        self.cache.drop_model_deployment(key)
        self.metrics.forget(key)
        self.registry.forget(key)

    def on_namespace(self, event_type: str | None, body: Json) -> None:
        """Namespaces being deleted: their ModelDeployments' loops switch to letting them go."""
        name = body["metadata"]["name"]
        if event_type == "DELETED":
            self._terminating.discard(name)
        elif body["metadata"].get("deletionTimestamp") and name not in self._terminating:
            self._terminating.add(name)
            for key in [key for key in self._wakers if key.namespace == name]:
                self._wake(key)

    def on_owned(self, kind: str, event_type: str | None, body: Json) -> None:
        owner = (
            self.cache.drop_owned(kind, body) if event_type == "DELETED" else self.cache.put_owned(kind, body)
        )
        if owner is not None:
            self._wake(owner)

    def _wake(self, key: Key) -> None:
        waker = self._wakers.get(key)
        if waker is not None:
            waker.set()

    # --- the per-object loop (a kopf daemon, so peering pauses it) --------------------------------

    async def steward(self, key: Key, stopped: kopf.DaemonStopped) -> None:
        """Reconciles `key` until it is deleted or the operator stops or yields to a peer."""
        waker = self._wakers.setdefault(key, asyncio.Event())
        failures = 0
        try:
            while not stopped:
                waker.clear()
                async with self._slots:
                    started = time.monotonic()
                    try:
                        outcome = await asyncio.to_thread(self.reconcile_once, key)
                    except Exception:
                        log.exception("reconcile of %s failed", key)
                        outcome = Outcome("error", None)
                    self.metrics.duration.observe(time.monotonic() - started)
                self.metrics.reconciles.labels(result=outcome.result).inc()
                if outcome.result == "gone":
                    return
                failures = failures + 1 if outcome.result == "error" else 0
                delay = min(2.0**failures, MAX_BACKOFF_SECONDS) if failures else outcome.requeue_after
                delay = (
                    self.config.resync_seconds if delay is None else min(delay, self.config.resync_seconds)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), timeout=delay)
        finally:
            self._wakers.pop(key, None)

    # --- one reconcile (in a worker thread: the kubernetes client blocks) -------------------------

    def reconcile_once(self, key: Key) -> Outcome:
        if key.namespace in self._terminating:
            return self._release(key)
        body = self.cache.model_deployment(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Owned objects go with it through their ownerReferences (garbage collection).
            return Outcome("gone", None)
        try:
            md = ModelDeployment.model_validate(body)
        except ValidationError as error:
            return self._reject(body, error)
        now = self._clock()
        stored = md.status
        delivered, write_back_events = self.registry.deliver_write_backs(md, now)
        md = md.model_copy(update={"status": delivered})
        admission = self.registry.admit(key, md, now)
        observed = self._observe(key, md)
        if admission.blocked is not None:
            out, measurements = admission.blocked, []
        else:
            measurements = self._measure(md, now)
            view = ReconcileInput(
                md=admission.view,
                observed=observed,
                measurements=measurements,
                now=now,
                config=self.engine_config,
                model=admission.model,
                ab_windows=self._measure_ab_test(md, now),
            )
            out = admission.finish(reconcile(view))
        status = self.registry.queue_write_back(md, out.status, now)
        try:
            changed = self._apply(key, out)
            wrote = self._write_status(body, stored, status)
            if wrote:
                # Metrics first: posting events takes API calls (seconds under load), and a reader
                # who saw the status must find its rollout counted by then.
                for measurement in measurements:
                    self.telemetry.count_measurement(measurement)
                    self.metrics.measured(key, measurement)
                self.metrics.transition(stored, status, now)
                self._post_events(body, write_back_events + out.events)
            # The router's writes come after the status that asks for them: an operator killed in
            # between leaves the route behind the status and the next reconcile catches it up. The
            # other way round the route would be ahead of the status, and the next reconcile would
            # set it back a step.
            changed |= self._write_routes(out)
        except Conflict:
            # Someone changed the route or the ModelDeployment meanwhile: decide again on what is there.
            return Outcome("conflict", CONFLICT_RETRY_SECONDS)
        except NamespaceTerminating:
            # Its namespace is being deleted (maybe before that namespace's event got here): stop
            # rolling out and let it go as soon as it is deleted.
            self._terminating.add(key.namespace)
            return Outcome("unchanged", 0.0)
        self.metrics.observe(
            key, status.phase, status.canary_weight, status.drift.drifted if status.drift else None
        )
        self.metrics.models(key, status)
        waits = [wait for wait in (out.requeue_after, seconds_until_due(status, now)) if wait is not None]
        return Outcome("changed" if changed or wrote else "unchanged", min(waits, default=None))

    def _release(self, key: Key) -> Outcome:
        """In a namespace being deleted: no more rollout, only waiting until the namespace
        controller deletes the ModelDeployment, then removing kopf's finalizer, which kopf (no
        longer watching the namespace) never would. Read from the API server: the watch cache of
        that namespace is no longer fed either."""
        live = self.kube.get_model_deployment(key.namespace, key.name)
        if live is None:
            return Outcome("gone", None)
        meta = live["metadata"]
        if not meta.get("deletionTimestamp"):
            return Outcome("unchanged", RELEASE_POLL_SECONDS)
        finalizers = meta.get("finalizers") or []
        if FINALIZER in finalizers:
            try:
                self.kube.patch_model_deployment(
                    key.namespace,
                    key.name,
                    {"metadata": {"finalizers": [f for f in finalizers if f != FINALIZER]}},
                    meta["resourceVersion"],
                )
            except Conflict:
                return Outcome("conflict", CONFLICT_RETRY_SECONDS)
            log.info("released %s: its namespace is being deleted", key)
        self._forget(key)
        return Outcome("gone", None)

    def _observe(self, key: Key, md: ModelDeployment) -> Observed:
        deployments: dict[Track, ObservedDeployment] = {}
        variants: dict[str, ObservedDeployment] = {}
        for raw in self.cache.owned(key, "Deployment"):
            observed = observe_deployment(raw)
            variant = raw.get("metadata", {}).get("labels", {}).get(VARIANT_LABEL)
            if observed is not None and observed.track == "variant" and variant:
                variants[variant] = observed
            elif observed is not None and observed.track != "variant":
                deployments[observed.track] = observed
        router = router_for(md.spec.traffic_routing, backends_of(md))
        refs = [*router.reads(), *shadow.reads(md)]
        return Observed(deployments=deployments, routing=[self._read(ref) for ref in refs], variants=variants)

    def _read(self, ref: ObjectRef) -> RoutingRead:
        try:
            body = self.kube.get(ref.api_version, ref.kind, ref.namespace, ref.name)
            return RoutingRead(ref=ref, body=body)
        except KubeError as error:
            return RoutingRead(ref=ref, error=f"{ref} could not be read: {error}")

    def _measure(self, md: ModelDeployment, now: datetime) -> list[Measurement]:
        """Takes the measurements due now of the running analyses. Without a Prometheus address
        nothing is measured: the engine then fails the analysis loudly ("no metric provider")."""
        provider = self._providers.provider_for(md.spec.analysis)
        if provider is None:
            return []
        taken: list[Measurement] = []
        for run, metrics in _running_analyses(md.spec, md.status):
            assert run.started_at is not None
            context = RolloutContext(
                name=md.metadata.name or "",
                namespace=md.metadata.namespace or "",
                canary_revision=md.status.canary_revision or "",
                stable_revision=md.status.stable_revision or "",
                analysis=run.name,
                track="stable" if run.kind == "Monitor" else "canary",
            )
            pooled = {result.name: result.evidence for result in run.metrics}
            for metric in due_metrics(metrics, run.metrics, run.started_at, now):
                taken.append(provider.measure(metric, context, pooled.get(metric.metric.name)))
        return taken

    def _measure_ab_test(self, md: ModelDeployment, now: datetime) -> list[ABWindow]:
        """The window of the A/B test's decision metric, when one is due; nothing without a
        metric provider (the test then waits, and status says why)."""
        strategy, test = md.spec.strategy.ab_test, md.status.ab_test
        if strategy is None or test is None or not window_due(strategy, test, now):
            return []
        provider = self._providers.provider_for(md.spec.analysis)
        if provider is None:
            return [ABWindow(test=test.id, time=now, error=NO_PROVIDER)]
        name, namespace = md.metadata.name or "", md.metadata.namespace or ""
        return [ab_queries.measure(provider, strategy, test, namespace=namespace, name=name, now=now)]

    def _apply(self, key: Key, out: ReconcileOutput) -> bool:
        """The owned objects and the deletes (the router's writes wait for the status)."""
        changed = False
        for manifest in out.apply:
            changed |= self._apply_owned(key, manifest)
        for ref in out.delete:
            if self.cache.owned_object(key, ref.kind, ref.name) is not None or ref.kind not in _WATCHED:
                self.kube.delete(ref.api_version, ref.kind, ref.namespace, ref.name)
                changed = True
        return changed

    def _apply_owned(self, key: Key, manifest: Mapping[str, Any]) -> bool:
        digest = manifest_hash(manifest)
        live = self.cache.owned_object(key, manifest["kind"], manifest["metadata"]["name"])
        if live is not None and live["metadata"].get("annotations", {}).get(APPLIED_HASH) == digest:
            return False
        desired = copy.deepcopy(dict(manifest))
        desired["metadata"].setdefault("annotations", {})[APPLIED_HASH] = digest
        applied = self.kube.apply(desired)
        if manifest["kind"] in _WATCHED:
            self.cache.put_owned(manifest["kind"], applied)
        return True

    def _write_routes(self, out: ReconcileOutput) -> bool:
        for write in out.routing_writes:
            self._write_routing(write)
        return bool(out.routing_writes)

    def _write_routing(self, write: RoutingWrite) -> None:
        """One write the router asked for; a guarded merge patch fails with Conflict when the
        object changed since it was read."""
        ref = write.ref
        if write.method == "apply":
            self.kube.apply(write.body)
            return
        version = write.resource_version
        self.kube.patch(
            ref.api_version, ref.kind, ref.namespace, ref.name, write.body, resource_version=version
        )

    def _write_status(self, body: Json, old: ModelDeploymentStatus, new: ModelDeploymentStatus) -> bool:
        if new == old:
            return False
        patch = merge_patch(body.get("status") or {}, to_wire(new))
        if not patch:
            return False
        meta = body["metadata"]
        written = self.kube.patch_model_deployment_status(
            meta["namespace"], meta["name"], patch, meta["resourceVersion"]
        )
        self.cache.put_model_deployment(written)
        return True

    def _read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        secret = self.kube.get("v1", "Secret", namespace, name)
        return None if secret is None else secret.get("data") or {}

    def _post_events(self, body: Json, events: list[EventRecord]) -> None:
        for event in events:
            try:
                self.kube.create_event(body, event.type, event.reason, event.message)
            except NamespaceTerminating:
                # Expected while its namespace is deleted; it goes with the namespace.
                log.debug(
                    "not posting %s on %s: its namespace is being deleted",
                    event.reason,
                    body["metadata"]["name"],
                )
                return
            except KubeError as error:
                log.warning(
                    "could not post event %s on %s: %s", event.reason, body["metadata"]["name"], error
                )

    def _reject(self, body: Json, error: ValidationError) -> Outcome:
        """A ModelDeployment the models refuse (e.g. stored before a schema change): Failed, saying
        which field is wrong and why."""
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        message = f"invalid ModelDeployment: {problems}"[:32768]
        try:
            old = ModelDeploymentStatus.model_validate(body.get("status") or {})
        except ValidationError:
            old = ModelDeploymentStatus()
        new = old.model_copy(
            update={
                "phase": "Failed",
                "message": message,
                "observed_generation": body["metadata"].get("generation"),
            }
        )
        try:
            wrote = self._write_status(body, old, new)
        except Conflict:
            return Outcome("conflict", CONFLICT_RETRY_SECONDS)
        if wrote:
            self.kube.create_event(body, "Warning", "InvalidSpec", message)
        return Outcome("error" if wrote else "unchanged", None)


# Kinds the operator watches (and so caches); others are read on demand.
_WATCHED: Final = frozenset({"Deployment", "Service", "ConfigMap"})


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A digest of what the operator wants an object to be (stored on it as an annotation)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def observe_deployment(raw: Json) -> ObservedDeployment | None:
    """An owned Deployment as the engine sees it; None when it carries no track label."""
    meta = raw.get("metadata", {})
    template_labels = raw.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    labels = {**template_labels, **meta.get("labels", {})}
    track = labels.get(TRACK_LABEL)
    if track not in ("stable", "canary", "variant"):
        return None
    status = raw.get("status", {})
    return ObservedDeployment(
        name=meta["name"],
        track=track,
        revision=template_labels.get(REVISION_LABEL) or labels.get(REVISION_LABEL),
        spec_replicas=raw.get("spec", {}).get("replicas", 1),
        ready_replicas=status.get("readyReplicas", 0),
        updated_replicas=status.get("updatedReplicas", 0),
        available_replicas=status.get("availableReplicas", 0),
        generation=meta.get("generation"),
        observed_generation=status.get("observedGeneration"),
    )


def _running_analyses(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus
) -> list[tuple[AnalysisRunStatus, list[EffectiveMetric]]]:
    running = []
    watching = status.monitor
    if watching is not None and watching.phase == "Running" and watching.started_at is not None:
        running.append((watching, monitor_metrics(spec)))
    for run in status.analysis_runs:
        analysis = analysis_in(spec, run.kind, run.step_index)
        if run.phase == "Running" and run.started_at is not None and analysis is not None:
            running.append((run, effective_metrics(analysis, spec, paired=run.kind == "Shadow")))
    return running
