"""Real servers for integration tests: tritonserver from the nvidia-pytriton wheel and the gateway under uvicorn."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp

from export.diffusion.build import export_build
from export.diffusion.tiny import build_tiny
from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import Pipelines
from gateway.tritonserver import TritonServer


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayThread:
    """The gateway app under a real uvicorn server in a background thread, on a free port (`pipelines` replaces the
    Triton client, as in `create_app`; `app` is a gateway app the test built itself, e.g. wrapped in middleware)."""

    def __init__(self, settings: Settings, pipelines: Pipelines | None = None, app: ASGIApp | None = None) -> None:
        self.port = free_port()
        self.app = app or create_app(settings, pipelines=pipelines)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            self.thread.join(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


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
