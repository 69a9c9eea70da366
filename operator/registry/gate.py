"""The registry gate: what the controller asks of the registry before and after the rollout engine runs.

The controller stays thin glue: for each reconcile it asks `RegistryGate.admit` which model the
engine may build pods from, and the gate records rollout verdicts in the registry. Only
ModelDeployments whose `spec.model.uri` is a `models:/` URI reach the registry; every other one
passes through unchanged.

- A new registry URI is resolved once and pinned (`status.canaryModel`/`stableModel`); until it
  resolves the engine is not called and the status says why (`Admission.blocked`), retried with
  backoff (`follow.next_poll_delay`) kept per ModelDeployment. Between retries the registry is
  not asked again, however often the ModelDeployment is woken.
- A rollout's verdict is queued in status (`queue_write_back`) with the transition that decided
  it and delivered by the following reconciles (`deliver_write_backs`) until the registry takes it.
- With `spec.model.followAlias` the pinned alias is polled every `--registry-poll-seconds`; a
  failed poll keeps the pin and backs off.
- The tracking server is `spec.model.registry` (credentials from its Secret) or the operator's
  `--mlflow-tracking-uri`, which alone uses the operator's own `MLFLOW_TRACKING_*` environment:
  those credentials are never sent to a server a ModelDeployment names.

The gate does no Kubernetes I/O: Secrets come through the `read_secret` callable. It never logs a
credential; registry errors name the server and the model only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from modelramp.operator.api.resource import ModelDeployment
from modelramp.operator.api.spec import ModelRegistry as RegistrySpec
from modelramp.operator.api.status import ModelDeploymentStatus, PendingWriteBack, ResolvedModel
from modelramp.operator.cache import Key
from modelramp.operator.config import OperatorConfig
from modelramp.operator.registry.credentials import (
    PASSWORD_KEY,
    TOKEN_KEY,
    USERNAME_KEY,
    RegistryCredentials,
    credentials_from_secret,
)
from modelramp.operator.registry.errors import RegistryAuthError, RegistryError
from modelramp.operator.registry.follow import AliasMoved, alias_moved, next_poll_delay
from modelramp.operator.registry.pinning import (
    blocked_status,
    engine_view,
    reported_for,
    resolving_status,
)
from modelramp.operator.registry.resolver import recorded_model, resolve
from modelramp.operator.registry.uri import is_registry_uri
from modelramp.operator.registry.writeback import failed_attempt, is_due, plan_of, queue_write_back
from modelramp.operator.rollout.model import EventRecord, ReconcileOutput

if TYPE_CHECKING:
    from modelramp.operator.registry.mlflow_registry import MlflowRegistry

log = logging.getLogger(__name__)

EVENT_MESSAGE_LIMIT: Final = 1024

SecretReader = Callable[[str, str], Mapping[str, str] | None]
"""(namespace, name) -> the Secret's `data` (base64 values), or None when there is no such Secret."""


class NoTrackingServer(RegistryError):
    """A registry URI with neither spec.model.registry nor the operator's default tracking server."""

    reason = "NoTrackingServer"


