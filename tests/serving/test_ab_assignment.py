"""Sticky A/B assignment with real `modelramp serve` processes on loopback: three servers, one per
variant (each runs its own revision, `--model-version`), all following one assignment table as the
operator writes it. Requests enter at any server; a user lands on the variant the documented hash
names, every time, whichever server it entered, and each request is counted once, by the variant
that served it.

Tolerances: with n requests from n distinct users, a variant of weight w gets Binomial(n, w) of
them (the hash spreads keys like a fair draw); the shares are checked within 4 standard
deviations, sqrt(n w (1 - w)) (a chance of 6e-5 per variant for a fair hash). The hash is fixed,
so the outcome is too: these are fixed-seed checks.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.abtest import documented_variant
from support.serving import ServingProcess

REVISIONS = {"control": "rev-control", "candidate": "rev-candidate", "distilled": "rev-distilled"}
WEIGHTS = {"control": 50, "candidate": 30, "distilled": 20}
SALT = "test-salt"
HEADER = "x-user-id"
ROW = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
PATH = "/v2/models/model/infer"


def expected_variant(user: str, weights: dict[str, int] = WEIGHTS, salt: str = SALT) -> str:
    return documented_variant(salt, user, weights)


def write_table(
    path: Path, servers: dict[str, ServingProcess], weights: dict[str, int], **fields: Any
) -> None:
    table = {
        "test": "t1",
        "header": HEADER,
        "salt": SALT,
        "variants": [
            {
                "name": name,
                "weight": weight,
                "revision": REVISIONS[name],
                "model": "model",
                "url": servers[name].url,
            }
            for name, weight in weights.items()
        ],
    } | fields
    path.with_suffix(".tmp").write_text(json.dumps(table))
    path.with_suffix(".tmp").replace(path)  # atomic, as the kubelet swaps a ConfigMap volume


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assignment") / "assignment.json"


@pytest.fixture(scope="module")
def servers(
    torchscript_mlp: Path, table: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServingProcess]]:
    workdir = tmp_path_factory.mktemp("ab-servers")
    processes = {
        name: ServingProcess(
            torchscript_mlp,
            workdir / name,
            extra_args=[
                "--model-version",
                revision,
                "--assignment-file",
                str(table),
                "--max-latency-ms",
                "0",
            ],
        )
        for name, revision in REVISIONS.items()
    }
    write_table(table, processes, WEIGHTS)
    try:
        for process in processes.values():
            process.start()
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def infer(client: httpx.Client, server: ServingProcess, user: str | None, **headers: str) -> httpx.Response:
    sent = {HEADER: user} if user is not None else {}
    response = client.post(f"{server.url}{PATH}", json=ROW, headers=sent | headers)
    assert response.status_code == 200, response.text
    return response


def counters(
    servers: dict[str, ServingProcess], client: httpx.Client, metric: str
) -> Counter[tuple[str, ...]]:
    """Every server's samples of `metric`, by (server, label values)."""
    found: Counter[tuple[str, ...]] = Counter()
    for name, server in servers.items():
        for line in client.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith(metric + "{"):
                labels = line[len(metric) + 1 : line.rindex("}")]
                values = tuple(sorted(part.replace('"', "") for part in labels.split(",")))
                found[(name, *values)] += round(float(line.rsplit(" ", 1)[1]))
    return found


def within_binomial(counts: Counter[str], n: int, weights: dict[str, int]) -> None:
    for name, weight in weights.items():
        share = weight / 100
        sigma = math.sqrt(n * share * (1 - share))
        assert abs(counts[name] - n * share) <= 4 * sigma, (name, counts, n)


def test_each_user_is_served_by_its_hashed_variant_every_time_from_any_server(
    servers: dict[str, ServingProcess],
) -> None:
    rng = random.Random(7)
    entries = list(servers.values())
    with httpx.Client(timeout=30) as client:
        before = counters(servers, client, "modelramp_requests_total")
        # 1,000 users once each: the shares follow the weights.
        first = {
            f"user-{i}": infer(client, rng.choice(entries), f"user-{i}").headers["modelramp-variant"]
            for i in range(1000)
        }
        assert all(first[user] == expected_variant(user) for user in first)
        within_binomial(Counter(first.values()), 1000, WEIGHTS)
        # 1,000 more requests from 100 of them, each entering at a random server: 100 % sticky.
        again = [
            (user, infer(client, rng.choice(entries), user)) for user in rng.sample(sorted(first), 100) * 10
        ]
        assert all(response.headers["modelramp-variant"] == first[user] for user, response in again)
        # Every request counted once, by the server of the variant that served it.
        served = counters(servers, client, "modelramp_requests_total") - before
    by_server = Counter({server: count for (server, *_), count in served.items()})
    assigned = Counter(first.values()) + Counter(first[user] for user, _ in again)
    assert by_server == assigned


