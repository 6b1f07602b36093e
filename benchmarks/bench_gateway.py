"""Gateway-only benchmark: the gateway's own cost per request, no Triton. The pipelines are a fake that answers at once
with a ready-made ~1 MP PNG, so what is measured is authentication, admission, the credit ledger, the body's parsing,
storage and the response. uvicorn serves the app in a thread on this machine (SQLite unless `--database-url`); the
client is httpx (HTTP) and grpc.aio (gRPC) in the main thread, one request at a time.

Prints p50/p95 per endpoint (client side), the CPU time of the gateway's event-loop thread per request (a figure
that other load on the machine moves far less than latency), the gateway's overhead in issue 7's terms and, per
phase (by wrapping the gateway's functions), the p50/p95 of one call and the calls per request.

The overhead is the gateway's own time per request with a pipeline that costs nothing: server side, from its access
log (receipt of the request to the start of the response, the body's receipt included). A direct Triton call for
the same work costs what the pipeline costs, here ~0, so this is "gateway p50 minus the direct Triton call" without
the noise of subtracting two large numbers (`bench_request_path` measures that difference against a real Triton).
Storing the output (`storage save`, a file write of the ~1.4 MB PNG) is part of it. Run from the repository root:
`python -m benchmarks.bench_gateway [--requests 200] [--database-url postgresql+asyncpg://...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import importlib
import inspect
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from gateway.admin import create_key
from gateway.migrate import upgrade_database
from gateway.proto.replate.v1 import replate_pb2 as pb
from gateway.proto.replate.v1 import replate_pb2_grpc
from gateway.settings import Settings
from gateway.triton import DRAWN_SCENE_ENGINES, PipelineOutput
from replate.imageio import encode_image
from tests.integration.conftest import GatewayThread, free_port
from tests.synthetic import make_studio_shot

PHASES = (
    # (module, attribute, phase): wrapped where present, so the script runs on older commits of the gateway too
    ("gateway.deps", "authenticate", "authenticate (HTTP)"),
    ("gateway.grpc_api", "authenticate", "authenticate (gRPC)"),
    ("gateway.operations", "read_image", "read image field (base64 + probe)"),
    ("gateway.credits", "hold_credits", "hold_credits"),
    ("gateway.credits", "capture_hold", "capture_hold"),
    ("gateway.db", "Transactions.run", "ledger transaction, hop included (Transactions.run)"),
    ("gateway.app", "get_balance", "get_balance (HTTP middleware)"),
    ("gateway.routes.system", "get_balance", "get_balance (GET /v1/credits)"),
    ("gateway.grpc_api", "get_balance", "get_balance (gRPC)"),
    ("gateway.storage", "LocalStorage.save", "storage save"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSessionTransaction.commit", "SQLAlchemy session commit"),
    ("sqlalchemy.ext.asyncio.engine", "AsyncTransaction.commit", "SQLAlchemy connection commit"),
)
OVERHEAD = "gateway overhead (server side, 0-cost pipeline)"
timings: dict[str, list[float]] = defaultdict(list)
server_thread: list[int] = []
"""The ident of the thread that runs the gateway's event loop, once started."""


class ServerSideTimes(logging.Handler):
    """Collects the gateway's own per-request duration (from receipt to response start: what the gateway adds to
    a pipeline call, without the client and the transport) from its access log."""

    def emit(self, record: logging.LogRecord) -> None:
        duration_ms = getattr(record, "duration_ms", None)
        if duration_ms is not None:
            timings[OVERHEAD].append(float(duration_ms))


@contextmanager
def _timer(phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase].append((time.perf_counter() - started) * 1000)


