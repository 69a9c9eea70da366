"""The MLflow model registry: resolve and pin `models:/` URIs, follow an alias, write verdicts back.

Pure parts: `uri` (parsing), `credentials` (the Secret's keys), `resolver` (the interface and
pin bookkeeping), `follow` (the follow-alias decision and retry schedule), `writeback` (what a
rollout's outcome writes). The only I/O is `mlflow_registry.MlflowRegistry`, imported from its
own module so the pure parts never load MLflow; `gate.RegistryGate` is what the controller calls
(also imported from its own module: it depends on the operator's config).
"""

from modelramp.operator.registry.credentials import RegistryCredentials, credentials_from_secret
from modelramp.operator.registry.errors import (
    AliasNotFound,
    InvalidModelUri,
    ModelNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryRequestRejected,
    RegistryUnavailable,
)
from modelramp.operator.registry.follow import AliasMoved, alias_moved, next_poll_delay
from modelramp.operator.registry.resolver import (
    ModelRegistry,
    ModelVersionInfo,
    RegistryResolution,
    recorded_model,
    resolve,
)
from modelramp.operator.registry.uri import (
    AliasRef,
    LatestRef,
    RegistryRef,
    StageRef,
    VersionRef,
    is_registry_uri,
    parse_registry_uri,
    pinned_uri,
)
from modelramp.operator.registry.writeback import WriteBackPlan, plan_write_back

__all__ = [
    "AliasMoved",
    "AliasNotFound",
    "AliasRef",
    "InvalidModelUri",
    "LatestRef",
    "ModelNotFound",
    "ModelRegistry",
    "ModelVersionInfo",
    "RegistryAuthError",
    "RegistryCredentials",
    "RegistryError",
    "RegistryRef",
    "RegistryRequestRejected",
    "RegistryResolution",
    "RegistryUnavailable",
    "StageRef",
    "VersionRef",
    "WriteBackPlan",
    "alias_moved",
    "credentials_from_secret",
    "is_registry_uri",
    "next_poll_delay",
    "parse_registry_uri",
    "pinned_uri",
    "plan_write_back",
    "recorded_model",
    "resolve",
]
