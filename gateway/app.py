"""The gateway application factory: services are created in the lifespan, hung on app.state and closed there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admission import Admission, RateLimiter
from gateway.auth import api_key_secret, rehash_legacy_keys
from gateway.credits import available_credits, release_stale_holds, start_balance_report
from gateway.db import Transactions, create_engine, create_sessionmaker, reading, utcnow
from gateway.deps import Services, first_of
from gateway.errors import RETRY_AFTER_S, DatabaseUnavailable, error_response, install_error_handlers
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

log = logging.getLogger("replate.gateway")
access_log = logging.getLogger("replate.access")
SETTLE_TIMEOUT_S = 10.0
"""How long the shutdown waits for requests cancelled past the grace to release their credit holds."""
SHUTDOWN_CANCELLED = "the server is shutting down and could not finish this request in time; nothing was charged"


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
            transactions=Transactions(engine),
            reader=reading(engine),
            triton=triton,
            storage=create_storage(settings),
            metrics=metrics,
            admission=Admission.from_settings(settings, metrics),
            rate_limiter=RateLimiter.from_settings(settings, metrics),
            api_key_secret=api_key_secret(settings),
            resolver=resolver,
        )
        services: Services = app.state.services
        await _rehash_legacy_keys(services)
        log.info("scene engines: %s", ", ".join(await triton.scene_engines()))
        housekeeping = asyncio.create_task(_keep_house(services))
        app.state.workers = [
            asyncio.create_task(PredictionWorker(services).run_forever()) for _ in range(settings.prediction_workers)
        ]
        app.state.grpc_server = await start_grpc_server(services, settings.http_host, settings.grpc_port)
        try:
            yield
        finally:
            begin_shutdown(app)
            await app.state.grpc_stopped
            housekeeping.cancel()
            for task in (*app.state.workers, housekeeping):
                with suppress(asyncio.CancelledError):
                    await task
            await _wait_for_settlements(services)
            await triton.close()
            await services.transactions.dispose()
            await engine.dispose()

    app = FastAPI(
        title="replate",
        version="0.1.0",
        summary="Replace the background of a photo: true alpha matte, new scene, composite.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_playground(app, demo_key)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes(settings))
    app.add_middleware(RequestContextMiddleware)  # the outer one: its headers go on the body limit's 413 too
    return app


def begin_shutdown(app: FastAPI) -> None:
    """The gateway stops taking work (uvicorn has stopped accepting connections, see gateway.server): gRPC refuses
    new calls and lets those in flight finish within `shutdown_grace_s`; prediction workers stop, handing the jobs
    in their hands back to the queue at once, for another gateway (or this one's next start) to resume. A no-op
    when called again (by the lifespan's end)."""
    services: Services = app.state.services
    if services.stopping.is_set():
        return
    services.stopping.set()
    grace_s = services.settings.shutdown_grace_s
    app.state.grpc_stopped = asyncio.create_task(app.state.grpc_server.stop(grace_s))
    for worker in app.state.workers:
        worker.cancel()
    log.info("shutting down: calls in flight have %g s to finish, prediction jobs go back to the queue", grace_s)


async def _wait_for_settlements(services: Services) -> None:
    """Requests that uvicorn cancelled past the shutdown grace release their holds as they unwind, in their own
    tasks; the process must not end first (asyncio.run then cancels every task left, a release in progress
    included, and the hold would stay open until another gateway's housekeeping released it)."""
    if not await services.admission.wait_idle(SETTLE_TIMEOUT_S):
        log.warning(
            "requests still in flight %g s after the shutdown; housekeeping releases their holds", SETTLE_TIMEOUT_S
        )


async def _rehash_legacy_keys(services: Services) -> None:
    """Keys stored before HMAC hashing work from this start on (`replate db upgrade` does the same)."""
    try:
        async with services.sessions.begin() as session:
            rehashed = await rehash_legacy_keys(session, services.api_key_secret)
    except DatabaseUnavailable:  # start anyway (readyz says the database is down); the next start re-hashes
        log.warning("could not re-hash legacy API keys: the database is unavailable")
        return
    if rehashed:
        log.info("re-hashed %d API key(s) stored before HMAC hashing under the API key secret", rehashed)


async def _keep_house(services: Services) -> None:
    """At start and then every `housekeeping_interval_s`: release holds left by a gateway that died mid-request
    (older than `hold_release_after_s`), delete outputs past their retention, forget expired idempotency keys."""
    settings = services.settings
    release_after = timedelta(seconds=settings.hold_release_after_s)
    while not services.stopping.is_set():
        try:
            async with services.sessions.begin() as session:
                released = await session.run_sync(release_stale_holds, utcnow() - release_after)
                await delete_expired_keys(session)
            deleted = await services.storage.delete_older_than(services.settings.output_retention_s)
            if released:
                log.warning("released %d stale credit hold(s)", released)
            if deleted:
                log.info("deleted %d expired output(s)", deleted)
        except Exception:  # housekeeping must outlive a database hiccup; it retries on the next round
            log.exception("housekeeping failed")
        await first_of(services.stopping, timeout_s=settings.housekeeping_interval_s)


def max_body_bytes(settings: Settings) -> int:
    """Room for two base64 images (photo and reference scene) at the byte limit, plus the other fields: a bigger
    body is refused with 413 before it is read."""
    return 2 * (settings.max_image_bytes * 4 // 3 + 4) + 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without a Content-Length passes the limit: an HTTPException, so that the
    body parsers (FastAPI's, starlette's forms) let it through to the error handler (413, `image_too_large`)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is over the {max_bytes} byte limit: send smaller images")


class BodyLimitMiddleware:
    """A body over `max_bytes` is refused with 413 `image_too_large` in the API's error shape: at once, unread, when
    its Content-Length says so, else as soon as the bytes received pass the limit (a chunked body). Starlette's own
    limiter (FastAPI's `max_body_size`) answers a declared oversize body in plain text, without a code."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            response = error_response(Request(scope), "image_too_large", error.detail, error.status_code)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, receive_within_limit, send)


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
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                account_id = state.get("account_id")
                if account_id is not None:
                    try:
                        available = await available_credits(services.reader, account_id, balance_report)
                        headers["x-remaining-credits"] = str(available)
                    except DatabaseUnavailable:  # the answer (a 503 most likely) matters more than this header
                        log.warning("no x-remaining-credits: the database is unavailable")
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

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the shutdown grace runs out; the task ends here
            # anyway, so say what happened (the hold is released by now) rather than let uvicorn send a bare 500
            if not services.stopping.is_set() or response_started:
                raise
            log.warning("%s %s cancelled: the shutdown grace ran out", scope["method"], scope["path"])
            error = error_response(Request(scope), "unavailable", SHUTDOWN_CANCELLED, 503, RETRY_AFTER_S["unavailable"])
            await error(scope, receive, send_with_headers)
