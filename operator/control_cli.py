"""`modelramp status|promote|abort|retry|pause|resume NAME [-n NS]` (also `kubectl modelramp ...`).

GitOps-safe, like Argo Rollouts: the one-shot requests (promote, promote --full, abort, retry) are
written to the status subresource, which Argo CD never diffs and the operator clears once it has
acted (`status.promote`, `status.promoteFull`, `status.abort`; retry clears `abort`); only
pause/resume touch the spec (`spec.paused`), as a user would in Git. Nothing here decides
anything: the operator does, on its next reconcile.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import kubernetes
from pydantic import ValidationError

from modelramp.operator.api import API_VERSION, KIND, ModelDeployment, ModelDeploymentStatus
from modelramp.operator.api.abtest import VariantStatus
from modelramp.operator.api.spec import CanaryStep
from modelramp.operator.api.status import MetricResult, ModelLineage, PairedCounts, ResolvedModel, TestOutcome
from modelramp.operator.kube import Kube, KubeError, connect
from modelramp.operator.rollout.objects import backends_of
from modelramp.operator.routers.registry import router_for

FIELD_MANAGER = "modelramp-cli"


class CliError(Exception):
    """Something the user must fix; printed without a traceback."""


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog=f"modelramp {command}", description=description)
    cli.add_argument("name", help="the ModelDeployment")
    cli.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's)")
    cli.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    return cli


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    try:
        _, context = kubernetes.config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, FileNotFoundError):
        return "default"
    return str(context.get("context", {}).get("namespace") or "default")


def _read(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = kube.get_model_deployment(namespace, name)
    if body is None:
        raise CliError(f"{KIND} {namespace}/{name} not found")
    return body


def _run(argv: Sequence[str], command: str, description: str, act: Callable[..., str], **flags: Any) -> int:
    """Parses argv, connects, and runs `act(kube, namespace, name, args)`; errors become exit 1."""
    cli = _parser(command, description)
    for flag, help_ in flags.items():
        cli.add_argument(f"-{flag[0]}", f"--{flag}", action="store_true", help=help_)
    args = cli.parse_args(list(argv))
    try:
        kube = Kube(connect(args.kubeconfig, user_agent=FIELD_MANAGER), field_manager=FIELD_MANAGER)
        print(act(kube, _namespace(args), args.name, args))
    except (CliError, KubeError, kubernetes.config.ConfigException) as error:
        print(f"modelramp {command}: {error}", file=sys.stderr)
        return 1
    return 0


def _patch_status(kube: Kube, body: dict[str, Any], status_patch: dict[str, Any]) -> None:
    """Sets request fields only; the operator guards its own status writes with resourceVersion,
    so it never overwrites a request made meanwhile."""
    meta = body["metadata"]
    kube.patch_model_deployment_status(meta["namespace"], meta["name"], status_patch, None)


def _patch_spec(kube: Kube, body: dict[str, Any], spec_patch: dict[str, Any]) -> None:
    meta = body["metadata"]
    kube.patch(API_VERSION, KIND, meta["namespace"], meta["name"], {"spec": spec_patch})


def _promote(kube: Kube, namespace: str, name: str, args: argparse.Namespace) -> str:
    body = _read(kube, namespace, name)
    if not (body.get("status") or {}).get("canaryRevision"):
        raise CliError(f"{namespace}/{name} has no rollout in progress; nothing to promote")
    if args.full:
        _patch_status(kube, body, {"promoteFull": True})
        return f"{namespace}/{name}: full promotion requested (remaining steps and analyses skipped)"
    _patch_status(kube, body, {"promote": True})
    winner = ((body.get("status") or {}).get("abTest") or {}).get("winner")
    if winner:
        return f"{namespace}/{name}: promotion of the A/B test's winner, {winner}, requested"
    return f"{namespace}/{name}: promotion requested (the current pause or step ends)"


def _abort(kube: Kube, namespace: str, name: str, _: argparse.Namespace) -> str:
    _patch_status(kube, _read(kube, namespace, name), {"abort": True})
    return f"{namespace}/{name}: abort requested (all traffic back to stable)"


def _retry(kube: Kube, namespace: str, name: str, _: argparse.Namespace) -> str:
    body = _read(kube, namespace, name)
    if not (body.get("status") or {}).get("abortedAt"):
        raise CliError(f"{namespace}/{name} is not aborted or rolled back; nothing to retry")
    # abortedAt stays: abort=false with abortedAt set is what tells the operator to retry.
    _patch_status(kube, body, {"abort": False})
    return f"{namespace}/{name}: retry requested (the rollout restarts from its first step)"


def _pause(kube: Kube, namespace: str, name: str, _: argparse.Namespace) -> str:
    _patch_spec(kube, _read(kube, namespace, name), {"paused": True})
    return f"{namespace}/{name}: paused (spec.paused=true)"


def _resume(kube: Kube, namespace: str, name: str, _: argparse.Namespace) -> str:
    _patch_spec(kube, _read(kube, namespace, name), {"paused": False})
    return f"{namespace}/{name}: resumed (spec.paused=false)"


def _status(kube: Kube, namespace: str, name: str, args: argparse.Namespace) -> str:
    body = _read(kube, namespace, name)
    try:
        md = ModelDeployment.model_validate(body)
    except ValidationError as error:
        raise CliError(f"{namespace}/{name} does not match the ModelDeployment schema: {error}") from error
    selector = f"involvedObject.name={name},involvedObject.kind={KIND}"
    events = kube.list("v1", "Event", namespace, field_selector=selector)
    return render_status(md, events, verbose=args.verbose)


# --- rendering (pure) ------------------------------------------------------------------------------


def _step_text(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}%"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause (until promoted)"
    analysis = step.shadow.analysis if step.shadow else step.analysis
    names = [m.name for m in (analysis.metrics or [])] if analysis else []
    metrics = f"[{', '.join(names)}]" if names else "[spec.analysis.metrics]"
    if step.shadow is not None:
        up_to = f", up to {step.shadow.duration}" if step.shadow.duration else ""
        return f"shadow {step.shadow.percent}% of stable's requests{up_to}, judged on the pairs {metrics}"
    return f"analysis {metrics}"


def _tree(lines: Sequence[str], indent: str = "  ") -> list[str]:
    return [f"{indent}{'└─' if i == len(lines) - 1 else '├─'} {line}" for i, line in enumerate(lines)]


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def render_status(
    md: ModelDeployment, events: Sequence[dict[str, Any]] = (), *, verbose: bool = False
) -> str:
    """A readable tree of a rollout: phase, models with their lineage, the rollback window, steps
    with the current one marked, analyses, conditions, pending manual requests and the latest
    events; with `verbose`, the stable history and every measurement too."""
    spec, status = md.spec, md.status
    lines = [
        f"{KIND} {md.metadata.namespace}/{md.metadata.name}",
        f"  Phase:     {status.phase or 'Unknown'}" + (f"  ({status.message})" if status.message else ""),
    ]
    strategy = "canary" if spec.strategy.canary else "abTest" if spec.strategy.ab_test else "blueGreen"
    lines.append(f"  Strategy:  {strategy}, traffic by {_router(md)}")
    if spec.rollback_window is not None:
        window = spec.rollback_window.revisions
        lines.append(f"  Rollback:  fast (no steps, no analysis) to the last {window} stable revision(s)")
    lines.append(f"  Stable:    {_model(status.stable_model, status.stable_revision)}")
    lines += _lineage(status.stable_model, verbose)
    if status.canary_revision:
        lines.append(f"  Canary:    {_model(status.canary_model, status.canary_revision)}")
        lines += _lineage(status.canary_model, verbose)
    last_set = f" (router at {status.last_set_weight}%)" if status.last_set_weight is not None else ""
    if spec.strategy.ab_test is None:
        lines.append(f"  Weight:    {status.canary_weight}% canary{last_set}")
    lines.append(f"  Replicas:  {status.ready_replicas}/{status.replicas} ready")
    if spec.paused:
        lines.append("  Paused:    spec.paused=true (modelramp resume to continue)")
    if verbose:
        lines += _stable_history(md)
    lines += _steps(md)
    lines += _blue_green(md)
    lines += _ab_test(md)
    lines += _analyses(status, verbose)
    lines += _monitor(status)
    if status.pending_write_backs:
        lines.append("  Write-backs pending (retried until the registry accepts them):")
        lines += _tree(
            [
                f"{w.outcome} {w.name}/{w.version}, {w.attempts} attempts, next {_time(w.next_attempt_time)}"
                for w in status.pending_write_backs
            ],
            "    ",
        )
    requests = [label for label, on in (("abort", status.abort), ("promoteFull", status.promote_full)) if on]
    if requests:
        lines.append(f"  Requests:  {', '.join(requests)}")
    if status.pause_conditions:
        lines.append("  Pauses:")
        lines += _tree([f"{p.reason} since {_time(p.start_time)}" for p in status.pause_conditions], "    ")
    if status.conditions:
        lines.append("  Conditions:")
        lines += _tree(
            [
                f"{c.type}={c.status} {c.reason}" + (f": {c.message}" if c.message else "")
                for c in status.conditions
            ],
            "    ",
        )
    if events:
        lines.append("  Events (latest last):")
        latest = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-8:]
        lines += _tree([f"{e.get('type')} {e.get('reason')}: {e.get('message')}" for e in latest], "    ")
    return "\n".join(lines)


def _router(md: ModelDeployment) -> str:
    """The trafficRouting field and the objects its router reads, e.g. `gatewayAPI HTTPRoute ns/web`."""
    wire = md.spec.traffic_routing.model_dump(by_alias=True, exclude_none=True)
    objects = router_for(md.spec.traffic_routing, backends_of(md)).reads()
    return " ".join([", ".join(wire) or "replicaRatio", ", ".join(str(ref) for ref in objects)]).strip()


def _model(model: ResolvedModel | None, revision: str | None) -> str:
    uri = model.resolved_uri if model is not None else "-"
    return f"{uri} (revision {revision or '-'})"


def _stable_history(md: ModelDeployment) -> list[str]:
    """The revisions stable before the current one, newest last, marking those a fast rollback
    reaches."""
    history, window = md.status.stable_history, md.spec.rollback_window
    if not history:
        return []
    items = []
    for index, revision in enumerate(history):
        ago = len(history) - index
        fast = ", fast rollback" if window is not None and ago <= window.revisions else ""
        items.append(f"{revision} (stable {ago} revision(s) ago{fast})")
    return ["  Stable history (newest last):", *_tree(items, "    ")]


def _lineage(model: ResolvedModel | None, verbose: bool) -> list[str]:
    """`version 7, run 5f0c…, source models:/m-…`; with `verbose`, the run's metrics, the
    signature and the description (the model card) too."""
    if model is None:
        return []
    lineage = model.lineage or ModelLineage()
    known = (("version", model.version), ("run", lineage.run_id), ("source", lineage.source))
    summary = ", ".join(f"{label} {value}" for label, value in known if value)
    items = [summary] if summary else []
    if verbose:
        if lineage.metrics:
            items.append(
                "metrics: " + ", ".join(f"{name}={value:.4g}" for name, value in lineage.metrics.items())
            )
        if lineage.signature:
            items.append(f"signature: {lineage.signature}")
        if lineage.description:
            # A model card is often Markdown over many lines: each keeps its own line, indented.
            first, *rest = lineage.description.splitlines() or [""]
            items.append("\n".join([f"description: {first}", *(f"         {line}" for line in rest)]))
    return _tree(items, "    ")


def _steps(md: ModelDeployment) -> list[str]:
    canary = md.spec.strategy.canary
    if canary is None:
        return []
    current = md.status.current_step_index
    rollout = md.status.canary_revision is not None
    items = []
    for index, step in enumerate(canary.steps):
        if not rollout or current is None:
            mark = "·"
        elif index < current:
            mark = "✔"
        elif index == current:
            mark = "▶"
        else:
            mark = "·"
        since = f"  (since {_time(md.status.step_start_time)})" if rollout and index == current else ""
        items.append(f"{mark} {index}: {_step_text(step)}{since}")
    return [f"  Steps ({len(canary.steps)}):", *_tree(items, "    ")]


def _blue_green(md: ModelDeployment) -> list[str]:
    strategy, status = md.spec.strategy.blue_green, md.status.blue_green
    if strategy is None:
        return []
    delay = strategy.scale_down_delay_seconds
    items = [
        f"preview ready: {_time(status.preview_ready_time if status else None)}",
        f"switched: {_time(status.switch_time if status else None)} (old side kept {delay}s)",
        f"auto-promotion: {'on' if strategy.auto_promotion_enabled else 'off (modelramp promote)'}",
    ]
    return ["  Blue-green:", *_tree(items, "    ")]


def _ab_test(md: ModelDeployment) -> list[str]:
    """The test's state, then one line per variant: its share, value, effect against control
    with its bounds, the test and the decision."""
    strategy, test = md.spec.strategy.ab_test, md.status.ab_test
    if strategy is None or test is None:
        return []
    key = (
        f"header {strategy.assignment.header}"
        if strategy.assignment.header
        else f"cookie {strategy.assignment.cookie}"
    )
    head = (
        f"  A/B test:  {test.id} {test.phase}, users by {key} (salt {test.salt}); {strategy.metric.name}; "
        f"{test.windows} windows, {test.interim_looks} early looks, final look {_time(test.ends_at)}"
    )
    lines = [head, *_tree([variant_line(variant) for variant in test.variants], "    ")]
    if test.winner is not None:
        held = " (held: modelramp promote takes it)" if test.phase == "Decided" else ""
        lines.append(f"  Winner:    {test.winner}{held}")
    if test.message:
        lines.append(f"  Decision:  {test.message}")
    return lines


def variant_line(variant: VariantStatus) -> str:
    """`candidate 30% 0.135 (135/1000), +0.035 [+0.0059, +0.064] at 99.8%, fisher-exact p=0.00035
    (alpha 0.0021, spent 0.0063): Better`"""
    value = "n/a" if variant.value is None else f"{variant.value:.4g}"
    line = f"{variant.name} {variant.weight}% {value} ({variant.count:.0f}/{variant.total:.0f})"
    if variant.effect is not None and variant.lower is not None and variant.upper is not None:
        confidence = f" at {variant.confidence:.1%}" if variant.confidence is not None else ""
        line += f", {variant.effect:+.3g} [{variant.lower:+.3g}, {variant.upper:+.3g}]{confidence}"
    if variant.p_value is not None:
        budget = f"alpha {variant.alpha:.2g}, spent {variant.alpha_spent:.2g}"
        line += f", {variant.test} p={variant.p_value:.2g} ({budget})"
    return f"{line}: {variant.decision}"


def _analyses(status: ModelDeploymentStatus, verbose: bool) -> list[str]:
    """One line per run and one per metric (what decided it, on how much evidence); with
    `verbose`, each metric's measurements with their queries too."""
    if not status.analysis_runs:
        return []
    lines = ["  Analyses:"]
    for i, run in enumerate(status.analysis_runs):
        last = i == len(status.analysis_runs) - 1
        lines.append(f"    {'└─' if last else '├─'} {run.name} ({run.kind}) {run.phase}")
        metrics = []
        for result in run.metrics:
            metrics.append(_metric_line(result))
            if verbose:
                metrics += [
                    f"   {_time(m.time)} {m.verdict}: {m.message}"
                    for m in status.measurements
                    if m.analysis == run.name and m.metric == result.name
                ]
        lines += _tree(metrics, "       " if last else "    │  ")
    return lines


