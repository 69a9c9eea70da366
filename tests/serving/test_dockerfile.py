"""Lints the Dockerfile (Docker can't run here): the rules that matter for our two images.

Parsed with dockerfile-parse; each rule is a check of ours (hadolint has no usable wheel here).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
TARGETS = ("operator", "serving")


@pytest.fixture(scope="module")
def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    return list(parser.structure)


def _stages(instructions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    stages: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            current = stages.setdefault(words[-1] if len(words) == 3 else f"#{len(stages)}", [])
        current.append(instruction)
    return stages


def _args(instructions: list[dict[str, Any]]) -> dict[str, str]:
    values = {}
    for instruction in instructions:
        if instruction["instruction"] == "ARG" and "=" in instruction["value"]:
            name, value = instruction["value"].split("=", 1)
            values[name] = value
    return values


def test_both_targets_exist(instructions: list[dict[str, Any]]) -> None:
    assert set(TARGETS) <= set(_stages(instructions))


def test_base_images_are_pinned_and_never_latest(instructions: list[dict[str, Any]]) -> None:
    args = _args(instructions)
    stage_names = set(_stages(instructions))
    for instruction in instructions:
        if instruction["instruction"] != "FROM":
            continue
        image = instruction["value"].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], image)
        if image in stage_names:
            continue
        assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, (
            f"line {instruction['startline'] + 1}: {image} has no tag"
        )
        assert not image.endswith(":latest"), f"line {instruction['startline'] + 1}: {image} uses latest"
        assert re.search(r":\d+\.\d+", image), (
            f"line {instruction['startline'] + 1}: {image} is not pinned to a version"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_final_stages_run_as_a_non_root_user(instructions: list[dict[str, Any]], target: str) -> None:
    users = [i["value"].split(":")[0] for i in _stages(instructions)[target] if i["instruction"] == "USER"]
    assert users, f"stage {target} sets no USER"
    assert users[-1] not in ("root", "0"), f"stage {target} runs as {users[-1]}"


def test_serving_image_uses_cuda_and_has_a_healthcheck(instructions: list[dict[str, Any]]) -> None:
    serving = _stages(instructions)["serving"]
    base = serving[0]["value"].split()[0]
    assert "cuda" in _args(instructions).get(base.strip("${}"), base)
    checks = [i for i in serving if i["instruction"] == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/v2/health/live" in checks[0]["value"]
    entrypoint = next(i for i in serving if i["instruction"] == "ENTRYPOINT")
    assert entrypoint["value"].startswith("["), "exec form, so SIGTERM reaches the server"


def test_install_steps_match_what_the_tests_install(instructions: list[dict[str, Any]]) -> None:
    """The image installs from uv.lock with `uv sync --frozen`, as hack/venv.sh does for the tests."""
    venv_script = (DOCKERFILE.parent / "hack" / "venv.sh").read_text()
    assert "sync --frozen" in venv_script
    runs = [i["value"] for i in instructions if i["instruction"] == "RUN"]
    syncs = [shlex.split(run) for run in runs if "uv sync" in run]
    assert syncs and all("--frozen" in words for words in syncs)
    assert not any(re.search(r"\bpip install\b(?!.*\buv==)", run) for run in runs), (
        "packages must come from uv.lock"
    )
    copies = " ".join(i["value"] for i in instructions if i["instruction"] == "COPY")
    assert "uv.lock" in copies


def test_no_secrets_or_sudo(instructions: list[dict[str, Any]]) -> None:
    for instruction in instructions:
        assert "sudo " not in instruction["value"]
        if instruction["instruction"] in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN)\s*=", instruction["value"], re.IGNORECASE)


def test_local_image_build_passes_only_arguments_the_dockerfile_declares(
    instructions: list[dict[str, Any]],
) -> None:
    """hack/images.sh builds this Dockerfile unchanged; a build-arg it does not declare would be
    ignored silently, and the local images would quietly differ from what was meant."""
    declared = {i["value"].split("=", 1)[0] for i in instructions if i["instruction"] == "ARG"}
    script = (DOCKERFILE.parent / "hack" / "images.sh").read_text()
    passed = set(re.findall(r"--build-arg (\w+)=", script))
    assert passed >= {"PYTHON_IMAGE", "CUDA_IMAGE", "UV_PYTHON_PREFERENCE", "UV_PYTHON"}
    assert passed <= declared, f"not ARGs of the Dockerfile: {sorted(passed - declared)}"
    # Each build stage sees a global ARG only when it declares it again.
    build = _stages(instructions)["build"]
    assert {"UV_PYTHON", "UV_PYTHON_PREFERENCE"} <= {i["value"] for i in build if i["instruction"] == "ARG"}


@pytest.mark.parametrize("target", TARGETS)
def test_final_stages_name_their_passwd_less_user(instructions: list[dict[str, Any]], target: str) -> None:
    """USER 65532 has no /etc/passwd entry; getpass.getuser() (kopf's identity) needs LOGNAME."""
    envs = " ".join(i["value"] for i in _stages(instructions)[target] if i["instruction"] == "ENV")
    assert re.search(r"\bLOGNAME=\w+", envs), f"stage {target} sets no LOGNAME"