def _timed(phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The ledger's functions are synchronous units of work (run in a database thread on SQLite), the rest async."""
    if not inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _timer(phase):
                return function(*args, **kwargs)

        return run

    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _timer(phase):
            return await function(*args, **kwargs)

    return wrapper


def instrument() -> None:
    for module_name, attribute, phase in PHASES:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            setattr(owner, name, _timed(phase, getattr(owner, name)))


class InstantPipelines:
    """Answers every call at once with the same PNG (encoded once, up front)."""

    def __init__(self, png: bytes, width: int, height: int) -> None:
        self.output = PipelineOutput(
            images=[png],
            info={
                "width": width,
                "height": height,
                "seed": 1,
                "engines": {"matting": "fake", "scene": "fake"},
                "timings_ms": {"total": 0.0},
            },
        )

    async def run(self, *args: object, **kwargs: object) -> PipelineOutput:
        return self.output

    async def is_ready(self) -> bool:
        return True

    async def scene_engines(self) -> list[str]:
        return list(DRAWN_SCENE_ENGINES)

    async def close(self) -> None:
        pass


def _percentiles(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), float(np.percentile(values, 95))


async def measure(label: str, call: Callable[[], Awaitable[object]], requests: int) -> None:
    for _ in range(5):  # warm-up: first-call costs are not steady state
        await call()
    timings.clear()
    latencies = []
    cpu_started = _server_cpu_s()
    for _ in range(requests):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    loop_cpu_ms = (_server_cpu_s() - cpu_started) / requests * 1000
    p50, p95 = _percentiles(latencies)
    print(f"{label:<48} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   gateway event-loop CPU {loop_cpu_ms:5.2f} ms/request")
    for phase, values in sorted(timings.items()):
        p50, p95 = _percentiles(values)
        print(f"    {phase:<44} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   {len(values) / requests:4.1f}/request")


def _server_cpu_s() -> float:
    """CPU seconds of the gateway's event-loop thread: unlike latency, barely moved by other work on the machine."""
    return time.clock_gettime(time.pthread_getcpuclockid(server_thread[0])) if server_thread else 0.0


async def bench_http(url: str, key: str, jpeg: bytes, requests: int) -> None:
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def post(path: str, body: dict[str, object]) -> None:
            (await http.post(path, json=body, headers=auth)).raise_for_status()

        async def upload(path: str, fields: dict[str, str]) -> None:
            files = {"image": ("photo.jpg", jpeg, "image/jpeg")}
            (await http.post(path, data=fields, files=files, headers=auth)).raise_for_status()

        async def get_credits() -> None:
            (await http.get("/v1/credits", headers=auth)).raise_for_status()

        replace = {"image_url": image, "bg_color": "#ffffff", "seed": 1}
        await measure(
            "HTTP replace-background (stored)", lambda: post("/v1/image/replace-background", replace), requests
        )
        await measure(
            "HTTP replace-background (stored, multipart)",
            lambda: upload("/v1/image/replace-background", {"bg_color": "#ffffff", "seed": "1"}),
            requests,
        )
        replace_inline = {**replace, "return_base64": True}
        await measure(
            "HTTP replace-background (return_base64)",
            lambda: post("/v1/image/replace-background", replace_inline),
            requests,
        )
        await measure(
            "HTTP remove-background (JSON in, PNG out)",
            lambda: post("/v1/remove-background", {"image": image}),
            requests,
        )
        await measure(
            "HTTP remove-background (multipart in, PNG out)", lambda: upload("/v1/remove-background", {}), requests
        )
        await measure("HTTP GET /v1/credits", get_credits, requests)


async def bench_grpc(port: int, key: str, jpeg: bytes, requests: int) -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = replate_pb2_grpc.ReplateStub(channel)
        request = pb.ReplaceBackgroundRequest(image_bytes=jpeg, bg_color="#ffffff", seed=1)

        async def replace() -> None:
            await stub.ReplaceBackground(request, metadata=metadata)

        async def balance() -> None:
            await stub.GetBalance(pb.GetBalanceRequest(), metadata=metadata)

        await measure("gRPC ReplaceBackground", replace, requests)
        await measure("gRPC GetBalance", balance, requests)


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    rgb = make_studio_shot(1250, 840, seed=1)[0]
    jpeg = encode_image(rgb, "jpeg")
    png = encode_image(rgb, "png")
    settings = Settings(
        data_dir=data_dir,
        database_url=args.database_url,
        triton_url="fake:1",
        grpc_port=free_port(),
        prediction_workers=0,
    )
    await asyncio.to_thread(upgrade_database, settings.database_url)
    key = await create_key(settings, f"bench-{time.time_ns()}", 10**9)
    print(
        f"input {len(jpeg)} B JPEG ({rgb.shape[1]}x{rgb.shape[0]}), output {len(png)} B PNG; {args.requests} requests"
    )
    print(f"database {settings.database_url.split('://')[0]}; {args.requests} sequential requests per endpoint")
    instrument()
    with GatewayThread(settings, InstantPipelines(png, rgb.shape[1], rgb.shape[0])) as server:
        server_thread.append(server.thread.ident)
        await bench_http(f"http://127.0.0.1:{server.port}", key, jpeg, args.requests)
        await bench_grpc(settings.grpc_port, key, jpeg, args.requests)


def _listen_to_access_log() -> None:
    access_log = logging.getLogger("replate.access")
    access_log.addHandler(ServerSideTimes())
    access_log.setLevel(logging.INFO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default="", help="empty: SQLite in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _listen_to_access_log()
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