def test_variant_metrics_count_keyed_requests_where_served_and_forwards_where_forwarded(
    servers: dict[str, ServingProcess],
) -> None:
    with httpx.Client(timeout=30) as client:
        variants_before = counters(servers, client, "modelramp_variant_requests_total")
        forwarded_before = counters(servers, client, "modelramp_forwarded_requests_total")
        users = [f"metrics-{i}" for i in range(60)]
        for user in users:
            infer(client, servers["control"], user)
        variants = counters(servers, client, "modelramp_variant_requests_total") - variants_before
        forwarded = counters(servers, client, "modelramp_forwarded_requests_total") - forwarded_before
    truth = Counter(expected_variant(user) for user in users)
    for name in WEIGHTS:
        keyed = sum(
            c for (server, *labels), c in variants.items() if server == name and "assignment=keyed" in labels
        )
        assert keyed == truth[name], (name, variants)
        assert all(f"variant={name}" in labels for (server, *labels) in variants if server == name)
    # Entering at control, everyone else was forwarded from there (each answered 200).
    sent_on: Counter[str] = Counter()
    for (server, *labels), count in forwarded.items():
        if server == "control":
            assert "code=200" in labels, labels
            sent_on[next(label for label in labels if label.startswith("variant="))] += count
    assert sent_on == Counter({f"variant={name}": truth[name] for name in WEIGHTS if name != "control"})


def test_requests_without_the_key_are_assigned_at_random_and_counted_apart(
    servers: dict[str, ServingProcess],
) -> None:
    with httpx.Client(timeout=30) as client:
        before = counters(servers, client, "modelramp_variant_requests_total")
        seen = Counter(
            infer(client, servers["candidate"], None).headers["modelramp-variant"] for _ in range(600)
        )
        after = counters(servers, client, "modelramp_variant_requests_total") - before
    # Random by weight (a fair draw each), not sticky, and never counted as keyed.
    within_binomial(seen, 600, WEIGHTS)
    assert sum(c for (_, *labels), c in after.items() if "assignment=random" in labels) == 600
    assert not any("assignment=keyed" in labels for (_, *labels) in after)


def test_a_variant_that_cannot_be_reached_is_served_locally_and_never_counted_as_an_error(
    servers: dict[str, ServingProcess], table: Path
) -> None:
    gone = ServingProcess(
        servers["distilled"].model, servers["distilled"].workdir
    )  # a port nobody listens on
    lost = {**servers, "distilled": gone}
    users = [f"fallback-{i}" for i in range(200)]
    for_distilled = [user for user in users if expected_variant(user) == "distilled"]
    try:
        write_table(table, lost, WEIGHTS)
        time.sleep(1.5)  # the servers re-read the table within a second
        with httpx.Client(timeout=30) as client:
            before = counters(servers, client, "modelramp_variant_requests_total")
            answered = [
                infer(client, servers["control"], user).headers["modelramp-variant"] for user in for_distilled
            ]
            after = counters(servers, client, "modelramp_variant_requests_total") - before
    finally:
        write_table(table, servers, WEIGHTS)
        time.sleep(1.5)
    assert for_distilled and answered == ["control"] * len(for_distilled)
    fallback = [labels for (server, *labels), c in after.items() if c and server == "control"]
    assert all("assignment=fallback" in labels and "code=200" in labels for labels in fallback), after


def test_a_new_table_is_followed_without_a_restart_and_moves_only_the_users_it_must(
    servers: dict[str, ServingProcess], table: Path
) -> None:
    users = [f"move-{i}" for i in range(300)]
    shifted = {"control": 30, "candidate": 50, "distilled": 20}
    try:
        write_table(table, servers, shifted)
        time.sleep(1.5)
        with httpx.Client(timeout=30) as client:
            now = {
                user: infer(client, servers["distilled"], user).headers["modelramp-variant"] for user in users
            }
    finally:
        write_table(table, servers, WEIGHTS)
        time.sleep(1.5)
    assert all(now[user] == expected_variant(user, shifted) for user in users)
    # Buckets keep their place: only buckets 30..49 changed hands (control -> candidate).
    moved = {user for user in users if now[user] != expected_variant(user)}
    assert moved and all((expected_variant(user), now[user]) == ("control", "candidate") for user in moved)


def test_a_restarted_server_assigns_every_user_as_before(servers: dict[str, ServingProcess]) -> None:
    users = [f"restart-{i}" for i in range(100)]
    with httpx.Client(timeout=30) as client:
        before = {
            user: infer(client, servers["candidate"], user).headers["modelramp-variant"] for user in users
        }
        servers["candidate"].stop()
        servers["candidate"].start()
        after = {
            user: infer(client, servers["candidate"], user).headers["modelramp-variant"] for user in users
        }
    assert after == before == {user: expected_variant(user) for user in users}
