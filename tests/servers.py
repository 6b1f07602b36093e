"""The gateway under a real uvicorn server in a thread of the test process, on a free port: for tests that need a
real HTTP connection (integration, fuzz) without Triton's start-up."""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import Pipelines


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
