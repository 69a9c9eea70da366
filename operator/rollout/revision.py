"""What a revision is: the part of the spec that makes the pods, and its hash.

Changing `spec.model` or `spec.serving` (except `serving.replicas`, which only resizes) makes a new
revision and starts a rollout. The hash also covers the image the operator fills in when
`serving.image` is unset, so the pods of a revision are fully determined by its template, which is
what the status keeps for the stable track (`status.stableTemplate`) while another rolls out.
"""

from __future__ import annotations

import hashlib
import json

from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.api.status import RevisionTemplate
from modelramp.operator.rollout.model import EngineConfig

REVISION_LENGTH = 10


def template_of(spec: ModelDeploymentSpec, config: EngineConfig) -> RevisionTemplate:
    """The template the spec asks for now."""
    serving = spec.serving.model_copy(update={"image": spec.serving.image or config.serving_image})
    # Both parts were validated with the spec; validating them again would re-run their CEL rules.
    return RevisionTemplate.model_construct(model=spec.model, serving=serving)


def revision_of(template: RevisionTemplate) -> str:
    """A short, label-safe hash of everything in the template that shapes the pods."""
    # Defaults left out: a field a newer operator adds with a default doesn't re-roll every model.
    wire = template.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    wire.get("serving", {}).pop("replicas", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]
