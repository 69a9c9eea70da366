"""Status transitions are typed: `StatusUpdate` names every ModelDeploymentStatus field with its
type, so mypy rejects a misspelt field or a wrong value that `model_copy(update=...)` would drop
or store silently."""

from __future__ import annotations

import textwrap
import types
import typing
from pathlib import Path

import pytest
from mypy import api as mypy

from modelramp.operator.api.status import ModelDeploymentStatus
from modelramp.operator.rollout import tick
from modelramp.operator.rollout.tick import StatusUpdate

REPO = Path(__file__).resolve().parents[2]


def test_status_update_has_every_status_field_with_its_type() -> None:
    hints = typing.get_type_hints(StatusUpdate, vars(tick))
    assert set(hints) == set(ModelDeploymentStatus.model_fields)
    expected = typing.get_type_hints(ModelDeploymentStatus)
    for name in ModelDeploymentStatus.model_fields:
        # Constrained strings (max_length) are plain str to the type checker.
        assert _plain(hints[name]) == _plain(expected[name]), name


def _plain(annotation: object) -> object:
    """`annotation` without `Annotated[...]` metadata, recursively through unions and lists."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if args:
        origin = typing.get_origin(annotation)
        # `X | None` and `Optional[X]` are the same union.
        kind = typing.Union if origin is types.UnionType else origin
        return (kind, frozenset(_plain(arg) for arg in args))
    return annotation


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("changed(status, canary_wieght=5)", 'Unexpected keyword argument "canary_wieght"'),
        ('changed(status, canary_weight="5")', 'has incompatible type "str"; expected "int"'),
    ],
)
def test_mypy_rejects_a_misspelt_or_mistyped_field(tmp_path: Path, call: str, error: str) -> None:
    snippet = tmp_path / "transition.py"
    snippet.write_text(
        textwrap.dedent(
            f"""
            from modelramp.operator.api.status import ModelDeploymentStatus
            from modelramp.operator.rollout.tick import changed

            status = ModelDeploymentStatus()
            {call}
            """
        )
    )
    out, err, code = mypy.run(
        ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
         "--follow-imports=silent", str(snippet)]
    )  # fmt: skip
    assert code == 1, out + err
    assert error in out, out
