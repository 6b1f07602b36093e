"""The repository's Dockerfiles, parsed with dockerfile-parse (line continuations, ARG defaults in FROM)."""

from __future__ import annotations

import io

from dockerfile_parse import DockerfileParser

from tests.deploy.conftest import REPO

DOCKERFILES = {"gateway": REPO / "docker" / "Dockerfile.gateway", "triton": REPO / "docker" / "Dockerfile.triton"}


def parse(image: str) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILES[image].read_bytes()))


def instructions(image: str, name: str) -> list[str]:
    return [item["value"] for item in parse(image).structure if item["instruction"] == name]


def copies(image: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from another stage)."""
    found = []
    for value in instructions(image, "COPY"):
        *sources, destination = value.split()
        if not any(source.startswith("--from=") for source in sources):
            found.append((sources, destination))
    return found
