"""Request dependencies as named types: the app's services and the authenticated account."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admission import Admission, RateLimiter
from gateway.auth import authenticate
from gateway.db import Transactions
from gateway.fetch import FetchPolicy, Resolver
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.storage import Storage
from gateway.triton import Pipelines
from replate.imageio import ImageLimits


@dataclass(frozen=True)
class Services:
    """Everything a request may use; built once in the app's lifespan and closed there."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    transactions: Transactions
    """For the request path's ledger transactions (gateway.credits.charge)."""
    reader: AsyncEngine
    """For reads on the request path (db.reading): Core connections, which cost less than ORM sessions."""
    triton: Pipelines
    storage: Storage
    metrics: Metrics
    admission: Admission
    rate_limiter: RateLimiter
    api_key_secret: bytes
    """The HMAC key API keys are hashed under (gateway.auth)."""
    resolver: Resolver | None = None
    """DNS for image URLs; None means the system resolver (tests pass a stub)."""
    work_available: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a prediction is submitted, so idle workers wake at once instead of at their next poll."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the gateway begins to shut down (gateway.app.begin_shutdown)."""

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(max_megapixels=self.settings.max_image_megapixels, max_bytes=self.settings.max_image_bytes)

    @property
    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(
            max_bytes=self.settings.max_image_bytes,
            connect_timeout_s=self.settings.url_connect_timeout_s,
            read_timeout_s=self.settings.url_read_timeout_s,
            allowed_hosts=frozenset(self.settings.url_allowed_hosts),
        )


async def first_of(*events: asyncio.Event, timeout_s: float) -> None:
    """Return as soon as one of `events` is set, or after `timeout_s`. Background loops wait with it on
    `Services.stopping`, so that they end even when a cancellation is lost (SQLAlchemy can turn a cancellation
    that lands inside a statement into an ordinary error)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def get_services(request: Request) -> Services:  # async: FastAPI would run a sync one in a thread
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


BEARER_KEY = HTTPBearer(auto_error=False, scheme_name="bearerKey", description="`Authorization: Bearer <key>`")
HEADER_KEY = APIKeyHeader(name="x-api-key", auto_error=False, scheme_name="apiKeyHeader", description="`x-api-key`")
"""The two ways to present a key over HTTP, as security schemes of the OpenAPI document (auto_error off: a missing
key is our 401 `unauthorized`, not FastAPI's)."""


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:]
    return None


def presented_key(bearer: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: `x-api-key` first, else the bearer token."""
    return (x_api_key or "").strip() or (bearer or "").strip() or None


async def get_account_id(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_KEY)],
    x_api_key: Annotated[str | None, Security(HEADER_KEY)],
) -> int:
    key = presented_key(bearer.credentials if bearer else None, x_api_key)
    async with services.reader.connect() as connection:
        account_id = await authenticate(connection, key, services.api_key_secret)
    request.state.account_id = account_id  # read by the middleware that adds x-remaining-credits
    return account_id


AccountDep = Annotated[int, Depends(get_account_id)]
