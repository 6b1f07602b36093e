"""Faults around a real gateway: an answer it never gave (a 503 in front of it) and an answer the client never got
(a connection that breaks after the gateway has answered)."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.db import CreditEntry, create_engine, create_sessionmaker
from gateway.settings import Settings


class RefuseFirst:
    """ASGI middleware: the first `count` requests to `method path` are answered with `status`, an `overloaded`
    error body and `Retry-After: retry_after` before the gateway sees them (nothing held, nothing charged); every
    other request, and the lifespan, pass through. `seen` counts the matching requests, refused or not."""

    def __init__(
        self, app: ASGIApp, *, path: str, method: str = "POST", status: int = 503, retry_after: int = 0, count: int = 1
    ) -> None:
        self.app, self.path, self.method = app, path, method
        self.status, self.retry_after, self.count = status, retry_after, count
        self.seen = 0
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) != (self.method, self.path):
            await self.app(scope, receive, send)
            return
        self.seen += 1
        if self.refused >= self.count:
            await self.app(scope, receive, send)
            return
        self.refused += 1
        while (await receive()).get("more_body"):
            pass
        body = {"error": {"code": "overloaded", "message": "injected by the test: the server is at capacity"}}
        headers = [(b"content-type", b"application/json"), (b"retry-after", str(self.retry_after).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends every request to the real server; the first POST's answer is read in full and then lost, as when the
    connection breaks after the server has done the work. `requests` and `answers` are what went over the wire."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.requests.append(request)
        self.answers.append(response)
        if request.method == "POST" and len([r for r in self.requests if r.method == "POST"]) == 1:
            raise httpx.ReadError("the connection broke after the server answered", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class LoseFirstAnswerAsync(httpx.AsyncBaseTransport):
    """`LoseFirstAnswer` for the AsyncClient."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.requests.append(request)
        self.answers.append(response)
        if request.method == "POST" and len([r for r in self.requests if r.method == "POST"]) == 1:
            raise httpx.ReadError("the connection broke after the server answered", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def journal(settings: Settings, kind: str) -> list[int]:
    """The amounts of the credit journal's entries of `kind` (grant, hold, capture, release), oldest first."""
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(CreditEntry.amount).where(CreditEntry.kind == kind).order_by(CreditEntry.id)
            return list((await session.execute(query)).scalars())
    finally:
        await engine.dispose()