class Admission(BaseModel):
    """The gate's answer for one reconcile: either `blocked` (the output to write instead of calling
    the engine) or the `view` of the ModelDeployment the engine works on, with the `model` its
    pinned URI resolved to (`ReconcileInput.model`: the engine records it, lineage included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    view: ModelDeployment
    model: ResolvedModel | None = None
    moved: AliasMoved | None = None
    blocked: ReconcileOutput | None = None
    next_poll_seconds: float | None = None

    def finish(self, out: ReconcileOutput) -> ReconcileOutput:
        """The engine's output as the controller writes it: the alias move announced, and a
        wake-up when the next poll is due."""
        if self.model is None:
            return out
        events = [_event("Normal", "AliasMoved", self.moved.message)] if self.moved else []
        waits = [delay for delay in (out.requeue_after, self.next_poll_seconds) if delay is not None]
        return out.model_copy(
            update={
                "events": events + out.events,
                "requeue_after": min(waits, default=None),
            }
        )


@dataclass
class _Schedule:
    """When the registry may next be asked about one generation of a ModelDeployment (monotonic
    seconds), and the alias move the last poll found."""

    uri: str
    generation: int | None
    failures: int = 0
    due: float = 0.0
    moved: AliasMoved | None = None
    error: RegistryError | None = None

    def failed(self, clock: float, delay: float, error: RegistryError | None = None) -> None:
        self.failures += 1
        self.due = clock + delay
        self.error = error

    def answered(self, clock: float, delay: float) -> None:
        self.failures = 0
        self.due = clock + delay
        self.error = None


class RegistryGate:
    """Resolves, pins and follows `models:/` URIs, and writes rollout verdicts back."""

    def __init__(
        self,
        config: OperatorConfig,
        read_secret: SecretReader,
        environ: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default_tracking_uri = config.mlflow_tracking_uri
        self._poll_seconds = config.registry_poll_seconds
        self._read_secret = read_secret
        self._environ = environ
        self._monotonic = monotonic
        # Per ModelDeployment; each key is reconciled by one thread at a time.
        self._schedules: dict[Key, _Schedule] = {}

    def forget(self, key: Key) -> None:
        """Drops a deleted ModelDeployment's retry schedule."""
        self._schedules.pop(key, None)

    def admit(self, key: Key, md: ModelDeployment, now: datetime) -> Admission:
        """The model the engine may roll out now, or why it must wait."""
        uri = md.spec.model.uri
        if not is_registry_uri(uri):
            self.forget(key)
            return Admission(view=md)
        generation = md.metadata.generation
        schedule = self._schedules.get(key)
        if schedule is None or (schedule.uri, schedule.generation) != (uri, generation):
            # A changed spec is worth a look at once, whatever the backoff said.
            schedule = self._schedules[key] = _Schedule(uri, generation)
        clock = self._monotonic()
        model = recorded_model(uri, md.status)
        if model is None:
            return self._pin(md, schedule, clock, now)
        moved = self._poll(md, model, schedule, clock) if md.spec.model.follow_alias else None
        return self._admitted(md, moved.model if moved else model, moved, schedule, clock)

    def queue_write_back(
        self, md: ModelDeployment, new: ModelDeploymentStatus, now: datetime
    ) -> ModelDeploymentStatus:
        """`new` with the verdict of the transition from `md.status` queued for the registry when
        spec.model.registry.writeBack asks for it (written with the transition, delivered next)."""
        return queue_write_back(md, md.status, new, now)

    def deliver_write_backs(
        self, md: ModelDeployment, now: datetime
    ) -> tuple[ModelDeploymentStatus, list[EventRecord]]:
        """Tries the queued write-backs that are due; `md.status` without those the registry
        accepted and with the others' next try scheduled, and an Event for each outcome (a failure
        only at its first try: the status shows the retries)."""
        queued = md.status.pending_write_backs
        if not any(is_due(pending, now) for pending in queued):
            return md.status, []
        kept: list[PendingWriteBack] = []
        events: list[EventRecord] = []
        for pending in queued:
            if not is_due(pending, now):
                kept.append(pending)
                continue
            what = f"version {pending.version} of model {pending.name}"
            try:
                self._registry(md).write_back(plan_of(pending))
            except RegistryError as error:
                retry = failed_attempt(pending, str(error), now)
                kept.append(retry)
                log.warning(
                    "write-back for %s/%s failed (try %d), retrying at %s: %s",
                    md.metadata.namespace,
                    md.metadata.name,
                    retry.attempts,
                    retry.next_attempt_time,
                    error,
                )
                if retry.attempts == 1:
                    message = f"{what} not yet marked {pending.outcome} (will retry): {error}"
                    events.append(_event("Warning", "RegistryWriteBackFailed", message))
                continue
            alias = f", alias {pending.alias} moved to it" if pending.alias else ""
            after = f" after {pending.attempts + 1} tries" if pending.attempts else ""
            events.append(
                _event("Normal", "RegistryWriteBack", f"{what} marked {pending.outcome}{alias}{after}")
            )
        return md.status.model_copy(update={"pending_write_backs": kept}), events

    def _pin(self, md: ModelDeployment, schedule: _Schedule, clock: float, now: datetime) -> Admission:
        """Resolves a URI that has no pin yet; the engine runs only once it has one."""
        if schedule.failures and clock < schedule.due and schedule.error is not None:
            # Backing off: say why we wait, again if the status written at the failure was lost
            # (a conflict with kopf's finalizer or a user's edit), without asking the registry.
            return self._blocked(md, schedule.error, schedule.due - clock, now)
        try:
            server, credentials = self._server_of(md)
            if not reported_for(md.status, md.metadata.generation):
                # The first call may take seconds (MLflow's import, a slow server): say what we
                # wait for first, and ask on the next reconcile, right after that write.
                status = resolving_status(md.status, md.spec.model.uri, server, md.metadata.generation, now)
                return Admission(view=md, blocked=ReconcileOutput(status=status, requeue_after=0))
            resolution = resolve(md.spec.model.uri, self._connect(server, credentials))
        except RegistryError as error:
            # A user has to fix the others (URI, alias, credentials): look again at the poll pace.
            delay = next_poll_delay(schedule.failures + 1) if error.retryable else self._poll_seconds
            schedule.failed(clock, delay, error)
            return self._blocked(md, error, delay, now)
        schedule.answered(clock, self._poll_seconds)
        return self._admitted(md, resolution.as_resolved_model(), None, schedule, clock)

    def _blocked(self, md: ModelDeployment, error: RegistryError, delay: float, now: datetime) -> Admission:
        """Admission refused for `error`: the status says so, announced by an Event when it
        changes (so a retry that finds it already written posts nothing)."""
        status = blocked_status(md.status, error, md.metadata.generation, now)
        events = [] if status == md.status else [_event("Warning", error.reason, str(error))]
        return Admission(view=md, blocked=ReconcileOutput(status=status, events=events, requeue_after=delay))

    def _poll(
        self, md: ModelDeployment, pinned: ResolvedModel, schedule: _Schedule, clock: float
    ) -> AliasMoved | None:
        """Follow-alias: whether the alias moved away from the `pinned` version; a failed poll
        keeps the pin and backs off."""
        if clock >= schedule.due:
            try:
                latest = resolve(md.spec.model.uri, self._registry(md))
            except RegistryError as error:
                schedule.failed(clock, next_poll_delay(schedule.failures + 1))
                log.warning(
                    "follow-alias poll for %s/%s failed, keeping %s (next try in %.0fs): %s",
                    md.metadata.namespace,
                    md.metadata.name,
                    pinned.resolved_uri,
                    schedule.due - clock,
                    error,
                )
            else:
                schedule.answered(clock, self._poll_seconds)
                schedule.moved = alias_moved(md.spec.model, md.status, latest)
        # The move stands until the status records its pin: a status write that lost a conflict
        # must not make it wait for the next poll.
        moved = schedule.moved
        return moved if moved is not None and moved.model.resolved_uri != pinned.resolved_uri else None

    def _admitted(
        self,
        md: ModelDeployment,
        model: ResolvedModel,
        moved: AliasMoved | None,
        schedule: _Schedule,
        clock: float,
    ) -> Admission:
        view = engine_view(md, model)
        if view.spec.model.registry is None and self._default_tracking_uri is not None:
            # The pods load the pinned version from the same server the operator resolved it on.
            registry = RegistrySpec(tracking_uri=self._default_tracking_uri)
            model_source = view.spec.model.model_copy(update={"registry": registry})
            view = view.model_copy(update={"spec": view.spec.model_copy(update={"model": model_source})})
        poll = max(schedule.due - clock, 0.0) if md.spec.model.follow_alias else None
        return Admission(view=view, model=model, moved=moved, next_poll_seconds=poll)

    def _registry(self, md: ModelDeployment) -> MlflowRegistry:
        return self._connect(*self._server_of(md))

    def _connect(self, tracking_uri: str, credentials: RegistryCredentials | None) -> MlflowRegistry:
        # MLflow takes seconds to import; an operator whose URIs name no registry never needs it.
        from modelramp.operator.registry.mlflow_registry import MlflowRegistry  # noqa: PLC0415

        return MlflowRegistry(tracking_uri, credentials)

    def _server_of(self, md: ModelDeployment) -> tuple[str, RegistryCredentials | None]:
        """The tracking server `md` uses, and the credentials to send it."""
        spec = md.spec.model.registry
        if spec is None:
            if self._default_tracking_uri is None:
                raise NoTrackingServer(
                    "spec.model.registry.trackingUri: not set, and the operator has no default tracking "
                    "server (--mlflow-tracking-uri or MODELRAMP_MLFLOW_TRACKING_URI)"
                )
            return self._default_tracking_uri, self._operator_credentials()
        if spec.secret_ref is None:
            return spec.tracking_uri, None
        name = spec.secret_ref.name
        data = self._read_secret(md.metadata.namespace or "", name)
        if data is None:
            raise RegistryAuthError(
                f"spec.model.registry.secretRef: Secret {name!r} not found in namespace "
                f"{md.metadata.namespace}: create it with {TOKEN_KEY}, or {USERNAME_KEY} and "
                f"{PASSWORD_KEY}, or fix the name"
            )
        return spec.tracking_uri, credentials_from_secret(name, data)

    def _operator_credentials(self) -> RegistryCredentials | None:
        """The operator's own credentials for its default server, from MLflow's variables."""
        token, username, password = (
            self._environ.get(key) or None for key in (TOKEN_KEY, USERNAME_KEY, PASSWORD_KEY)
        )
        if token is not None:
            return RegistryCredentials(token=SecretStr(token))
        if username is None and password is None:
            return None
        try:
            return RegistryCredentials(username=username, password=SecretStr(password) if password else None)
        except ValidationError:
            raise RegistryAuthError(
                f"the operator's environment sets only one of {USERNAME_KEY} and {PASSWORD_KEY} for its "
                "default tracking server"
            ) from None


def _event(type_: str, reason: str, message: str) -> EventRecord:
    return EventRecord.model_validate(
        {"type": type_, "reason": reason, "message": message[:EVENT_MESSAGE_LIMIT]}
    )
