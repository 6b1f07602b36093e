"""`replate serve`: migrate, start tritonserver (unless an external one is configured), then the gateway.
`replate gateway`: the gateway alone, in front of an external Triton and a migrated database (containers).

Ctrl-C or SIGTERM stops the gateway gracefully (`GatewayServer`) and then Triton.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from gateway.admin import ensure_demo_key
from gateway.app import begin_shutdown, create_app
from gateway.logs import configure_logging
from gateway.migrate import upgrade_database
from gateway.settings import Settings
from gateway.tritonserver import MODEL_REPOSITORY, TritonServer
from replate.errors import ReplateError
from replate.models import weights_path

log = logging.getLogger("replate.serve")
DEMO_ACCOUNT = "demo"
DEMO_CREDITS = 1000


def serve(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.triton_url:
        weights_path(settings.segmenter, settings.models_dir)  # missing: say `replate models pull`, start nothing
    upgrade_database(settings.database_url)
    demo_key = _announce_demo_key(settings)
    # SIGTERM unwinds through the `finally` below, so Triton is stopped: before uvicorn runs, and after it, when
    # uvicorn re-raises the signal it captured for its own graceful shutdown. A requested stop exits 0.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    triton = None
    try:
        if not settings.triton_url:
            extra = (settings.diffusion_dir,) if settings.diffusion_dir else ()
            triton = TritonServer(
                settings.data_dir / "triton",
                settings.models_dir,
                (MODEL_REPOSITORY, *extra),
                segmenter=(settings.segmenter, settings.segmenter_format),
            )
            log.info("starting tritonserver (log: %s)", triton.log_path)
            triton.start()
            settings = settings.model_copy(update={"triton_url": triton.grpc_url})
            log.info("tritonserver ready: gRPC %s, HTTP %s", triton.grpc_url, triton.http_url)
        _run_gateway(settings, demo_key if _is_loopback(settings.http_host) else None)
    finally:
        if triton is not None:
            log.info("stopping tritonserver")
            triton.stop()
    return 0


def serve_gateway(settings: Settings) -> int:
    """The gateway only: Triton at REPLATE_TRITON_URL, a database whose migrations were applied beforehand
    (`replate db upgrade`, e.g. a deployment's migration job), no demo key. SIGTERM drains and exits 0."""
    if not settings.triton_url:
        raise ReplateError("`replate gateway` needs an external Triton: set REPLATE_TRITON_URL (or --triton-url)")
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # uvicorn re-raises SIGTERM after draining: exit 0 then
    _run_gateway(settings)
    return 0


def _run_gateway(settings: Settings, demo_key: str | None = None) -> None:
    app = create_app(settings, demo_key=demo_key)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # ours (configure_logging) stays in charge
        access_log=False,  # replate.access logs each request, with its request id
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    GatewayServer(config, app).run()


class GatewayServer(uvicorn.Server):
    """uvicorn, which on SIGTERM stops accepting connections and lets requests in flight finish (at most
    `shutdown_grace_s`, then cancels them: their holds are released); it tells the app at that same moment, so that
    gRPC and the prediction workers stop taking work too (uvicorn's lifespan shutdown comes only after the drain)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        begin_shutdown(self.app)
        await super().shutdown(sockets)


def _exit_on_signal(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _announce_demo_key(settings: Settings) -> str | None:
    """The demo key, when this start created it (the very first one); it is printed once."""
    key = asyncio.run(ensure_demo_key(settings, DEMO_ACCOUNT, DEMO_CREDITS))
    if key:
        print(f"API key: {key}", flush=True)
        print(f"(demo account with {DEMO_CREDITS} credits; this key is shown only once)", flush=True)
    else:
        print("Accounts exist already; create another with: replate keys create --name NAME --credits N", flush=True)
    print(f"Playground: http://{settings.http_host}:{settings.http_port}/ (open it in a browser)", flush=True)
    return key


def _is_loopback(host: str) -> bool:
    """Only a playground that nobody else can reach is handed the demo key."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
