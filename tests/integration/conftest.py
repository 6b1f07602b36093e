"""Real servers for integration tests: tritonserver from the nvidia-pytriton wheel and the gateway under uvicorn
(tests.servers.GatewayThread, also imported from here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from export.diffusion.build import export_build
from export.diffusion.tiny import build_tiny
from gateway.settings import Settings
from gateway.tritonserver import TritonServer
from tests.servers import GatewayThread, free_port

__all__ = ["GatewayThread", "free_port"]


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    with TritonServer(tmp_path_factory.mktemp("triton"), Settings().models_dir) as server:
        yield server


@pytest.fixture(scope="session")
def diffusion_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD diffusion build (ControlNet and IP-Adapter included) for the cpu-python target."""
    tiny = build_tiny(tmp_path_factory.mktemp("tiny"), "sd")
    out = tmp_path_factory.mktemp("diffusion-build")
    export_build(
        tiny.pipeline, out, target="cpu-python", controlnet_dir=tiny.controlnet, ip_adapter_dir=tiny.ip_adapter
    )
    return out


@pytest.fixture
def gateway(settings: Settings, triton: TritonServer) -> Iterator[GatewayThread]:
    with GatewayThread(settings.model_copy(update={"triton_url": triton.grpc_url})) as running:
        yield running


@pytest.fixture
def own_triton(tmp_path: Path) -> Iterator[TritonServer]:
    """A Triton of the test's own, for tests that kill it."""
    server = TritonServer(tmp_path / "own-triton", Settings().models_dir)
    server.start()
    yield server
    server.stop()
