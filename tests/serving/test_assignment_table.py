"""The assignment table and its routing rules, without a server: the documented hash, the key from
a header or a cookie, what a server does with a request another server assigned, and how it
follows (or refuses) a changed table file."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from modelramp.serving.assignment import Assigner, AssignmentTable, bucket


def table(**fields: Any) -> dict[str, Any]:
    return {
        "test": "t1",
        "header": "x-user-id",
        "salt": "s",
        "variants": [
            {"name": "control", "weight": 60, "revision": "r1", "model": "m", "url": "http://control:80"},
            {"name": "candidate", "weight": 40, "revision": "r2", "model": "m", "url": "http://candidate:80"},
        ],
    } | fields


def write(path: Path, body: dict[str, Any] | str) -> None:
    path.write_text(body if isinstance(body, str) else json.dumps(body))


def test_the_bucket_is_the_first_eight_bytes_of_sha256_mod_100() -> None:
    for key in ("alice", "bob", "", "ünïcode", "x" * 1000):
        digest = hashlib.sha256(f"salt:{key}".encode()).digest()
        assert bucket("salt", key) == int.from_bytes(digest[:8], "big") % 100
    buckets = [bucket("s", f"user-{i}") for i in range(10_000)]
    # Uniform: each of the 100 buckets holds 100 +- 4 sqrt(100 * 0.99) of 10,000 keys.
    assert all(abs(buckets.count(b) - 100) <= 40 for b in range(100))


def test_variants_take_consecutive_buckets_in_table_order() -> None:
    parsed = AssignmentTable.model_validate(table())
    assert [parsed.variant_of(b).name for b in (0, 59, 60, 99)] == [
        "control",
        "control",
        "candidate",
        "candidate",
    ]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"variants": [{"name": "a", "weight": 50, "revision": "r", "model": "m", "url": "http://a"}]},
            "add up to 100",
        ),
        ({"cookie": "uid"}, "exactly one of header or cookie"),
        ({"test": None}, "test"),
    ],
)
def test_a_table_that_could_scatter_users_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        AssignmentTable.model_validate(table(**fields))


def test_a_server_serves_its_own_variant_and_forwards_the_others(tmp_path: Path) -> None:
    path = tmp_path / "assignment.json"
    write(path, table())
    assigner = Assigner(path, "r1", rng=random.Random(1))
    users = [f"u{i}" for i in range(200)]
    for user in users:
        route = assigner.route([(b"x-user-id", user.encode())])
        assert route is not None and route.assigned == "keyed"
        expected = "control" if bucket("s", user) < 60 else "candidate"
        assert route.variant == expected
        assert (route.forward_to is None) == (expected == "control")
        if route.forward_to is not None:
            assert route.forward_to.url == "http://candidate:80"


def test_the_key_may_be_a_cookie(tmp_path: Path) -> None:
    path = tmp_path / "assignment.json"
    write(path, table(header=None, cookie="uid"))
    assigner = Assigner(path, "r2")
    cookie = b"theme=dark; uid=u7; other=1"
    route = assigner.route([(b"cookie", cookie)])
    assert route is not None and route.assigned == "keyed"
    assert route.variant == ("control" if bucket("s", "u7") < 60 else "candidate")


def test_a_forwarded_request_is_served_where_it_arrives_never_passed_on(tmp_path: Path) -> None:
    path = tmp_path / "assignment.json"
    write(path, table())
    assigner = Assigner(path, "r2")
    forwarded = [
        (b"modelramp-variant", b"candidate"),
        (b"modelramp-assignment", b"keyed"),
        (b"x-user-id", b"a"),
    ]
    route = assigner.route(forwarded)
    assert route is not None and (route.variant, route.assigned, route.forward_to) == (
        "candidate",
        "keyed",
        None,
    )
    # Sent to the wrong server (tables a refresh apart): served here, counted as misrouted.
    route = assigner.route([(b"modelramp-variant", b"control"), (b"modelramp-assignment", b"keyed")])
    assert route is not None and (route.variant, route.assigned, route.forward_to) == (
        "candidate",
        "misrouted",
        None,
    )


def test_the_table_file_is_followed_and_a_broken_one_keeps_the_table_in_force(tmp_path: Path) -> None:
    path = tmp_path / "assignment.json"
    assigner = Assigner(path, "r1")
    assert assigner.route([]) is None  # no file: no test
    write(path, table())
    assigner.reload()
    assert assigner.mine is not None and assigner.mine.name == "control"
    write(path, "{not json")
    assigner.reload()
    assert assigner.table.test == "t1", "a broken write must not scatter users"
    write(path, {"variants": []})
    assigner.reload()
    assert assigner.route([(b"x-user-id", b"u1")]) is None
