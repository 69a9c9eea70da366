"""The `ModelDeployment` resource as a whole: its identity and the envelope around spec and status."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelramp.operator.api.base import ApiModel, CelRule
from modelramp.operator.api.spec import ModelDeploymentSpec
from modelramp.operator.api.status import ModelDeploymentStatus

GROUP: Final = "modelramp.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ModelDeployment"
PLURAL: Final = "modeldeployments"
SINGULAR: Final = "modeldeployment"
SHORT_NAMES: Final = ("md",)
CATEGORIES: Final = ("modelramp",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"


class ObjectMeta(BaseModel):
    """The metadata fields the operator reads; the rest of the API server's metadata is ignored."""

    model_config = ConfigDict(
        alias_generator=None, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    creation_timestamp: datetime | None = Field(default=None, alias="creationTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelDeployment(ApiModel):
    """A model served on Kubernetes and rolled out safely (a whole object, e.g. a kopf body)."""

    model_config = ConfigDict(extra="ignore")

    # Services <name>-stable and <name>-canary must be valid DNS-1035 labels (63 characters).
    cel_rules = (
        CelRule(
            "!has(self.metadata.name) || self.metadata.name.size() <= 56",
            "metadata.name must be at most 56 characters, so that <name>-stable and <name>-canary fit 63",
        ),
        CelRule(
            "!has(self.metadata.name) || self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "metadata.name must start with a letter and contain only a-z, 0-9 and '-' (it names Services)",
        ),
        # A challenger with a model of its own runs in Deployment and Service <name>-<variant>.
        CelRule(
            "!has(self.metadata.name) || !has(self.spec.strategy.abTest) || "
            "self.spec.strategy.abTest.variants.all(v, !has(v.model) || "
            "self.metadata.name.size() + v.name.size() <= 62)",
            "metadata.name and each A/B variant with a model must fit 62 characters together, so that "
            "the variant's Service <name>-<variant> fits 63",
        ),
    )

    api_version: Literal["modelramp.dev/v1alpha1"] = Field(
        default="modelramp.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["ModelDeployment"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
