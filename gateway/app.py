"""The gateway application factory: services are created in the lifespan, hung on app.state and closed there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admission import Admission, RateLimiter
from gateway.credits import available_credits, release_stale_holds, start_balance_report
from gateway.db import create_engine, create_sessionmaker, reading, utcnow
from gateway.deps import Services
from gateway.errors import install_error_handlers
from gateway.fetch import Resolver
from gateway.grpc_api import start_grpc_server
from gateway.idempotency import delete_expired_keys
from gateway.logs import start_request
from gateway.metrics import Metrics
from gateway.predictions import PredictionWorker
from gateway.routes import ROUTERS
from gateway.routes.playground import install_playground
from gateway.settings import Settings
from gateway.storage import create_storage
from gateway.triton import Pipelines, TritonPipelines

HOUSEKEEPING_INTERVAL_S = 60.0
GRPC_GRACE_S = 10.0
log = logging.getLogger("replate.gateway")
access_log = logging.getLogger("replate.access")


def create_app(
    settings: Settings | None = None,
    pipelines: Pipelines | None = None,
    resolver: Resolver | None = None,
    demo_key: str | None = None,
) -> FastAPI:
    """`pipelines` replaces the Triton client and `resolver` the DNS of image URLs (tests pass fakes for both);
    `demo_key` pre-fills the playground's key field (only `replate serve`'s embedded default passes one)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        triton = pipelines or TritonPipelines(settings.triton_url, settings.triton_timeout_s)
        metrics = Metrics.create()
        app.state.services = Services(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            reader=reading(engine),
            triton=triton,
            storage=create_storage(settings),
            metrics=metrics,
            admission=Admission.from_settings(settings, metrics),
            rate_limiter=RateLimiter.from_settings(settings, metrics),
            resolver=resolver,
        )
        services: Services = app.state.services
        log.info("scene engines: %s", ", ".join(await triton.scene_engines()))
        tasks = [asyncio.create_task(_keep_house(services))]
        tasks += [
            asyncio.create_task(PredictionWorker(services).run_forever()) for _ in range(settings.prediction_workers)
        ]
        grpc_server = await start_grpc_server(services, settings.http_host, settings.grpc_port)
        app.state.grpc_server = grpc_server
        try:
            yield
        finally:
            await grpc_server.stop(GRPC_GRACE_S)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            await triton.close()
            await engine.dispose()

    app = FastAPI(
        title="replate",
        version="0.1.0",
        summary="Replace the background of a photo: true alpha matte, new scene, composite.",
        lifespan=lifespan,
        max_body_size=max_body_bytes(settings),
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_playground(app, demo_key)
    app.add_middleware(RequestContextMiddleware)
    return app


async def _keep_house(services: Services) -> None:
    """At start and then every minute: release holds left by a gateway that died mid-request, delete outputs past
    their retention and forget expired idempotency keys."""
    max_hold_age = timedelta(seconds=services.settings.triton_timeout_s + HOUSEKEEPING_INTERVAL_S)
    while True:
        try:
            async with services.sessions.begin() as session:
                released = await release_stale_holds(session, utcnow() - max_hold_age)
                await delete_expired_keys(session)
            deleted = await services.storage.delete_older_than(services.settings.output_retention_s)
            if released:
                log.warning("released %d stale credit hold(s)", released)
            if deleted:
                log.info("deleted %d expired output(s)", deleted)
        except Exception:  # housekeeping must outlive a database hiccup; it retries on the next round
            log.exception("housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


def max_body_bytes(settings: Settings) -> int:
    """Room for two base64 images (photo and reference scene) at the byte limit, plus the other fields: a bigger
    body is refused with 413 before it is read."""
    return 2 * (settings.max_image_bytes * 4 // 3 + 4) + 64 * 1024


class RequestContextMiddleware:
    """Per request: an `x-request-id` (the client's, if well-formed), `x-remaining-credits` on every authenticated
    response (success or error), and the request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = start_request(dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        balance_report = start_balance_report()
        services: Services = scope["app"].state.services
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                account_id = state.get("account_id")
                if account_id is not None:
                    available = await available_credits(services.reader, account_id, balance_report)
                    headers["x-remaining-credits"] = str(available)
                route = getattr(scope.get("route"), "path", "unmatched")
                elapsed_s = time.perf_counter() - started
                services.metrics.requests.labels(route, str(message["status"])).inc()
                services.metrics.request_latency.labels(route).observe(elapsed_s)
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    message["status"],
                    extra={
                        "status": message["status"],
                        "duration_ms": round(elapsed_s * 1000, 1),
                        "account_id": account_id,
                        "route": route,
                    },
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)