def _monitor(status: ModelDeploymentStatus) -> list[str]:
    """spec.monitor: its verdict (drifted or not, the worst features) and its current run."""
    run, drift = status.monitor, status.drift
    if run is None and drift is None:
        return []
    if drift is None:
        verdict = "not decided yet"
    else:
        worst = ", ".join(f"{f.name} (PSI {f.psi:.3g})" for f in drift.worst_features)
        state = "DRIFTED" if drift.drifted else "within reference"
        verdict = f"{state} at {_time(drift.decided_at)}" + (f"; worst: {worst}" if worst else "")
    lines = [f"  Monitor:   {verdict}"]
    if run is not None:
        lines.append(f"    └─ {run.name} ({run.kind}) {run.phase}")
        lines += _tree([_metric_line(result) for result in run.metrics], "       ")
    return lines


def _metric_line(result: MetricResult) -> str:
    """`errors  Successful  within bound: 5xx share 0 [0, 0.0092] <= 0.02; fisher-exact p=1 ...`"""
    head = f"{result.name}: {result.phase}"
    test = result.test
    if test is None:
        detail = (result.message or "").split("; query: ")[0]
        prefix = f"{result.name}: "
        return f"{head}, {result.count} measured" + (f" — {detail.removeprefix(prefix)}" if detail else "")
    upper = f"{test.upper:.3g}" if test.upper is not None else "inf"
    interval = f" [{test.lower:.3g}, {upper}]" if test.lower is not None else ""
    value = f"{test.value:.3g}" if test.value is not None else "n/a"
    bound = f" vs bound {test.bound:.3g}" if test.bound is not None else ""
    more = f"; ~{test.more_canary_samples} more canary samples needed" if test.more_canary_samples else ""
    paired = result.evidence.paired if result.evidence else None
    samples = (
        _paired_samples(test, paired)
        if paired is not None
        else f"{test.canary_samples:.0f}/{test.stable_samples:.0f} canary/stable samples"
    )
    return (
        f"{head} — {test.decision}: {test.effect} {value}{interval}{bound}; {test.test} p={test.p_value:.2g} "
        f"(alpha {test.alpha:.2g}, spent {test.alpha_spent:.2g}); {samples}{more}"
    )


