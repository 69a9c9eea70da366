"""Fixtures shared by every suite: the local cluster and a namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
from hypothesis import settings
from support.cluster import Kube, start_cluster

# pytest-xdist's workers start as `python -c` in the repository root, where operator/ would shadow
# the standard library's operator module; they inherit this.
os.environ["PYTHONSAFEPATH"] = "1"

# Property tests check what holds, never how fast: on a loaded 2-core machine hypothesis' default
# 200 ms deadline per example fails correct code at random.
settings.register_profile("modelramp", deadline=None)
settings.load_profile("modelramp")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In make test's parallel run (pytest-xdist, --dist loadgroup) a module runs in one worker,
    unless a test names a group of its own: a module's fixtures (a compiled model, an MLflow
    server, model servers and their Prometheus) then start once, not once in every worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def kube() -> Kube:
    """The local cluster, started by `hack/cluster.sh up` or reused when already up."""
    return start_cluster()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace, deleted after the test so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(kube.api_client)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")