def _paired_samples(test: TestOutcome, paired: PairedCounts) -> str:
    """A shadow step's evidence: the same requests answered by both tracks, and where they differed."""
    pairs = f"{test.canary_samples:.0f} requests answered by both"
    if test.test == "mcnemar-exact":
        alone = (
            f"{paired.canary_only:.0f} failed by the canary alone, {paired.stable_only:.0f} by stable alone"
        )
        return f"{pairs}; {alone}"
    if test.test == "wilcoxon-signed-rank" and test.statistic is not None:
        return f"{pairs}; the canary slower on {test.statistic:.0%} of them"
    if paired.joint:
        size = round(math.sqrt(len(paired.joint)))
        off = sum(v for i, v in enumerate(paired.joint) if i // size != i % size)
        return f"{test.canary_samples:.0f} rows scored by both; {off:.0f} in another bucket than stable's"
    return pairs


# --- entry points (modelramp.cli dispatches here) --------------------------------------------------


def status(argv: Sequence[str]) -> int:
    return _run(
        argv,
        "status",
        "Show a rollout as a tree.",
        _status,
        verbose="also the stable history, every measurement with its query, and each model's metrics, "
        "signature and card",
    )


def promote(argv: Sequence[str]) -> int:
    return _run(
        argv,
        "promote",
        "End the current step or pause (--full: skip every remaining step and analysis).",
        _promote,
        full="promote all the way: skip the remaining steps and analyses",
    )


def abort(argv: Sequence[str]) -> int:
    return _run(argv, "abort", "Abort the rollout: all traffic back to stable.", _abort)


def retry(argv: Sequence[str]) -> int:
    return _run(argv, "retry", "Restart an aborted or rolled-back rollout from its first step.", _retry)


def pause(argv: Sequence[str]) -> int:
    return _run(argv, "pause", "Hold the rollout where it is (spec.paused=true).", _pause)


def resume(argv: Sequence[str]) -> int:
    return _run(argv, "resume", "Continue a paused rollout (spec.paused=false).", _resume)
